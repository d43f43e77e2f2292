//! A full disk is recoverable without reopening the log: a buffer write that meets `ENOSPC`
//! stalls (nothing acknowledged, nothing poisoned), durability waits and, once every buffer
//! waits for the stalled one, reservations fail promptly with the typed `Error::Io`; reads
//! keep working (stalled records are served from memory); once space is freed the same open
//! log writes and flushes again, and a power loss after that keeps every acknowledged record.
//! Sync failures, and write failures other than a full disk, still poison the log.
//!
//! `DISK_FULL_SEED=<n>` reproduces; `DISK_FULL_RUNS=<n>` scales (default 100 seeds).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use logstore::io::{CrashMode, Fault, FaultPlan, FaultRule, SimRng, SimStorage, Site};
use logstore::{Config, DiskPtr, Error, Log};

fn assert_full(e: &Error, what: &str) {
    assert!(
        e.is_storage_full(),
        "{what}: expected a full-disk Io error, got {e:?}"
    );
}

/// Appends (flushing every few) until a flush or an append meets the full disk. Returns the
/// completed records and how many of them a flush acknowledged.
fn fill(log: &Log, rng: &mut SimRng, completed: &mut Vec<(Vec<u8>, DiskPtr)>, acked: &mut usize) {
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the disk never filled"
        );
        let b = body(rng.next_u64(), 1 + rng.below(600) as usize);
        match log.append(&b) {
            Ok((_, p)) => completed.push((b, p)),
            Err(e) => {
                assert_full(&e, "append on a full disk");
                return;
            }
        }
        if rng.below(4) == 0 {
            match log.flush() {
                Ok(()) => *acked = completed.len(),
                Err(e) => {
                    assert_full(&e, "flush on a full disk");
                    return;
                }
            }
        }
    }
}

fn reads_match(log: &Log, completed: &[(Vec<u8>, DiskPtr)], what: &str) {
    for (i, (b, p)) in completed.iter().enumerate() {
        let got = log
            .read(*p)
            .unwrap_or_else(|e| panic!("{what}: read of record {i} failed: {e}"));
        assert_eq!(&got, b, "{what}: record {i} read back wrong");
    }
}

/// One log filled to a full disk, checked while full, revived by freeing space, then crashed.
fn one_run(seed: u64) -> (usize, u64) {
    let mut rng = SimRng::new(seed);
    let sim = SimStorage::new();
    let cfg = small_config();
    let (log, _) = open_sim(&sim, &cfg);
    let mut completed = Vec::new();
    let mut acked = 0;
    sim.set_capacity(Some(sim.used_bytes() + rng.below(64 << 10)));
    fill(&log, &mut rng, &mut completed, &mut acked);

    // Still full: durability fails promptly and typed, again and again; never `Poisoned`.
    for _ in 0..3 {
        let e = log.flush().expect_err("flush on a still full disk");
        assert_full(&e, "repeated flush");
    }
    // Reservations fill what buffers are free, then fail promptly (never block).
    let mut more = 0;
    loop {
        let b = body(rng.next_u64(), 1 + rng.below(600) as usize);
        match log.append(&b) {
            Ok((_, p)) => completed.push((b, p)),
            Err(e) => {
                assert_full(&e, "append once every buffer waits");
                break;
            }
        }
        more += 1;
        assert!(more < 64, "appends never failed on a full disk");
    }
    // Every completed record reads back, including those only in stalled buffers.
    reads_match(&log, &completed, "full disk");
    let retries = log.stats().full_disk_retries;
    assert!(retries > 0, "no write met the full disk");

    // Free space: the same log writes again.
    sim.set_capacity(None);
    log.flush().expect("flush after freeing space");
    acked = completed.len();
    for _ in 0..rng.below(20) {
        let b = body(rng.next_u64(), 1 + rng.below(600) as usize);
        let (_, p) = log.append(&b).expect("append after freeing space");
        completed.push((b, p));
    }
    log.flush().expect("second flush after freeing space");
    acked = acked.max(completed.len());
    reads_match(&log, &completed, "after freeing space");
    // A few unacknowledged records, then power loss while the log is open.
    for _ in 0..rng.below(5) {
        let b = body(rng.next_u64(), 1 + rng.below(600) as usize);
        let (_, p) = log.append(&b).expect("append");
        completed.push((b, p));
    }
    let image = sim.snapshot();
    image.crash(seed, CrashMode::CHAOS);
    let (_crashed, recs) = open_sim(&image, &cfg);
    let bodies_only: Vec<&[u8]> = completed.iter().map(|(b, _)| b.as_slice()).collect();
    if let Some(why) = prefix_violation(&bodies(&recs), &bodies_only, acked) {
        panic!("seed {seed}: after power loss: {why}");
    }
    // A clean close keeps everything.
    drop(log);
    let (_log, recs) = open_sim(&sim, &cfg);
    assert_eq!(
        bodies(&recs),
        bodies_only,
        "seed {seed}: after a clean close"
    );
    (completed.len(), retries)
}

