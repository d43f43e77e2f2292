//! [`PageCache`]: the public handle, opening, and the background checkpoint/cleaning thread.

use std::marker::PhantomData;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_epoch::Guard;
use logstore::io::{FileStorage, Storage};
use logstore::Log;
use radix::Pid;

use crate::cleaner::{CleanReport, CleanerState};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::group::Group;
use crate::inner::{Inner, Installed};
use crate::model::PageModel;
use crate::recovery;
use crate::stats::PageCacheStats;
use crate::sync::AtomicU64;
use crate::view::PageView;

/// An open page cache. `&PageCache` is all an operation needs; share it between threads.
pub struct PageCache<M: PageModel> {
    /// Crate-visible for the unit tests that reach below the API (recovery's crafted records).
    pub(crate) inner: Arc<Inner<M>>,
    background: Option<Background>,
}

struct Background {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: JoinHandle<()>,
}

impl<M: PageModel> PageCache<M> {
    /// Opens (creating if needed) the cache in `cfg.path` on the real file system, recovering
    /// from the newest valid checkpoint and the log after it.
    pub fn open(cfg: Config) -> Result<Self> {
        Self::open_with_storage(cfg, Arc::new(FileStorage))
    }

    /// As [`PageCache::open`], on the given storage (tests use the simulated one).
    pub fn open_with_storage(cfg: Config, storage: Arc<dyn Storage>) -> Result<Self> {
        cfg.validate()?;
        let rec = recovery::recover::<M>(&cfg, &storage)?;
        let inner = Arc::new(Inner {
            cfg,
            log: rec.log,
            storage,
            table: rec.table,
            pids: rec.pids,
            counters: rec.counters,
            clock_hand: AtomicU64::new(0),
            evicting: Mutex::new(()),
            checkpointing: Mutex::new(()),
            cleaning: Mutex::new(CleanerState::default()),
            background_error: Mutex::new(BackgroundErrors::default()),
            _model: PhantomData,
        });
        // A checkpoint right away bounds the next startup and makes the loaded checkpoint the
        // oldest one kept (the reuse horizon the log was opened with). Checkpoints found
        // corrupt are removed first so they can never become the fallback.
        for path in &rec.corrupt_checkpoints {
            inner
                .storage
                .remove_file(path)
                .map_err(|e| Error::io("remove corrupt checkpoint", path, e))?;
        }
        inner.checkpoint()?;
        let background = spawn_background(&inner)?;
        Ok(PageCache { inner, background })
    }

    /// Allocates a page holding `base`.
    pub fn allocate(&self, base: M::Base, guard: &Guard) -> Result<Pid> {
        self.inner.allocate(base, guard)
    }

