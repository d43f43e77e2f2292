//! Power-loss model test: random append / abort / flush / reopen / crash sequences on the
//! simulated storage. After every crash the recovered records must be exactly a prefix of the
//! completed records (in completion order = LSN order here: one writer), containing every
//! record acknowledged by a successful `flush`; recovering twice gives the same records.
//!
//! Seeded and shrinkable: `POWER_LOSS_SEED=<n>` reproduces a run, `PROPTEST_CASES` scales it.

mod common;

use common::*;
use logstore::io::SimRng;
use logstore::io::{CrashMode, SimStorage};
use std::sync::Arc;

use logstore::{Config, DiskPtr, Log, Lsn, RecoveredRecord};
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, RngSeed, TestRunner};

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Abort(usize),
    Flush,
    Reopen,
    Crash(u64, u8),
    /// Flush, mark every record but the newest `n` dead, and move the reuse horizon (and the
    /// LSN later opens recover from) to the oldest kept one, as a checkpoint would.
    Checkpoint(usize),
}

/// `uniform`: every inline record has the same length, so new records written after a torn
/// tail line up with stale ones: the case where a kept stale tail would be resurrected.
fn op(uniform: bool) -> impl Strategy<Value = Op> {
    let len = if uniform { 100usize..101 } else { 0usize..700 };
    // Aligned runs need long stretches of unsynced appends (several buffers written but not
    // synced) before a crash, so appends dominate.
    let append = if uniform { 24 } else { 6 };
    prop_oneof![
        append => len.prop_map(Op::Append),
        1 => (5000usize..9000).prop_map(Op::Append), // blob
        1 => (0usize..300).prop_map(Op::Abort),
        2 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        2 => (any::<u64>(), 0u8..4).prop_map(|(s, m)| Op::Crash(s, m)),
        1 => (1usize..8).prop_map(Op::Checkpoint),
    ]
}

fn mode(m: u8) -> CrashMode {
    match m {
        0 => CrashMode::DROP_UNSYNCED,
        1 => CrashMode::RANDOM_WRITES,
        2 => CrashMode::TORN,
        _ => CrashMode::CHAOS,
    }
}

fn just_bodies(c: &[(Vec<u8>, DiskPtr)]) -> Vec<Vec<u8>> {
    c.iter().map(|(b, _)| b.clone()).collect()
}

fn with_ptrs(recs: Vec<RecoveredRecord>) -> Vec<(Vec<u8>, DiskPtr)> {
    recs.into_iter().map(|r| (r.body, r.ptr)).collect()
}

fn run(ops: &[Op], cfg: &Config) -> Result<(), TestCaseError> {
    let sim = SimStorage::new();
    let open = |from: Lsn| Log::open(cfg.clone(), Arc::new(sim.clone()), from).expect("open log");
    let mut from = Lsn(0);
    let (mut log, recs) = open(from);
    prop_assert!(recs.is_empty());
    // Completed records since the last recovery baseline, in order, with their locations.
    let mut completed: Vec<(Vec<u8>, DiskPtr)> = Vec::new();
    let mut synced = 0usize;
    let mut next_tag = 0u64;
    for op in ops {
        match op {
            Op::Append(len) | Op::Abort(len) => {
                next_tag += 1;
                let mut b = body(next_tag, *len);
                if let Some(first) = b.first_mut() {
                    *first = next_tag as u8; // distinct even for tiny lengths
                }
                let mut r = log.reserve(b.len()).expect("reserve");
                r.body_mut().copy_from_slice(&b);
                if matches!(op, Op::Append(_)) {
                    let (_, ptr) = r.complete().expect("complete");
                    completed.push((b, ptr));
                } else {
                    r.abort();
                }
            }
            Op::Flush => {
                log.flush().expect("flush");
                synced = completed.len();
            }
            Op::Reopen => {
                drop(log);
                let (l, recs) = open(from);
                log = l;
                let want = just_bodies(&completed);
                prop_assert_eq!(bodies(&recs), want, "clean reopen loses nothing");
                completed = with_ptrs(recs);
                synced = completed.len();
            }
            Op::Checkpoint(keep) => {
                log.flush().expect("flush");
                if completed.len() > *keep {
                    let cut = completed.len() - keep;
                    for (_, p) in completed.drain(..cut) {
                        log.mark_dead(p).expect("mark_dead");
                    }
                    from = completed[0].1.lsn();
                    log.set_reuse_horizon(from);
                }
                synced = completed.len();
            }
            Op::Crash(seed, m) => {
                sim.crash(*seed, mode(*m));
                drop(log); // its I/O now fails with EBADF: it poisons itself, no panic
                let (l, recs) = open(from);
                drop(l);
                let got = bodies(&recs);
                let violation = prefix_violation(&got, &just_bodies(&completed), synced);
                prop_assert!(violation.is_none(), "{}", violation.unwrap_or_default());
                // Recovery is idempotent, even across another power loss right after it.
                sim.crash(seed.wrapping_add(1), mode(*m));
                let (l, again) = open(from);
                prop_assert_eq!(bodies(&again), got, "second recovery differs");
                log = l;
                completed = with_ptrs(again);
                synced = completed.len();
            }
        }
    }
    Ok(())
}

