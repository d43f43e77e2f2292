//! In-memory pages: delta chains of [`Node`]s, published through a radix slot.
//!
//! Invariants (checked by the model test and loom models):
//! - **One node, one fragment.** Every node of a published chain was written to the log before
//!   it was published, and `disk` names that record. A chain's nodes are exactly the page's
//!   live fragments, newest first; the base is the oldest.
//! - **Immutable once published.** Nothing but `heat` changes in a published node. A newer
//!   delta links to the old head (`next`); the old head stays owned by the chain.
//! - **Ownership.** The slot owns the head; each node owns its `next`. A chain leaves the slot
//!   only as a whole (replace, evict, free) and is then dropped through the epoch (`retire`),
//!   never while a pinned reader may still hold any of its nodes. A node whose publication
//!   failed was never visible: its `next` is detached before it is dropped.
//! - **Staged nodes** (`group/`). A delta of an uncommitted group is published in memory
//!   before it has a record; its fragment is its group's record (`Disk::Group`), known once the
//!   group commits. Uncommitted staged nodes are only ever at the top of a chain (nobody but
//!   their group builds on them) and are invisible to readers. An aborted group's nodes leave
//!   their slots one by one (the chain below stays), through [`retire_detached`].

use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr;
use std::sync::Arc;

use crossbeam_epoch::Guard;
use logstore::DiskPtr;

use crate::group::GroupState;
use crate::model::PageModel;
use crate::sync::{AtomicBool, Ordering, StdAtomicU8 as AtomicU8};

/// The hottest CLOCK value a page reaches (a page needs this many hand passes without access
/// to be evicted, so a one-off scan cannot flush pages that are read repeatedly).
pub(crate) const MAX_HEAT: u8 = 3;

/// What a node holds.
pub(crate) enum Body<M: PageModel> {
    Base(M::Base),
    Delta(M::Delta),
}

/// Where a node's fragment is.
pub(crate) enum Disk {
    /// A record of its own.
    Own(DiskPtr),
    /// A sub-fragment of its group's record (shared with the group's other pages); the
    /// record exists once the group committed.
    Group(Arc<GroupState>),
}

/// One element of a page's chain. See the module comment for the invariants.
pub(crate) struct Node<M: PageModel> {
    pub(crate) body: Body<M>,
    /// The older node; null for the base.
    next: *mut Node<M>,
    /// The fragment this node was written as: read it through [`Node::disk`].
    disk: Disk,
    /// Nodes from here down to the base (1 for a base).
    pub(crate) len: u32,
    /// Heap bytes of the chain from here down: what the cache budget counts.
    pub(crate) chain_bytes: usize,
    /// CLOCK heat of the page (only the head's counts).
    pub(crate) heat: AtomicU8,
    /// The fragment's record was completed (readable by position): only then may the page be
    /// evicted to it.
    pub(crate) completed: AtomicBool,
}

// SAFETY: a node is shared between threads only through `&Node` after publication, when
// everything but the atomic `heat` is immutable; its bodies are Send + Sync by `PageModel`'s
// bounds, and the raw `next` is only dereferenced as `&Node` (shared) or, when the chain is
// dropped, by the one thread that owns it.
unsafe impl<M: PageModel> Send for Node<M> {}
// SAFETY: see Send.
unsafe impl<M: PageModel> Sync for Node<M> {}

impl<M: PageModel> Node<M> {
    /// A base node (a chain of one).
    pub(crate) fn base(base: M::Base, disk: DiskPtr, heat: u8) -> Box<Self> {
        let chain_bytes = size_of::<Self>() + M::base_heap_bytes(&base);
        Box::new(Node {
            body: Body::Base(base),
            next: ptr::null_mut(),
            disk: Disk::Own(disk),
            len: 1,
            chain_bytes,
            heat: AtomicU8::new(heat),
            completed: AtomicBool::new(false),
        })
    }

    /// A delta on top of `older`. Not owned by anyone until published: on failure, recover
    /// the delta with [`Node::into_unpublished_delta`].
    ///
    /// `older` is a raw pointer, not `&Node`, because the chain's drop will free and write
    /// the older node through `next`: a pointer derived from a shared reference may do
    /// neither (Miri, Tree Borrows: a write through a child of a Frozen tag).
    ///
    /// # Safety
    /// `older` must point to a live node that came from `Box::into_raw` and carry that
    /// pointer's provenance (a slot word's pointer does, see [`PageView::head_raw`]); it must
    /// stay alive while the new node is unpublished, and once the new node is published it
    /// owns `older` (so `older` must be the head it replaces, or owned by the caller).
    ///
    /// [`PageView::head_raw`]: crate::view::PageView::head_raw
    pub(crate) unsafe fn delta(delta: M::Delta, disk: DiskPtr, older: *mut Node<M>) -> Box<Self> {
        // SAFETY: the caller's contract is `delta_in`'s.
        unsafe { Self::delta_in(delta, Disk::Own(disk), older) }
    }

