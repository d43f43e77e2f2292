//! Atomic multi-page groups: deltas on several pages that become visible at one instant and
//! durable as one log record, with no global lock.
//!
//! ## Protocol
//! 1. **Stage** ([`Group::stage`]): CAS a delta onto each page, as a node whose fragment is
//!    the group's (shared) [`GroupState`]. Nothing is logged. A staged node is invisible
//!    ([`PageView`]s start below it) and is always its page's head: `prepend`, `replace`,
//!    `free`, eviction and cleaning refuse a view whose head is staged as if their CAS had
//!    lost (`chain.rs`), page-ins cannot race it (the slot is resident), and only the group
//!    stacks further deltas on it. So while staged, nobody else changes the page.
//! 2. **Commit** ([`Group::commit`]): compute every staged node's `prev` (the locations of the
//!    chain below it; the group's own nodes below it are this record), reserve ONE record,
//!    fill it (`record.rs`), then `GroupState::publish`: store the record pointer and the
//!    fragment count, then flip the outcome to COMMITTED (Release). Then complete the record.
//!    Readers load the outcome with Acquire when they take a view: every staged node of the
//!    group was CASed in before the flip, so a reader that saw the group on one page sees it
//!    on every page it reads afterwards (all or nothing, at the flip).
//! 3. **Abort** ([`Group::abort`], or dropping an uncommitted group): flip to ABORTED and CAS
//!    each page back to the word it held before the group's first delta on it. This cannot
//!    fail (nobody else changes a staged page); the staged nodes are retired one by one
//!    (`node::retire_detached`), since readers may still hold them. Nothing was logged.
//!
//! Staging order is the caller's: the tree stages leaves in key order and a staged leaf cannot
//! split, so a group that waits for another's page never holds a page that one waits for.
//!
//! ## Log order and recovery
//! Per page, LSN order is still CAS order: a writer racing the stage either reserved before it
//! and loses its CAS (its record becomes padding), or takes its view after the flip, hence
//! reserves after the group did. The record's CRC covers all sub-fragments: recovery replays
//! it whole, and a torn or absent record (crash before it was durable) is none of them; later
//! records are cut with it (the log stops at the first invalid record). A page whose chain
//! names a group record reads back its own sub-fragment (`record::nth_for`).
//!
//! ## Checkpoints
//! A checkpoint takes `C` = durable LSN after a flush, then walks the table; the walk's views
//! start below uncommitted staged deltas, so it records the page as if the group were absent.
//! - A group record with LSN < `C` is durable, hence completed, and its owner completed it
//!   after the flip: flip -> complete -> the log writes and syncs it -> `durable_lsn` read
//!   (the log's own synchronization) -> walk. So the walk sees the group COMMITTED (its views
//!   include the deltas) or a later state of each page, and the record pointer was set before
//!   the flip. Such a record is not replayed, and need not be.
//! - A group record with LSN >= `C` is replayed if it is durable at the crash. If the walk
//!   saw the group uncommitted, it recorded exactly the chain below each staged delta, which
//!   is the `prev` each sub-fragment carries; if it saw it committed, the replay sets the
//!   same state again (every fragment record is self-contained).
//!   The second flush of the checkpoint covers a record the walk saw committed but whose
//!   completion was still pending: a flush waits for every reservation made before it.
//!
//! ## Live bytes
//! The log counts live bytes per record (`Log::mark_dead`), but a group record is the
//! fragment of several pages. `GroupState::live` counts the nodes naming it; unlinking a node
//! (its page replaced or freed) decrements it, and the last one marks the record dead. At
//! recovery, nodes read from one group record share one recovered state, counted per node, and
//! the record is handed to `Log::reset_live` once.

pub(crate) mod record;
mod state;
#[cfg(all(test, not(loom)))]
mod tests;

use std::fmt;
use std::sync::Arc;

use crossbeam_epoch::Guard;
use radix::{Pid, SlotWord};

pub(crate) use state::GroupState;

use crate::chain;
use crate::codec;
use crate::error::{Error, Result};
use crate::inner::{view_of, Inner, Installed};
use crate::location::Location;
use crate::model::PageModel;
use crate::node::{retire_detached, Body, Node};
use crate::stats::{add, sub};
use crate::view::PageView;

/// An atomic group being built: deltas staged on several pages, then committed as one log
/// record and made visible at one instant, or aborted. From
/// [`PageCache::begin_group`](crate::PageCache::begin_group). Dropping an uncommitted group
/// aborts it.
pub struct Group<'g, M: PageModel> {
    inner: Arc<Inner<M>>,
    guard: &'g Guard,
    state: Arc<GroupState>,
    /// Staged nodes in staging order (the record's sub-fragment order).
    staged: Vec<Staged<'g, M>>,
    /// Each page the group staged on, in first-staging order.
    pages: Vec<StagedPage>,
    /// Body bytes of the group record so far.
    record_len: usize,
    /// Staged nodes are installed and uncommitted: dropping must abort.
    open: bool,
}

