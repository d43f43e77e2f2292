//! The slot half of each page operation: one CAS from the state a caller read to the next one,
//! with no log in sight.
//!
//! `inner.rs` and `evict.rs` wrap these in the log protocol (reserve -> encode -> **CAS** ->
//! complete or abort); the loom models (`loom_models.rs`) call them directly on nodes with fake
//! disk pointers. Each function owns the node it builds until its CAS succeeds; on a lost race
//! it takes the node apart unpublished and hands the caller's value back.
//!
//! Who changes a slot: `try_install_delta` (InMemory -> InMemory, the old head becomes the new
//! head's `next`), `try_replace_chain` (InMemory -> InMemory, whole chain out), `try_evict`
//! (InMemory -> OnDisk, whole chain out), `try_page_in` (OnDisk -> InMemory), `try_free`
//! (InMemory -> Free, whole chain out), plus allocation and recovery (Free -> anything). A
//! chain that leaves its slot ("whole chain out") is the winner's to retire
//! ([`retire`](crate::node::retire)); nothing here retires, so the caller can still read the
//! old nodes (their fragments become dead) before handing them to the epoch.
//!
//! Groups (`group/`) add `try_stage` (InMemory -> InMemory, like `try_install_delta` but the
//! new head belongs to an uncommitted group) and `unstage` (the group's abort: InMemory ->
//! the word the page held before the group's first delta). Every other function here refuses
//! a view whose head is staged ([`PageView::head_is_staged`]), as if its CAS had lost: an
//! uncommitted staged delta is always its page's head, and only its group removes it.

use std::sync::Arc;

use crossbeam_epoch::Guard;
use logstore::DiskPtr;
use radix::{Pid, Slot, SlotWord};

use crate::group::GroupState;
use crate::inner::view_of;
use crate::model::PageModel;
use crate::node::Node;
use crate::sync::Ordering;
use crate::view::PageView;

/// Publishes `delta` (written as `disk`) on top of `expected`; on a lost race the delta comes
/// back and the slot is untouched.
pub(crate) fn try_install_delta<'g, M: PageModel>(
    slot: &Slot,
    expected: &PageView<'g, M>,
    delta: M::Delta,
    disk: DiskPtr,
    guard: &'g Guard,
) -> Result<PageView<'g, M>, M::Delta> {
    if expected.head_is_staged() {
        return Err(delta);
    }
    // SAFETY: the head is live while `'g` is pinned, its pointer comes from the slot word
    // (published from `Box::into_raw`), and the new node owns it only if the CAS from
    // `expected.word` publishes it.
    let raw = Box::into_raw(unsafe { Node::delta(delta, disk, expected.head_raw()) });
    let new = SlotWord::in_memory(raw);
    if slot.try_replace(expected.word, new).is_err() {
        // SAFETY: never published, so we own it; `into_unpublished_delta` detaches the older
        // node, which the chain still owns.
        return Err((*unsafe { Box::from_raw(raw) }).into_unpublished_delta());
    }
    Ok(view_of(expected.pid, new, guard))
}

/// Publishes `base` (written as `disk`) as the page's whole state in place of `expected`,
/// keeping its heat. On success the caller owns `expected`'s chain and must retire it; on a
/// lost race the base comes back.
pub(crate) fn try_replace_chain<'g, M: PageModel>(
    slot: &Slot,
    expected: &PageView<'g, M>,
    base: M::Base,
    disk: DiskPtr,
    guard: &'g Guard,
) -> Result<PageView<'g, M>, M::Base> {
    if expected.head_is_staged() {
        return Err(base);
    }
    // Relaxed: heat is a hint.
    let heat = expected.head.heat.load(Ordering::Relaxed);
    let raw = Box::into_raw(Node::<M>::base(base, disk, heat));
    let new = SlotWord::in_memory(raw);
    if slot.try_replace(expected.word, new).is_err() {
        // SAFETY: never published; a base owns no older node.
        return Err((*unsafe { Box::from_raw(raw) }).into_unpublished_base());
    }
    Ok(view_of(expected.pid, new, guard))
}

