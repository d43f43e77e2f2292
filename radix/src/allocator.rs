//! The page-id allocator: fresh ids from a counter, freed ids recycled through a lock-free stack.
//!
//! # Invariant: no reuse while a reader may still hold the id
//!
//! [`PidAllocator::free`] does not push the id: it defers the push with `guard.defer`. Epoch
//! reclamation runs a deferred closure only after every thread that was pinned when it was
//! deferred has unpinned. A thread that read a page's slot under a guard pinned before the free
//! therefore cannot see the id handed out again, and cannot mistake a new page for the old one.
//!
//! Accounting (checked by the tests): every id ever handed out is, at any quiescent moment,
//! exactly one of live (held by a caller), pending (freed, push deferred) or on the stack:
//! `fresh = live + pending + stacked`.

use std::fmt;

use crossbeam_epoch::{self as epoch, Guard};

use crate::pid::Pid;
use crate::stack::PidStack;
use crate::sync::{Arc, AtomicU64, Ordering};

/// State shared with deferred frees, which may run after the allocator is dropped.
struct Recycler {
    stack: PidStack,
    pending: AtomicU64,
}

impl Recycler {
    fn push_deferred(&self, pid: Pid) {
        self.stack.push_unpinned(pid);
        // Relaxed: a statistic. Incremented before the defer, so it never underflows.
        self.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counters a researcher reads to watch the allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Ids taken from the fresh counter.
    pub fresh: u64,
    /// Ids handed out again from the free stack.
    pub recycled: u64,
    /// Ids freed whose epoch-deferred push has not run yet.
    pub pending_deferred: u64,
    /// Ids on the free stack, ready for reuse.
    pub stacked: u64,
}

/// Hands out page ids. `Send + Sync`.
pub struct PidAllocator {
    next_fresh: AtomicU64,
    recycled: AtomicU64,
    recycler: Arc<Recycler>,
}

impl PidAllocator {
    /// An allocator whose first id is 0.
    #[must_use]
    pub fn new() -> PidAllocator {
        PidAllocator::restore(0, [])
    }

    /// An allocator resuming from a checkpoint: fresh ids start at `next_fresh`, and `free` are
    /// ready for reuse at once (the caller guarantees nobody holds them, e.g. at startup).
    ///
    /// The caller validates ids read from disk first; here a bad list is a programmer error.
    ///
    /// # Panics
    /// If `next_fresh` exceeds `Pid::MAX + 1`, a free id is not below `next_fresh`, or an id is
    /// listed twice (it would be handed out twice).
    #[must_use]
    pub fn restore(next_fresh: u64, free: impl IntoIterator<Item = Pid>) -> PidAllocator {
        let free: Vec<Pid> = free.into_iter().collect();
        let mut sorted = free.clone();
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
            panic!("free id {} listed twice", pair[0]);
        }
        assert!(
            next_fresh <= Pid::MAX.get() + 1,
            "next fresh id {next_fresh} beyond Pid::MAX"
        );
        let recycler = Arc::new(Recycler {
            stack: PidStack::new(),
            pending: AtomicU64::new(0),
        });
        let guard = epoch::pin();
        for pid in free {
            assert!(pid.get() < next_fresh, "free id {pid} was never allocated");
            recycler.stack.push(pid, &guard);
        }
        drop(guard);
        PidAllocator {
            next_fresh: AtomicU64::new(next_fresh),
            recycled: AtomicU64::new(0),
            recycler,
        }
    }

    /// A recycled id if one is ready, else a fresh one.
    ///
    /// # Panics
    /// If all 2^42 ids are live at once.
    #[must_use]
    pub fn allocate(&self) -> Pid {
        if let Some(pid) = self.recycler.stack.pop(&epoch::pin()) {
            // Relaxed: a statistic.
            self.recycled.fetch_add(1, Ordering::Relaxed);
            return pid;
        }
        // Relaxed: uniqueness comes from the atomic RMW itself; the id carries no data.
        let raw = self.next_fresh.fetch_add(1, Ordering::Relaxed);
        match Pid::new(raw) {
            Some(pid) => pid,
            None => {
                self.next_fresh.fetch_sub(1, Ordering::Relaxed);
                panic!(
                    "page id space exhausted: {} ids are live",
                    Pid::MAX.get() + 1
                );
            }
        }
    }

