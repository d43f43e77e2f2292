//! A lock-free (Treiber) stack of page ids, the allocator's free list.
//!
//! # ABA safety
//!
//! `pop` reads `head`, then `head.next`, then CASes `head` from the node it read to `next`. The
//! classic ABA failure needs the node read first to be freed and its address reused by a new
//! node that is pushed back by the time the CAS runs. Here a popped node is retired with
//! `guard.defer_destroy`, so its memory cannot be reused while any thread that may have read it
//! is still pinned; and nodes are never re-pushed (each push allocates a new node). So if the CAS
//! sees the same address it is the same node, still linked to the `next` read under the guard.

use crossbeam_epoch::{Atomic, Guard, Owned};

use crate::pid::Pid;
use crate::sync::{AtomicU64, Ordering};

struct Node {
    pid: Pid,
    next: Atomic<Node>,
}

/// The stack. Nodes are reclaimed through crossbeam-epoch.
pub(crate) struct PidStack {
    head: Atomic<Node>,
    len: AtomicU64,
}

impl PidStack {
    pub(crate) fn new() -> PidStack {
        PidStack {
            head: Atomic::null(),
            len: AtomicU64::new(0),
        }
    }

    /// Pushes without pinning. Push never dereferences a node it loads (it only links to `head`
    /// and CASes it), so it needs no protection from reclamation; deferred frees use this because
    /// they may run while the epoch collector itself is being torn down, when pinning fails.
    pub(crate) fn push_unpinned(&self, pid: Pid) {
        // SAFETY: `push` dereferences no pointer loaded through the guard (see above), which is
        // the only thing `unprotected` makes unsafe.
        self.push(pid, unsafe { crossbeam_epoch::unprotected() });
    }

    pub(crate) fn push(&self, pid: Pid, guard: &Guard) {
        let mut node = Owned::new(Node {
            pid,
            next: Atomic::null(),
        });
        // Relaxed, but before the publishing CAS: a popper that Acquires this node is ordered
        // after the increment, so its decrement never precedes it and `len` never wraps.
        self.len.fetch_add(1, Ordering::Relaxed);
        loop {
            // Relaxed: the value is only used as the expected value of the CAS and as `next`,
            // which readers reach through the Release CAS below.
            let head = self.head.load(Ordering::Relaxed, guard);
            node.next.store(head, Ordering::Relaxed);
            crate::debug_delay::before_cas();
            // Release: publishes the node's fields to the Acquire load in `pop`.
            match self.head.compare_exchange(
                head,
                node,
                Ordering::Release,
                Ordering::Relaxed,
                guard,
            ) {
                Ok(_) => break,
                Err(lost) => node = lost.new,
            }
        }
    }

    pub(crate) fn pop(&self, guard: &Guard) -> Option<Pid> {
        loop {
            // Acquire: pairs with push's Release CAS so `pid` and `next` are initialised.
            let head = self.head.load(Ordering::Acquire, guard);
            // SAFETY: `head` was loaded under `guard` and nodes are freed only through
            // `defer_destroy`, so it stays allocated while the guard is pinned.
            let node = unsafe { head.as_ref() }?;
            let next = node.next.load(Ordering::Relaxed, guard);
            crate::debug_delay::before_cas();
            // Relaxed success: the node's contents were already acquired above; failure retries
            // with a fresh Acquire load. ABA: see the module docs.
            if self
                .head
                .compare_exchange(head, next, Ordering::Relaxed, Ordering::Relaxed, guard)
                .is_ok()
            {
                let pid = node.pid;
                // SAFETY: the CAS unlinked `head`, so no new reader can reach it; readers that
                // already hold it are pinned, and the destruction waits for them.
                unsafe { guard.defer_destroy(head) };
                // Relaxed: statistics only.
                self.len.fetch_sub(1, Ordering::Relaxed);
                return Some(pid);
            }
        }
    }

    /// Approximate number of ids on the stack.
    pub(crate) fn len(&self) -> u64 {
        // Relaxed: statistics only.
        self.len.load(Ordering::Relaxed)
    }

    /// The ids on the stack, top first. Racy under concurrent use (a snapshot for checkpoints,
    /// which the caller takes when it knows the free list is quiescent or tolerates staleness).
    pub(crate) fn snapshot(&self, guard: &Guard) -> Vec<Pid> {
        let mut ids = Vec::new();
        // Acquire: as in pop.
        let mut cursor = self.head.load(Ordering::Acquire, guard);
        // SAFETY: each node was loaded under `guard`; nodes are freed only through deferral.
        while let Some(node) = unsafe { cursor.as_ref() } {
            ids.push(node.pid);
            cursor = node.next.load(Ordering::Acquire, guard);
        }
        ids
    }
}

impl Drop for PidStack {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other thread can access the stack, so the nodes can be walked
        // and freed without pinning.
        let guard = unsafe { crossbeam_epoch::unprotected() };
        let mut cursor = self.head.load(Ordering::Relaxed, guard);
        while !cursor.is_null() {
            // SAFETY: every node still linked is owned by the stack alone (popped ones were
            // unlinked and are freed by their deferral), and each is visited once.
            let owned = unsafe { cursor.into_owned() };
            cursor = owned.next.load(Ordering::Relaxed, guard);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod concurrent_tests {
    use super::*;
    use crossbeam_epoch as epoch;

    /// Two threads push and pop concurrently; every pushed id comes out exactly once.
    #[test]
    fn concurrent_push_pop_keeps_every_id() {
        let per_thread: u64 = if cfg!(miri) { 40 } else { 20_000 };
        let stack = PidStack::new();
        let mut got: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2u64)
                .map(|t| {
                    let stack = &stack;
                    s.spawn(move || {
                        let mut mine = Vec::new();
                        for i in 0..per_thread {
                            stack.push(Pid::new(t * per_thread + i).unwrap(), &epoch::pin());
                            if i % 2 == 1 {
                                mine.extend(stack.pop(&epoch::pin()).map(Pid::get));
                                mine.extend(stack.pop(&epoch::pin()).map(Pid::get));
                            }
                        }
                        mine
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        while let Some(p) = stack.pop(&epoch::pin()) {
            got.push(p.get());
        }
        got.sort_unstable();
        assert_eq!(got, (0..2 * per_thread).collect::<Vec<_>>());
    }
}