#[test]
fn a_full_disk_stalls_writes_and_the_same_log_resumes_once_space_is_freed() {
    let base = seed("DISK_FULL_SEED");
    let runs = env_u64(&["DISK_FULL_RUNS"], 100);
    let started = Instant::now();
    let (mut records, mut retries) = (0, 0);
    for k in 0..runs {
        let (r, t) = one_run(base.wrapping_add(k));
        records += r;
        retries += t;
    }
    eprintln!(
        "{runs} runs, {records} records, {retries} full-disk retries in {:?}",
        started.elapsed()
    );
}

/// One injected `ENOSPC` on a buffer write: the flush that needs it reports it (or a retry
/// already succeeded), the log is not poisoned, and the next flush writes the buffer.
#[test]
fn a_single_enospc_on_a_buffer_write_is_retried() {
    for nth in 1..=8u64 {
        let sim = SimStorage::new();
        let cfg = small_config();
        let (log, _) = open_sim(&sim, &cfg);
        let plan = FaultPlan::new(nth).rule(FaultRule::nth(Site::Write, nth, Fault::Enospc));
        sim.set_fault_plan(Some(plan));
        let mut completed = Vec::new();
        for i in 0..40u64 {
            let b = body(nth * 100 + i, 300);
            completed.push((b.clone(), log.append(&b).expect("append").1));
            if i % 5 == 4 {
                if let Err(e) = log.flush() {
                    assert_full(&e, "flush after an injected ENOSPC");
                }
            }
        }
        log.flush().expect("flush once the fault is gone");
        assert_eq!(sim.fault_counts().total(), 1, "the fault fired once");
        reads_match(&log, &completed, "after a retried write");
        let image = sim.snapshot();
        image.crash(nth, CrashMode::DROP_UNSYNCED);
        let (_l, recs) = open_sim(&image, &cfg);
        let want: Vec<Vec<u8>> = completed.into_iter().map(|(b, _)| b).collect();
        assert_eq!(
            bodies(&recs),
            want,
            "nth {nth}: every flushed record survives"
        );
    }
}

/// A failed sync is never retried, whatever its error: the kernel may have dropped the dirty
/// pages it could not write ("fsyncgate"). An `EIO` on a write is fatal too.
#[test]
fn failed_syncs_and_eio_writes_still_poison() {
    for (site, fault) in [
        (Site::SyncData, Fault::Enospc),
        (Site::SyncData, Fault::Eio),
        (Site::Write, Fault::Eio),
    ] {
        let sim = SimStorage::new();
        let (log, _) = open_sim(&sim, &small_config());
        sim.set_fault_plan(Some(FaultPlan::new(1).rule(FaultRule::nth(site, 1, fault))));
        log.append(b"record").expect("append");
        let e = log.flush().expect_err("flush meets the fault");
        assert!(!e.is_storage_full() || site != Site::Write, "{e}");
        sim.set_fault_plan(None);
        assert!(
            matches!(log.append(b"x"), Err(Error::Poisoned { .. })),
            "{site:?} {fault:?}: the log is poisoned"
        );
        assert!(matches!(log.flush(), Err(Error::Poisoned { .. })));
    }
}