    /// Frees `pid` for reuse once every thread pinned now has unpinned (see the module docs).
    /// The caller must have made the id's slot unreachable (e.g. `Free`) before calling.
    ///
    /// # Panics
    /// If `pid` was never handed out by this allocator.
    pub fn free(&self, pid: Pid, guard: &Guard) {
        // Relaxed: reading our own counter's monotonic value for a sanity check.
        let issued = self.next_fresh.load(Ordering::Relaxed);
        assert!(
            pid.get() < issued,
            "freeing {pid}, which was never allocated"
        );
        // An unprotected guard would run the deferred push at once: immediate reuse.
        assert!(
            guard.collector().is_some(),
            "free needs a pinned guard, not epoch::unprotected()"
        );
        // Relaxed: a statistic; incremented before the deferral that decrements it.
        self.recycler.pending.fetch_add(1, Ordering::Relaxed);
        let recycler = Arc::clone(&self.recycler);
        guard.defer(move || recycler.push_deferred(pid));
    }

    /// One past the largest id ever issued: the value to checkpoint.
    #[must_use]
    pub fn next_fresh(&self) -> u64 {
        // Relaxed: a checkpoint taker orders itself against allocations by its own protocol.
        self.next_fresh.load(Ordering::Relaxed)
    }

    /// The ids ready for reuse: a hint, racy under concurrent use. Ids whose deferred push is
    /// still pending are not included, and it is not read atomically with [`Self::next_fresh`].
    /// A checkpoint should therefore not rely on it alone: at recovery, the authoritative free
    /// list is the set of ids below `next_fresh` whose slots are `Free`.
    ///
    /// Note that a deferred push waits in the freeing thread's epoch bag until the bag fills,
    /// the thread flushes (`epoch::pin().flush()`) or exits, so ids freed by a thread that then
    /// idles stay pending for a while: correct, but not reused early.
    #[must_use]
    pub fn free_ids(&self) -> Vec<Pid> {
        self.recycler.stack.snapshot(&epoch::pin())
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> AllocatorStats {
        // Relaxed: statistics, each read independently.
        AllocatorStats {
            fresh: self.next_fresh.load(Ordering::Relaxed),
            recycled: self.recycled.load(Ordering::Relaxed),
            pending_deferred: self.recycler.pending.load(Ordering::Relaxed),
            stacked: self.recycler.stack.len(),
        }
    }
}

impl Default for PidAllocator {
    fn default() -> Self {
        PidAllocator::new()
    }
}

impl fmt::Debug for PidAllocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PidAllocator")
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Flushes this thread's deferred garbage and advances the epoch until `done` holds. Other
    /// tests in this binary pin the same global collector and may be descheduled while pinned,
    /// so this waits (bounded, generously) rather than counting attempts.
    fn collect_until(done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if done() {
                return;
            }
            epoch::pin().flush();
            std::thread::yield_now();
        }
        panic!("deferred frees never ran within 30 s");
    }

    #[test]
    fn fresh_ids_are_sequential_and_distinct() {
        let alloc = PidAllocator::new();
        let ids: Vec<u64> = (0..100).map(|_| alloc.allocate().get()).collect();
        assert_eq!(ids, (0..100).collect::<Vec<_>>());
        assert_eq!(alloc.stats().fresh, 100);
    }

    #[test]
    fn a_freed_id_is_not_reused_while_the_freeing_guard_is_pinned() {
        let alloc = PidAllocator::new();
        let pid = alloc.allocate();
        let guard = epoch::pin();
        alloc.free(pid, &guard);
        guard.flush();
        assert_ne!(
            alloc.allocate(),
            pid,
            "reused while the guard that freed it is pinned"
        );
        assert_eq!(alloc.stats().pending_deferred, 1);
        drop(guard);
        collect_until(|| alloc.stats().pending_deferred == 0);
        assert_eq!(alloc.allocate(), pid);
        assert_eq!(alloc.stats().recycled, 1);
    }

    #[test]
    fn restore_resumes_the_counter_and_free_list() {
        let free = [Pid::new(3).unwrap(), Pid::new(7).unwrap()];
        let alloc = PidAllocator::restore(10, free);
        let got: HashSet<u64> = (0..3).map(|_| alloc.allocate().get()).collect();
        assert_eq!(got, HashSet::from([3, 7, 10]));
        assert_eq!(alloc.next_fresh(), 11);
    }

    #[test]
    #[should_panic(expected = "listed twice")]
    fn restoring_a_duplicate_free_id_panics() {
        let _ = PidAllocator::restore(4, [Pid::new(1).unwrap(), Pid::new(1).unwrap()]);
    }

    #[test]
    #[should_panic(expected = "never allocated")]
    fn freeing_an_unissued_id_panics() {
        let alloc = PidAllocator::new();
        alloc.free(Pid::new(5).unwrap(), &epoch::pin());
    }

    #[test]
    fn free_ids_lists_the_stack() {
        let alloc = PidAllocator::restore(4, [Pid::new(1).unwrap(), Pid::new(2).unwrap()]);
        let mut ids: Vec<u64> = alloc.free_ids().into_iter().map(Pid::get).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![1, 2]);
    }
}