    /// The page's current state (read back from the log if evicted), or `None` if the page
    /// does not exist. The view borrows nothing but the guard.
    pub fn read<'g>(&self, pid: Pid, guard: &'g Guard) -> Result<Option<PageView<'g, M>>> {
        self.inner.read(pid, guard)
    }

    /// Prepends `delta` if the page is still as `expected` shows it; otherwise returns the
    /// delta (re-read and retry). Past `Config::fragment_cap` fragments the page is
    /// consolidated.
    pub fn prepend<'g>(
        &self,
        delta: M::Delta,
        expected: &PageView<'g, M>,
        guard: &'g Guard,
    ) -> Result<Installed<'g, M, M::Delta>> {
        self.inner.prepend(delta, expected, guard)
    }

    /// Replaces the page's whole state by `base` if it is still as `expected` shows it
    /// (consolidation); otherwise returns the base.
    pub fn replace<'g>(
        &self,
        base: M::Base,
        expected: &PageView<'g, M>,
        guard: &'g Guard,
    ) -> Result<Installed<'g, M, M::Base>> {
        self.inner.replace(base, expected, guard)
    }

    /// Frees the page if it is still as `expected` shows it (`Ok(Err(()))` otherwise). Its id
    /// is reused only after every thread pinned now has unpinned; readers holding a view keep
    /// reading the old state safely.
    pub fn free<'g>(
        &self,
        expected: &PageView<'g, M>,
        guard: &'g Guard,
    ) -> Result<std::result::Result<(), ()>> {
        self.inner.free(expected, guard)
    }

    /// Starts an atomic group: deltas staged on several pages with [`Group::stage`] become
    /// durable as one log record and visible at one instant at [`Group::commit`]. While
    /// staged, a page's head is invisible and refuses every other change (`prepend`,
    /// `replace`, `free` return the value back, as if their CAS had lost).
    pub fn begin_group<'g>(&self, guard: &'g Guard) -> Group<'g, M> {
        Group::new(Arc::clone(&self.inner), guard)
    }

    /// Evicts the page now if it is resident and still as `expected` shows it (testbed and
    /// tests; the cache evicts by itself under its budget). Returns whether it did.
    pub fn evict(&self, expected: &PageView<'_, M>, guard: &Guard) -> Result<bool> {
        self.inner.evict(expected, guard)
    }

    /// Writes a checkpoint now.
    pub fn checkpoint(&self) -> Result<()> {
        self.inner.checkpoint()
    }

    /// Runs one cleaning pass now.
    pub fn clean(&self) -> Result<CleanReport> {
        self.inner.clean()
    }

    /// Makes every completed operation durable.
    pub fn flush(&self) -> Result<()> {
        Ok(self.inner.log.flush()?)
    }

    /// Counters since open.
    pub fn stats(&self) -> PageCacheStats {
        self.inner.counters.snapshot()
    }

    /// The log underneath (its statistics and segment table).
    pub fn log(&self) -> &Log {
        &self.inner.log
    }

    /// What the background thread's latest checkpoint or cleaning pass failed with, if one
    /// did (the thread keeps running; the log's poison also surfaces in foreground calls).
    /// A full disk is reported until a later pass of the same task succeeds; any other error
    /// (the log is poisoned, a file is damaged) stays until the cache is reopened.
    pub fn background_error(&self) -> Option<String> {
        lock(&self.inner.background_error).current()
    }

    /// Stops background work and writes a final checkpoint, reporting its errors (dropping the
    /// cache does the same but can only ignore them).
    pub fn close(mut self) -> Result<()> {
        self.stop_background();
        self.inner.checkpoint()
    }

    fn stop_background(&mut self) {
        if let Some(bg) = self.background.take() {
            *lock(&bg.stop.0) = true;
            bg.stop.1.notify_all();
            if let Err(p) = bg.handle.join() {
                if !std::thread::panicking() {
                    std::panic::resume_unwind(p);
                }
            }
        }
    }
}

impl<M: PageModel> Drop for PageCache<M> {
    fn drop(&mut self) {
        self.stop_background();
        if !std::thread::panicking() {
            // Best effort: a failure here leaves the previous checkpoint plus the log, which
            // recovery replays.
            let _ = self.inner.checkpoint();
        }
    }
}

impl<M: PageModel> std::fmt::Debug for PageCache<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageCache")
            .field("path", &self.inner.cfg.path)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The longest tick of the background thread when checkpoints follow log volume.
const VOLUME_CHECK_MS: u64 = 200;

/// Starts the checkpoint/cleaning thread if an interval is set. Never under loom: a std thread
/// cannot touch the modelled atomics, and models call `checkpoint`/`clean` themselves.
fn spawn_background<M: PageModel>(inner: &Arc<Inner<M>>) -> Result<Option<Background>> {
    if cfg!(loom) {
        return Ok(None);
    }
    let intervals: Vec<u64> = [inner.cfg.checkpoint_every_ms, inner.cfg.clean_every_ms]
        .into_iter()
        .flatten()
        .collect();
    let Some(&tick) = intervals.iter().min() else {
        return Ok(None);
    };
    // The log-volume trigger is checked per tick: often enough to follow a bulk load.
    let tick = match inner.cfg.checkpoint_every_bytes {
        Some(_) => tick.min(VOLUME_CHECK_MS),
        None => tick,
    };
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let (inner2, stop2) = (inner.clone(), stop.clone());
    let handle = std::thread::Builder::new()
        .name("pagecache-background".into())
        .spawn(move || background_loop(&inner2, &stop2, Duration::from_millis(tick)))
        .map_err(|e| Error::io("spawn background thread", &inner.cfg.path, e))?;
    Ok(Some(Background { stop, handle }))
}