    /// A delta of `group` on top of `older` (staged, or recovered from a group record).
    ///
    /// # Safety
    /// As for [`Node::delta`].
    pub(crate) unsafe fn group_delta(
        delta: M::Delta,
        group: Arc<GroupState>,
        older: *mut Node<M>,
    ) -> Box<Self> {
        // SAFETY: the caller's contract is `delta_in`'s.
        unsafe { Self::delta_in(delta, Disk::Group(group), older) }
    }

    /// # Safety
    /// As for [`Node::delta`].
    unsafe fn delta_in(delta: M::Delta, disk: Disk, older: *mut Node<M>) -> Box<Self> {
        // SAFETY: live node (the caller's contract).
        let o = unsafe { &*older };
        let own = size_of::<Self>() + M::delta_heap_bytes(&delta);
        Box::new(Node {
            body: Body::Delta(delta),
            next: older,
            disk,
            len: o.len + 1,
            chain_bytes: o.chain_bytes + own,
            // Relaxed: heat is a hint.
            heat: AtomicU8::new(o.heat.load(Ordering::Relaxed)),
            completed: AtomicBool::new(false),
        })
    }

    /// The record holding this node's fragment. Panics for an uncommitted staged node (it
    /// has none yet; views start below them, see `inner::view_of`).
    pub(crate) fn disk(&self) -> DiskPtr {
        match &self.disk {
            Disk::Own(ptr) => *ptr,
            Disk::Group(g) => g.disk(),
        }
    }

    /// The group this node is a sub-fragment of, if any.
    pub(crate) fn group(&self) -> Option<&Arc<GroupState>> {
        match &self.disk {
            Disk::Own(_) => None,
            Disk::Group(g) => Some(g),
        }
    }

    /// Whether this node was staged by `group`.
    pub(crate) fn staged_by(&self, group: &Arc<GroupState>) -> bool {
        self.group().is_some_and(|g| Arc::ptr_eq(g, group))
    }

    /// The node's chain left its slot for good (replaced or freed): returns its record if
    /// that is now dead. A group record dies with the last node naming it.
    pub(crate) fn release_fragment(&self) -> Option<DiskPtr> {
        match &self.disk {
            Disk::Own(ptr) => Some(*ptr),
            Disk::Group(g) => g.release_fragment(),
        }
    }

    /// Heap bytes of this node alone.
    pub(crate) fn own_bytes(&self) -> usize {
        self.chain_bytes - self.older().map_or(0, |n| n.chain_bytes)
    }

    /// The next older node.
    pub(crate) fn older(&self) -> Option<&Node<M>> {
        // SAFETY: `next` is null or points to a node this chain owns (module invariants), which
        // lives at least as long as `self`.
        unsafe { self.next.as_ref() }
    }

    /// The nodes from here to the base, newest first.
    pub(crate) fn chain(&self) -> impl Iterator<Item = &Node<M>> {
        std::iter::successors(Some(self), |n| n.older())
    }

    /// The base at the bottom of the chain.
    pub(crate) fn base_body(&self) -> &M::Base {
        let bottom = self.chain().last().expect("a chain has at least one node");
        match &bottom.body {
            Body::Base(b) => b,
            Body::Delta(_) => panic!("chain ends in a delta"),
        }
    }

    /// Takes back the delta of a node that was never published (its `next` is not ours).
    pub(crate) fn into_unpublished_delta(self) -> M::Delta {
        match self.into_unpublished_body() {
            Body::Delta(d) => d,
            Body::Base(_) => panic!("into_unpublished_delta on a base"),
        }
    }

    /// Takes back the base of a node that was never published.
    pub(crate) fn into_unpublished_base(self) -> M::Base {
        match self.into_unpublished_body() {
            Body::Base(b) => b,
            Body::Delta(_) => panic!("into_unpublished_base on a delta"),
        }
    }

    fn into_unpublished_body(self) -> Body<M> {
        // Not dropped: `next` is not ours, and `body` moves out.
        let node = ManuallyDrop::new(self);
        // SAFETY: `node` is never dropped or used again, so reading `disk` out moves it (and
        // drops it here: a staged node's share of its group state).
        drop(unsafe { ptr::read(&node.disk) });
        // SAFETY: as above, reading `body` out moves it; the remaining fields own nothing (a
        // pointer we do not own, plain values, atomics).
        unsafe { ptr::read(&node.body) }
    }

