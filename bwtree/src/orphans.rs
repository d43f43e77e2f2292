//! [`Orphans`]: pages unlinked from every tree whose free could not be logged because the disk
//! was full, kept until a later write or flush shows the log takes records again.
//!
//! A page becomes unreachable in a few places: the unpublished half of a split that lost its
//! CAS or met a full disk, the children of a root growth that did not happen, the root of a
//! tree whose catalog entry was not written, the node a merge or root shrink removed. Freeing
//! it logs a `Free` record; on a full disk that fails and changes nothing (the page stays
//! allocated). Dropping the pid then would leak the page for the life of the database; listing
//! it here instead lets the next successful write or flush retry the free.
//!
//! Invariants:
//! - **One freer per page.** A pid is listed only by the thread that owned its free (the
//!   allocator of an unpublished page, the winner of the `TermDelete` or root-replace CAS),
//!   after that free failed. Nothing else frees an unreachable page, so a listed pid is
//!   freed by whoever takes it from this list and by nobody else: never twice.
//! - **Never reused while listed.** The failed free changed nothing, so the page cache still
//!   holds the page as allocated and cannot hand its pid out again. A listed page is unlinked
//!   from every tree; readers that reached it before that keep reading it safely, and the
//!   eventual free defers the pid's reuse past them through the epoch like any other free.
//! - **Each retry has one owner.** [`Orphans::take`] empties the whole list under its lock,
//!   so two drains never retry the same pid; a retry that fails lists the pid again.
//!
//! The list is in memory only. Pids still listed at a crash (or at a close on a still-full
//! disk) are leaked as a crash between allocating a split half and publishing it leaks one:
//! recovery finds an allocated page that nothing links, and nothing reclaims it (a known
//! limit: space, never wrong data).

use std::sync::Mutex;

use radix::Pid;

use crate::sync::{AtomicBool, Ordering};

/// The pids awaiting a free, and a flag that says whether there are any.
#[derive(Debug, Default)]
pub(crate) struct Orphans {
    /// Whether `pids` is non-empty. Written only with the lock on `pids` held, to match it;
    /// read without the lock as a hint (see [`Orphans::any`]).
    listed: AtomicBool,
    pids: Mutex<Vec<Pid>>,
}

impl Orphans {
    /// Whether any pid may be listed: one Relaxed load, cheap enough for every write. Relaxed
    /// because it is only a hint: the list itself is read under its lock. A writer that does
    /// not yet see a pid just listed leaves it to the next write or flush (or to the close),
    /// which costs time, never correctness.
    pub(crate) fn any(&self) -> bool {
        self.listed.load(Ordering::Relaxed)
    }

    /// Lists `pid`, whose free just failed on a full disk (see the invariants above).
    pub(crate) fn push(&self, pid: Pid) {
        let mut pids = self.lock();
        debug_assert!(!pids.contains(&pid), "page {pid} listed twice");
        pids.push(pid);
        self.listed.store(true, Ordering::Relaxed);
    }

    /// Takes every listed pid (the caller retries their frees and lists the failures again).
    pub(crate) fn take(&self) -> Vec<Pid> {
        let mut pids = self.lock();
        self.listed.store(false, Ordering::Relaxed);
        std::mem::take(&mut *pids)
    }

    /// Lists `rest` again (their free could not be retried yet).
    pub(crate) fn put_back(&self, rest: impl IntoIterator<Item = Pid>) {
        let mut pids = self.lock();
        pids.extend(rest);
        debug_assert!(
            {
                let mut sorted = pids.clone();
                sorted.sort_unstable();
                sorted.windows(2).all(|w| w[0] != w[1])
            },
            "a page listed twice"
        );
        self.listed.store(!pids.is_empty(), Ordering::Relaxed);
    }

    /// How many pids are listed.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pid>> {
        // A panic while holding the lock leaves a valid list (each method changes it in one
        // step), so a poisoned lock is still usable.
        self.pids.lock().unwrap_or_else(|p| p.into_inner())
    }
}