fn background_loop<M: PageModel>(inner: &Inner<M>, stop: &(Mutex<bool>, Condvar), tick: Duration) {
    let every = |ms: Option<u64>| ms.map(Duration::from_millis);
    let (ckpt_every, clean_every) = (
        every(inner.cfg.checkpoint_every_ms),
        every(inner.cfg.clean_every_ms),
    );
    let (mut last_ckpt, mut last_clean) = (Instant::now(), Instant::now());
    let mut last_ckpt_lsn = inner.log.durable_lsn().0;
    let grown = |since: u64| {
        let bytes = inner.log.durable_lsn().0.saturating_sub(since);
        inner.cfg.checkpoint_every_bytes.is_some_and(|b| bytes >= b)
    };
    let mut stopped = lock(&stop.0);
    loop {
        // Checked before waiting too: a stop requested before this thread first took the
        // lock must not wait out a whole tick.
        if *stopped {
            return;
        }
        stopped = stop
            .1
            .wait_timeout(stopped, tick)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        if *stopped {
            return;
        }
        drop(stopped);
        let due =
            |last: Instant, every: Option<Duration>| every.is_some_and(|e| last.elapsed() >= e);
        if due(last_clean, clean_every) {
            last_clean = Instant::now();
            let outcome = inner.clean();
            lock(&inner.background_error).note(Task::Cleaning, &outcome);
        }
        if due(last_ckpt, ckpt_every) || grown(last_ckpt_lsn) {
            last_ckpt = Instant::now();
            last_ckpt_lsn = inner.log.durable_lsn().0;
            let outcome = inner.checkpoint();
            lock(&inner.background_error).note(Task::Checkpoint, &outcome);
        }
        stopped = lock(&stop.0);
    }
}

/// The background tasks whose failures [`BackgroundErrors`] keeps apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Task {
    Checkpoint,
    Cleaning,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::Checkpoint => "checkpoint",
            Task::Cleaning => "cleaning",
        }
    }
}

/// How the background thread's latest checkpoint and cleaning pass went, one slot per task
/// (a successful checkpoint says nothing about whether cleaning can run again).
///
/// Each slot holds the failure of that task's latest pass, and a success empties it, so a
/// full disk stops being reported once space is back. A failure for any other reason is
/// sticky: it means the log refuses writes for good (poisoned) or files are damaged, and
/// neither heals while the cache is open; it stays until reopening, and later outcomes of
/// that task leave it as it is.
#[derive(Debug, Default)]
pub(crate) struct BackgroundErrors {
    checkpoint: Option<Failure>,
    cleaning: Option<Failure>,
}

#[derive(Debug)]
struct Failure {
    message: String,
    /// Not a full disk: kept until the cache is reopened.
    sticky: bool,
}

impl BackgroundErrors {
    /// Records the outcome of one pass of `task`.
    pub(crate) fn note<T>(&mut self, task: Task, outcome: &Result<T>) {
        let slot = match task {
            Task::Checkpoint => &mut self.checkpoint,
            Task::Cleaning => &mut self.cleaning,
        };
        if slot.as_ref().is_some_and(|f| f.sticky) {
            return;
        }
        *slot = outcome.as_ref().err().map(|e| Failure {
            message: format!("{}: {e}", task.name()),
            sticky: !e.is_storage_full(),
        });
    }

    /// The failure to report: a sticky one first (it outlives every full disk), else the
    /// checkpoint's, else the cleaning pass's.
    pub(crate) fn current(&self) -> Option<String> {
        let slots = [&self.checkpoint, &self.cleaning];
        slots
            .iter()
            .filter_map(|s| s.as_ref())
            .find(|f| f.sticky)
            .or_else(|| slots.iter().find_map(|s| s.as_ref()))
            .map(|f| f.message.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Error {
        Error::io(
            "write checkpoint",
            std::path::Path::new("/db"),
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        )
    }

    fn broken() -> Error {
        Error::io(
            "write checkpoint",
            std::path::Path::new("/db"),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        )
    }

    #[test]
    fn a_full_disk_is_reported_until_the_same_task_succeeds_again() {
        let mut errs = BackgroundErrors::default();
        errs.note(Task::Checkpoint, &Err::<(), _>(full()));
        errs.note(Task::Cleaning, &Err::<(), _>(full()));
        assert!(errs.current().unwrap().starts_with("checkpoint"));
        errs.note(Task::Checkpoint, &Ok(()));
        // Cleaning has not succeeded since: its failure is still the latest state.
        assert!(errs.current().unwrap().starts_with("cleaning"));
        errs.note(Task::Cleaning, &Ok(()));
        assert_eq!(errs.current(), None);
    }

    #[test]
    fn any_other_failure_stays() {
        let mut errs = BackgroundErrors::default();
        errs.note(Task::Cleaning, &Err::<(), _>(full()));
        errs.note(Task::Checkpoint, &Err::<(), _>(broken()));
        errs.note(Task::Checkpoint, &Ok(()));
        errs.note(Task::Checkpoint, &Err::<(), _>(full()));
        let msg = errs.current().unwrap();
        assert!(
            msg.contains("permission") || msg.contains("denied"),
            "{msg}"
        );
        errs.note(Task::Cleaning, &Ok(()));
        assert!(
            errs.current().is_some(),
            "a non-full-disk failure was cleared"
        );
    }
}
