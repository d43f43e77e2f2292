//! Fault injection through the simulator: EIO, ENOSPC, short and torn writes, failed syncs and
//! bit flips on reads, at random sites with a seeded schedule. Properties: no panic; every
//! error is typed; a full disk on a write (`ENOSPC`) poisons nothing (the log retries the
//! write; `disk_full.rs` covers it in depth); after any other failed write, or a failed sync,
//! every later append and flush reports `Poisoned` (reads go on, see `Log::read`); reads never
//! return wrong bytes; after a crash and a fault-free reopen, the records are a prefix of the
//! completed ones containing every record acknowledged by a successful flush.
//!
//! `FAULT_SEED=<n>` reproduces; `FAULT_RUNS=<n>` scales (default 150 runs).

mod common;

use std::sync::Arc;

use common::*;
use logstore::io::SimRng;
use logstore::io::{CrashMode, Fault, FaultPlan, FaultRule, SimStorage, Site};
use logstore::{Config, DiskPtr, Error, Log, Lsn};

#[derive(Default, Debug)]
struct Tally {
    runs: u64,
    errors: u64,
    poisoned_runs: u64,
    faults: u64,
    recovered: u64,
    acked: u64,
}

fn one_run(seed: u64, plan: FaultPlan, cfg: &Config, tally: &mut Tally) {
    let sim = SimStorage::new();
    let (log, _) = Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)).unwrap();
    sim.set_fault_plan(Some(plan));
    let mut rng = SimRng::new(seed);
    let mut completed: Vec<(Vec<u8>, DiskPtr)> = Vec::new();
    let mut acked = 0usize;
    let mut poisoned = false;
    for i in 0..150u64 {
        let choice = rng.below(10);
        let r: Result<(), Error> = match choice {
            0..=6 => {
                let len = if rng.below(15) == 0 {
                    3000
                } else {
                    rng.below(500) as usize
                };
                let b = body(seed ^ i, len);
                log.append(&b).map(|(_, p)| completed.push((b, p)))
            }
            7 => log.flush().map(|()| acked = completed.len()),
            _ => match completed.get(rng.below(completed.len() as u64 + 1) as usize) {
                Some((b, p)) => log
                    .read(*p)
                    .map(|got| assert_eq!(&got, b, "read returned wrong bytes")),
                None => continue,
            },
        };
        match r {
            // Reads go on after an I/O poison (their bytes are checked above).
            Ok(()) => assert!(
                !poisoned || choice >= 8,
                "op {choice} succeeded after poison (seed {seed}, op {i})"
            ),
            Err(e) => {
                tally.errors += 1;
                if std::env::var("FAULT_DEBUG").is_ok() {
                    eprintln!("seed {seed} op {i} choice {choice}: {e}");
                }
                match &e {
                    Error::Poisoned { cause } => {
                        assert!(!cause.is_empty());
                        poisoned = true;
                    }
                    // A full disk on a write is retried, not poison. (A sync that failed
                    // with ENOSPC is poison: the next write reports `Poisoned`.)
                    Error::Io { .. } if e.is_storage_full() => {}
                    Error::Io { .. } => poisoned |= choice < 8,
                    Error::Corruption { .. } | Error::StalePointer(_) => {
                        assert!(choice >= 8, "{e}")
                    }
                    other => panic!("unexpected error kind: {other}"),
                }
                assert!(!e.to_string().is_empty());
            }
        }
    }
    if poisoned {
        tally.poisoned_runs += 1;
        assert!(
            matches!(log.append(b"x"), Err(Error::Poisoned { .. })),
            "poison is sticky"
        );
        assert!(matches!(log.flush(), Err(Error::Poisoned { .. })));
    }
    tally.faults += sim.fault_counts().total();
    drop(log);
    sim.set_fault_plan(None);
    sim.crash(seed, CrashMode::CHAOS);
    let (_log, recs) = Log::open(cfg.clone(), Arc::new(sim), Lsn(0)).unwrap();
    let got = bodies(&recs);
    let completed: Vec<&[u8]> = completed.iter().map(|(b, _)| b.as_slice()).collect();
    if let Some(why) = prefix_violation(&got, &completed, acked) {
        panic!("seed {seed}: {why}");
    }
    tally.runs += 1;
    tally.recovered += got.len() as u64;
    tally.acked += acked as u64;
}

