//! Folding a delta chain into a new base ([`PageModel::consolidate`]).
//!
//! Record deltas carry their position in the base they were written over, so the fold sorts
//! only the few deltas (by position, then key) and merges them with the base in one pass,
//! copying the untouched runs of the base whole.

use pagecache::PageModel;

use crate::base::Base;
use crate::node::{Catalog, Delta, Node, Page};
use crate::value::Value;

/// The tree's page model for the page cache.
#[derive(Debug)]
pub(crate) struct TreeModel;

impl PageModel for TreeModel {
    type Base = Base;
    type Delta = Delta;

    fn base_heap_bytes(base: &Base) -> usize {
        match base.page() {
            Page::Node(n) => n.heap_bytes(),
            Page::Catalog(c) => c.trees.capacity() * 48,
        }
    }

    fn delta_heap_bytes(delta: &Delta) -> usize {
        delta_heap_bytes(delta)
    }

    fn consolidate(base: &Base, deltas: &[&Delta]) -> Base {
        Base::new(match base.page() {
            Page::Node(n) => Page::Node(consolidate_node(n, deltas)),
            Page::Catalog(c) => Page::Catalog(consolidate_catalog(c, deltas)),
        })
    }
}

fn delta_heap_bytes(delta: &Delta) -> usize {
    match delta {
        Delta::Put { key, val, .. } => key.heap_bytes() + val.heap_bytes(),
        Delta::Del { key, .. } => key.heap_bytes(),
        Delta::Batch { ops } => ops.heap_bytes(),
        Delta::Split { sep, .. } => sep.heap_bytes(),
        Delta::Merge { node, .. } => std::mem::size_of::<Node>() + node.heap_bytes(),
        Delta::IndexEntry { sep, next, .. } => {
            sep.heap_bytes() + next.as_ref().map_or(0, Value::heap_bytes)
        }
        Delta::Intent(i) => i.sep.heap_bytes(),
        Delta::TermDelete {
            sep,
            left_sep,
            next,
            ..
        } => sep.heap_bytes() + left_sep.heap_bytes() + next.as_ref().map_or(0, Value::heap_bytes),
        Delta::Remove { .. } => 0,
        Delta::AddTree { name, .. } => name.heap_bytes(),
    }
}

fn consolidate_catalog(base: &Catalog, deltas: &[&Delta]) -> Catalog {
    let mut out = base.clone();
    for d in deltas {
        match d {
            Delta::AddTree { name, root } => {
                if !out.trees.iter().any(|(n, _)| n == name) {
                    out.trees.push((name.clone(), *root));
                }
            }
            other => panic!("a catalog page holds only AddTree deltas, not {other:?}"),
        }
    }
    out
}

/// A record update waiting to be merged into the base: (position hint, key, new value).
type Pending = Vec<(u32, Value, Option<Value>)>;

/// Applies `deltas` (oldest first) to `base`. Record deltas between structural ones are
/// merged in one pass; a leaf's chain of record deltas and splits (the common case) is
/// merged straight from the base's arrays, copying each entry once.
pub(crate) fn consolidate_node(base: &Node, deltas: &[&Delta]) -> Node {
    if base.is_leaf() && deltas.iter().all(|d| is_record(d) || is_split(d)) {
        return consolidate_leaf(base, deltas);
    }
    let mut node = base.clone();
    let mut pending = Pending::new();
    for d in deltas {
        if is_record(d) {
            push_records(d, &mut pending);
        } else {
            flush_pending(&mut node, &mut pending);
            apply_structural(&mut node, d);
        }
    }
    flush_pending(&mut node, &mut pending);
    node
}

/// A leaf's chain of record deltas and splits, folded in one pass: the newest split (the
/// lowest separator) ends the node; every record at or past it (written before that split)
/// and every base entry there moved to the right sibling.
fn consolidate_leaf(base: &Node, deltas: &[&Delta]) -> Node {
    let mut node = shell_of(base);
    let mut pending = Pending::new();
    let mut end = base.keys.len();
    for d in deltas {
        match d {
            Delta::Split { sep, right } => {
                end = end.min(base.keys.partition_point(|k| k < sep));
                node.high = Some(sep.clone());
                node.right = Some(*right);
            }
            record => push_records(record, &mut pending),
        }
    }
    if let Some(high) = &node.high {
        pending.retain(|(_, k, _)| k < high);
    }
    (node.keys, node.vals) = merge_pending(&base.keys[..end], &base.vals[..end], &mut pending);
    node
}

