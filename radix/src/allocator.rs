//! The page-id allocator: fresh ids from a counter, freed ids recycled through a lock-free stack.
//!
//! # Invariant: no reuse while a reader may still hold the id
//!
//! [`PidAllocator::free`] does not push the id: it defers the push with `guard.defer`. Epoch
//! reclamation runs a deferred closure only after every thread that was pinned when it was
//! deferred has unpinned. A thread that read a page's slot under a guard pinned before the free
//! therefore cannot see the id handed out again, and cannot mistake a new page for the old one.
//!
//! # Restored free ids
//!
//! [`PidAllocator::from_live`] resumes at startup from the high-water mark `next_fresh` and the
//! ids of the live pages. Every other id below the mark is free, and nobody holds one (nothing
//! runs yet), so these need no epoch deferral. They are kept as ranges ([`FreeRanges`]: at
//! most `live + 1` entries, whatever the mark), never pushed one by one: a mark near
//! [`Pid::MAX`] with a few live pages costs a few ranges, not 2^42 stack nodes.
//!
//! `allocate` tries, in order: the recycled stack (lock-free), the restored ranges, the fresh
//! counter. The ranges sit behind a mutex, taken only when the stack came up empty and the
//! `has_restored` flag is set. The flag starts `true` iff there are ranges, is cleared under
//! the mutex by the allocation that empties them, and is never set again (nothing adds to the
//! ranges after construction). So once they are used up, every allocation is lock-free again,
//! and the flag needs no ordering (see `take_restored`). An id leaves the ranges exactly once,
//! under the mutex; when freed later it goes the ordinary way, through the deferred push.
//!
//! Accounting (checked by the tests): every id below `next_fresh` is, at any quiescent
//! moment, exactly one of live (held by a caller), pending (freed, push deferred), on the stack
//! or in the restored ranges: `fresh = live + pending + stacked + restored`.

use std::fmt;
use std::ops::Range;
use std::sync::PoisonError;

use crossbeam_epoch::{self as epoch, Guard};

use crate::free_ranges::FreeRanges;
use crate::pid::Pid;
use crate::stack::PidStack;
use crate::sync::{Arc, AtomicBool, AtomicU64, Mutex, MutexGuard, Ordering};

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
    /// Ids handed out again: from the free stack, or from the free ranges restored at startup.
    pub recycled: u64,
    /// Ids freed whose epoch-deferred push has not run yet.
    pub pending_deferred: u64,
    /// Ids on the free stack, ready for reuse.
    pub stacked: u64,
    /// Ids free at startup (below the restored `next_fresh`, not live) not handed out yet.
    pub restored: u64,
}

/// The ids ready for reuse (see [`PidAllocator::free_ids`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreeIds {
    /// The recycled ids on the free stack, top first.
    pub stacked: Vec<Pid>,
    /// The free ranges restored at startup that are left, lowest first.
    pub restored: Vec<Range<u64>>,
}

impl FreeIds {
    /// Whether `pid` is among the free ids.
    #[must_use]
    pub fn contains(&self, pid: Pid) -> bool {
        self.stacked.contains(&pid) || self.restored.iter().any(|r| r.contains(&pid.get()))
    }

    /// How many ids are free.
    #[must_use]
    pub fn len(&self) -> u64 {
        let restored: u64 = self.restored.iter().map(|r| r.end - r.start).sum();
        self.stacked.len() as u64 + restored
    }

    /// Whether no id is free.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Hands out page ids. `Send + Sync`.
pub struct PidAllocator {
    next_fresh: AtomicU64,
    recycled: AtomicU64,
    recycler: Arc<Recycler>,
    /// Free ids restored at startup (module docs), consulted after the stack.
    restored: Mutex<FreeRanges>,
    /// `restored` may be non-empty. Cleared once, under its mutex, never set again.
    has_restored: AtomicBool,
}

impl PidAllocator {
    /// An allocator whose first id is 0.
    #[must_use]
    pub fn new() -> PidAllocator {
        PidAllocator::from_live(0, [])
    }

