//! The shared state of an open page cache and its page operations.
//!
//! Every mutation follows one protocol: **reserve -> encode into the reservation -> CAS the
//! slot -> complete** (or **abort** when the CAS loses). So a completed fragment always
//! describes a state that was published, and fragments of one page complete in the order of
//! their CASes: each writer reserves after loading the state it expects, hence after every
//! earlier winner reserved (LSN order = CAS order per page). Recovery replays in LSN order.
//!
//! Failure: everything fallible that can fail on a full disk (the reservation) comes before
//! the CAS, so a failed operation changed nothing; `complete` of an inline record cannot fail,
//! and the log retries a buffer whose write met a full disk, so a published change is always
//! in the log's order (never ahead of what recovery can reproduce). Upkeep after the CAS
//! (consolidation, eviction) is best effort on a full disk (`upkeep`).

use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crossbeam_epoch::Guard;
use logstore::io::Storage;
use logstore::{DiskPtr, Log, Reservation};
use radix::{Pid, PidAllocator, RadixTable, Slot, SlotState, SlotWord};

use crate::chain;
use crate::codec;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fragment::{self, Kind};
use crate::group;
use crate::location::Location;
use crate::model::PageModel;
use crate::node::{retire, Node};
use crate::stats::{add, sub, Counters};
use crate::sync::AtomicU64;
use crate::view::PageView;

/// The state shared by the handle and the background thread.
pub(crate) struct Inner<M: PageModel> {
    pub(crate) cfg: Config,
    pub(crate) log: Log,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) table: RadixTable,
    pub(crate) pids: PidAllocator,
    pub(crate) counters: Arc<Counters>,
    /// The CLOCK hand: the next pid the evictor looks at.
    pub(crate) clock_hand: AtomicU64,
    /// One evictor at a time (others go on with their work).
    pub(crate) evicting: Mutex<()>,
    /// One checkpoint at a time.
    pub(crate) checkpointing: Mutex<()>,
    /// One cleaning pass at a time; what the passes remember.
    pub(crate) cleaning: Mutex<crate::cleaner::CleanerState>,
    /// How the background thread's latest passes went.
    pub(crate) background_error: Mutex<crate::cache::BackgroundErrors>,
    pub(crate) _model: PhantomData<M>,
}

/// The outcome of a conditional page operation: installed, or the page was not in the
/// expected state (the value comes back; re-read the page and retry).
pub type Installed<'g, M, T> = std::result::Result<PageView<'g, M>, T>;

impl<M: PageModel> Inner<M> {
    /// Reserves and fills a fragment record; returns it with its future location.
    pub(crate) fn write_fragment<T: bincode::Encode>(
        &self,
        kind: Kind,
        pid: Pid,
        prev: &[Location],
        payload: Option<&T>,
    ) -> Result<(Reservation<'_>, DiskPtr)> {
        let payload_len = payload.map_or(0, codec::encoded_len);
        let len = fragment::fragment_len(prev.len(), payload_len);
        let max = self.log.config().max_inline_body();
        if len as u64 > max {
            return Err(Error::FragmentTooLarge {
                len: len as u64,
                max,
            });
        }
        let mut r = self.log.reserve(len)?;
        let rest = fragment::encode_header(r.body_mut(), kind, pid, prev);
        if let Some(p) = payload {
            codec::encode_into(p, rest);
        }
        let ptr = r.disk_ptr().expect("fragments are stored inline");
        // Checked before publishing: an unaddressable fragment must never reach a slot.
        Location::of(&ptr)?;
        Ok((r, ptr))
    }

    /// Allocates a page holding `base`.
    pub(crate) fn allocate(&self, base: M::Base, guard: &Guard) -> Result<Pid> {
        let pid = self.pids.allocate();
        let (r, ptr) = match self.write_fragment(Kind::Base, pid, &[], Some(&base)) {
            Ok(x) => x,
            Err(e) => {
                self.pids.free(pid, guard);
                return Err(e);
            }
        };
        let node = Node::<M>::base(base, ptr, 1);
        let bytes = node.chain_bytes as u64;
        let raw = Box::into_raw(node);
        self.table
            .slot(pid)
            .try_replace(SlotWord::FREE, SlotWord::in_memory(raw))
            .expect("a freshly allocated page id has a free slot");
        r.complete()?;
        // SAFETY: published just above and we are pinned; nothing retires it before we unpin.
        unsafe { &*raw }.mark_completed();
        add(&self.counters.resident_bytes, bytes);
        upkeep(self.maybe_evict(pid, guard))?;
        Ok(pid)
    }

