//! Models of a whole [`Log`] on in-memory storage ([`SimStorage`]) under loom: the rotation,
//! the hand-off, the full-disk stall and the durability waits, with the log's own mutexes,
//! condvars and buffer words modelled (see `crate::sync`). There is no I/O writer or flusher
//! thread under loom: durability waiters and installers write handed-off buffers themselves.
//!
//! Cost: one execution is a few thousand modelled steps (a `Log` opened, every lock a
//! scheduling point, crossbeam-epoch's pins in reads and reclamation), so these models set
//! their own preemption bound, apart from `LOOM_MAX_PREEMPTIONS` (which tunes the word-level
//! models): [`DEFAULT_PREEMPTIONS`], or `LOG_LOOM_PREEMPTIONS`. The storage yields
//! to loom's scheduler before each data-file write and sync ([`Yielding`]), so other threads
//! run while a buffer is being written without spending a preemption.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};

use loom::sync::Arc;
use loom::thread;

use crate::format::RECORD_HEADER_LEN;
use crate::io::{
    DirLockGuard, Fault, FaultPlan, FaultRule, SimStorage, Site, Storage, StorageFile,
};
use crate::{Config, DiskPtr, Log, Lsn, DATA_FILE};

/// The preemption bound of these models unless `LOG_LOOM_PREEMPTIONS` is set: CI's bound for
/// the word-level models too. Measured for `loom_pending_install_handoff_and_resume` (release,
/// shared 2-core machine): bound 0, 60 executions in 0.01 s; bound 1, 2 060 in 0.4 s; bound 2,
/// 23 000 in 4.8 s (the planted bugs in docs/VERIFICATION.md are caught from bound 0).
const DEFAULT_PREEMPTIONS: usize = 2;

/// One execution is more than loom's default limit of 1 000 branches.
const MAX_BRANCHES: usize = 20_000;

/// Runs `f` under loom at this module's bound; prints how many executions it explored.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let bound = std::env::var("LOG_LOOM_PREEMPTIONS")
        .ok()
        .map(|v| v.parse().expect("LOG_LOOM_PREEMPTIONS is a number"))
        .unwrap_or(DEFAULT_PREEMPTIONS);
    // std on purpose: counts executions across the model, outside what loom explores.
    let executions = std::sync::Arc::new(StdAtomicUsize::new(0));
    let counted = executions.clone();
    let started = std::time::Instant::now();
    let mut builder = loom::model::Builder::new();
    builder.max_branches = MAX_BRANCHES;
    builder.preemption_bound = Some(bound);
    builder.check(move || {
        // Relaxed: a statistic, read after `check` returns (same thread).
        counted.fetch_add(1, StdOrdering::Relaxed);
        f();
    });
    eprintln!(
        "preemption bound {bound}: {} executions in {:.2} s",
        executions.load(StdOrdering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}

/// [`SimStorage`] that yields to loom's scheduler before every data-file write and sync: a
/// yield is a switch point that costs no preemption, so even at bound 0 another thread runs
/// while a buffer is being written (and may meet it taken, stalled, or freed).
#[derive(Debug)]
struct Yielding(SimStorage);

#[derive(Debug)]
struct YieldingFile(std::sync::Arc<dyn StorageFile>);

impl StorageFile for YieldingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        thread::yield_now();
        self.0.write_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        thread::yield_now();
        self.0.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl Storage for Yielding {
    fn open_file(&self, path: &Path, create: bool) -> io::Result<std::sync::Arc<dyn StorageFile>> {
        let f = self.0.open_file(path, create)?;
        Ok(if path.ends_with(DATA_FILE) {
            std::sync::Arc::new(YieldingFile(f))
        } else {
            f
        })
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.0.create_dir_all(path)
    }
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        self.0.read_dir(dir)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.0.exists(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.0.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.0.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.0.sync_dir(dir)
    }
    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLockGuard>> {
        self.0.lock_dir(dir)
    }
}

/// Body `i` of `len` bytes (distinct per record, so a record read from the wrong place fails).
fn body(i: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| i.wrapping_mul(31).wrapping_add(k as u8))
        .collect()
}