/// Turns the slot of `view` (one completed base) into the on-disk word `location`. On success
/// the caller owns the chain and must retire it.
#[must_use]
pub(crate) fn try_evict<M: PageModel>(slot: &Slot, view: &PageView<'_, M>, location: u64) -> bool {
    if view.head_is_staged() {
        return false;
    }
    assert_eq!(view.head.len, 1, "only a lone base is evicted");
    assert!(
        view.head.is_completed(),
        "only a completed fragment is evicted to"
    );
    slot.try_replace(view.word, SlotWord::on_disk(location))
        .is_ok()
}

/// Installs `base`, read from the location in the on-disk `word`, as the page's resident
/// state. `None` if the slot changed meanwhile: the copy is dropped unpublished.
pub(crate) fn try_page_in<'g, M: PageModel>(
    slot: &Slot,
    pid: Pid,
    word: SlotWord,
    base: M::Base,
    disk: DiskPtr,
    guard: &'g Guard,
) -> Option<PageView<'g, M>> {
    let node = Node::<M>::base(base, disk, 1);
    // The record was read back, so it is complete: the page may be evicted to it again.
    node.mark_completed();
    let raw = Box::into_raw(node);
    let new = SlotWord::in_memory(raw);
    if slot.try_replace(word, new).is_err() {
        // SAFETY: never published: we own it alone, and a base has no older node.
        drop(unsafe { Box::from_raw(raw) });
        return None;
    }
    Some(view_of(pid, new, guard))
}

/// Empties the slot if it still holds `expected`. On success the caller owns the chain and
/// must retire it (and free the id through the allocator, which defers the reuse).
#[must_use]
pub(crate) fn try_free<M: PageModel>(slot: &Slot, expected: &PageView<'_, M>) -> bool {
    !expected.head_is_staged() && slot.try_replace(expected.word, SlotWord::FREE).is_ok()
}

/// Publishes `delta` on top of `expected` as a staged (invisible) delta of `group`. Refused,
/// with the delta back, if the slot changed or its head is staged by another group; a group
/// may stage several deltas on one page.
pub(crate) fn try_stage<'g, M: PageModel>(
    slot: &Slot,
    expected: &PageView<'g, M>,
    delta: M::Delta,
    group: &Arc<GroupState>,
    guard: &'g Guard,
) -> Result<PageView<'g, M>, M::Delta> {
    if expected.head_is_staged() && !expected.head.staged_by(group) {
        return Err(delta);
    }
    // SAFETY: as in `try_install_delta`: a live head with the slot word's provenance, owned
    // by the new node only once the CAS publishes it.
    let node = unsafe { Node::group_delta(delta, Arc::clone(group), expected.head_raw()) };
    let raw = Box::into_raw(node);
    let new = SlotWord::in_memory(raw);
    if slot.try_replace(expected.word, new).is_err() {
        // SAFETY: never published, so we own it; `into_unpublished_delta` detaches the older
        // node (which the chain still owns) and drops the node's share of the group state.
        return Err((*unsafe { Box::from_raw(raw) }).into_unpublished_delta());
    }
    Ok(view_of(expected.pid, new, guard))
}

/// The abort of a group on one page: puts back `below`, the word the slot held before the
/// group's first delta on it, in place of `staged`, the group's newest delta there. Cannot
/// fail: nobody but the group changes a slot whose head it staged. The caller then retires
/// each of the group's nodes on the page on its own
/// ([`retire_detached`](crate::node::retire_detached)).
pub(crate) fn unstage(slot: &Slot, staged: SlotWord, below: SlotWord) {
    let done = slot.try_replace(staged, below);
    assert!(
        done.is_ok(),
        "the slot of a staged delta changed under its group: {done:?}"
    );
}
