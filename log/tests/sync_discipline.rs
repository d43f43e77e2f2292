//! Sync discipline through the simulator's trace: whenever `flush()` (or `make_stable` of the
//! newest record) returns, every file written since its last sync has been synced and every
//! directory whose entries changed has been synced. Also right after `open`, including an open
//! that follows one which died before syncing the directories it created.

mod common;

use std::sync::Arc;

use common::*;
use logstore::io::SimRng;
use logstore::io::{CrashMode, Fault, FaultPlan, FaultRule, Op, SimStorage, Site};
use logstore::{Config, Error, Log, Lsn};

fn assert_all_synced(sim: &SimStorage, when: &str) {
    let unsynced = sim.trace().unsynced_at_end();
    assert!(unsynced.is_empty(), "{when}: not durable:\n{unsynced}");
}

#[test]
fn flush_leaves_nothing_unsynced() {
    let sim = SimStorage::new();
    let cfg = Config {
        io_buffer_size_bytes: 1024,
        ..small_config()
    };
    let mut rng = SimRng::new(7);
    for reopen in 0..3 {
        let (log, _) = Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)).unwrap();
        assert_all_synced(&sim, &format!("after open #{reopen}"));
        for round in 0..40u64 {
            let mut last = Lsn(0);
            for i in 0..rng.below(30) {
                let len = if rng.below(20) == 0 {
                    3000
                } else {
                    rng.below(400) as usize
                };
                last = log.append(&body(round << 16 | i, len)).unwrap().0;
            }
            if round % 2 == 0 {
                log.flush().unwrap();
                assert_all_synced(&sim, &format!("after flush, round {round}"));
            } else {
                log.make_stable(last).unwrap();
                assert_all_synced(&sim, &format!("after make_stable, round {round}"));
            }
        }
    }
}

#[test]
fn acknowledged_records_survive_losing_everything_unsynced() {
    let sim = SimStorage::new();
    let cfg = small_config();
    let mut acked = Vec::new();
    {
        let (log, _) = Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)).unwrap();
        for i in 0..300u64 {
            let b = body(i, (i * 31 % 900) as usize);
            log.append(&b).unwrap();
            acked.push(b);
        }
        log.flush().unwrap();
        sim.crash(1, CrashMode::DROP_UNSYNCED);
    }
    let (_log, recs) = Log::open(cfg, Arc::new(sim), Lsn(0)).unwrap();
    assert_eq!(bodies(&recs), acked);
}

/// With `flush_every_ms` set, completed records become durable without any `flush` call.
#[test]
fn background_flusher_makes_records_durable() {
    let sim = SimStorage::new();
    let cfg = Config {
        flush_every_ms: Some(5),
        ..small_config()
    };
    let (log, _) = Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)).unwrap();
    let (lsn, _) = log.append(b"no explicit flush").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.durable_lsn() <= lsn {
        assert!(
            std::time::Instant::now() < deadline,
            "flusher never made the record durable"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    sim.crash(3, CrashMode::DROP_UNSYNCED);
    drop(log);
    let (_log, recs) = Log::open(cfg, Arc::new(sim), Lsn(0)).unwrap();
    assert_eq!(bodies(&recs), vec![b"no explicit flush".to_vec()]);
}

/// An open that died between creating the log directory and syncing its parent left the entry
/// in the page cache only. The next open used to find the directory "existing" and never sync
/// it, so acknowledged records vanished with the directory at the next power loss.
#[test]
fn open_after_an_open_that_died_before_its_directory_sync() {
    let sim = SimStorage::new();
    let cfg = small_config();
    sim.set_fault_plan(Some(FaultPlan::new(1).rule(FaultRule::nth(
        Site::SyncDir,
        1,
        Fault::Eio,
    ))));
    let err = Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    sim.set_fault_plan(None);
    let (log, _) = Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)).unwrap();
    assert_all_synced(&sim, "after the second open");
    log.append(b"acknowledged").unwrap();
    log.flush().unwrap();
    sim.crash(5, CrashMode::DROP_UNSYNCED);
    drop(log);
    let (_log, recs) = open_sim(&sim, &cfg);
    assert_eq!(bodies(&recs), vec![b"acknowledged".to_vec()]);
}

/// `create_dir_all` of a nested path creates several entries; each needs its parent synced
/// (only the last one used to be).
#[test]
fn every_created_ancestor_is_synced() {
    for path in ["/srv/data/app/db", "rel/db", "db"] {
        let sim = SimStorage::new();
        let cfg = Config::small(path);
        let (log, _) = Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)).unwrap();
        assert_all_synced(&sim, &format!("after opening {path}"));
        log.append(b"kept").unwrap();
        log.flush().unwrap();
        sim.crash(9, CrashMode::DROP_UNSYNCED);
        drop(log);
        let (_log, recs) = Log::open(cfg, Arc::new(sim), Lsn(0)).unwrap();
        assert_eq!(bodies(&recs), vec![b"kept".to_vec()], "{path}");
    }
}

/// Every open syncs the log directory's parent, the log directory and the blob directory,
/// whether or not it created them.
#[test]
fn every_open_syncs_the_log_directories() {
    let sim = SimStorage::new();
    let cfg = Config::small("/srv/db");
    for reopen in 0..2 {
        let start = sim.trace_len();
        drop(Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)).unwrap());
        let synced: Vec<_> = sim.trace().ops()[start..]
            .iter()
            .filter_map(|op| match op {
                Op::SyncDir { path } => Some(path.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        for dir in ["/srv", "/srv/db", "/srv/db/blobs"] {
            assert!(
                synced.iter().any(|d| d == dir),
                "open #{reopen} did not sync {dir}: {synced:?}"
            );
        }
    }
}
