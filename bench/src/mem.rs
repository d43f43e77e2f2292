//! The `mem` suite: bwtree as an in-memory ordered map (`temporary`, no periodic flush) against
//! the ordered maps a user would otherwise pick: `BTreeMap` under a `parking_lot::RwLock`,
//! crossbeam-skiplist's `SkipMap` and scc's `TreeIndex` (the last two with the `peers` feature).
//!
//! For u64 keys (8 bytes, big-endian) and random 24-byte keys, with 8-byte values, on 1 and 2
//! threads: insert N keys into an empty map, get every key in random order, 10-pair scans from
//! N/10 random keys, and YCSB-A (50% gets, 50% updates, uniform) for N operations. Every map runs
//! in this process, one after the other, on a fresh map per key kind and thread count.

use std::collections::BTreeMap;
use std::time::Instant;

use parking_lot::RwLock;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::keys::shuffled;
use crate::report::Row;

/// Counts the pairs of a scan, reading each value's length so the values are touched.
fn count(lens: impl Iterator<Item = usize>) -> usize {
    lens.fold(0, |n, len| {
        std::hint::black_box(len);
        n + 1
    })
}

/// An ordered map under test; byte-string keys and values.
trait OrderedMap: Sync {
    const NAME: &'static str;
    fn create() -> Self;
    fn put(&self, key: &[u8], value: &[u8]);
    fn get_len(&self, key: &[u8]) -> Option<usize>;
    fn scan(&self, start: &[u8], n: usize) -> usize;
}

impl OrderedMap for bwtree::Db {
    const NAME: &'static str = "bwtree";
    fn create() -> Self {
        let config = bwtree::Config::new().temporary(true).flush_every_ms(None);
        config.open().expect("a temporary bwtree opens")
    }
    fn put(&self, key: &[u8], value: &[u8]) {
        self.insert(key, value).expect("in-memory insert");
    }
    fn get_len(&self, key: &[u8]) -> Option<usize> {
        self.get(key).expect("in-memory get").map(|v| v.len())
    }
    fn scan(&self, start: &[u8], n: usize) -> usize {
        let pairs = self.range(start..).take(n);
        count(pairs.map(|p| p.expect("in-memory scan").1.len()))
    }
}

impl OrderedMap for RwLock<BTreeMap<Vec<u8>, Vec<u8>>> {
    const NAME: &'static str = "RwLock<BTreeMap>";
    fn create() -> Self {
        RwLock::new(BTreeMap::new())
    }
    fn put(&self, key: &[u8], value: &[u8]) {
        self.write().insert(key.to_vec(), value.to_vec());
    }
    fn get_len(&self, key: &[u8]) -> Option<usize> {
        self.read().get(key).map(Vec::len)
    }
    fn scan(&self, start: &[u8], n: usize) -> usize {
        let map = self.read();
        let bounds = (std::ops::Bound::Included(start), std::ops::Bound::Unbounded);
        count(map.range::<[u8], _>(bounds).take(n).map(|(_, v)| v.len()))
    }
}

#[cfg(feature = "peers")]
impl OrderedMap for crossbeam_skiplist::SkipMap<Vec<u8>, Vec<u8>> {
    const NAME: &'static str = "crossbeam SkipMap";
    fn create() -> Self {
        Self::new()
    }
    fn put(&self, key: &[u8], value: &[u8]) {
        self.insert(key.to_vec(), value.to_vec());
    }
    fn get_len(&self, key: &[u8]) -> Option<usize> {
        self.get(key).map(|e| e.value().len())
    }
    fn scan(&self, start: &[u8], n: usize) -> usize {
        let bounds = (std::ops::Bound::Included(start), std::ops::Bound::Unbounded);
        count(
            self.range::<[u8], _>(bounds)
                .take(n)
                .map(|e| e.value().len()),
        )
    }
}

#[cfg(feature = "peers")]
impl OrderedMap for scc::TreeIndex<Vec<u8>, Vec<u8>> {
    const NAME: &'static str = "scc TreeIndex";
    fn create() -> Self {
        Self::new()
    }
    fn put(&self, key: &[u8], value: &[u8]) {
        self.upsert_sync(key.to_vec(), value.to_vec());
    }
    fn get_len(&self, key: &[u8]) -> Option<usize> {
        self.peek_with(key, |_, v| v.len())
    }
    fn scan(&self, start: &[u8], n: usize) -> usize {
        let guard = scc::Guard::new();
        let bounds = (std::ops::Bound::Included(start), std::ops::Bound::Unbounded);
        let range = self.range::<[u8], _>(bounds, &guard);
        count(range.take(n).map(|(_, v)| v.len()))
    }
}

