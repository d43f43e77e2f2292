//! Group commit as the waiters run it (`writer/commit.rs`): committers write queued buffers and
//! lead syncs themselves, and the one about to sync may wait for the committers it expects.
//! Speed is the benchmark's business (`cargo run --release -p bench -- --suite log`); these
//! tests check durability under concurrent committers and the deterministic parts of the
//! gathering rule.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use logstore::io::SimRng;
use logstore::io::{CrashMode, SimStorage};
use logstore::{Config, Error, Log, Lsn};

/// Every record whose `make_stable` returned `Ok` survives a power loss that hits while other
/// committers are mid-sync, mid-write and mid-gathering.
#[test]
fn acknowledged_commits_survive_power_loss_mid_run() {
    let seed = seed("GROUP_COMMIT_SEED");
    let runs = env_u64(&["GROUP_COMMIT_CRASH_RUNS", "LOG_CRASH_CYCLES"], 40);
    let cfg = Config {
        io_buffer_count: 3,
        io_buffer_size_bytes: 1024,
        segment_size_bytes: 4096,
        ..small_config()
    };
    let mut rng = SimRng::new(seed);
    for run in 0..runs {
        let sim = SimStorage::new();
        let (log, _) = Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)).unwrap();
        let acked: Mutex<Vec<(Lsn, Vec<u8>)>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (log, acked) = (&log, &acked);
                s.spawn(move || {
                    for i in 0.. {
                        let b = body(run << 40 | t << 32 | i, (i as usize * 37 + 11) % 200);
                        let Ok((lsn, _)) = log.append(&b) else { return };
                        if log.make_stable(lsn).is_err() {
                            return;
                        }
                        acked.lock().unwrap().push((lsn, b));
                    }
                });
            }
            std::thread::sleep(Duration::from_micros(300 + rng.below(3000)));
            let mode = [CrashMode::DROP_UNSYNCED, CrashMode::TORN, CrashMode::CHAOS];
            sim.crash(rng.next_u64(), mode[rng.below(3) as usize]);
        });
        drop(log);
        let (_log, recs) = Log::open(cfg.clone(), Arc::new(sim), Lsn(0)).unwrap();
        let acked = acked.into_inner().unwrap();
        for (lsn, b) in &acked {
            let rec = recs.iter().find(|r| r.lsn == *lsn);
            assert!(
                rec.is_some_and(|r| &r.body == b),
                "run {run}: acknowledged commit at {lsn:?} lost ({} acked, {} recovered)",
                acked.len(),
                recs.len()
            );
        }
    }
}

/// A lone committer never waits for siblings: there are none to expect.
#[test]
fn lone_committer_never_gathers() {
    let cfg = Config {
        flush_every_ms: None,
        ..small_config()
    };
    let (log, _) = open_sim(&SimStorage::new(), &cfg);
    for i in 0..300u64 {
        let (lsn, _) = log.append(&body(i, 100)).unwrap();
        log.make_stable(lsn).unwrap();
    }
    let stats = log.stats();
    assert_eq!(stats.group_commit_gathers, 0, "{stats:?}");
    assert_eq!(
        stats.syncs, 300,
        "one sync per commit when alone: {stats:?}"
    );
}

/// `group_commit_wait_us = 0` turns gathering off: concurrent committers still share syncs
/// (whoever arrives during one is covered by the next), but nobody waits for anybody.
#[test]
fn zero_wait_disables_gathering() {
    let cfg = Config {
        flush_every_ms: None,
        group_commit_wait_us: 0,
        ..small_config()
    };
    let (log, _) = open_sim(&SimStorage::new(), &cfg);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let log = &log;
            s.spawn(move || {
                for i in 0..200 {
                    let (lsn, _) = log.append(&body(t << 32 | i, 100)).unwrap();
                    log.make_stable(lsn).unwrap();
                }
            });
        }
    });
    let stats = log.stats();
    assert_eq!(stats.group_commit_gathers, 0, "{stats:?}");
    assert!(stats.syncs <= 800, "{stats:?}");
}

#[test]
fn group_commit_wait_is_bounded() {
    let cfg = Config {
        group_commit_wait_us: 2_000_000,
        ..small_config()
    };
    let r = Log::open(cfg, Arc::new(SimStorage::new()), Lsn(0));
    assert!(matches!(r, Err(Error::Config(_))), "{r:?}");
}