    /// An allocator resuming at startup: fresh ids start at `next_fresh`, and every id below
    /// it that is not in `live` is ready for reuse at once (nobody holds one at startup). Costs
    /// memory and time in the number of live ids, not in `next_fresh` (module docs).
    ///
    /// The caller validates ids read from disk first; here a bad list is a programmer error.
    ///
    /// # Panics
    /// If `next_fresh` exceeds `Pid::MAX + 1`, a live id is not below `next_fresh`, or an id is
    /// listed twice.
    #[must_use]
    pub fn from_live(next_fresh: u64, live: impl IntoIterator<Item = Pid>) -> PidAllocator {
        let ranges = FreeRanges::around(next_fresh, live);
        let has_restored = !ranges.is_empty();
        PidAllocator {
            next_fresh: AtomicU64::new(next_fresh),
            recycled: AtomicU64::new(0),
            recycler: Arc::new(Recycler {
                stack: PidStack::new(),
                pending: AtomicU64::new(0),
            }),
            restored: Mutex::new(ranges),
            has_restored: AtomicBool::new(has_restored),
        }
    }

    /// An allocator with `stacked` already on the recycled stack (tests and models of the
    /// stack path; `from_live` never stacks).
    #[cfg(test)]
    pub(crate) fn with_stacked(next_fresh: u64, stacked: &[Pid]) -> PidAllocator {
        let alloc = PidAllocator::from_live(next_fresh, (0..next_fresh).filter_map(Pid::new));
        let guard = epoch::pin();
        for &pid in stacked {
            assert!(
                pid.get() < next_fresh,
                "stacked id {pid} was never allocated"
            );
            alloc.recycler.stack.push(pid, &guard);
        }
        alloc
    }