/// Every failed sync is reported as the poison, never as a retryable full disk, even when its
/// code is `ENOSPC` and it happens inside a buffer install (the `fdatasync` after the file
/// grows for a new segment) or a blob write. The install's sync failure used to reach its
/// caller as the `Io` `ENOSPC` (`is_storage_full`), and the install was parked as if a buffer
/// had stalled, though the log was poisoned.
#[test]
fn a_failed_sync_inside_an_install_or_a_blob_write_reports_the_poison() {
    // No flush: the only data-file syncs are the ones after the file grows.
    let sim = SimStorage::new();
    let cfg = small_config();
    let (log, _) = open_sim(&sim, &cfg);
    sim.set_fault_plan(Some(FaultPlan::new(1).rule(
        FaultRule::nth(Site::SyncData, 1, Fault::Enospc).path_contains("log.dat"),
    )));
    let mut appended = 0u64;
    let e = loop {
        match log.append(&body(appended, 500)) {
            Ok(_) => appended += 1,
            Err(e) => break e,
        }
        assert!(appended < 1000, "the data file never grew");
    };
    assert_eq!(sim.fault_counts().at(Site::SyncData), 1, "{e}");
    assert!(
        matches!(e, Error::Poisoned { .. }),
        "the growth sync failed: expected Poisoned, got {e:?}"
    );
    sim.set_fault_plan(None);
    assert!(matches!(log.append(b"x"), Err(Error::Poisoned { .. })));
    assert!(matches!(log.flush(), Err(Error::Poisoned { .. })));

    let sim = SimStorage::new();
    let (log, _) = open_sim(&sim, &cfg);
    sim.set_fault_plan(Some(FaultPlan::new(2).rule(FaultRule::nth(
        Site::SyncAll,
        1,
        Fault::Enospc,
    ))));
    let big = body(1, 3 * cfg.io_buffer_size_bytes as usize);
    let e = log.append(&big).expect_err("the blob's fsync fails");
    assert_eq!(sim.fault_counts().at(Site::SyncAll), 1, "{e}");
    assert!(
        matches!(e, Error::Poisoned { .. }),
        "the blob's fsync failed: expected Poisoned, got {e:?}"
    );
    assert!(matches!(log.append(b"x"), Err(Error::Poisoned { .. })));
}

/// Concurrent appenders and flushers on a full disk all get typed errors (nobody hangs);
/// after space is freed they all succeed.
#[test]
fn concurrent_writers_on_a_full_disk_never_hang() {
    let sim = SimStorage::new();
    let cfg = Config {
        io_buffer_count: 2,
        ..small_config()
    };
    let (log, _) = open_sim(&sim, &cfg);
    sim.set_capacity(Some(sim.used_bytes() + (16 << 10)));
    let log = Arc::new(log);
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut ptrs = Vec::new();
                let mut errors = 0;
                for i in 0..400u64 {
                    let b = body(t * 10_000 + i, 200);
                    match log.append(&b) {
                        Ok((_, p)) => ptrs.push((b, p)),
                        Err(e) => {
                            assert_full(&e, "concurrent append");
                            errors += 1;
                        }
                    }
                    if i % 8 == t {
                        if let Err(e) = log.flush() {
                            assert_full(&e, "concurrent flush");
                            errors += 1;
                        }
                    }
                }
                (ptrs, errors)
            })
        })
        .collect();
    let mut completed = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (p, e) = w.join().expect("worker");
        completed.extend(p);
        errors += e;
    }
    assert!(errors > 0, "the disk filled");
    reads_match(&log, &completed, "full disk, after the workers");
    sim.set_capacity(None);
    log.flush().expect("flush after freeing space");
    reads_match(&log, &completed, "after freeing space");
    let log = Arc::into_inner(log).expect("the workers are done");
    drop(log);
    sim.crash(7, CrashMode::DROP_UNSYNCED);
    let (_log, recs) = open_sim(&sim, &cfg);
    let mut got = bodies(&recs);
    let mut want: Vec<Vec<u8>> = completed.into_iter().map(|(b, _)| b).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "every completed record survives the clean close");
}

/// Blob writes on a full disk fail typed, leave no file behind, and succeed after space is
/// freed; the log is never poisoned.
#[test]
fn a_blob_on_a_full_disk_fails_cleanly() {
    let sim = SimStorage::new();
    let cfg = small_config();
    let (log, _) = open_sim(&sim, &cfg);
    let big = body(1, 3 * cfg.io_buffer_size_bytes as usize);
    sim.set_capacity(Some(sim.used_bytes() + 1000));
    let e = log.append(&big).expect_err("blob on a full disk");
    assert_full(&e, "blob");
    let blobs = sim
        .files()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("blobs/"))
        .count();
    assert_eq!(blobs, 0, "the partial blob was removed");
    sim.set_capacity(None);
    let (_, p) = log.append(&big).expect("blob after freeing space");
    log.flush().expect("flush");
    assert_eq!(log.read(p).expect("read blob"), big);
}