struct Staged<'g, M: PageModel> {
    pid: Pid,
    node: &'g Node<M>,
    /// `node` with the provenance of its `Box::into_raw` (what retiring it must free through).
    raw: *mut Node<M>,
    payload_len: usize,
}

struct StagedPage {
    pid: Pid,
    /// The slot word before the group's first delta on the page (restored by an abort).
    below: SlotWord,
    /// The group's newest delta on the page.
    head: SlotWord,
}

impl<'g, M: PageModel> Group<'g, M> {
    pub(crate) fn new(inner: Arc<Inner<M>>, guard: &'g Guard) -> Self {
        Group {
            inner,
            guard,
            state: Arc::new(GroupState::staged()),
            staged: Vec::new(),
            pages: Vec::new(),
            record_len: record::EMPTY_LEN,
            open: true,
        }
    }

    /// Installs `delta` at the head of the page as `expected` shows it, in memory only, not
    /// logged, invisible to readers until [`Group::commit`]. Returns `Ok(Err(delta))` if the
    /// page changed or its head is staged by another (uncommitted) group: re-read and retry
    /// with backoff. A group may stage several deltas on one page (pass the view this call
    /// returned); the returned view shows the page without the group's deltas.
    ///
    /// # Errors
    /// [`Error::FragmentTooLarge`] if the group's record would no longer fit one log record
    /// (nothing is staged by this call; the group stays as it was).
    pub fn stage(
        &mut self,
        delta: M::Delta,
        expected: &PageView<'g, M>,
    ) -> Result<Installed<'g, M, M::Delta>> {
        assert!(self.open, "staging on a finished group");
        let inner = &*self.inner;
        let pid = expected.pid;
        if expected.head_is_staged() && !expected.head.staged_by(&self.state) {
            add(&inner.counters.cas_failures, 1);
            return Ok(Err(delta));
        }
        let payload_len = codec::encoded_len(&delta);
        // Every node below the new one is in its `prev`.
        let len = self.record_len + record::sub_len(expected.head.len as usize, payload_len);
        let max = inner.log.config().max_inline_body();
        if len as u64 > max {
            return Err(Error::FragmentTooLarge {
                len: len as u64,
                max,
            });
        }
        let slot = inner.slot(pid);
        let view = match chain::try_stage(slot, expected, delta, &self.state, self.guard) {
            Ok(view) => view,
            Err(delta) => {
                add(&inner.counters.cas_failures, 1);
                return Ok(Err(delta));
            }
        };
        self.record_len = len;
        // Linear: groups span a handful of pages.
        match self.pages.iter_mut().find(|p| p.pid == pid) {
            Some(page) => page.head = view.word,
            None => self.pages.push(StagedPage {
                pid,
                below: expected.word,
                head: view.word,
            }),
        }
        self.staged.push(Staged {
            pid,
            node: view.head,
            raw: view.head_raw(),
            payload_len,
        });
        add(&inner.counters.resident_bytes, view.head.own_bytes() as u64);
        Ok(Ok(view))
    }

    /// Pages staged on so far.
    pub fn pages(&self) -> usize {
        self.pages.len()
    }

    /// Logs every staged delta as one record, then publishes them all at one instant (see the
    /// module comment). Durable once a later `flush` returns, like any write. An empty group
    /// commits nothing.
    ///
    /// # Errors
    /// Log errors while reserving (the group is aborted: nothing was published or logged).
    pub fn commit(mut self) -> Result<()> {
        if self.staged.is_empty() {
            self.open = false;
            return Ok(());
        }
        let inner = Arc::clone(&self.inner);
        // Everything fallible before reserving (never block or fail while holding one).
        let prevs = match self.prev_locations() {
            Ok(p) => p,
            Err(e) => return Err(self.abort_with(e)),
        };
        assert!(
            self.record_len as u64 <= inner.log.config().max_inline_body(),
            "stage keeps the group record within one inline record"
        );
        let mut r = match inner.log.reserve(self.record_len) {
            Ok(r) => r,
            Err(e) => return Err(self.abort_with(e.into())),
        };
        let ptr = r.disk_ptr().expect("group records are stored inline");
        let loc = match Location::of(&ptr) {
            Ok(loc) => loc,
            Err(e) => {
                r.abort();
                return Err(self.abort_with(e));
            }
        };
        self.fill(r.body_mut(), &prevs, loc);
        // The commit point: from here the group is visible and cannot be aborted.
        self.state.publish(ptr, self.staged.len() as u64);
        self.open = false;
        #[cfg(all(test, not(loom)))]
        tests::mid_commit();
        r.complete()?;
        for s in &self.staged {
            s.node.mark_completed();
        }
        add(&inner.counters.groups_committed, 1);
        self.after_commit();
        Ok(())
    }

    /// Removes every staged delta (each page goes back to its state before the group). Always
    /// succeeds: nobody else can have built on a staged delta.
    pub fn abort(mut self) -> Result<()> {
        self.abort_in_memory();
        Ok(())
    }

    /// Each staged node's `prev`, oldest first; `None` stands for this group's record.
    fn prev_locations(&self) -> Result<Vec<Vec<Option<Location>>>> {
        self.staged
            .iter()
            .map(|s| {
                let below = s.node.older().expect("a staged delta has a chain below");
                let mut prev = below
                    .chain()
                    .map(|n| {
                        if n.staged_by(&self.state) {
                            Ok(None)
                        } else {
                            Location::of(&n.disk()).map(Some)
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                prev.reverse();
                Ok(prev)
            })
            .collect()
    }

    /// Encodes the record into `body` (exactly `record_len` bytes); `loc` is its location.
    fn fill(&self, body: &mut [u8], prevs: &[Vec<Option<Location>>], loc: Location) {
        let count = u32::try_from(self.staged.len()).expect("a group fits one record");
        let mut w = record::Writer::new(body, count);
        for (s, prev) in self.staged.iter().zip(prevs) {
            let prev: Vec<Location> = prev.iter().map(|l| l.unwrap_or(loc)).collect();
            let Body::Delta(delta) = &s.node.body else {
                panic!("a staged node holds a delta");
            };
            codec::encode_into(delta, w.sub(s.pid, &prev, s.payload_len));
        }
        w.finish();
    }

    /// Best-effort upkeep after a commit: consolidate pages past the fragment cap, keep the
    /// cache within its budget. Errors are dropped: the group is committed either way (its
    /// record is completed, and the log retries writes that meet a full disk); a full disk
    /// only postpones the upkeep, and a poisoned log is reported by the caller's next call.
    fn after_commit(&self) {
        let inner = &*self.inner;
        for page in &self.pages {
            let Some(slot) = inner.table.get(page.pid) else {
                continue;
            };
            let word = slot.load();
            if word.as_ptr::<Node<M>>().is_none() {
                continue;
            }
            let view = view_of::<M>(page.pid, word, self.guard);
            if view.len() > inner.cfg.fragment_cap as usize && !view.head_is_staged() {
                let _ = inner.replace(view.consolidate(), &view, self.guard);
            }
        }
        if let Some(first) = self.pages.first() {
            let _ = inner.maybe_evict(first.pid, self.guard);
        }
    }

    fn abort_with(&mut self, e: Error) -> Error {
        self.abort_in_memory();
        e
    }

    /// The in-memory abort (see the module comment); idempotent.
    fn abort_in_memory(&mut self) {
        if !self.open {
            return;
        }
        self.open = false;
        let inner = &*self.inner;
        if self.staged.is_empty() {
            return;
        }
        // Readers treat ABORTED like STAGED (invisible), so the order against the CASes below
        // does not matter to them; flipping first makes a second outcome change loud.
        self.state.abort();
        for page in &self.pages {
            chain::unstage(inner.slot(page.pid), page.head, page.below);
        }
        for s in self.staged.drain(..) {
            let bytes = s.node.own_bytes() as u64;
            sub(&inner.counters.resident_bytes, bytes);
            add(&inner.counters.garbage_bytes, bytes);
            let counters = inner.counters.clone();
            // SAFETY: `unstage` just took this node's page back to the word below the group's
            // deltas on it, so the node left its slot and its `next` is owned elsewhere (the
            // slot again, or another of this group's nodes, retired the same way here). Each
            // staged node is retired once (drained); it came from `Box::into_raw`.
            unsafe {
                retire_detached(s.raw, self.guard, move || {
                    sub(&counters.garbage_bytes, bytes);
                });
            }
        }
        add(&inner.counters.groups_aborted, 1);
    }
}

impl<M: PageModel> Drop for Group<'_, M> {
    fn drop(&mut self) {
        self.abort_in_memory();
    }
}

impl<M: PageModel> fmt::Debug for Group<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("pages", &self.pages.len())
            .field("deltas", &self.staged.len())
            .field("record_len", &self.record_len)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}
