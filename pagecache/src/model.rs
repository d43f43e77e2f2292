//! [`PageModel`]: what the page cache needs to know about the tree's pages. Nothing about
//! keys: a page is a base plus deltas, each encodable, each with a heap size, and a way to fold
//! deltas into a new base (consolidation).

use bincode::{Decode, Encode};

/// The upper layer's page representation.
pub trait PageModel: Send + Sync + 'static {
    /// A consolidated page.
    type Base: Encode + Decode<()> + Send + Sync + 'static;
    /// One update to a page.
    type Delta: Encode + Decode<()> + Send + Sync + 'static;

    /// Heap bytes owned by `base` beyond its inline size (count capacities, not lengths).
    fn base_heap_bytes(base: &Self::Base) -> usize;
    /// Heap bytes owned by `delta` beyond its inline size.
    fn delta_heap_bytes(delta: &Self::Delta) -> usize;
    /// Applies `deltas` (oldest first) to `base`.
    fn consolidate(base: &Self::Base, deltas: &[&Self::Delta]) -> Self::Base;
}
