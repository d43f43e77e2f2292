//! [`Core`]: what every tree of one database shares (the page cache, the knobs, the counters),
//! and the small helpers every tree operation uses (pinning, reading a page, bounded retries).

use crossbeam_epoch::Guard;
use pagecache::PageCache;
use radix::Pid;

use crate::base::Base;
use crate::consolidate::TreeModel;
use crate::error::{Error, Result};
use crate::node::{Delta, Page, RawPid};
use crate::orphans::Orphans;
use crate::search::View;
use crate::stats::Counters;

/// Most restarts one operation makes before it reports [`Error::Contention`].
pub(crate) const MAX_RESTARTS: u32 = 1_000_000;

/// The tree's shape knobs (from [`Config`](crate::Config)).
#[derive(Clone, Debug)]
pub(crate) struct Knobs {
    /// Consolidate a node once its chain holds this many fragments.
    pub(crate) consolidation_threshold: usize,
    /// Split a node holding more entries than this.
    pub(crate) node_max_entries: usize,
    /// Split a node whose keys and values exceed this many bytes (if it has 2+ entries).
    pub(crate) node_max_bytes: usize,
    /// Merge a node holding fewer entries than this into its left sibling.
    pub(crate) merge_below_entries: usize,
    /// A node's chain may never hold more key and value bytes than this (it must fit in one
    /// log record once consolidated).
    pub(crate) node_hard_max_bytes: usize,
    /// The largest key or value accepted.
    pub(crate) max_part_bytes: usize,
    /// Yield at random before each CAS (tests and stress runs).
    pub(crate) debug_delay: bool,
}

/// The state shared by every tree of a database.
///
/// Dropping the last handle retries the frees of [`Orphans`] and flushes, then the page
/// cache writes its final checkpoint, then a temporary database's directory is removed
/// (fields drop in declaration order). All of that is best effort, since a drop cannot
/// report: on a full disk (or a poisoned log) the flush fails, and the writes completed since
/// the last successful flush are lost exactly as in a crash at that point. They were never
/// acknowledged durable (see the durability contract), and recovery yields the same prefix
/// it would after a crash; nothing panics or waits for space. A caller who needs to know
/// calls [`Db::flush`](crate::Db::flush) before dropping: it returns the typed full-disk
/// error, and succeeds once space is freed.
pub(crate) struct Core {
    pub(crate) cache: PageCache<TreeModel>,
    pub(crate) knobs: Knobs,
    pub(crate) counters: Counters,
    /// Unlinked pages whose free met a full disk, freed after a later write or flush.
    pub(crate) orphans: Orphans,
    /// Held only to be dropped last.
    pub(crate) _temp_dir: Option<TempDir>,
}

impl Drop for Core {
    fn drop(&mut self) {
        self.after_write();
        let _ = self.cache.flush();
    }
}

/// A temporary database's directory, removed when dropped.
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A new directory name under the system's temporary directory.
pub(crate) fn fresh_temp_path() -> std::path::PathBuf {
    use crate::sync::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Relaxed: only uniqueness within the process matters.
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("bwtree-{}-{nanos}-{n}", std::process::id()))
}

impl Core {
    /// The database directory.
    pub(crate) fn cache_path(&self) -> &std::path::Path {
        &self.cache.log().config().path
    }

