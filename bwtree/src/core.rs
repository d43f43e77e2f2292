//! [`Core`]: what every tree of one database shares (the page cache, the knobs, the counters),
//! and the small helpers every tree operation uses (pinning, reading a page, bounded retries).

use crossbeam_epoch::Guard;
use pagecache::PageCache;
use radix::Pid;

use crate::base::Base;
use crate::consolidate::TreeModel;
use crate::error::{Error, Result};
use crate::node::{Delta, Page, RawPid};
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
/// Dropping the last handle flushes (best effort; `Db::flush` reports errors), then the page
/// cache writes its final checkpoint, then a temporary database's directory is removed
/// (fields drop in declaration order).
pub(crate) struct Core {
    pub(crate) cache: PageCache<TreeModel>,
    pub(crate) knobs: Knobs,
    pub(crate) counters: Counters,
    /// Held only to be dropped last.
    pub(crate) _temp_dir: Option<TempDir>,
}

impl Drop for Core {
    fn drop(&mut self) {
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
        Ok(self.cache.allocate(Base::new(page), guard)?)
    }

    /// Frees a page nobody can reach any more (an unpublished split half, a merged node).
    /// Retries while eviction or cleaning moves it; gives up quietly if it is already gone.
    pub(crate) fn free_unreachable(&self, pid: RawPid, guard: &Guard) -> Result<()> {
        let pid = pid_of(pid)?;
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