#[test]
fn random_faults_everywhere() {
    let base = seed("FAULT_SEED");
    let runs = std::env::var("FAULT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150u64);
    let cfg = Config {
        io_buffer_count: 2,
        io_buffer_size_bytes: 1024,
        ..small_config()
    };
    let mut tally = Tally::default();
    for k in 0..runs {
        let seed = base.wrapping_add(k);
        let p = [0.002, 0.01, 0.03][(k % 3) as usize];
        one_run(seed, FaultPlan::random(seed, p), &cfg, &mut tally);
    }
    eprintln!("{tally:?}");
    assert!(
        tally.poisoned_runs > 0 && tally.faults > 0,
        "faults were injected: {tally:?}"
    );
}

#[test]
fn each_site_and_fault_kind() {
    let cfg = Config {
        io_buffer_count: 2,
        io_buffer_size_bytes: 1024,
        ..small_config()
    };
    let mut tally = Tally::default();
    let cases = [
        (Site::Write, Fault::Eio),
        (Site::Write, Fault::Enospc),
        (Site::Write, Fault::ShortWrite),
        (Site::Write, Fault::TornWrite),
        (Site::SyncData, Fault::Eio),
        (Site::SyncAll, Fault::Eio),
        (Site::SyncDir, Fault::Eio),
        (Site::SetLen, Fault::Enospc),
        (Site::Create, Fault::Enospc),
        (Site::Read, Fault::Eio),
        (Site::Read, Fault::BitFlip),
    ];
    for (site, fault) in cases {
        for nth in 1..=6u64 {
            let seed = nth * 1000 + site as u64;
            let plan = FaultPlan::new(seed).rule(FaultRule::nth(site, nth, fault));
            one_run(seed, plan, &cfg, &mut tally);
        }
    }
    eprintln!("{tally:?}");
}

#[test]
fn disk_full_fails_cleanly_and_the_same_log_resumes_after_space_returns() {
    let sim = SimStorage::with_capacity(64 << 10);
    let cfg = small_config();
    let mut acked = Vec::new();
    {
        let (log, _) = Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)).unwrap();
        let mut pending = Vec::new();
        let err = loop {
            let b = body(acked.len() as u64 + pending.len() as u64, 700);
            match log.append(&b) {
                Ok(_) => pending.push(b),
                Err(e) => break e,
            }
            match log.flush() {
                Ok(()) => acked.append(&mut pending),
                Err(e) => break e,
            }
        };
        assert!(err.is_storage_full(), "{err}");
        // Not poisoned: an append either fits a free buffer or fails with the full disk.
        match log.append(b"y") {
            Ok(_) => pending.push(b"y".to_vec()),
            Err(e) => assert!(e.is_storage_full(), "{e}"),
        }
        sim.set_capacity(None);
        log.flush().expect("flush once space is back");
        acked.append(&mut pending);
        log.append(b"after").unwrap();
        log.flush().unwrap();
        acked.push(b"after".to_vec());
    }
    sim.crash(3, CrashMode::DROP_UNSYNCED);
    let (log, recs) = Log::open(cfg, Arc::new(sim), Lsn(0)).unwrap();
    assert_eq!(bodies(&recs), acked);
    log.append(b"after reopen").unwrap();
    log.flush().unwrap();
}

/// Read faults while recovering must never cost acknowledged records: recovery either fails
/// with a typed error (and changes nothing) or returns all of them; a clean reopen after that
/// still has all of them.
#[test]
fn recovery_under_read_faults_loses_nothing() {
    let cfg = small_config();
    let sim = SimStorage::new();
    let mut acked = Vec::new();
    {
        let (log, _) = Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)).unwrap();
        for i in 0..400u64 {
            let b = body(
                i,
                (i * 7 % 600) as usize + if i % 50 == 0 { 5000 } else { 0 },
            );
            log.append(&b).unwrap();
            acked.push(b);
        }
        log.flush().unwrap();
    }
    let (mut failed, mut ok) = (0, 0);
    for seed in 0..60u64 {
        let fault = if seed % 2 == 0 {
            Fault::BitFlip
        } else {
            Fault::Eio
        };
        let nth = 1 + seed / 2;
        sim.set_fault_plan(Some(FaultPlan::new(seed).rule(FaultRule::nth(
            Site::Read,
            nth,
            fault,
        ))));
        match Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)) {
            Ok((_log, recs)) => {
                ok += 1;
                assert_eq!(
                    bodies(&recs),
                    acked,
                    "seed {seed}: recovery under a read fault lost records"
                );
            }
            Err(e) => {
                failed += 1;
                assert!(
                    matches!(e, Error::Io { .. } | Error::Corruption { .. }),
                    "{e}"
                );
            }
        }
        sim.set_fault_plan(None);
    }
    eprintln!("opens ok: {ok}, failed cleanly: {failed}");
    let (_log, recs) = Log::open(cfg, Arc::new(sim), Lsn(0)).unwrap();
    assert_eq!(bodies(&recs), acked);
}