    /// The page's current state (paging it in if evicted), or `None` if it does not exist.
    pub(crate) fn read<'g>(&self, pid: Pid, guard: &'g Guard) -> Result<Option<PageView<'g, M>>> {
        let Some(slot) = self.table.get(pid) else {
            return Ok(None);
        };
        loop {
            let word = slot.load();
            match word.state() {
                SlotState::Free => return Ok(None),
                SlotState::InMemory(_) => {
                    let view = view_of(pid, word, guard);
                    view.head.touch();
                    return Ok(Some(view));
                }
                SlotState::OnDisk(payload) => {
                    if let Some(view) = self.page_in(pid, slot, word, payload, guard)? {
                        return Ok(Some(view));
                    }
                }
                SlotState::Reserved(_) => panic!("page cache slots are never Reserved"),
            }
        }
    }

    /// Reads an evicted page's base and installs it; `None` if the slot changed meanwhile
    /// (the caller reloads it). Concurrent page-ins of one page may both read; exactly one
    /// installs and the others drop their copy unpublished.
    fn page_in<'g>(
        &self,
        pid: Pid,
        slot: &Slot,
        word: SlotWord,
        payload: u64,
        guard: &'g Guard,
    ) -> Result<Option<PageView<'g, M>>> {
        let loc = Location::in_slot(payload);
        let base = match read_fragment(&self.log, &self.cfg.path, pid, loc, Kind::Base) {
            Ok(b) => b,
            // The page moved (relocated or freed) while we read: not corruption.
            Err(_) if slot.load() != word => return Ok(None),
            Err(e) => return Err(e),
        };
        let (ptr, base) = base;
        let Some(view) = chain::try_page_in::<M>(slot, pid, word, base, ptr, guard) else {
            add(&self.counters.cas_failures, 1);
            return Ok(None);
        };
        add(&self.counters.page_ins, 1);
        add(&self.counters.resident_bytes, view.head.chain_bytes as u64);
        match self.maybe_evict(pid, guard) {
            // Evicting may consolidate a page, which writes. If the log cannot write (a full
            // disk, or a poisoned log) the read has still succeeded: the cache stays over
            // budget until writes work again (a full disk) or the database is reopened.
            Err(Error::Log(logstore::Error::Io { .. } | logstore::Error::Poisoned { .. })) => {}
            r => r?,
        }
        Ok(Some(view))
    }

    /// Installs `delta` on top of `expected`.
    pub(crate) fn prepend<'g>(
        &self,
        delta: M::Delta,
        expected: &PageView<'g, M>,
        guard: &'g Guard,
    ) -> Result<Installed<'g, M, M::Delta>> {
        let pid = expected.pid;
        if expected.head_is_staged() {
            // Checked before reserving; `chain` refuses it again at the CAS.
            add(&self.counters.cas_failures, 1);
            return Ok(Err(delta));
        }
        let prev = locations_oldest_first(expected)?;
        let (r, ptr) = self.write_fragment(Kind::Delta, pid, &prev, Some(&delta))?;
        let view = match chain::try_install_delta(self.slot(pid), expected, delta, ptr, guard) {
            Ok(view) => view,
            Err(delta) => {
                r.abort();
                add(&self.counters.cas_failures, 1);
                return Ok(Err(delta));
            }
        };
        r.complete()?;
        view.head.mark_completed();
        add(&self.counters.resident_bytes, view.head.own_bytes() as u64);
        self.counters.record_chain_len(view.head.len);
        if view.head.len > self.cfg.fragment_cap {
            // Best effort: if someone changed the page meanwhile, they carry on from there;
            // a page too large for one record keeps its long chain until its owner splits
            // it. The delta is installed either way, so only I/O failures are reported.
            let base = view.consolidate();
            match self.replace(base, &view, guard) {
                Ok(Ok(v)) => return Ok(Ok(v)),
                Ok(Err(_)) | Err(Error::FragmentTooLarge { .. }) => {}
                // The delta is installed and its record completed: a full disk must not report
                // it as failed. The page stays long until a later write consolidates it.
                Err(e) if e.is_storage_full() => {}
                Err(e) => return Err(e),
            }
        }
        upkeep(self.maybe_evict(pid, guard))?;
        Ok(Ok(view))
    }

    /// Installs `base` as the page's whole state in place of `expected` (consolidation or
    /// relocation); the old fragments become dead.
    pub(crate) fn replace<'g>(
        &self,
        base: M::Base,
        expected: &PageView<'g, M>,
        guard: &'g Guard,
    ) -> Result<Installed<'g, M, M::Base>> {
        let pid = expected.pid;
        if expected.head_is_staged() {
            add(&self.counters.cas_failures, 1);
            return Ok(Err(base));
        }
        let (r, ptr) = self.write_fragment(Kind::Base, pid, &[], Some(&base))?;
        let view = match chain::try_replace_chain(self.slot(pid), expected, base, ptr, guard) {
            Ok(view) => view,
            Err(base) => {
                r.abort();
                add(&self.counters.cas_failures, 1);
                return Ok(Err(base));
            }
        };
        r.complete()?;
        view.head.mark_completed();
        add(&self.counters.consolidations, 1);
        add(&self.counters.resident_bytes, view.head.chain_bytes as u64);
        self.unlink(expected, guard)?;
        upkeep(self.maybe_evict(pid, guard))?;
        Ok(Ok(view))
    }

    /// Frees the page if it is still in the `expected` state; its id is reused only after
    /// every thread pinned now has unpinned.
    pub(crate) fn free<'g>(
        &self,
        expected: &PageView<'g, M>,
        guard: &'g Guard,
    ) -> Result<std::result::Result<(), ()>> {
        let pid = expected.pid;
        if expected.head_is_staged() {
            add(&self.counters.cas_failures, 1);
            return Ok(Err(()));
        }
        let (r, _) = self.write_fragment::<()>(Kind::Free, pid, &[], None)?;
        if !chain::try_free(self.slot(pid), expected) {
            r.abort();
            add(&self.counters.cas_failures, 1);
            return Ok(Err(()));
        }
        let (_, free_ptr) = r.complete()?;
        // The Free record is needed only by recoveries that start before it, and the log keeps
        // every segment at or after the reuse horizon (the oldest kept checkpoint).
        self.log.mark_dead(free_ptr)?;
        self.unlink(expected, guard)?;
        self.pids.free(pid, guard);
        Ok(Ok(()))
    }

    /// After a successful CAS removed `old`'s chain from its slot: its fragments are dead and
    /// its memory goes back through the epoch.
    pub(crate) fn unlink(&self, old: &PageView<'_, M>, guard: &Guard) -> Result<()> {
        assert!(
            !old.head_is_staged(),
            "a chain with an uncommitted staged head left its slot by an ordinary CAS"
        );
        for node in old.nodes() {
            // A group record dies with the last page that names it (group/state.rs).
            if let Some(dead) = node.release_fragment() {
                self.log.mark_dead(dead)?;
            }
        }
        self.retire_chain(old, guard);
        Ok(())
    }

    /// Drops a chain that left its slot once the epoch passes, with byte accounting.
    pub(crate) fn retire_chain(&self, old: &PageView<'_, M>, guard: &Guard) {
        let bytes = old.head.chain_bytes as u64;
        sub(&self.counters.resident_bytes, bytes);
        add(&self.counters.garbage_bytes, bytes);
        let counters = self.counters.clone();
        let head = old.head_raw();
        // SAFETY: our CAS just removed this chain from its slot (callers), so nobody else
        // retires it; it was published from `Box::into_raw`, and `head_raw` carries that
        // pointer's provenance.
        unsafe { retire(head, guard, move || sub(&counters.garbage_bytes, bytes)) };
    }

    pub(crate) fn slot(&self, pid: Pid) -> &Slot {
        self.table
            .get(pid)
            .expect("a page the caller holds a view of has a slot")
    }
}

