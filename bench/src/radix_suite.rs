//! The radix suite: lookup and CAS throughput of the mapping table against what a user would
//! otherwise pick, measured in the same run: a flat preallocated `Vec<AtomicU64>` (the lower
//! bound: one load, no levels, no growth), `parking_lot::RwLock<HashMap>` and `DashMap`.
//! Memory per id is measured with the counting allocator.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use dashmap::DashMap;
use parking_lot::RwLock;
use radix::{Pid, RadixTable, SlotWord};

use crate::alloc_counter::live_bytes;
use crate::report::Row;

/// What one benchmark does to one id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lookup,
    Cas,
}

/// A page-id map under test.
trait IdMap: Sync {
    const NAME: &'static str;
    fn build(ids: u64) -> Self;
    fn lookup(&self, id: u64) -> u64;
    fn cas(&self, id: u64);
}

impl IdMap for RadixTable {
    const NAME: &'static str = "radix";
    fn build(ids: u64) -> Self {
        let table = RadixTable::new();
        for id in 0..ids {
            let slot = table.slot(Pid::new(id).expect("bench ids fit"));
            slot.try_replace(SlotWord::FREE, SlotWord::on_disk(id))
                .expect("fresh slot");
        }
        table
    }
    fn lookup(&self, id: u64) -> u64 {
        let slot = self
            .get(Pid::new(id).expect("bench ids fit"))
            .expect("populated");
        match slot.load().state() {
            radix::SlotState::OnDisk(v) => v,
            _ => 0,
        }
    }
    fn cas(&self, id: u64) {
        let slot = self
            .get(Pid::new(id).expect("bench ids fit"))
            .expect("populated");
        loop {
            let current = slot.load();
            let radix::SlotState::OnDisk(v) = current.state() else {
                unreachable!()
            };
            if slot.try_replace(current, SlotWord::on_disk(v + 1)).is_ok() {
                return;
            }
        }
    }
}

/// The lower bound: a preallocated flat array.
struct FlatVec(Vec<AtomicU64>);

impl IdMap for FlatVec {
    const NAME: &'static str = "flat Vec<AtomicU64>";
    fn build(ids: u64) -> Self {
        FlatVec((0..ids).map(AtomicU64::new).collect())
    }
    fn lookup(&self, id: u64) -> u64 {
        // Acquire, as the radix table's loads are.
        self.0[id as usize].load(Ordering::Acquire)
    }
    fn cas(&self, id: u64) {
        let word = &self.0[id as usize];
        let mut current = word.load(Ordering::Acquire);
        while let Err(now) =
            word.compare_exchange(current, current + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            current = now;
        }
    }
}

struct LockedMap(RwLock<HashMap<u64, u64>>);

impl IdMap for LockedMap {
    const NAME: &'static str = "RwLock<HashMap>";
    fn build(ids: u64) -> Self {
        LockedMap(RwLock::new((0..ids).map(|id| (id, id)).collect()))
    }
    fn lookup(&self, id: u64) -> u64 {
        self.0.read()[&id]
    }
    fn cas(&self, id: u64) {
        *self.0.write().get_mut(&id).expect("populated") += 1;
    }
}

struct Dash(DashMap<u64, u64>);

impl IdMap for Dash {
    const NAME: &'static str = "DashMap";
    fn build(ids: u64) -> Self {
        Dash((0..ids).map(|id| (id, id)).collect())
    }
    fn lookup(&self, id: u64) -> u64 {
        *self.0.get(&id).expect("populated")
    }
    fn cas(&self, id: u64) {
        *self.0.get_mut(&id).expect("populated") += 1;
    }
}

/// Settings of one run of the suite.
#[derive(Clone, Debug)]
pub struct RadixConfig {
    pub id_counts: Vec<u64>,
    pub threads: Vec<usize>,
    pub ops_per_thread: u64,
    pub repeats: usize,
    pub seed: u64,
}

/// xorshift64*: the cheapest decent generator, identical for every map so only the map differs.
fn next_id(state: &mut u64, ids: u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d) % ids
}

fn run_threads<M: IdMap>(map: &M, ids: u64, op: Op, threads: usize, cfg: &RadixConfig) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut state = cfg.seed ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let mut sum = 0u64;
                for _ in 0..cfg.ops_per_thread {
                    let id = next_id(&mut state, ids);
                    match op {
                        Op::Lookup => sum = sum.wrapping_add(map.lookup(id)),
                        Op::Cas => map.cas(id),
                    }
                }
                black_box(sum);
            });
        }
    });
    (cfg.ops_per_thread * threads as u64) as f64 / start.elapsed().as_secs_f64()
}

fn measure<M: IdMap>(ids: u64, cfg: &RadixConfig, rows: &mut Vec<Row>) {
    let before = live_bytes();
    let map = M::build(ids);
    let bytes_per_id = live_bytes().saturating_sub(before) as f64 / ids as f64;
    for op in [Op::Lookup, Op::Cas] {
        for &threads in &cfg.threads {
            let mut samples: Vec<f64> = (0..cfg.repeats)
                .map(|_| run_threads(&map, ids, op, threads, cfg))
                .collect();
            samples.sort_by(f64::total_cmp);
            let median = samples[samples.len() / 2];
            rows.push(Row {
                suite: "radix",
                case: format!("{op:?} {}M ids, {threads} thr", ids / 1_000_000),
                engine: M::NAME.to_string(),
                value: median,
                unit: "ops/s",
                higher_is_better: true,
                extra: format!("{bytes_per_id:.2} B/id"),
            });
        }
    }
}

/// Runs the suite and returns its rows.
pub fn run(cfg: &RadixConfig, mut progress: impl FnMut(&str)) -> Vec<Row> {
    let mut rows = Vec::new();
    for &ids in &cfg.id_counts {
        progress(&format!("radix: {ids} ids"));
        measure::<RadixTable>(ids, cfg, &mut rows);
        measure::<FlatVec>(ids, cfg, &mut rows);
        measure::<LockedMap>(ids, cfg, &mut rows);
        measure::<Dash>(ids, cfg, &mut rows);
    }
    rows
}