/// The body at `p` in the durable image of the data file.
fn durable_body(sim: &SimStorage, p: DiskPtr, len: usize) -> Vec<u8> {
    let file = sim
        .durable_contents(&Path::new("/db").join(DATA_FILE))
        .expect("data file");
    let at = (p.file_offset() as usize) + RECORD_HEADER_LEN;
    file.get(at..at + len)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// Two I/O buffers. Before the threads start, record `a` is in buffer 0, and `b` (too big to
/// share a buffer with `a`) sealed buffer 0 (handed off, queued, unwritten) and sits in
/// buffer 1; then the first data-file write is set to fail with `ENOSPC` (once: then space
/// is back). Thread W waits for `a` to be durable (`make_stable`, again if the first wait
/// reports the full disk). Thread R appends `c`, which does not fit in buffer 1: its seal
/// must install buffer 0 again, so the install waits for `a`'s buffer, written (or its
/// stalled write retried) by W or by R itself, and is parked (`pending_install`) when that
/// write fails; R then appends `c` again and resumes the parked install.
///
/// Checks: nobody hangs (loom reports a deadlock); every error is a full disk; W's wait
/// returns `Ok` only once `a` is in the durable image at its own offset (`durable` never
/// passes the stalled buffer; the retry wrote the same offset); R's second attempt succeeds;
/// at the end `a`, `b`, `c` are durable, read back, in LSN order, and recovered in that order
/// on reopen. Both outcomes occur (asserted): R's install parked, and W's first wait failed.
#[test]
fn loom_pending_install_handoff_and_resume() {
    // Not vacuous: some executions must park `c`'s install (R's first append of `c` fails and
    // the second resumes it) and some must fail W's first wait. std counters, outside what
    // loom explores.
    let parked = std::sync::Arc::new(StdAtomicUsize::new(0));
    let w_failed = std::sync::Arc::new(StdAtomicUsize::new(0));
    let (parked_in, w_failed_in) = (parked.clone(), w_failed.clone());
    model(move || {
        let (parked, w_failed) = (parked_in.clone(), w_failed_in.clone());
        let sim = SimStorage::new();
        let cfg = Config {
            io_buffer_count: 2,
            // Under loom a timed wait never times out: no gathering.
            group_commit_wait_us: 0,
            ..Config::small("/db")
        };
        let storage = std::sync::Arc::new(Yielding(sim.clone()));
        let (log, _) = Log::open(cfg.clone(), storage, Lsn(0)).expect("open");
        let log = Arc::new(log);
        // Buffers hold 2 KiB: no two of these records share one.
        let (a, b, c) = (body(1, 700), body(2, 1400), body(3, 1400));
        let (_, pa) = log.append(&a).expect("append a");
        // Seals buffer 0 (handed off, queued) and fills buffer 1.
        let (_, pb) = log.append(&b).expect("append b");
        sim.set_fault_plan(Some(FaultPlan::new(1).rule(
            FaultRule::nth(Site::Write, 1, Fault::Enospc).path_contains(DATA_FILE),
        )));

        let w = {
            let (log, sim, a) = (log.clone(), sim.clone(), a.clone());
            thread::spawn(move || {
                if let Err(e) = log.make_stable(pa.lsn()) {
                    assert!(e.is_storage_full(), "W's wait: {e:?}");
                    // Relaxed: a statistic (see above).
                    w_failed.fetch_add(1, StdOrdering::Relaxed);
                    log.make_stable(pa.lsn())
                        .expect("W's second wait: space is back");
                }
                assert_eq!(durable_body(&sim, pa, a.len()), a, "stable, not durable");
            })
        };
        let r = {
            let (log, c) = (log.clone(), c.clone());
            thread::spawn(move || {
                match log.append(&c) {
                    Ok((_, p)) => p,
                    Err(e) => {
                        assert!(e.is_storage_full(), "R's append of c: {e:?}");
                        // Relaxed: a statistic (see above).
                        parked.fetch_add(1, StdOrdering::Relaxed);
                        log.append(&c).expect("append c again: space is back").1
                    }
                }
            })
        };
        w.join().expect("W");
        let pc = r.join().expect("R");

        assert_eq!(
            sim.fault_counts().at(Site::Write),
            1,
            "the write failed once"
        );
        assert!(pa.lsn() < pb.lsn() && pb.lsn() < pc.lsn(), "LSN order");
        log.flush().expect("final flush");
        for (p, want) in [(pa, &a), (pb, &b), (pc, &c)] {
            assert_eq!(&log.read(p).expect("read"), want, "read back");
            assert_eq!(&durable_body(&sim, p, want.len()), want, "durable");
        }
        drop(log);
        let (_, recs) = Log::open(cfg, std::sync::Arc::new(sim.clone()), Lsn(0)).expect("reopen");
        let got: Vec<&[u8]> = recs.iter().map(|r| r.body.as_slice()).collect();
        assert_eq!(got, [&a[..], &b[..], &c[..]], "recovered in order");
    });
    // Relaxed: read after every execution ran, on this thread.
    let (parked, w_failed) = (
        parked.load(StdOrdering::Relaxed),
        w_failed.load(StdOrdering::Relaxed),
    );
    eprintln!("c's install parked in {parked} executions, W's first wait failed in {w_failed}");
    assert!(parked > 0, "no execution parked c's install");
    assert!(w_failed > 0, "no execution failed W's first wait");
}