    /// The page's current state; `None` if it was freed (a stale pid: restart).
    pub(crate) fn read<'g>(&self, pid: Pid, guard: &'g Guard) -> Result<Option<View<'g>>> {
        Ok(self.cache.read(pid, guard)?)
    }

    /// Prepends `delta` if the page is still as `view` shows it.
    pub(crate) fn try_prepend<'g>(
        &self,
        delta: Delta,
        view: &View<'g>,
        guard: &'g Guard,
    ) -> Result<Option<View<'g>>> {
        debug_delay(self.knobs.debug_delay);
        #[cfg(test)]
        hooks::reached(hooks::Point::Prepend);
        match self.cache.prepend(delta, view, guard)? {
            Ok(v) => Ok(Some(v)),
            Err(_) => {
                Counters::bump(&self.counters.cas_failures);
                Ok(None)
            }
        }
    }

    /// Replaces the page by `page` if it is still as `view` shows it.
    pub(crate) fn try_replace<'g>(
        &self,
        page: Page,
        view: &View<'g>,
        guard: &'g Guard,
    ) -> Result<Option<View<'g>>> {
        debug_delay(self.knobs.debug_delay);
        match self.cache.replace(Base::new(page), view, guard)? {
            Ok(v) => Ok(Some(v)),
            Err(_) => {
                Counters::bump(&self.counters.cas_failures);
                Ok(None)
            }
        }
    }

    /// A new page holding `page`.
    pub(crate) fn allocate(&self, page: Page, guard: &Guard) -> Result<Pid> {
        #[cfg(test)]
        hooks::reached(hooks::Point::Allocate);
        Ok(self.cache.allocate(Base::new(page), guard)?)
    }

    /// Frees a page nobody can reach any more (an unpublished split half, a merged node); the
    /// caller is the page's one freer (see [`Orphans`]). On a full disk the free is logged
    /// later: the pid goes to the orphan list and this returns `Ok` (the structure change that
    /// unlinked the page is complete; failing it would report a done change as failed).
    pub(crate) fn free_unreachable(&self, pid: RawPid, guard: &Guard) -> Result<()> {
        let pid = pid_of(pid)?;
        match self.try_free(pid, guard) {
            Err(e) if e.is_storage_full() => {
                self.orphans.push(pid);
                Ok(())
            }
            r => r,
        }
    }

    /// Frees an unreachable page. Retries while eviction or cleaning moves it; gives up
    /// quietly if it is already gone.
    fn try_free(&self, pid: Pid, guard: &Guard) -> Result<()> {
        #[cfg(test)]
        hooks::reached(hooks::Point::Free);
        for _ in 0..MAX_RESTARTS {
            let Some(view) = self.read(pid, guard)? else {
                return Ok(());
            };
            if self.cache.free(&view, guard)?.is_ok() {
                return Ok(());
            }
        }
        Err(Error::Contention("freeing a page"))
    }

    /// Called after every successful write and flush: if pages are waiting on the orphan list
    /// (one Relaxed load when none are), retries their frees now that the log took a record.
    pub(crate) fn after_write(&self) {
        if self.orphans.any() {
            self.free_orphans();
        }
    }

    /// Retries the free of every listed orphan. Stops at the first failure (on a disk that is
    /// full again the rest would fail too) and lists that pid and the rest again. Never fails
    /// the caller: the write or flush that triggered it is complete.
    pub(crate) fn free_orphans(&self) {
        let guard = crossbeam_epoch::pin();
        let mut pids = self.orphans.take().into_iter();
        while let Some(pid) = pids.next() {
            if self.try_free(pid, &guard).is_err() {
                self.orphans.put_back(std::iter::once(pid).chain(pids));
                return;
            }
        }
    }
}

/// A pid read from a page (validated: a corrupt one is an error, not a panic).
pub(crate) fn pid_of(raw: RawPid) -> Result<Pid> {
    Pid::new(raw).ok_or_else(|| Error::Corruption {
        what: format!("page id {raw} out of range"),
        at: "a tree node".into(),
    })
}

/// Backs off after the `n`th restart of one operation: spin, then yield, then sleep briefly,
/// so a thread waiting for a helper to finish does not burn the other core.
/// Under loom every restart yields to the scheduler instead: a thread that waits for another
/// to finish a step must let loom run that thread (a spin would only burn the branch budget).
pub(crate) fn backoff(n: u32) {
    if cfg!(loom) {
        if n > 0 {
            crate::sync::yield_now();
        }
    } else if n < 4 {
        std::hint::spin_loop();
    } else if n < 64 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
}

/// The `debug_delay` knob: a random yield before each CAS, so rare interleavings become
/// common in tests and stress runs. Off under loom, whose scheduler already explores every
/// interleaving within its bounds.
fn debug_delay(on: bool) {
    if cfg!(loom) {
        return;
    }
    use std::cell::RefCell;
    thread_local! {
        static RNG: RefCell<logstore::io::SimRng> =
            RefCell::new(logstore::io::SimRng::new(0x2545_F491_4F6C_DD1D));
    }
    if on && RNG.with(|r| r.borrow_mut().below(4)) == 0 {
        std::thread::yield_now();
    }
}

/// Test hooks: run a closure when this thread next reaches a point, so a test can fill the
/// disk between two steps of one operation (the operation then meets a real full disk there).
#[cfg(test)]
pub(crate) mod hooks {
    use std::cell::RefCell;

    /// Where a hook may run.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Point {
        /// Before a tree CAS that prepends a delta.
        Prepend,
        /// Before allocating a page.
        Allocate,
        /// Before freeing an unreachable page.
        Free,
    }

    type Hook = (Point, u32, Box<dyn FnOnce()>);

    thread_local! {
        static NEXT: RefCell<Option<Hook>> = const { RefCell::new(None) };
    }

    /// Runs `f` when this thread reaches `point` for the `nth` time from now (0: the next).
    pub(crate) fn at(point: Point, nth: u32, f: impl FnOnce() + 'static) {
        NEXT.with(|n| *n.borrow_mut() = Some((point, nth, Box::new(f))));
    }

    pub(super) fn reached(point: Point) {
        let due = NEXT.with(|n| {
            let mut n = n.borrow_mut();
            match n.take() {
                Some((p, 0, f)) if p == point => Some(f),
                Some((p, k, f)) if p == point => {
                    *n = Some((p, k - 1, f));
                    None
                }
                other => {
                    *n = other;
                    None
                }
            }
        });
        if let Some(f) = due {
            f();
        }
    }
}
