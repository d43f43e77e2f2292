//! [`GroupState`]: what the staged nodes of one atomic group share.
//!
//! Three facts, each with one writer at a time:
//! - **Outcome** (`outcome`, one byte): `STAGED -> COMMITTED` or `STAGED -> ABORTED`, changed
//!   exactly once, by the group's owner (`publish` / `abort`). Recovered groups start
//!   `COMMITTED`. A node whose group is not `COMMITTED` is invisible to readers.
//! - **Record** (`disk`, four words): the group record's [`DiskPtr`]. Written by the owner
//!   before the `COMMITTED` store (Relaxed stores, published by that Release store), read only
//!   after an Acquire load saw `COMMITTED`, so never torn or stale.
//! - **Live fragments** (`live`): how many chain nodes still name the record as their
//!   fragment. Set before the `COMMITTED` store (so every thread that can unlink a group node,
//!   having seen `COMMITTED`, sees it), decremented by whoever unlinks a node; the one that
//!   takes it to zero marks the record dead in the log.

use logstore::DiskPtr;

use crate::sync::{AtomicU64, AtomicU8, Ordering};

/// Being built: nodes are installed but invisible, nothing is logged.
const STAGED: u8 = 0;
/// The record is reserved and filled, `disk` is set: nodes are visible.
const COMMITTED: u8 = 1;
/// Given up: nodes were (or are being) removed from their slots, nothing was logged.
const ABORTED: u8 = 2;

/// Words of a [`DiskPtr`] encoding.
const DISK_WORDS: usize = DiskPtr::ENCODED_LEN / 8;
const _: () = assert!(DISK_WORDS * 8 == DiskPtr::ENCODED_LEN);

/// Shared by the staged nodes of one group (and, after recovery, by the nodes whose fragments
/// are sub-fragments of one group record). See the module comment for who changes what.
pub(crate) struct GroupState {
    outcome: AtomicU8,
    disk: [AtomicU64; DISK_WORDS],
    live: AtomicU64,
}

impl GroupState {
    /// A group being built.
    pub(crate) fn staged() -> GroupState {
        GroupState {
            outcome: AtomicU8::new(STAGED),
            disk: std::array::from_fn(|_| AtomicU64::new(0)),
            live: AtomicU64::new(0),
        }
    }

    /// A committed group record found at recovery, with no live fragment counted yet
    /// ([`GroupState::add_live`] per node that names it).
    pub(crate) fn recovered(record: DiskPtr) -> GroupState {
        let state = GroupState::staged();
        state.store_disk(record);
        // Relaxed: the state is not shared yet (recovery runs before the cache is).
        state.outcome.store(COMMITTED, Ordering::Relaxed);
        state
    }

    /// Whether the group committed (its nodes are visible and have a record).
    pub(crate) fn is_committed(&self) -> bool {
        // Acquire: pairs with the Release store in `publish`. A reader that sees COMMITTED
        // sees `disk` and `live`, and every slot CAS the owner made before (each staged node
        // of the group): that is what makes the whole group visible at one instant. Relaxed
        // would let a reader use a zero `disk`, or see the group on one page and miss it on
        // another it reads next.
        self.outcome.load(Ordering::Acquire) == COMMITTED
    }

    /// The owner's commit point, after filling the record: sets the record pointer and the
    /// number of fragments in it, then makes the group's nodes visible.
    pub(crate) fn publish(&self, record: DiskPtr, fragments: u64) {
        assert!(fragments > 0, "an empty group publishes nothing");
        self.store_disk(record);
        // Relaxed: published by the Release store below (see `is_committed`).
        self.live.store(fragments, Ordering::Relaxed);
        self.transition(COMMITTED);
    }

    /// The owner gives the group up. Its nodes stay invisible whatever readers hold them.
    pub(crate) fn abort(&self) {
        self.transition(ABORTED);
    }

    fn transition(&self, to: u8) {
        // Release: publishes `disk` and `live` (and, for COMMITTED, the owner's slot CASes)
        // to every Acquire load in `is_committed`. Only the owner changes the outcome, once,
        // so a plain store after the check suffices; the swap makes a second change loud.
        let was = self.outcome.swap(to, Ordering::Release);
        assert_eq!(was, STAGED, "a group's outcome changes once");
    }

    /// The group record. Panics unless committed (an uncommitted node has no fragment yet).
    pub(crate) fn disk(&self) -> DiskPtr {
        assert!(self.is_committed(), "the record of an uncommitted group");
        let mut bytes = [0u8; DiskPtr::ENCODED_LEN];
        for (word, out) in self.disk.iter().zip(bytes.chunks_exact_mut(8)) {
            // Relaxed: ordered after the owner's stores by the Acquire in `is_committed`.
            out.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        DiskPtr::from_bytes(&bytes).expect("the owner stored a pointer of the log")
    }

    fn store_disk(&self, record: DiskPtr) {
        for (word, b) in self.disk.iter().zip(record.to_bytes().chunks_exact(8)) {
            let w = u64::from_le_bytes(b.try_into().expect("8 bytes"));
            // Relaxed: published by the Release store of the outcome.
            word.store(w, Ordering::Relaxed);
        }
    }

    /// Recovery: one more node names the record.
    pub(crate) fn add_live(&self) {
        // Relaxed: recovery is single-threaded; the cache is shared only after it.
        self.live.fetch_add(1, Ordering::Relaxed);
    }

    /// One node naming the record was unlinked (its page moved on). Returns the record once
    /// no node names it any more: the caller marks it dead in the log, exactly once.
    pub(crate) fn release_fragment(&self) -> Option<DiskPtr> {
        // Relaxed: read-modify-writes of one atomic are totally ordered, so exactly one
        // caller sees 1; `disk` is already visible to every caller (it saw COMMITTED when it
        // took the view it unlinks), and nothing else is handed over with the count.
        let was = self.live.fetch_sub(1, Ordering::Relaxed);
        assert!(
            was > 0,
            "a group record released more often than it has fragments"
        );
        (was == 1).then(|| self.disk())
    }

    /// Live fragments now (tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Relaxed: diagnostics only.
        let outcome = match self.outcome.load(Ordering::Relaxed) {
            STAGED => "staged",
            COMMITTED => "committed",
            _ => "aborted",
        };
        f.debug_struct("GroupState")
            .field("outcome", &outcome)
            .field("live", &self.live.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