/// Best-effort upkeep (eviction, which may consolidate and so write) after the caller's own
/// change is installed and its record completed: a full disk there must not turn that
/// successful change into an error (the caller would count it as failed while it is in memory
/// and in the log's order). The upkeep is retried by later operations. Other errors (a
/// poisoned log, corruption) are still reported.
fn upkeep(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if e.is_storage_full() => Ok(()),
        r => r,
    }
}

/// A view of the chain an `InMemory` word points to.
pub(crate) fn view_of<'g, M: PageModel>(
    pid: Pid,
    word: SlotWord,
    _guard: &'g Guard,
) -> PageView<'g, M> {
    let ptr = word
        .as_ptr::<Node<M>>()
        .expect("an in-memory word carries a node pointer");
    // SAFETY: the word came from an Acquire load of the slot (or from our own CAS), which pairs
    // with the AcqRel CAS that published the node, so its contents are visible; we are pinned
    // (`_guard`), and chains leave a slot only through `retire`, which defers the drop until
    // every thread pinned before then has unpinned: the chain outlives `'g`.
    let head = unsafe { &*ptr };
    // Uncommitted staged deltas are only ever at the top, all of one group (nobody but their
    // group builds on them): the view starts below them. The group's outcome is loaded once
    // (Acquire, see `GroupState::is_committed`): loading it per node could see a group commit
    // between two of its deltas on this page and show half of them. A reader that sees a group
    // committed on one page sees it committed on every page it reads next (group/mod.rs).
    let mut top = head;
    if let Some(group) = head.group().filter(|g| !g.is_committed()) {
        while top.staged_by(group) {
            top = top
                .older()
                .expect("a staged delta sits on a committed chain");
        }
    }
    PageView {
        pid,
        word,
        head,
        top,
    }
}