    /// A recycled id if one is ready, else a fresh one.
    ///
    /// # Panics
    /// If all 2^42 ids are live at once.
    #[must_use]
    pub fn allocate(&self) -> Pid {
        let reused = self
            .recycler
            .stack
            .pop(&epoch::pin())
            .or_else(|| self.take_restored());
        if let Some(pid) = reused {
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

    /// The lowest restored free id, if any are left (module docs).
    fn take_restored(&self) -> Option<Pid> {
        // Relaxed: the flag carries no data (the ranges are read under the mutex, which orders
        // them). A stale `true` costs one lock that finds the ranges empty; a `false` is never
        // stale in the harmful direction, since it is stored only once the ranges are empty
        // and they never refill.
        if !self.has_restored.load(Ordering::Relaxed) {
            return None;
        }
        let mut ranges = self.lock_restored();
        let pid = ranges.take();
        if ranges.is_empty() {
            // Relaxed: see above.
            self.has_restored.store(false, Ordering::Relaxed);
        }
        pid
    }

    /// Whether the restored-ranges flag is up (tests and models check it against the ranges).
    #[cfg(test)]
    pub(crate) fn has_restored(&self) -> bool {
        // Relaxed: see `take_restored`.
        self.has_restored.load(Ordering::Relaxed)
    }

    /// The restored ranges, locked. Poisoning is ignored: no code path panics while holding
    /// the lock with the ranges half-changed (`FreeRanges::take` has no panic point before its
    /// update is complete).
    fn lock_restored(&self) -> MutexGuard<'_, FreeRanges> {
        self.restored.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// The ids ready for reuse: the recycled stack and what is left of the ranges restored at
    /// startup (as ranges: they may span most of the id space). A hint, racy under concurrent
    /// use. Ids whose deferred push is still pending are not included, and it is not read
    /// atomically with [`Self::next_fresh`].
    /// A checkpoint should therefore not rely on it alone: at recovery, the authoritative free
    /// list is the set of ids below `next_fresh` whose slots are `Free`.
    ///
    /// Note that a deferred push waits in the freeing thread's epoch bag until the bag fills,
    /// the thread flushes (`epoch::pin().flush()`) or exits, so ids freed by a thread that then
    /// idles stay pending for a while: correct, but not reused early.
    #[must_use]
    pub fn free_ids(&self) -> FreeIds {
        FreeIds {
            stacked: self.recycler.stack.snapshot(&epoch::pin()),
            restored: self.lock_restored().ranges(),
        }
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
            restored: self.lock_restored().len(),
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

    fn pids(raw: &[u64]) -> Vec<Pid> {
        raw.iter().map(|&r| Pid::new(r).unwrap()).collect()
    }

    #[test]
    fn from_live_hands_out_the_gaps_lowest_first_then_fresh_ids() {
        let alloc = PidAllocator::from_live(10, pids(&[0, 2, 5, 9]));
        assert_eq!(alloc.stats().restored, 6);
        let got: Vec<u64> = (0..8).map(|_| alloc.allocate().get()).collect();
        assert_eq!(got, vec![1, 3, 4, 6, 7, 8, 10, 11]);
        assert_eq!(alloc.next_fresh(), 12);
        let stats = alloc.stats();
        assert_eq!((stats.recycled, stats.restored, stats.fresh), (6, 0, 12));
        // Ranges used up: the flag is down and allocation is back on the lock-free path.
        assert!(!alloc.has_restored());
    }

    #[test]
    fn a_high_water_mark_near_the_top_costs_two_ranges() {
        let top = Pid::MAX.get() + 1;
        let alloc = PidAllocator::from_live(top, pids(&[1, Pid::MAX.get() - 1]));
        let free = alloc.free_ids();
        assert_eq!(
            free.restored,
            vec![0..1, 2..Pid::MAX.get() - 1, Pid::MAX.get()..top]
        );
        assert_eq!(free.len(), top - 2);
        assert!(free.contains(Pid::new(0).unwrap()));
        assert!(!free.contains(Pid::new(1).unwrap()));
        assert_eq!(alloc.allocate().get(), 0);
        assert_eq!(alloc.allocate().get(), 2);
        assert_eq!(alloc.stats().restored, top - 4);
    }

    /// Restored ids and recycled ids mix: a restored id, once handed out and freed, comes back
    /// through the stack (after the epoch), never twice; the stack is drawn from first.
    #[test]
    fn a_restored_id_freed_again_returns_through_the_stack_once() {
        let alloc = PidAllocator::from_live(4, pids(&[1, 3]));
        let first = alloc.allocate();
        assert_eq!(first.get(), 0);
        alloc.free(first, &epoch::pin());
        collect_until(|| alloc.stats().stacked == 1);
        let mut got: Vec<u64> = (0..3).map(|_| alloc.allocate().get()).collect();
        assert_eq!(
            got,
            vec![0, 2, 4],
            "stack first, then the ranges, then fresh"
        );
        got.sort_unstable();
        got.dedup();
        assert_eq!(got.len(), 3);
        let stats = alloc.stats();
        assert_eq!(
            stats.fresh,
            3 + 2 + stats.pending_deferred + stats.stacked + stats.restored
        );
    }

    #[test]
    #[should_panic(expected = "listed twice")]
    fn a_duplicate_live_id_panics() {
        let _ = PidAllocator::from_live(4, pids(&[1, 1]));
    }

    /// Threads race on the ranges (and on the fresh counter behind them): every id is handed
    /// out exactly once, no live id at all, and fresh ids continue at the old mark.
    #[test]
    fn concurrent_allocations_from_the_ranges_hand_out_each_id_once() {
        let mark: u64 = if cfg!(miri) { 40 } else { 4000 };
        let live: Vec<u64> = (0..mark).filter(|id| id % 7 == 3).collect();
        let alloc = PidAllocator::from_live(mark, pids(&live));
        let free_below = mark - live.len() as u64;
        let per_thread = free_below / 2 + 50;
        let mut got: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let alloc = &alloc;
                    s.spawn(move || {
                        (0..per_thread)
                            .map(|_| alloc.allocate().get())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        got.sort_unstable();
        let expected: Vec<u64> = (0..mark + 2 * per_thread - free_below)
            .filter(|id| !(id < &mark && id % 7 == 3))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    #[should_panic(expected = "never allocated")]
    fn freeing_an_unissued_id_panics() {
        let alloc = PidAllocator::new();
        alloc.free(Pid::new(5).unwrap(), &epoch::pin());
    }

    #[test]
    fn free_ids_lists_the_stack_and_the_ranges() {
        let alloc = PidAllocator::with_stacked(4, &pids(&[1, 2]));
        let mut ids: Vec<u64> = alloc.free_ids().stacked.into_iter().map(Pid::get).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![1, 2]);
        assert!(alloc.free_ids().restored.is_empty());
        let alloc = PidAllocator::from_live(6, pids(&[2]));
        assert_eq!(alloc.free_ids().restored, vec![0..2, 3..6]);
        assert!(alloc.free_ids().stacked.is_empty());
    }
}