/// What one `mem` run measures.
#[derive(Clone, Debug)]
pub struct MemConfig {
    pub keys: usize,
    pub threads: Vec<usize>,
    pub seed: u64,
}

/// Runs `work(part)` over `items` split across `threads` threads; returns items per second.
fn timed<T: Sync>(items: &[T], threads: usize, work: impl Fn(&[T]) + Sync) -> f64 {
    let share = items.len().div_ceil(threads).max(1);
    let start = Instant::now();
    std::thread::scope(|s| {
        for part in items.chunks(share) {
            let work = &work;
            s.spawn(move || work(part));
        }
    });
    items.len() as f64 / start.elapsed().as_secs_f64()
}

fn measure<M: OrderedMap>(kind: &str, keys: &[Vec<u8>], threads: usize, seed: u64) -> Vec<Row> {
    let map = M::create();
    let value = [7u8; 8];
    let order = shuffled(keys.len(), seed, 4);
    let starts = &order[..keys.len() / 10];
    let mut out = Vec::new();
    let mut row = |op: &str, value: f64| {
        let plural = if threads == 1 { "" } else { "s" };
        out.push(Row {
            suite: "mem",
            case: format!("{kind} keys: {op}, {threads} thread{plural}"),
            engine: M::NAME.into(),
            value,
            unit: "ops/s",
            higher_is_better: true,
            extra: String::new(),
        });
    };
    row(
        "insert",
        timed(keys, threads, |part| {
            part.iter().for_each(|k| map.put(k, &value))
        }),
    );
    let get = |part: &[u32]| {
        for &i in part {
            assert_eq!(
                map.get_len(&keys[i as usize]),
                Some(8),
                "{}: lost a key",
                M::NAME
            );
        }
    };
    row("get", timed(&order, threads, get));
    let scan = |part: &[u32]| {
        for &i in part {
            assert!(
                map.scan(&keys[i as usize], 10) >= 1,
                "{}: empty scan",
                M::NAME
            );
        }
    };
    row("scan 10", timed(starts, threads, scan));
    let ycsb_a = |part: &[u32]| {
        let mut rng = SmallRng::seed_from_u64(seed ^ u64::from(part[0]));
        for &i in part {
            let key = &keys[i as usize];
            if rng.random::<bool>() {
                std::hint::black_box(map.get_len(key));
            } else {
                map.put(key, &value);
            }
        }
    };
    row("YCSB-A", timed(&order, threads, ycsb_a));
    out
}

fn each_map(kind: &str, keys: &[Vec<u8>], threads: usize, seed: u64) -> Vec<Row> {
    let mut rows = measure::<bwtree::Db>(kind, keys, threads, seed);
    rows.extend(measure::<RwLock<BTreeMap<Vec<u8>, Vec<u8>>>>(
        kind, keys, threads, seed,
    ));
    #[cfg(feature = "peers")]
    {
        rows.extend(measure::<crossbeam_skiplist::SkipMap<Vec<u8>, Vec<u8>>>(
            kind, keys, threads, seed,
        ));
        rows.extend(measure::<scc::TreeIndex<Vec<u8>, Vec<u8>>>(
            kind, keys, threads, seed,
        ));
    }
    rows
}

/// Runs every map, key kind and thread count; rows grouped by case for the table.
pub fn run(cfg: &MemConfig, progress: impl Fn(&str)) -> Vec<Row> {
    let mut rng = SmallRng::seed_from_u64(cfg.seed);
    let u64_keys: Vec<Vec<u8>> = (0..cfg.keys)
        .map(|_| rng.random::<u64>().to_be_bytes().to_vec())
        .collect();
    let long_keys: Vec<Vec<u8>> = (0..cfg.keys)
        .map(|_| (0..24).map(|_| rng.random::<u8>()).collect())
        .collect();
    let mut rows = Vec::new();
    for (kind, keys) in [("u64", &u64_keys), ("24-byte", &long_keys)] {
        for &threads in &cfg.threads {
            progress(&format!("mem: {kind} keys, {threads} threads"));
            rows.extend(each_map(kind, keys, threads.max(1), cfg.seed));
        }
    }
    // Group by case so that the table shows each case's maps together.
    let mut cases: Vec<String> = Vec::new();
    for r in &rows {
        if !cases.contains(&r.case) {
            cases.push(r.case.clone());
        }
    }
    let position = |case: &str| cases.iter().position(|c| c == case);
    rows.sort_by_key(|r| position(&r.case));
    rows
}
