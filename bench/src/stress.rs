//! The `stress` suite: a timed mixed workload on bwtree (on disk, the same cache budget as the
//! other suites) that prints its throughput every second, for soak runs and sanitizer builds.
//!
//! Each thread loops over random keys of a small key space (so threads collide): 40% gets, 25%
//! inserts, 10% removes, 15% compare-and-swaps that increment a per-key counter, 10% scans of up
//! to 10 pairs. Checked as it runs: scans return keys in strictly increasing order, and every
//! value read is one this workload writes (8 bytes). At the end, one flush.
//!
//! With `--verify` the writes are partitioned so that a model can check every answer
//! (`verify.rs`): each thread writes only its own slice of the keys and keeps a `BTreeMap` of
//! it, checks it every second, and the whole database is checked against the models after the
//! final flush and again after a clean reopen. Any mismatch names the key, the expected and the
//! found value, and the run fails.

mod verify;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::engine::Result;
use crate::report::Row;

/// How a stress run is set up.
#[derive(Clone, Debug)]
pub struct StressConfig {
    pub dir: std::path::PathBuf,
    pub duration: Duration,
    pub threads: usize,
    pub keys: u64,
    pub cache_capacity_bytes: u64,
    pub seed: u64,
    /// Check every answer against per-thread models (see the module header).
    pub verify: bool,
}

/// Per-operation counters shared by the threads (relaxed: they are only summed for display).
#[derive(Debug, Default)]
struct Counters {
    ops: AtomicU64,
    cas_won: AtomicU64,
    cas_lost: AtomicU64,
    /// `--verify`: whole-slice checks passed.
    verifies: AtomicU64,
}

fn key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

fn check_value(v: &[u8]) -> Result<()> {
    if v.len() == 8 {
        Ok(())
    } else {
        Err(format!("read a {}-byte value; this workload writes 8", v.len()).into())
    }
}

fn one_op(db: &bwtree::Db, rng: &mut SmallRng, keys: u64, c: &Counters) -> Result<()> {
    let k = key(rng.random_range(0..keys));
    match rng.random_range(0..100u32) {
        0..40 => {
            if let Some(v) = db.get(k)? {
                check_value(&v)?;
            }
        }
        40..65 => drop(db.insert(k, rng.random::<u64>().to_le_bytes())?),
        65..75 => drop(db.remove(k)?),
        75..90 => {
            let current = db.get(k)?;
            let next = current.as_deref().map_or(0, |v| {
                u64::from_le_bytes(v.try_into().unwrap_or([0; 8])).wrapping_add(1)
            });
            match db.compare_and_swap(k, current, Some(next.to_le_bytes()))? {
                Ok(()) => c.cas_won.fetch_add(1, Ordering::Relaxed),
                Err(_) => c.cas_lost.fetch_add(1, Ordering::Relaxed),
            };
        }
        _ => {
            let mut last: Option<bwtree::Value> = None;
            for pair in db.range(k..).take(10) {
                let (key, value) = pair?;
                check_value(&value)?;
                if last.as_ref().is_some_and(|l| *l >= key) {
                    return Err("a scan returned keys out of order or twice".into());
                }
                last = Some(key);
            }
        }
    }
    c.ops.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn open(cfg: &StressConfig, path: &std::path::Path) -> Result<bwtree::Db> {
    Ok(bwtree::Config::new()
        .path(path)
        .cache_capacity_bytes(cfg.cache_capacity_bytes)
        .open()?)
}

/// Runs the workload for `cfg.duration`, printing ops/s every second; returns the average.
pub fn run(cfg: &StressConfig) -> Result<Vec<Row>> {
    if cfg.verify && cfg.keys < cfg.threads as u64 {
        return Err("stress --verify: need at least one key per thread".into());
    }
    std::fs::create_dir_all(&cfg.dir)?;
    let dir = tempfile::Builder::new()
        .prefix("stress-")
        .tempdir_in(&cfg.dir)?;
    let path = dir.path().join("db");
    let db = open(cfg, &path)?;
    let counters = Counters::default();
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    eprintln!(
        "stress: bwtree, {} threads, {} keys, {:?} (seed {}){}",
        cfg.threads,
        cfg.keys,
        cfg.duration,
        cfg.seed,
        if cfg.verify { ", verifying" } else { "" }
    );
    let mut owners = std::thread::scope(|s| -> Result<Vec<verify::Owner>> {
        let workers: Vec<_> = (0..cfg.threads as u64)
            .map(|t| {
                let (db, counters, stop) = (&db, &counters, &stop);
                s.spawn(move || -> Result<verify::Owner> {
                    let mut rng = SmallRng::seed_from_u64(cfg.seed ^ (t + 1) << 32);
                    let mut owner = verify::Owner::new(t, cfg.threads as u64, cfg.keys);
                    // Relaxed: the flag only ends the loop; nothing is published through it.
                    while !stop.load(Ordering::Relaxed) {
                        match cfg.verify {
                            true => owner.op(db, &mut rng, cfg.keys, counters)?,
                            false => one_op(db, &mut rng, cfg.keys, counters)?,
                        }
                    }
                    Ok(owner)
                })
            })
            .collect();
        report_every_second(&counters, start, cfg.duration, &workers);
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .map(|w| w.join().expect("stress thread panicked"))
            .collect()
    })?;
    db.flush()?;
    let secs = start.elapsed().as_secs_f64();
    let ops = counters.ops.load(Ordering::Relaxed);
    eprintln!(
        "stress: {ops} ops in {secs:.1} s ({:.0} ops/s); CAS won {}, lost {}; {} keys at the end",
        ops as f64 / secs,
        counters.cas_won.load(Ordering::Relaxed),
        counters.cas_lost.load(Ordering::Relaxed),
        db.len()?
    );
    if cfg.verify {
        verify::check_all(&db, &mut owners, "after the final flush")?;
        drop(db);
        let db = open(cfg, &path)?;
        verify::check_all(&db, &mut owners, "after a clean reopen")?;
        eprintln!(
            "stress: verified: {} slice checks while running, then every key after the final \
             flush and after a clean reopen ({} keys)",
            counters.verifies.load(Ordering::Relaxed),
            db.len()?
        );
    }
    Ok(vec![Row {
        suite: "stress",
        case: format!(
            "mixed, {} threads{}",
            cfg.threads,
            if cfg.verify { ", verified" } else { "" }
        ),
        engine: "bwtree".into(),
        value: ops as f64 / secs,
        unit: "ops/s",
        higher_is_better: true,
        extra: format!("{secs:.0} s, {} keys", cfg.keys),
    }])
}

/// Prints the last second's throughput until `duration` has passed or a worker has stopped.
fn report_every_second<T>(
    c: &Counters,
    start: Instant,
    duration: Duration,
    workers: &[std::thread::ScopedJoinHandle<'_, T>],
) {
    let mut last = 0;
    let mut tick = 1;
    while start.elapsed() < duration && !workers.iter().any(|w| w.is_finished()) {
        let next = start + Duration::from_secs(tick);
        std::thread::sleep(next.saturating_duration_since(Instant::now()).min(duration));
        let ops = c.ops.load(Ordering::Relaxed);
        eprintln!("stress: {tick:>4} s {:>10} ops/s", ops - last);
        (last, tick) = (ops, tick + 1);
    }
}
