//! D2: a panic on one of the log's background threads (here: forced by a storage that panics)
//! must poison the log and wake every waiter, not leave them asleep forever. Each check runs
//! with a deadline, so a regression fails instead of hanging the suite.

mod common;

use std::any::Any;
use std::io::{self, Write as _};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use logstore::io::{DirLockGuard, SimStorage, Storage, StorageFile};
use logstore::{Config, Error, Log, Lsn};

const DEADLINE: Duration = Duration::from_secs(20);

/// What the data file's next matching call does.
#[derive(Debug, Default)]
struct Trap {
    /// `write_at` panics (after `gate`, if set).
    on_write: AtomicBool,
    /// `sync_data` panics.
    on_sync: AtomicBool,
    /// The trapped call blocks until this is set (it signals `entered` first).
    gate: Option<(mpsc::Sender<()>, Arc<AtomicBool>)>,
    /// How often a trap fired, and on which threads.
    fired: AtomicU32,
    threads: Mutex<Vec<String>>,
}

impl Trap {
    fn fire(&self, what: &str) -> ! {
        self.fired.fetch_add(1, Ordering::SeqCst);
        let name = std::thread::current().name().unwrap_or("?").to_string();
        self.threads.lock().unwrap().push(name.clone());
        panic!("test storage: {what} panics on thread {name}");
    }
}

/// A `SimStorage` whose data file (`log.dat`) panics when a trap is armed. Only the first armed
/// call fires (the trap disarms itself), so later calls by other threads go through.
#[derive(Debug)]
struct PanicStorage {
    sim: SimStorage,
    trap: Arc<Trap>,
}

#[derive(Debug)]
struct PanicFile {
    inner: Arc<dyn StorageFile>,
    trap: Arc<Trap>,
}

impl StorageFile for PanicFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        if self.trap.on_write.swap(false, Ordering::SeqCst) {
            if let Some((entered, open)) = &self.trap.gate {
                entered.send(()).unwrap();
                while !open.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            self.trap.fire("write_at");
        }
        self.inner.write_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.trap.on_sync.swap(false, Ordering::SeqCst) {
            self.trap.fire("sync_data");
        }
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.inner.sync_all()
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

impl Storage for PanicStorage {
    fn open_file(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let inner = self.sim.open_file(path, create)?;
        if path.file_name() != Some(logstore::DATA_FILE.as_ref()) {
            return Ok(inner);
        }
        Ok(Arc::new(PanicFile {
            inner,
            trap: self.trap.clone(),
        }))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.sim.create_dir_all(path)
    }
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        self.sim.read_dir(dir)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.sim.exists(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.sim.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.sim.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.sim.sync_dir(dir)
    }
    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLockGuard>> {
        self.sim.lock_dir(dir)
    }
}

fn open_trapped(trap: &Arc<Trap>, cfg: Config) -> Log {
    let storage = PanicStorage {
        sim: SimStorage::new(),
        trap: trap.clone(),
    };
    Log::open(cfg, Arc::new(storage), Lsn(0))
        .expect("open log")
        .0
}

/// Runs `f` on a scoped thread and returns its result, or fails the test after `DEADLINE`.
fn within_deadline<T: Send>(what: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        s.spawn(move || {
            let _ = tx.send(f());
        });
        match rx.recv_timeout(DEADLINE) {
            Ok(v) => v,
            Err(_) => {
                // Not `eprintln!`: the harness captures that, and exit skips printing it.
                let _ = writeln!(
                    io::stderr(),
                    "{what}: still blocked after {DEADLINE:?} (the log hangs)"
                );
                std::process::exit(1)
            }
        }
    })
}

fn assert_poisoned_by_panic<T: std::fmt::Debug>(r: Result<T, Error>, what: &str) {
    match r {
        Err(Error::Poisoned { cause }) => {
            assert!(cause.contains("panicked"), "{what}: poison cause {cause:?}")
        }
        other => panic!("{what}: expected Error::Poisoned, got {other:?}"),
    }
}

/// Dropping the log joins the panicked thread and re-raises its panic.
fn drop_reraises(log: Log) {
    let r: Result<(), Box<dyn Any + Send>> = catch_unwind(AssertUnwindSafe(|| drop(log)));
    let payload = r.expect_err("dropping the log re-raises the background panic");
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(msg.contains("test storage"), "re-raised panic: {msg:?}");
}

fn no_flusher() -> Config {
    Config {
        flush_every_ms: None,
        ..small_config()
    }
}