/// Reads the fragment of `pid` at `loc`, checks it is of kind `want` and decodes its payload.
/// Anything else found there is [`Error::Corruption`] of the data file in `dir`.
pub(crate) fn read_fragment<T: bincode::Decode<()>>(
    log: &Log,
    dir: &Path,
    pid: Pid,
    loc: Location,
    want: Kind,
) -> Result<(DiskPtr, T)> {
    read_nth_fragment(log, dir, pid, loc, want, 0).map(|(ptr, value, _)| (ptr, value))
}

/// As [`read_fragment`], where `loc` may also be a group record: then the fragment is the
/// `nth` (from 0) sub-fragment of `pid` in it. Also says whether it was a group record.
pub(crate) fn read_nth_fragment<T: bincode::Decode<()>>(
    log: &Log,
    dir: &Path,
    pid: Pid,
    loc: Location,
    want: Kind,
    nth: usize,
) -> Result<(DiskPtr, T, bool)> {
    let corrupt = |what: String| {
        Error::corruption_at(
            format!("page {pid:?} at {loc:?}: {what}"),
            dir.join(logstore::DATA_FILE),
            loc.file_offset(),
        )
    };
    let (ptr, body) = log
        .read_at(loc.file_offset(), loc.record_len())
        .map_err(|e| unresolved(e, dir, pid, loc))?;
    let (frags, in_group) = group::record::decode_any(&body).map_err(corrupt)?;
    let frag = if in_group {
        group::record::nth_for(&frags, pid, nth)
    } else {
        frags.first().filter(|_| nth == 0)
    }
    .ok_or_else(|| corrupt(format!("no fragment #{nth} of the page in the record")))?;
    if frag.kind != want || frag.pid != pid {
        return Err(corrupt(format!(
            "found a {:?} fragment of {:?}",
            frag.kind, frag.pid
        )));
    }
    let payload = codec::decode_exact(frag.payload).map_err(corrupt)?;
    Ok((ptr, payload, in_group))
}

/// A page's location that does not name a record of the log: the page table (from a
/// checksummed checkpoint or a replayed record) says a fragment is there, so the data file was
/// damaged. The log reports it as a stale pointer; here it is corruption of the data file.
pub(crate) fn unresolved(e: logstore::Error, dir: &Path, pid: Pid, loc: Location) -> Error {
    match e {
        logstore::Error::StalePointer(why) => Error::corruption_at(
            format!("page {pid:?}: no valid record at {loc:?} ({why})"),
            dir.join(logstore::DATA_FILE),
            loc.file_offset(),
        ),
        other => Error::Log(other),
    }
}

/// The locations of a view's fragments, oldest first.
pub(crate) fn locations_oldest_first<M: PageModel>(
    view: &PageView<'_, M>,
) -> Result<Vec<Location>> {
    let mut locs = view
        .nodes()
        .map(|n| Location::of(&n.disk()))
        .collect::<Result<Vec<_>>>()?;
    locs.reverse();
    Ok(locs)
}

impl<M: PageModel> Drop for Inner<M> {
    /// Hands every resident chain to the epoch collector. Not dropped directly: a reader may
    /// still hold a [`PageView`] (its lifetime is its guard's, not the cache's).
    fn drop(&mut self) {
        let guard = crossbeam_epoch::pin();
        // Installed slots only: a chain can only be in one, and the walk skips absent ranges.
        for (_, slot) in self.table.present(0..self.pids.next_fresh()) {
            let word = slot.load();
            let Some(head) = word.as_ptr::<Node<M>>() else {
                continue;
            };
            // Nobody else can change the slot now (we are the last owner of the cache), but
            // clearing it keeps "a chain leaves its slot only by a CAS" true.
            if slot.try_replace(word, SlotWord::FREE).is_ok() {
                // SAFETY: the CAS above removed this published chain from its slot, and no
                // other thread can retire it (the cache is being dropped).
                unsafe { retire(head, &guard, || {}) };
            }
        }
        guard.flush();
    }
}
