//! The testbed counters: the tree's own, beside the page cache's.

use crate::sync::{AtomicU64, Ordering};

use pagecache::PageCacheStats;

/// Counters since open. Relaxed: each is an independent statistic, read as a snapshot that
/// may be a moment stale; nothing synchronizes through them.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) cas_failures: AtomicU64,
    pub(crate) restarts: AtomicU64,
    pub(crate) consolidations: AtomicU64,
    pub(crate) consolidation_failures: AtomicU64,
    pub(crate) splits: AtomicU64,
    pub(crate) root_splits: AtomicU64,
    pub(crate) merges: AtomicU64,
    pub(crate) root_shrinks: AtomicU64,
    pub(crate) index_entries_posted: AtomicU64,
    pub(crate) helps: AtomicU64,
    pub(crate) batches: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, cache: PageCacheStats, orphaned_pages: usize) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            cas_failures: get(&self.cas_failures),
            restarts: get(&self.restarts),
            consolidations: get(&self.consolidations),
            consolidation_failures: get(&self.consolidation_failures),
            splits: get(&self.splits),
            root_splits: get(&self.root_splits),
            merges: get(&self.merges),
            root_shrinks: get(&self.root_shrinks),
            index_entries_posted: get(&self.index_entries_posted),
            helps: get(&self.helps),
            batches: get(&self.batches),
            orphaned_pages: orphaned_pages as u64,
            cache,
        }
    }
}

/// What the database did since it was opened (the concurrency testbed's counters).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Stats {
    /// Tree-level CAS attempts that lost a race (the operation retried).
    pub cas_failures: u64,
    /// Descents restarted from the root (stale routing, removed or freed nodes).
    pub restarts: u64,
    /// Delta chains folded into a new base by the tree.
    pub consolidations: u64,
    /// Consolidations discarded because the node changed meanwhile.
    pub consolidation_failures: u64,
    /// Node splits (root splits included).
    pub splits: u64,
    /// Root splits (the tree grew a level).
    pub root_splits: u64,
    /// Nodes merged into their left sibling.
    pub merges: u64,
    /// Root shrinks (the tree lost a level).
    pub root_shrinks: u64,
    /// Index entries posted to parents after splits (by the splitter or a helper).
    pub index_entries_posted: u64,
    /// Times a thread finished another thread's structure change (help-along).
    pub helps: u64,
    /// Atomic batches applied.
    pub batches: u64,
    /// Pages unlinked from the tree whose free met a full disk, waiting (now, not since open)
    /// to be freed by the next successful write or flush.
    pub orphaned_pages: u64,
    /// The page cache's counters: chain lengths, page-ins, evictions, resident bytes, ...
    pub cache: PageCacheStats,
}