/// Writers blocked on a free buffer (every buffer sealed behind the one the I/O thread was
/// writing) get `Poisoned` when the I/O thread panics.
#[test]
fn io_thread_panic_releases_writers_waiting_for_a_buffer() {
    let trap = Arc::new(Trap::default());
    let log = open_trapped(&trap, no_flusher());
    trap.on_write.store(true, Ordering::SeqCst);
    let r = within_deadline("appending writer", || loop {
        if let Err(e) = log.append(&body(1, 200)) {
            break Err::<(), _>(e);
        }
    });
    assert_poisoned_by_panic(r, "append");
    assert_eq!(trap.fired.load(Ordering::SeqCst), 1);
    assert_eq!(*trap.threads.lock().unwrap(), ["logstore-io"]);
    let r = within_deadline("make_stable after the panic", || log.make_stable(Lsn(0)));
    assert_poisoned_by_panic(r, "make_stable");
    assert_poisoned_by_panic(log.reserve(10).map(|_| ()), "reserve");
    drop_reraises(log);
}

/// A durability waiter already asleep when the I/O thread panics (mid-write of the buffer it
/// waits for) is woken with `Poisoned`.
#[test]
fn io_thread_panic_releases_a_sleeping_durability_waiter() {
    let (entered_tx, entered) = mpsc::channel();
    let open = Arc::new(AtomicBool::new(false));
    let trap = Arc::new(Trap {
        gate: Some((entered_tx, open.clone())),
        ..Trap::default()
    });
    let log = open_trapped(&trap, no_flusher());
    trap.on_write.store(true, Ordering::SeqCst);
    // Append until the first buffer is sealed full (the next one is free, so this does not
    // block), then wait until the I/O thread is stuck writing it.
    let first = log.append(&body(0, 200)).unwrap().0;
    let mut i = 1;
    while log.stats().buffers_sealed_full == 0 {
        log.append(&body(i, 200)).unwrap();
        i += 1;
        assert!(i < 1000, "no buffer was sealed");
    }
    entered
        .recv_timeout(DEADLINE)
        .expect("the I/O thread writes the sealed buffer");
    let r = within_deadline("durability waiter", || {
        std::thread::scope(|s| {
            let waiter = s.spawn(|| log.make_stable(first));
            // Let the waiter fall asleep (if it does not, the test still checks the result).
            std::thread::sleep(Duration::from_millis(50));
            open.store(true, Ordering::SeqCst);
            waiter.join().unwrap()
        })
    });
    assert_poisoned_by_panic(r, "make_stable");
    assert_eq!(*trap.threads.lock().unwrap(), ["logstore-io"]);
    drop_reraises(log);
}

/// The flusher leads the sync for the records it makes durable; if that sync panics on the
/// flusher thread, the log is poisoned (nobody else ever syncs here).
#[test]
fn flusher_panic_poisons_the_log() {
    let trap = Arc::new(Trap::default());
    let log = open_trapped(
        &trap,
        Config {
            flush_every_ms: Some(1),
            ..small_config()
        },
    );
    trap.on_sync.store(true, Ordering::SeqCst);
    log.append(&body(0, 100)).unwrap();
    let r = within_deadline("waiting for the flusher's panic", || loop {
        match log.reserve(10) {
            Ok(r) => r.abort(),
            Err(e) => break Err::<(), _>(e),
        }
        std::thread::sleep(Duration::from_millis(1));
    });
    assert_poisoned_by_panic(r, "reserve");
    assert_eq!(*trap.threads.lock().unwrap(), ["logstore-flusher"]);
    let r = within_deadline("flush after the panic", || log.flush());
    assert_poisoned_by_panic(r, "flush");
    drop_reraises(log);
}

/// A committer leading a sync that panics gets the panic itself; everyone else gets
/// `Poisoned` instead of waiting for a sync that will never finish.
#[test]
fn committer_panic_mid_sync_poisons_the_log() {
    let trap = Arc::new(Trap::default());
    let log = open_trapped(&trap, no_flusher());
    let (lsn, ptr) = log.append(&body(0, 100)).unwrap();
    trap.on_sync.store(true, Ordering::SeqCst);
    let r = catch_unwind(AssertUnwindSafe(|| log.make_stable(lsn)));
    assert!(r.is_err(), "the leading committer sees its own panic");
    assert_eq!(trap.threads.lock().unwrap().len(), 1);
    let r = within_deadline("make_stable after the panic", || log.make_stable(lsn));
    assert_poisoned_by_panic(r, "make_stable");
    // Reads go on after an I/O failure, not after a panic (a broken invariant).
    assert_poisoned_by_panic(log.read(ptr).map(drop), "read");
    // The background threads did not panic: dropping the log is quiet.
    drop(log);
}
