//! A leaf's visible entries in key order, read straight from its chain: the base's sorted
//! arrays, cut to the wanted range by binary search, merged with the record deltas above
//! them (newest per key wins). Nothing is copied or consolidated; the entries borrow the
//! chain for the guard's lifetime.
//!
//! Only chains of record deltas (`Put`, `Del`, `Batch`) and `Split`s are read this way. A
//! chain holding a `Merge` (whose absorbed node brings a second sorted run) returns `None`:
//! the caller consolidates instead (merges are rare, and only follow removals).

use std::cmp::Ordering;
use std::ops::Bound;

use pagecache::Fragment;

use crate::node::Delta;
use crate::search::View;
use crate::value::Value;

/// A record delta's effect on one key (`None`: removed).
type Record<'g> = (&'g Value, Option<&'g Value>);

/// The visible entries of one leaf inside a key range, from either end.
pub(crate) struct LeafEntries<'g> {
    keys: &'g [Value],
    vals: &'g [Value],
    /// The newest record per key, sorted by key, inside the range.
    records: Vec<Record<'g>>,
    /// `records[front..back]` are not consumed yet (`keys`/`vals` shrink instead).
    front: usize,
    back: usize,
}

/// The entries of the leaf under `view` whose keys lie in `(from, to)` (as bounds) and
/// below the leaf's high fence `high`. `None` if the chain holds a delta other than record
/// deltas and splits (see the module comment).
pub(crate) fn leaf_entries<'g>(
    view: &View<'g>,
    from: Bound<&[u8]>,
    to: Bound<&[u8]>,
    high: Option<&[u8]>,
) -> Option<LeafEntries<'g>> {
    let to = match (to, high) {
        (Bound::Unbounded, Some(h)) => Bound::Excluded(h),
        (Bound::Included(t) | Bound::Excluded(t), Some(h)) if h <= t => Bound::Excluded(h),
        (to, _) => to,
    };
    let in_range = |k: &[u8]| after(k, from) && before(k, to);
    let mut records: Vec<Record<'g>> = Vec::new();
    for f in view.iter() {
        match f {
            Fragment::Delta(Delta::Put { key, val, .. }) => records.push((key, Some(val))),
            Fragment::Delta(Delta::Del { key, .. }) => records.push((key, None)),
            // A batch's keys are distinct; reversed anyway so that, like the chain, a later
            // write to a key comes first.
            Fragment::Delta(Delta::Batch { ops }) => {
                records.extend(ops.iter().rev().map(|(k, v)| (k, v.as_ref())));
            }
            Fragment::Delta(Delta::Split { .. } | Delta::Remove { .. }) => {}
            Fragment::Delta(_) => return None,
            Fragment::Base(b) => {
                let n = b.node()?;
                let start = n.keys.partition_point(|k| !after(k, from));
                let end = start + n.keys[start..].partition_point(|k| before(k, to));
                records.retain(|(k, _)| in_range(k));
                // Stable: among equal keys the newest (first pushed) stays first.
                records.sort_by(|a, b| a.0.cmp(b.0));
                records.dedup_by(|later, first| later.0 == first.0);
                return Some(LeafEntries {
                    keys: &n.keys[start..end],
                    vals: n.vals.get(start..end)?,
                    back: records.len(),
                    records,
                    front: 0,
                });
            }
        }
    }
    unreachable!("a chain ends with its base")
}

/// Whether `k` lies above the lower bound `from`.
pub(crate) fn after(k: &[u8], from: Bound<&[u8]>) -> bool {
    match from {
        Bound::Included(f) => k >= f,
        Bound::Excluded(f) => k > f,
        Bound::Unbounded => true,
    }
}

/// Whether `k` lies below the upper bound `to`.
pub(crate) fn before(k: &[u8], to: Bound<&[u8]>) -> bool {
    match to {
        Bound::Included(t) => k <= t,
        Bound::Excluded(t) => k < t,
        Bound::Unbounded => true,
    }
}

