//! Testbed counters: what the cache did since open.

use crate::sync::{Ordering, StdAtomicU64 as AtomicU64};

/// Buckets of the chain-length histogram: lengths 1..=8, then 9 and more.
pub const CHAIN_LEN_BUCKETS: usize = 9;

/// A snapshot of the counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PageCacheStats {
    /// Heap bytes of resident pages now.
    pub resident_bytes: u64,
    /// Bytes of retired chains waiting for the epoch to pass (garbage backlog).
    pub garbage_bytes: u64,
    /// Slot CASes that lost a race (prepend, replace, free, page-in, eviction, relocation).
    pub cas_failures: u64,
    /// Consolidated bases installed (by the caller's `replace` or the fragment cap).
    pub consolidations: u64,
    /// Pages read back from the log.
    pub page_ins: u64,
    /// Pages evicted to on-disk-only slots.
    pub evictions: u64,
    /// Bytes of page state rewritten by cleaning.
    pub bytes_relocated: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// 1 if this open found the newest checkpoint corrupt and recovered from the previous one.
    pub checkpoint_fallbacks: u64,
    /// Atomic groups committed (with at least one delta).
    pub groups_committed: u64,
    /// Atomic groups aborted (explicitly, by drop, or by a failed commit) after staging.
    pub groups_aborted: u64,
    /// Chain length after each successful prepend: `[i]` counts length `i + 1`, the last
    /// bucket everything longer.
    pub chain_len_histogram: [u64; CHAIN_LEN_BUCKETS],
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) resident_bytes: AtomicU64,
    pub(crate) garbage_bytes: AtomicU64,
    pub(crate) cas_failures: AtomicU64,
    pub(crate) consolidations: AtomicU64,
    pub(crate) page_ins: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) bytes_relocated: AtomicU64,
    pub(crate) checkpoints: AtomicU64,
    pub(crate) checkpoint_fallbacks: AtomicU64,
    pub(crate) groups_committed: AtomicU64,
    pub(crate) groups_aborted: AtomicU64,
    pub(crate) chain_len: [AtomicU64; CHAIN_LEN_BUCKETS],
}

/// Relaxed everywhere: counters order nothing.
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn sub(c: &AtomicU64, n: u64) {
    c.fetch_sub(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn record_chain_len(&self, len: u32) {
        let i = (len as usize).clamp(1, CHAIN_LEN_BUCKETS) - 1;
        add(&self.chain_len[i], 1);
    }

    pub(crate) fn snapshot(&self) -> PageCacheStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PageCacheStats {
            resident_bytes: get(&self.resident_bytes),
            garbage_bytes: get(&self.garbage_bytes),
            cas_failures: get(&self.cas_failures),
            consolidations: get(&self.consolidations),
            page_ins: get(&self.page_ins),
            evictions: get(&self.evictions),
            bytes_relocated: get(&self.bytes_relocated),
            checkpoints: get(&self.checkpoints),
            checkpoint_fallbacks: get(&self.checkpoint_fallbacks),
            groups_committed: get(&self.groups_committed),
            groups_aborted: get(&self.groups_aborted),
            chain_len_histogram: std::array::from_fn(|i| get(&self.chain_len[i])),
        }
    }
}