fn is_split(d: &Delta) -> bool {
    matches!(d, Delta::Split { .. })
}

fn is_record(d: &Delta) -> bool {
    matches!(
        d,
        Delta::Put { .. } | Delta::Del { .. } | Delta::Batch { .. }
    )
}

/// Queues a record delta's updates. Batch deltas carry no positions: their hint
/// (`u32::MAX`) is corrected by the search in [`merge_pending`].
fn push_records(d: &Delta, pending: &mut Pending) {
    match d {
        Delta::Put { key, val, pos } => pending.push((*pos, key.clone(), Some(val.clone()))),
        Delta::Del { key, pos } => pending.push((*pos, key.clone(), None)),
        Delta::Batch { ops } => {
            pending.extend(ops.iter().map(|(k, v)| (u32::MAX, k.clone(), v.clone())));
        }
        other => panic!("not a record delta: {other:?}"),
    }
}

/// `base` without its entries (fences, links and state only).
fn shell_of(base: &Node) -> Node {
    Node {
        level: base.level,
        low: base.low.clone(),
        high: base.high.clone(),
        right: base.right,
        removed: base.removed,
        intent: base.intent.clone(),
        keys: Vec::new(),
        vals: Vec::new(),
        kids: base.kids.clone(),
    }
}

/// Merges the record updates into the node's entries.
fn flush_pending(node: &mut Node, pending: &mut Pending) {
    if pending.is_empty() {
        return;
    }
    assert!(node.is_leaf(), "record deltas only on leaves");
    (node.keys, node.vals) = merge_pending(&node.keys, &node.vals, pending);
}

/// The entries `base_keys`/`base_vals` with the record updates applied: sort the few
/// updates by (position, key), keep the newest per key, then one pass over the base.
/// Empties `pending`.
fn merge_pending(
    base_keys: &[Value],
    base_vals: &[Value],
    pending: &mut Pending,
) -> (Vec<Value>, Vec<Value>) {
    // Positions are hints into the base the delta saw; structural deltas between then and
    // now can only have truncated or extended the end, so clamp.
    let n = base_keys.len() as u32;
    for p in pending.iter_mut() {
        p.0 = p.0.min(n);
        let start = p.0 as usize;
        if start > 0 && base_keys[start - 1] >= p.1
            || start < base_keys.len() && base_keys[start] < p.1
        {
            // A stale hint (the base changed under it, or a batch's): search instead.
            p.0 = base_keys.partition_point(|k| *k < p.1) as u32;
        }
    }
    // Stable: among equal keys the later (newer) update stays last.
    pending.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut keys = Vec::with_capacity(base_keys.len() + pending.len());
    let mut vals = Vec::with_capacity(base_keys.len() + pending.len());
    let mut at = 0usize;
    let mut i = 0;
    while i < pending.len() {
        // The newest update of this key is the last of its run.
        let mut j = i;
        while j + 1 < pending.len() && pending[j + 1].1 == pending[i].1 {
            j += 1;
        }
        let (pos, key, val) = &pending[j];
        let pos = *pos as usize;
        keys.extend_from_slice(&base_keys[at..pos]);
        vals.extend_from_slice(&base_vals[at..pos]);
        at = pos;
        if at < base_keys.len() && base_keys[at] == *key {
            at += 1; // replaced or deleted
        }
        if let Some(v) = val {
            keys.push(key.clone());
            vals.push(v.clone());
        }
        i = j + 1;
    }
    keys.extend_from_slice(&base_keys[at..]);
    vals.extend_from_slice(&base_vals[at..]);
    pending.clear();
    (keys, vals)
}

