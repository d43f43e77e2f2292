//! A full disk is recoverable without reopening the log: a buffer write that meets `ENOSPC`
//! stalls (nothing acknowledged, nothing poisoned), durability waits and, once every buffer
//! waits for the stalled one, reservations fail promptly with the typed `Error::Io`; reads
//! keep working (stalled records are served from memory); once space is freed the same open
//! log writes and flushes again, and a power loss after that keeps every acknowledged record.
//! Sync failures, and write failures other than a full disk, still poison the log.
//!
//! `DISK_FULL_SEED=<n>` reproduces; `DISK_FULL_RUNS=<n>` scales (default 100 seeds).

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use logstore::io::{
    CrashMode, DirLockGuard, Fault, FaultPlan, FaultRule, SimRng, SimStorage, Site, Storage,
    StorageFile,
};
use logstore::{Config, DiskPtr, Error, Log, Lsn};

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

/// A [`SimStorage`] whose data-file writes can be made to fail with `ENOSPC`, or to block
/// until released, by whether they cover a given file offset (the offset of a record in the
/// buffer being written).
#[derive(Debug, Clone)]
struct Gated {
    inner: SimStorage,
    script: Arc<(Mutex<Script>, Condvar)>,
}

#[derive(Debug, Default)]
struct Script {
    /// Writes covering one of these offsets fail with `ENOSPC`.
    fail: Vec<u64>,
    /// A write covering this offset waits until `open` (then goes on as usual).
    gate: Option<u64>,
    entered: bool,
    open: bool,
    /// The thread of each write failed by `fail`, in order.
    failed_by: Vec<std::thread::ThreadId>,
}

#[derive(Debug)]
struct GatedFile {
    inner: Arc<dyn StorageFile>,
    script: Arc<(Mutex<Script>, Condvar)>,
}

impl Gated {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.0.lock().expect("script lock")
    }

    /// Waits until a write met the gate.
    fn wait_entered(&self) {
        let (m, cv) = &*self.script;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut s = m.lock().expect("script lock");
        while !s.entered {
            assert!(Instant::now() < deadline, "no write met the gate");
            s = cv
                .wait_timeout(s, Duration::from_millis(10))
                .expect("lock")
                .0;
        }
    }

    fn open_gate(&self) {
        self.script().open = true;
        self.script.1.notify_all();
    }
}

impl StorageFile for GatedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<usize> {
        let covers = |o: u64| (offset..offset + buf.len() as u64).contains(&o);
        let (m, cv) = &*self.script;
        let mut s = m.lock().expect("script lock");
        if s.fail.iter().any(|&o| covers(o)) {
            s.failed_by.push(std::thread::current().id());
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        if s.gate.is_some_and(covers) {
            s.entered = true;
            cv.notify_all();
            while !s.open {
                s = cv.wait(s).expect("script lock");
            }
        }
        drop(s);
        self.inner.write_at(buf, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.inner.sync_data()
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.inner.sync_all()
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
}

impl Storage for Gated {
    fn open_file(&self, path: &Path, create: bool) -> std::io::Result<Arc<dyn StorageFile>> {
        let inner = self.inner.open_file(path, create)?;
        Ok(Arc::new(GatedFile {
            inner,
            script: self.script.clone(),
        }))
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn read_dir(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        self.inner.read_dir(dir)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        self.inner.exists(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn lock_dir(&self, dir: &Path) -> std::io::Result<Box<dyn DirLockGuard>> {
        self.inner.lock_dir(dir)
    }
}

/// Two stalled buffers X (earlier) and Y: a durability waiter that needs only X keeps waiting
/// when a write of Y fails, and returns `Ok` once X's retry succeeds. The failure count used
/// to be global: Y's failure ended every wait that began before it, so this waiter returned
/// the full-disk error while X was being written.
#[test]
fn a_failed_retry_of_a_later_stalled_buffer_does_not_end_a_wait_for_an_earlier_one() {
    let sim = SimStorage::new();
    let gated = Gated {
        inner: sim.clone(),
        script: Arc::default(),
    };
    let cfg = Config {
        group_commit_wait_us: 0,
        ..small_config()
    };
    let (log, _) = Log::open(cfg.clone(), Arc::new(gated.clone()), Lsn(0)).expect("open");
    let log = Arc::new(log);
    // X stalls.
    let a = body(1, 300);
    let (_, pa) = log.append(&a).expect("append a");
    gated.script().fail.push(pa.file_offset());
    assert_full(&log.flush().expect_err("X's write fails"), "flush of X");
    // X's next retry (the I/O writer's, after its backoff) succeeds, but only once released:
    // meanwhile X is taken, and a waiter for it waits.
    {
        let mut s = gated.script();
        s.fail.clear();
        s.gate = Some(pa.file_offset());
    }
    gated.wait_entered();
    let waiter = {
        let log = log.clone();
        std::thread::spawn(move || log.make_stable(pa.lsn()))
    };
    std::thread::sleep(Duration::from_millis(100));
    // Y stalls after the waiter began: its own flush hears it.
    let b = body(2, 300);
    let (_, pb) = log.append(&b).expect("append b");
    gated.script().fail.push(pb.file_offset());
    assert_full(&log.flush().expect_err("Y's write fails"), "flush of Y");
    std::thread::sleep(Duration::from_millis(50));
    let gave_up = waiter.is_finished();
    // Release X before any assertion: a panic here would drop the log, whose close waits for
    // the I/O writer, which waits at the gate.
    gated.open_gate();
    let r = waiter.join().expect("waiter thread");
    assert!(!gave_up, "the waiter for X gave up on Y's failure: {r:?}");
    r.expect("X was written: the wait for it succeeds");
    gated.script().fail.clear();
    log.flush().expect("flush once space is back");
    assert_eq!(log.read(pa).expect("read a"), a);
    assert_eq!(log.read(pb).expect("read b"), b);
}

/// A reservation that needs a stalled buffer for the next install retries its write once and
/// then fails: it used to retry twice (once in the seal's install, and again on meeting its
/// own parked install while it looped back to reserve).
#[test]
fn a_reservation_retries_the_stalled_buffer_it_needs_once() {
    let sim = SimStorage::new();
    let gated = Gated {
        inner: sim.clone(),
        script: Arc::default(),
    };
    let cfg = Config {
        io_buffer_count: 2,
        ..small_config()
    };
    let (log, _) = Log::open(cfg.clone(), Arc::new(gated.clone()), Lsn(0)).expect("open");
    let (_, pa) = log.append(&body(1, 300)).expect("append a");
    gated.script().fail.push(pa.file_offset());
    assert_full(&log.flush().expect_err("a's write fails"), "flush of a");
    let me = std::thread::current().id();
    let mine = |g: &Gated| g.script().failed_by.iter().filter(|&&t| t == me).count();
    let mut failed_calls = 0;
    for i in 0..40u64 {
        let before = mine(&gated);
        match log.append(&body(10 + i, 300)) {
            Ok(_) => assert_eq!(mine(&gated), before, "append {i} wrote nothing"),
            Err(e) => {
                assert_full(&e, "append that needs the stalled buffer");
                let retries = mine(&gated) - before;
                // 0 when the I/O writer's retry of the buffer failed while we waited for it.
                assert!(
                    retries <= 1,
                    "append {i} retried the stalled write {retries} times"
                );
                failed_calls += 1;
            }
        }
    }
    assert!(failed_calls > 0, "no append needed the stalled buffer");
    gated.script().fail.clear();
    log.flush().expect("flush once space is back");
}
