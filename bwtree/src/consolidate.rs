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

/// Applies `deltas` (oldest first) to `base`.
pub(crate) fn consolidate_node(base: &Node, deltas: &[&Delta]) -> Node {
    let mut node = base.clone();
    let mut pending: Pending = Vec::new();
    for d in deltas {
        match d {
            Delta::Put { key, val, pos } => pending.push((*pos, key.clone(), Some(val.clone()))),
            Delta::Del { key, pos } => pending.push((*pos, key.clone(), None)),
            Delta::Batch { ops } => {
                flush_pending(&mut node, &mut pending);
                pending.extend(ops.iter().map(|(k, v)| (u32::MAX, k.clone(), v.clone())));
                // Batch deltas carry no positions: fold them now, against the current keys.
                locate_pending(&node, &mut pending);
            }
            structural => {
                flush_pending(&mut node, &mut pending);
                apply_structural(&mut node, structural);
            }
        }
    }
    flush_pending(&mut node, &mut pending);
    node
}

/// Recomputes the positions of `pending` against `node`'s keys.
fn locate_pending(node: &Node, pending: &mut Pending) {
    for (pos, key, _) in pending.iter_mut() {
        *pos = node.keys.partition_point(|k| k < key) as u32;
    }
}

/// Merges the record updates into the node: sort the few updates by (position, key), keep
/// the newest per key, then one pass over the base.
fn flush_pending(node: &mut Node, pending: &mut Pending) {
    if pending.is_empty() {
        return;
    }
    assert!(node.is_leaf(), "record deltas only on leaves");
    // Positions are hints into the base the delta saw; structural deltas between then and
    // now can only have truncated or extended the end, so clamp.
    let n = node.keys.len() as u32;
    for p in pending.iter_mut() {
        p.0 = p.0.min(n);
        let start = p.0 as usize;
        if start > 0 && node.keys[start - 1] >= p.1
            || start < node.keys.len() && node.keys[start] < p.1
        {
            // A stale hint (the base changed under it): search instead.
            p.0 = node.keys.partition_point(|k| *k < p.1) as u32;
        }
    }
    // Stable: among equal keys the later (newer) update stays last.
    pending.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut keys = Vec::with_capacity(node.keys.len() + pending.len());
    let mut vals = Vec::with_capacity(node.keys.len() + pending.len());
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
        keys.extend_from_slice(&node.keys[at..pos]);
        vals.extend_from_slice(&node.vals[at..pos]);
        at = pos;
        if at < node.keys.len() && node.keys[at] == *key {
            at += 1; // replaced or deleted
        }
        if let Some(v) = val {
            keys.push(key.clone());
            vals.push(v.clone());
        }
        i = j + 1;
    }
    keys.extend_from_slice(&node.keys[at..]);
    vals.extend_from_slice(&node.vals[at..]);
    node.keys = keys;
    node.vals = vals;
    pending.clear();
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

    #[test]
    fn empty_base_takes_puts() {
        let ds = [put("x", "y", 0), put("z", "y", 0)];
        let refs: Vec<&Delta> = ds.iter().collect();
        let n = consolidate_node(&Node::default(), &refs);
        assert_eq!(n.len(), 2);
    }
}