    /// Records that the fragment's log record is complete.
    pub(crate) fn mark_completed(&self) {
        // Release: pairs with the Acquire in `is_completed`, so an evictor that sees the flag
        // also sees the completion's effects (and can hand the location to page-ins).
        self.completed.store(true, Ordering::Release);
    }

    /// Whether [`Node::mark_completed`] ran.
    pub(crate) fn is_completed(&self) -> bool {
        // Acquire: see `mark_completed`.
        self.completed.load(Ordering::Acquire)
    }

    /// Counts an access (saturating at [`MAX_HEAT`]).
    pub(crate) fn touch(&self) {
        // Relaxed: heat is a replacement hint; a lost update only misjudges coldness.
        let h = self.heat.load(Ordering::Relaxed);
        if h < MAX_HEAT {
            self.heat.store(h + 1, Ordering::Relaxed);
        }
    }
}

impl<M: PageModel> Drop for Node<M> {
    /// Drops the chain below iteratively (a recursive drop could overflow the stack on a long
    /// chain).
    fn drop(&mut self) {
        let mut next = std::mem::replace(&mut self.next, ptr::null_mut());
        while !next.is_null() {
            // SAFETY: this node owned `next` (module invariants: only published chains have a
            // non-null `next` at drop time, and each node is owned by exactly one newer node or
            // the slot), so we are its only owner now.
            let mut older = unsafe { Box::from_raw(next) };
            next = std::mem::replace(&mut older.next, ptr::null_mut());
        }
    }
}

impl<M: PageModel> fmt::Debug for Node<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("disk", &self.disk)
            .field("len", &self.len)
            .field("chain_bytes", &self.chain_bytes)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disk::Own(ptr) => f.debug_tuple("Own").field(ptr).finish(),
            Disk::Group(g) => f.debug_tuple("Group").field(g).finish(),
        }
    }
}

/// A chain that left its slot, to be dropped once no pinned reader can hold it.
struct Retired<M: PageModel>(*mut Node<M>);
// SAFETY: the retired chain is owned by this value alone (it left the slot), and its contents
// are Send.
unsafe impl<M: PageModel> Send for Retired<M> {}

/// Drops the chain headed by `head` (which just left its slot through a successful CAS) after
/// every thread pinned now has unpinned; `on_drop` runs then (garbage accounting).
///
/// # Safety
/// `head` must have come from `Box::into_raw` of a published chain that this call's caller
/// removed from its slot, and nobody else may retire it.
pub(crate) unsafe fn retire<M: PageModel>(
    head: *mut Node<M>,
    guard: &Guard,
    on_drop: impl FnOnce() + Send + 'static,
) {
    let chain = Retired(head);
    let drop_chain = move || {
        let chain = chain;
        // SAFETY: per this function's contract we own the chain, and the epoch has passed: no
        // reader pinned before the CAS that unlinked it is still pinned.
        drop(unsafe { Box::from_raw(chain.0) });
        on_drop();
    };
    // SAFETY: the closure only frees memory no thread can reach any more (see above); it
    // touches no data borrowed from this stack frame.
    unsafe { guard.defer_unchecked(drop_chain) };
}

/// Drops the single node `node` (an aborted group's staged delta that the caller's CAS just
/// took out of its slot) after every thread pinned now has unpinned, leaving the chain below
/// it alone: that chain is back in the slot. `on_drop` runs then.
///
/// # Safety
/// `node` must have come from `Box::into_raw`, been published, and been removed from its slot
/// by the caller, with its `next` owned by someone else from that CAS on (the slot, or another
/// node retired the same way); nobody else may retire it.
pub(crate) unsafe fn retire_detached<M: PageModel>(
    node: *mut Node<M>,
    guard: &Guard,
    on_drop: impl FnOnce() + Send + 'static,
) {
    let detached = Retired(node);
    let drop_node = move || {
        let detached = detached;
        // SAFETY: per this function's contract we own this one node, and the epoch has
        // passed: no reader pinned before the CAS that removed it is still pinned.
        let mut node = unsafe { Box::from_raw(detached.0) };
        // Not ours: the chain below went back to its slot.
        node.next = ptr::null_mut();
        drop(node);
        on_drop();
    };
    // SAFETY: the closure frees only the node no thread can reach any more (see above); it
    // touches no data borrowed from this stack frame.
    unsafe { guard.defer_unchecked(drop_node) };
}