impl<'g> Iterator for LeafEntries<'g> {
    type Item = (&'g Value, &'g Value);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let record = self.records[self.front..self.back].first().copied();
            let order = match (self.keys.first(), record) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(k), Some((r, _))) => k.cmp(r),
            };
            if order != Ordering::Greater {
                let (k, v) = (&self.keys[0], &self.vals[0]);
                (self.keys, self.vals) = (&self.keys[1..], &self.vals[1..]);
                if order == Ordering::Less {
                    return Some((k, v));
                }
            }
            if let Some((k, v)) = record.filter(|_| order != Ordering::Less) {
                self.front += 1;
                if let Some(v) = v {
                    return Some((k, v));
                }
            }
        }
    }
}

impl DoubleEndedIterator for LeafEntries<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            let record = self.records[self.front..self.back].last().copied();
            let order = match (self.keys.last(), record) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Greater,
                (None, Some(_)) => Ordering::Less,
                (Some(k), Some((r, _))) => k.cmp(r),
            };
            if order != Ordering::Less {
                let last = self.keys.len() - 1;
                let (k, v) = (&self.keys[last], &self.vals[last]);
                (self.keys, self.vals) = (&self.keys[..last], &self.vals[..last]);
                if order == Ordering::Greater {
                    return Some((k, v));
                }
            }
            if let Some((k, v)) = record.filter(|_| order != Ordering::Greater) {
                self.back -= 1;
                if let Some(v) = v {
                    return Some((k, v));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// The entries a base plus records (newest first) show, by the obvious method.
    fn expected(base: &BTreeMap<u8, u8>, records: &[(u8, Option<u8>)]) -> Vec<(u8, u8)> {
        let mut all = base.clone();
        for (k, v) in records.iter().rev() {
            match v {
                Some(v) => all.insert(*k, *v),
                None => all.remove(k),
            };
        }
        all.into_iter().collect()
    }

    fn bytes<'a>(entries: impl Iterator<Item = (&'a Value, &'a Value)>) -> Vec<(u8, u8)> {
        entries.map(|(k, v)| (k[0], v[0])).collect()
    }

    proptest! {
        #[test]
        fn merges_records_over_the_base_from_both_ends(
            base in proptest::collection::btree_map(0u8..32, any::<u8>(), 0..20),
            records in proptest::collection::vec((0u8..32, proptest::option::of(any::<u8>())), 0..12),
        ) {
            let keys: Vec<Value> = base.keys().map(|k| Value::copy_from(&[*k])).collect();
            let vals: Vec<Value> = base.values().map(|v| Value::copy_from(&[*v])).collect();
            let rec: Vec<(Value, Option<Value>)> = records
                .iter()
                .map(|(k, v)| (Value::copy_from(&[*k]), v.map(|v| Value::copy_from(&[v]))))
                .collect();
            // The entries borrow these, as a chain's entries borrow its nodes for 'g.
            let (keys, vals) = (&keys[..], &vals[..]);
            let mut sorted: Vec<Record<'_>> = rec.iter().map(|(k, v)| (k, v.as_ref())).collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            sorted.dedup_by(|later, first| later.0 == first.0);
            let entries = || LeafEntries {
                keys,
                vals,
                back: sorted.len(),
                records: sorted.clone(),
                front: 0,
            };
            let want = expected(&base, &records);
            prop_assert_eq!(bytes(entries()), want.clone());
            let mut backward = bytes(entries().rev());
            backward.reverse();
            prop_assert_eq!(backward, want.clone());
            // Both ends at once meet without losing or repeating an entry.
            let mut both = entries();
            let (mut front, mut back) = (Vec::new(), Vec::new());
            while let Some(f) = both.next() {
                front.push((f.0[0], f.1[0]));
                let Some(b) = both.next_back() else { break };
                back.push((b.0[0], b.1[0]));
            }
            front.extend(back.into_iter().rev());
            prop_assert_eq!(front, want);
        }
    }

    #[test]
    fn bounds_are_inclusive_or_exclusive() {
        assert!(after(b"b", Bound::Included(b"b")));
        assert!(!after(b"b", Bound::Excluded(b"b")));
        assert!(before(b"b", Bound::Included(b"b")));
        assert!(!before(b"b", Bound::Excluded(b"b")));
        assert!(after(b"", Bound::Unbounded) && before(b"", Bound::Unbounded));
    }
}
