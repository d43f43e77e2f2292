//! The YCSB runs inside one engine's child process: load, then every (workload, distribution,
//! threads) combination on the same store, in a fixed order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::dist::{fnv64, Chooser, Distribution};
use super::{Workload, YcsbSpec};
use crate::engine::{self, Durability, Engine, Op, OpenOptions, Result};
use crate::keys::{pool_window, value_pool};
use crate::kv::spec::{EngineReport, Phase, Unit};
use crate::rss;

const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 100;
/// YCSB's default maximum scan length (lengths are uniform in `1..=MAX_SCAN`).
const MAX_SCAN: usize = 100;
const WRITES: &str = "none (periodic)";

/// Record `i`'s key: a hash of `i` first (so keys are not inserted in order), then `i`.
fn key(i: u64) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    k[..8].copy_from_slice(&fnv64(i).to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

struct Ctx<'a> {
    engine: &'a dyn Engine,
    pool: &'a [u8],
    /// The next record number to insert (workload E grows the store).
    next_insert: AtomicU64,
    records: u64,
}

impl Ctx<'_> {
    fn value(&self, i: u64, version: u64) -> &[u8] {
        pool_window(self.pool, fnv64(i ^ version.rotate_left(32)), VALUE_LEN)
    }

    /// One operation of `workload` on a record chosen by `chooser`.
    fn op(&self, workload: Workload, chooser: &Chooser, rng: &mut SmallRng) -> Result<()> {
        let dice = rng.random_range(0..100u32);
        let i = chooser.next(rng);
        let k = key(i);
        match workload.pick(dice) {
            OpKind::Read => self.read(&k),
            OpKind::Update => self
                .engine
                .insert(&k, self.value(i, rng.random()), Durability::None),
            OpKind::Insert => {
                let n = self.next_insert.fetch_add(1, Ordering::Relaxed);
                self.engine
                    .insert(&key(n), self.value(n, 0), Durability::None)
            }
            OpKind::Scan => {
                let len = rng.random_range(1..=MAX_SCAN);
                let found = self.engine.reader()?.scan(&k, len)?;
                check(found >= 1, "a scan from a loaded key found nothing")
            }
            OpKind::ReadModifyWrite => {
                self.read(&k)?;
                self.engine
                    .insert(&k, self.value(i, rng.random()), Durability::None)
            }
        }
    }

    /// A read of a loaded record, through a fresh reader: with concurrent writers, a snapshot
    /// taken once would go stale (and pin old pages) in the stores that have them.
    fn read(&self, k: &[u8]) -> Result<()> {
        let len = self.engine.reader()?.get(k)?;
        check(len == Some(VALUE_LEN), "a loaded record is missing")
    }
}

/// What one YCSB operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Read,
    Update,
    Insert,
    Scan,
    ReadModifyWrite,
}

fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}

fn bar(engine: &str, name: &str, len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = "{prefix:>8} {msg:<28} [{bar:30}] {pos}/{len} {per_sec}";
    let style = ProgressStyle::with_template(template).expect("valid template");
    bar.set_style(style.progress_chars("=> "));
    bar.set_prefix(engine.to_string());
    bar.set_message(name.to_string());
    bar
}

fn phase(name: String, ops: u64, secs: f64, durability: &str) -> Phase {
    Phase {
        name,
        durability: durability.into(),
        value: ops as f64 / secs,
        unit: Unit::OpsPerSec,
        ops,
        secs,
        note: String::new(),
    }
}

/// Loads the records, then runs every combination the spec asks for.
pub fn run(spec: &YcsbSpec) -> Result<EngineReport> {
    let pool = value_pool(&mut SmallRng::seed_from_u64(spec.seed));
    let harness_rss_bytes = rss::current_bytes().unwrap_or(0);
    let record_bytes = (KEY_LEN + VALUE_LEN) as u64;
    let engine = engine::open(
        &spec.engine,
        &OpenOptions {
            dir: spec.dir.clone(),
            cache_capacity_bytes: spec.cache_capacity_bytes,
            max_data_bytes: 2 * spec.records * record_bytes,
            background_threads: 2,
        },
    )?;
    let ctx = Ctx {
        engine: &*engine,
        pool: &pool,
        next_insert: AtomicU64::new(spec.records),
        records: spec.records,
    };
    let mut phases = vec![load(&ctx, &spec.engine)?];
    for &workload in &spec.workloads {
        for &distribution in &spec.distributions {
            for &threads in &spec.threads {
                phases.push(run_one(&ctx, spec, workload, distribution, threads)?);
            }
        }
    }
    drop(engine);
    let mut rss_phase = phase("peak RSS".into(), 0, 1.0, "-");
    rss_phase.value = rss::peak_bytes().unwrap_or(0) as f64;
    rss_phase.unit = Unit::Bytes;
    phases.push(rss_phase);
    Ok(EngineReport {
        engine: spec.engine.clone(),
        phases,
        harness_rss_bytes,
    })
}

fn load(ctx: &Ctx<'_>, engine: &str) -> Result<Phase> {
    let bar = bar(engine, "load", ctx.records);
    let start = Instant::now();
    let keys: Vec<[u8; KEY_LEN]> = (0..ctx.records).map(key).collect();
    for (chunk_no, chunk) in keys.chunks(1000).enumerate() {
        let base = chunk_no as u64 * 1000;
        let ops: Vec<Op<'_>> = (0..chunk.len())
            .map(|j| Op::Insert(&chunk[j], ctx.value(base + j as u64, 0)))
            .collect();
        ctx.engine.write(&ops, Durability::None)?;
        bar.inc(chunk.len() as u64);
    }
    ctx.engine.flush()?;
    let secs = start.elapsed().as_secs_f64();
    bar.finish();
    Ok(phase("load".into(), ctx.records, secs, "none + 1 flush"))
}

fn run_one(
    ctx: &Ctx<'_>,
    spec: &YcsbSpec,
    workload: Workload,
    distribution: Distribution,
    threads: usize,
) -> Result<Phase> {
    let plural = if threads == 1 { "" } else { "s" };
    let name = format!(
        "{} {}, {threads} thread{plural}",
        workload.name(),
        distribution.name()
    );
    let chooser = Chooser::new(distribution, ctx.records);
    let bar = bar(&spec.engine, &name, spec.ops);
    let per_thread = spec.ops / threads as u64;
    let start = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads as u64)
            .map(|t| {
                let (chooser, bar) = (&chooser, &bar);
                let seed =
                    spec.seed ^ fnv64(t + 1) ^ (workload as u64) << 8 ^ (distribution as u64) << 16;
                s.spawn(move || -> Result<()> {
                    let mut rng = SmallRng::seed_from_u64(seed);
                    for done in 1..=per_thread {
                        ctx.op(workload, chooser, &mut rng)?;
                        if done % 1024 == 0 {
                            bar.inc(1024);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("YCSB thread panicked"))
    })?;
    let secs = start.elapsed().as_secs_f64();
    let result = phase(name, per_thread * threads as u64, secs, WRITES);
    bar.finish_with_message(format!(
        "{}: {}",
        result.name,
        Unit::OpsPerSec.format(result.value)
    ));
    if bar.is_hidden() {
        eprintln!(
            "  {} {}: {}",
            spec.engine,
            result.name,
            Unit::OpsPerSec.format(result.value)
        );
    }
    Ok(result)
}
