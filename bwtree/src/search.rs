//! Reading a node through its delta chain without consolidating it: its fences and state
//! ([`Header`]), a leaf lookup, and index routing.
//!
//! Deltas are read newest first; the first one that decides the question wins. Record deltas
//! above a `Split` never hold keys at or past its separator (writers range-check on arrival),
//! and record deltas below a `Merge` never hold keys at or past its separator (the node ended
//! there), so a newest-first walk needs no further filtering.

use pagecache::{Fragment, PageView};

use crate::base::Base;
use crate::consolidate::TreeModel;
use crate::node::{Delta, MergeIntent, Node, Page, RawPid};
use crate::value::Value;

pub(crate) type View<'g> = PageView<'g, TreeModel>;

/// Where a descent is going: the node covering a key, or the node covering the keys just
/// below a bound (reverse iteration; `None`: the last node).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Probe<'a> {
    At(&'a [u8]),
    Below(Option<&'a [u8]>),
}

impl Probe<'_> {
    /// Whether the target lies at or past `sep` (so in the part of a node from `sep` on).
    pub(crate) fn from(&self, sep: &[u8]) -> bool {
        match *self {
            Probe::At(k) => k >= sep,
            Probe::Below(Some(b)) => b > sep,
            Probe::Below(None) => true,
        }
    }

    /// Whether the target lies in `[low, high)` (for `Below`, whether keys just under the
    /// bound do).
    pub(crate) fn within(&self, low: &[u8], high: Option<&[u8]>) -> bool {
        !self.before(low) && !self.past(high)
    }

    /// Whether the target lies below `low`.
    pub(crate) fn before(&self, low: &[u8]) -> bool {
        !self.from(low)
    }

    /// Whether the target lies at or past `high`.
    pub(crate) fn past(&self, high: Option<&[u8]>) -> bool {
        match (*self, high) {
            (_, None) => false,
            (Probe::At(k), Some(h)) => k >= h,
            (Probe::Below(Some(b)), Some(h)) => b > h,
            (Probe::Below(None), Some(_)) => true,
        }
    }

    /// The child of a consolidated index node that covers the target.
    pub(crate) fn child_of(&self, n: &Node) -> RawPid {
        debug_assert!(!n.is_leaf() && !n.kids.is_empty());
        let i = match *self {
            Probe::At(k) => n.child_index(k),
            Probe::Below(Some(b)) => n.keys.partition_point(|s| **s < *b).saturating_sub(1),
            Probe::Below(None) => n.keys.len() - 1,
        };
        n.kids[i]
    }
}

/// A node's fences and state as its chain shows them.
#[derive(Debug)]
pub(crate) struct Header<'g> {
    pub(crate) level: u8,
    pub(crate) low: &'g Value,
    pub(crate) high: Option<&'g Value>,
    pub(crate) right: Option<RawPid>,
    pub(crate) removed: Option<RawPid>,
    pub(crate) intent: Option<&'g MergeIntent>,
    /// What [`Header::max_len`] counts from (computed only when asked: readers never do).
    entries: EntryBound<'g>,
    /// Fragments in the chain (deltas + 1).
    pub(crate) chain_len: usize,
    /// Key and value bytes in the chain (an upper bound on the consolidated node's).
    pub(crate) payload_bytes: usize,
}

/// The node under `view`'s chain, or `None` if the page is not a tree node.
pub(crate) fn base_node<'g>(view: &View<'g>) -> Option<&'g Node> {
    view.base().node()
}

/// What the deltas of a chain say about its node's header, gathered newest first.
#[derive(Default)]
struct DeltaSummary<'g> {
    added: usize,
    removed_records: usize,
    payload_bytes: usize,
    /// The newest `Split` or `Merge`: the node's high fence and right sibling.
    fence: Option<(Option<&'g Value>, Option<RawPid>)>,
    /// Whether a `Merge` is among the deltas (then the base's entries all count).
    merged: bool,
    removed: Option<RawPid>,
    /// The newest `Intent` (`Some(None)`: a `TermDelete` came first, the intent is done).
    intent: Option<Option<&'g MergeIntent>>,
}

impl<'g> DeltaSummary<'g> {
    fn add(&mut self, d: &'g Delta) {
        match d {
            Delta::Put { key, val, .. } => {
                self.added += 1;
                self.payload_bytes += key.len() + val.len();
            }
            // Removals are only written for present keys, so each takes one away.
            Delta::Del { .. } => self.removed_records += 1,
            Delta::Batch { ops } => {
                self.added += ops.len();
                self.payload_bytes += ops.payload_bytes();
            }
            Delta::Split { sep, right } => {
                self.fence.get_or_insert((Some(sep), Some(*right)));
            }
            Delta::Merge { node, .. } => {
                self.added += node.len();
                self.payload_bytes += node.payload_bytes();
                self.fence.get_or_insert((node.high.as_ref(), node.right));
                self.merged = true;
            }
            Delta::Remove { parent } => self.removed = Some(*parent),
            Delta::IndexEntry { sep, .. } => {
                self.added += 1;
                self.payload_bytes += sep.len() + 8;
            }
            Delta::Intent(i) => {
                self.intent.get_or_insert(Some(i));
            }
            Delta::TermDelete { .. } => {
                self.intent.get_or_insert(None);
                self.removed_records += 1;
            }
            Delta::AddTree { .. } => {}
        }
    }
}