#[test]
fn power_loss_prefix_property() {
    check(false);
}

#[test]
fn power_loss_prefix_property_aligned_records() {
    check(true);
}

fn check(uniform: bool) {
    let seed = seed("POWER_LOSS_SEED");
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let mut runner = TestRunner::new(PtConfig {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..PtConfig::default()
    });
    let cfg = Config {
        io_buffer_count: 2,
        io_buffer_size_bytes: 1024,
        ..small_config()
    };
    let ops = proptest::collection::vec(op(uniform), 1..120);
    let result = runner.run(&ops, |ops| run(&ops, &cfg));
    if let Err(e) = result {
        panic!("power-loss model failed (POWER_LOSS_SEED={seed}): {e}");
    }
}

/// Power loss while several threads append, abort and flush: the crash hits at a random moment
/// (the threads then see their log poisoned). Recovery must return exactly the completed
/// records up to some LSN (a prefix in LSN order), including every record its thread saw
/// acknowledged by a successful `flush`. Timing is not reproducible; the property must hold
/// for every interleaving. `CONCURRENT_CRASH_RUNS` scales it (default 200).
#[test]
fn power_loss_with_concurrent_writers() {
    use std::sync::Mutex;
    let seed = seed("POWER_LOSS_SEED");
    let runs = env_u64(&["CONCURRENT_CRASH_RUNS", "LOG_CRASH_CYCLES"], 200);
    let cfg = Config {
        io_buffer_count: 3,
        io_buffer_size_bytes: 1024,
        segment_size_bytes: 4096,
        ..small_config()
    };
    let (mut completed, mut acked, mut recovered) = (0usize, 0usize, 0usize);
    for run in 0..runs {
        let sim = SimStorage::new();
        let (log, _) = Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)).unwrap();
        // (lsn, body, acknowledged durable)
        let done: Mutex<Vec<(Lsn, Vec<u8>, bool)>> = Mutex::new(Vec::new());
        let mut rng = SimRng::new(seed ^ run);
        std::thread::scope(|s| {
            for t in 0..3u64 {
                let (log, done) = (&log, &done);
                let mut rng = SimRng::new(rng.next_u64() ^ t);
                s.spawn(move || {
                    let mut mine: Vec<usize> = Vec::new();
                    for i in 0.. {
                        let len = if rng.below(40) == 0 {
                            3000
                        } else {
                            rng.below(300) as usize
                        };
                        let b = body(run << 40 | t << 32 | i, len);
                        let Ok(mut r) = log.reserve(len) else { return };
                        r.body_mut().copy_from_slice(&b);
                        if rng.below(8) == 0 {
                            r.abort();
                            continue;
                        }
                        let Ok((lsn, _)) = r.complete() else { return };
                        let mut d = done.lock().unwrap();
                        mine.push(d.len());
                        d.push((lsn, b, false));
                        drop(d);
                        if rng.below(10) == 0 {
                            if log.flush().is_err() {
                                return;
                            }
                            let mut d = done.lock().unwrap();
                            for &k in &mine {
                                d[k].2 = true;
                            }
                        }
                    }
                });
            }
            std::thread::sleep(std::time::Duration::from_micros(200 + rng.below(3000)));
            sim.crash(rng.next_u64(), mode(rng.below(4) as u8));
        });
        drop(log);
        let (_log, recs) = Log::open(cfg.clone(), Arc::new(sim), Lsn(0)).unwrap();
        let mut done = done.into_inner().unwrap();
        done.sort_by_key(|(lsn, _, _)| *lsn);
        assert!(
            recs.len() <= done.len(),
            "run {run}: more records than completed"
        );
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(
                r.lsn, done[i].0,
                "run {run}: record {i} is not the next completed one"
            );
            assert_eq!(r.body, done[i].1, "run {run}: body of record {i}");
        }
        completed += done.len();
        acked += done.iter().filter(|d| d.2).count();
        recovered += recs.len();
        if let Some(k) = done.iter().rposition(|d| d.2) {
            assert!(
                recs.len() > k,
                "run {run}: acknowledged record {k} lost ({} recovered)",
                recs.len()
            );
        }
    }
    eprintln!("{runs} runs: {completed} completed, {acked} acknowledged, {recovered} recovered");
}