fn apply_structural(node: &mut Node, d: &Delta) {
    match d {
        Delta::Split { sep, right } => *node = std::mem::take(node).lower_until(sep, *right),
        Delta::Merge { node: r, .. } => {
            node.keys.extend_from_slice(&r.keys);
            node.vals.extend_from_slice(&r.vals);
            node.kids.extend_from_slice(&r.kids);
            node.high = r.high.clone();
            node.right = r.right;
        }
        Delta::Remove { parent } => node.removed = Some(*parent),
        Delta::IndexEntry { sep, child, .. } => {
            if let Err(i) = node.keys.binary_search(sep) {
                node.keys.insert(i, sep.clone());
                node.kids.insert(i, *child);
            }
        }
        Delta::Intent(i) => node.intent = Some(i.clone()),
        Delta::TermDelete { sep, .. } => {
            if let Ok(i) = node.keys.binary_search(sep) {
                node.keys.remove(i);
                node.kids.remove(i);
            }
            if node.intent.as_ref().is_some_and(|i| i.sep == *sep) {
                node.intent = None;
            }
        }
        other => panic!("not a structural node delta: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str, pos: u32) -> Delta {
        Delta::Put {
            key: k.into(),
            val: v.into(),
            pos,
        }
    }

    fn del(k: &str, pos: u32) -> Delta {
        Delta::Del { key: k.into(), pos }
    }

    #[test]
    fn merges_record_deltas_newest_wins() {
        let base = Node {
            keys: vec!["b".into(), "d".into()],
            vals: vec!["1".into(), "2".into()],
            ..Node::default()
        };
        let ds = [
            put("a", "x", 0),
            put("c", "y", 1),
            put("b", "z", 0),
            del("d", 1),
            put("e", "w", 2),
            put("a", "x2", 0),
        ];
        let refs: Vec<&Delta> = ds.iter().collect();
        let n = consolidate_node(&base, &refs);
        n.check();
        let keys: Vec<&[u8]> = n.keys.iter().map(|k| &**k).collect();
        assert_eq!(keys, [&b"a"[..], b"b", b"c", b"e"]);
        let vals: Vec<&[u8]> = n.vals.iter().map(|k| &**k).collect();
        assert_eq!(vals, [&b"x2"[..], b"z", b"y", b"w"]);
    }

    /// A record delta from a generated (key, value, position hint, batch?) tuple.
    fn record(k: u8, v: Option<u8>, hint: u32, batched: bool) -> Delta {
        let (key, val) = (Value::copy_from(&[k]), v.map(|v| Value::copy_from(&[v])));
        match (batched, val) {
            (true, val) => Delta::Batch {
                ops: crate::base::BatchOps::new(vec![(key, val)]),
            },
            (false, Some(val)) => Delta::Put {
                key,
                val,
                pos: hint,
            },
            (false, None) => Delta::Del { key, pos: hint },
        }
    }

    proptest::proptest! {
        /// Any mix of puts, deletes and batches, with any position hints (right, stale or
        /// absent), and a split among them, folds to what applying them in order gives.
        #[test]
        fn folds_like_applying_in_order(
            base in proptest::collection::btree_map(0u8..40, proptest::prelude::any::<u8>(), 0..24),
            ops in proptest::collection::vec(
                (0u8..40, proptest::option::of(proptest::prelude::any::<u8>()), 0u32..30, proptest::prelude::any::<bool>()),
                0..16,
            ),
            split_at in proptest::option::of((0usize..16, 1u8..40)),
        ) {
            let node = Node {
                keys: base.keys().map(|k| Value::copy_from(&[*k])).collect(),
                vals: base.values().map(|v| Value::copy_from(&[*v])).collect(),
                ..Node::default()
            };
            let mut model = base.clone();
            let mut ds = Vec::new();
            for (i, (k, v, hint, batched)) in ops.iter().enumerate() {
                if let Some((at, sep)) = split_at {
                    if at == i {
                        ds.push(Delta::Split { sep: Value::copy_from(&[sep]), right: 9 });
                        model.retain(|key, _| *key < sep);
                    }
                }
                // Writers range-check: after a split, only keys below it reach this node.
                if split_at.is_some_and(|(at, sep)| at <= i && *k >= sep) {
                    continue;
                }
                ds.push(record(*k, *v, *hint, *batched));
                match v {
                    Some(v) => model.insert(*k, *v),
                    None => model.remove(k),
                };
            }
            let refs: Vec<&Delta> = ds.iter().collect();
            let n = consolidate_node(&node, &refs);
            n.check();
            let got: Vec<(u8, u8)> = n.keys.iter().zip(&n.vals).map(|(k, v)| (k[0], v[0])).collect();
            let want: Vec<(u8, u8)> = model.into_iter().collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn empty_base_takes_puts() {
        let ds = [put("x", "y", 0), put("z", "y", 0)];
        let refs: Vec<&Delta> = ds.iter().collect();
        let n = consolidate_node(&Node::default(), &refs);
        assert_eq!(n.len(), 2);
    }
}