/// The inputs of a node's entry bound.
#[derive(Debug)]
struct EntryBound<'g> {
    base: &'g Node,
    /// The newest split's separator, if a split (and no merge) is among the deltas.
    cut: Option<&'g Value>,
    added: usize,
    removed: usize,
}

impl Header<'_> {
    /// An upper bound on the records (leaf) or separators (index) the node holds. Once a
    /// split cut the node, only the base's entries below its separator count (found by binary
    /// search), so a node does not look oversized, and get consolidated to check, on every
    /// visit until its next consolidation. Removals are not subtracted then: one written
    /// before the split may be of a key that moved right, which the cut base no longer counts.
    pub(crate) fn max_len(&self) -> usize {
        let e = &self.entries;
        match e.cut {
            Some(sep) => e.base.keys.partition_point(|k| k < sep) + e.added,
            None => (e.base.len() + e.added).saturating_sub(e.removed),
        }
    }
}

/// Reads a node's header in one walk down its chain (the base's payload is precomputed,
/// see [`Base`]). `None` if the page is not a tree node (a stale pid now
/// reused by the catalog cannot happen, but a reader must not trust it).
pub(crate) fn header<'g>(view: &View<'g>) -> Option<Header<'g>> {
    let mut deltas = DeltaSummary::default();
    for f in view.iter() {
        match f {
            Fragment::Delta(d) => deltas.add(d),
            Fragment::Base(b) => return Some(header_over(b.node()?, b, deltas, view.len())),
        }
    }
    unreachable!("a chain ends with its base")
}

/// The header of `n` (the node of `base`) under the deltas summarized in `deltas`.
fn header_over<'g>(
    n: &'g Node,
    base: &'g Base,
    deltas: DeltaSummary<'g>,
    chain_len: usize,
) -> Header<'g> {
    let (high, right) = deltas.fence.unwrap_or((n.high.as_ref(), n.right));
    Header {
        level: n.level,
        low: &n.low,
        high,
        right,
        removed: deltas.removed.or(n.removed),
        intent: deltas.intent.unwrap_or(n.intent.as_ref()),
        entries: EntryBound {
            base: n,
            cut: match deltas.fence {
                Some((Some(sep), _)) if !deltas.merged => Some(sep),
                _ => None,
            },
            added: deltas.added,
            removed: deltas.removed_records,
        },
        chain_len,
        payload_bytes: base.payload_bytes() + deltas.payload_bytes,
    }
}

/// The value of `key` in a leaf whose range covers it.
pub(crate) fn leaf_get<'g>(view: &View<'g>, key: &[u8]) -> Option<&'g Value> {
    for f in view.iter() {
        match f {
            Fragment::Delta(Delta::Put { key: k, val, .. }) if **k == *key => return Some(val),
            Fragment::Delta(Delta::Del { key: k, .. }) if **k == *key => return None,
            Fragment::Delta(Delta::Batch { ops }) => {
                if let Some((_, v)) = ops.iter().rev().find(|(k, _)| **k == *key) {
                    return v.as_ref();
                }
            }
            Fragment::Delta(Delta::Merge { sep, node }) if key >= &**sep => {
                return node_get(node, key);
            }
            Fragment::Delta(_) => {}
            Fragment::Base(b) => return b.node().and_then(|n| node_get(n, key)),
        }
    }
    unreachable!("a chain ends with its base")
}

fn node_get<'g>(n: &'g Node, key: &[u8]) -> Option<&'g Value> {
    n.keys
        .binary_search_by(|k| (**k).cmp(key))
        .ok()
        .map(|i| &n.vals[i])
}

/// The child of an index node (whose range covers the probe) that covers the probe.
pub(crate) fn route(view: &View<'_>, probe: Probe<'_>) -> RawPid {
    for f in view.iter() {
        match f {
            Fragment::Delta(Delta::IndexEntry { sep, next, child })
                if probe.within(sep, next.as_deref()) =>
            {
                return *child
            }
            Fragment::Delta(Delta::TermDelete {
                left_sep,
                next,
                left,
                ..
            }) if probe.within(left_sep, next.as_deref()) => return *left,
            Fragment::Delta(Delta::Merge { sep, node }) if probe.from(sep) => {
                return probe.child_of(node)
            }
            Fragment::Delta(_) => {}
            Fragment::Base(b) => match b.node() {
                Some(n) => return probe.child_of(n),
                None => break,
            },
        }
    }
    unreachable!("routing through a page that is not an index node")
}

/// The consolidated node under `view`.
pub(crate) fn materialize(view: &View<'_>) -> Option<Node> {
    match view.consolidate().into_page() {
        Page::Node(n) => Some(n),
        Page::Catalog(_) => None,
    }
}
