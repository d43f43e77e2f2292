//! [`Iter`]: ordered iteration, forward and backward, without holding an epoch between items.
//!
//! Each refill descends to the leaf covering the cursor, copies that leaf's visible entries
//! inside the cursor's bounds (one atomic snapshot of the leaf), and unpins. The forward cursor
//! then resumes at the leaf's high fence, the backward one just below its low fence, so merges
//! and splits between refills cannot make it skip or repeat: keys come out in order, each at
//! most once, and a key present for the whole scan is returned (every leaf snapshot covering
//! it holds it).

use std::collections::VecDeque;
use std::ops::Bound;

use crate::descend::Mode;
use crate::error::Result;
use crate::search::{materialize, Probe};
use crate::tree::Tree;
use crate::value::Value;

/// An iterator over a range of a tree: `Result<(key, value)>` items in key order, from either
/// end. Owns no lock and pins no epoch between calls; `Send`.
pub struct Iter {
    tree: Tree,
    /// Items must lie above this (advanced by the forward side).
    lo: Bound<Value>,
    /// Items must lie below this (advanced by the backward side).
    hi: Bound<Value>,
    fwd: VecDeque<(Value, Value)>,
    back: VecDeque<(Value, Value)>,
    /// Where the forward side resumes once `fwd` is empty (`None`: the keyspace ended).
    fwd_next: Option<Bound<Value>>,
    /// Where the backward side resumes once `back` is empty (`None`: the keyspace began).
    back_next: Option<Bound<Value>>,
    failed: bool,
}

impl Iter {
    pub(crate) fn new(tree: Tree, lo: Bound<Value>, hi: Bound<Value>) -> Iter {
        Iter {
            tree,
            fwd_next: Some(lo.clone()),
            back_next: Some(hi.clone()),
            lo,
            hi,
            fwd: VecDeque::new(),
            back: VecDeque::new(),
            failed: false,
        }
    }

    fn above_lo(&self, k: &Value) -> bool {
        match &self.lo {
            Bound::Included(l) => k >= l,
            Bound::Excluded(l) => k > l,
            Bound::Unbounded => true,
        }
    }

    fn below_hi(&self, k: &Value) -> bool {
        match &self.hi {
            Bound::Included(h) => k <= h,
            Bound::Excluded(h) => k < h,
            Bound::Unbounded => true,
        }
    }

    /// Copies the next leaf's entries into `fwd`. Returns false once the range is exhausted.
    fn refill_forward(&mut self) -> Result<bool> {
        while self.fwd.is_empty() {
            let Some(from) = self.fwd_next.take() else {
                return Ok(false);
            };
            let key = match &from {
                Bound::Included(k) | Bound::Excluded(k) => k.clone(),
                Bound::Unbounded => Value::EMPTY,
            };
            if !self.below_hi(&key) && !matches!(from, Bound::Unbounded) {
                return Ok(false);
            }
            let guard = crossbeam_epoch::pin();
            let leaf = self.tree.descend(Probe::At(&key), Mode::Read, &guard)?;
            let node = materialize(&leaf.view).expect("a leaf is a tree node");
            let start = match &from {
                Bound::Included(k) => node.keys.partition_point(|x| x < k),
                Bound::Excluded(k) => node.keys.partition_point(|x| x <= k),
                Bound::Unbounded => 0,
            };
            for (k, v) in node.keys[start..].iter().zip(&node.vals[start..]) {
                if !self.below_hi(k) {
                    break;
                }
                if self.above_lo(k) {
                    self.fwd.push_back((k.clone(), v.clone()));
                }
            }
            self.fwd_next = node.high.map(Bound::Included);
        }
        Ok(true)
    }

    /// Copies the previous leaf's entries into `back`. Returns false once exhausted.
    fn refill_backward(&mut self) -> Result<bool> {
        while self.back.is_empty() {
            let Some(until) = self.back_next.take() else {
                return Ok(false);
            };
            let guard = crossbeam_epoch::pin();
            let probe = match &until {
                Bound::Included(k) => Probe::At(k),
                Bound::Excluded(k) if k.is_empty() => return Ok(false),
                Bound::Excluded(k) => Probe::Below(Some(k)),
                Bound::Unbounded => Probe::Below(None),
            };
            let leaf = self.tree.descend(probe, Mode::Read, &guard)?;
            let node = materialize(&leaf.view).expect("a leaf is a tree node");
            let end = match &until {
                Bound::Included(k) => node.keys.partition_point(|x| x <= k),
                Bound::Excluded(k) => node.keys.partition_point(|x| x < k),
                Bound::Unbounded => node.keys.len(),
            };
            for (k, v) in node.keys[..end].iter().zip(&node.vals[..end]).rev() {
                if !self.above_lo(k) {
                    break;
                }
                if self.below_hi(k) {
                    self.back.push_back((k.clone(), v.clone()));
                }
            }
            let low_done = match &self.lo {
                Bound::Included(l) | Bound::Excluded(l) => node.low <= *l,
                Bound::Unbounded => false,
            };
            self.back_next =
                (!node.low.is_empty() && !low_done).then(|| Bound::Excluded(node.low.clone()));
        }
        Ok(true)
    }

    fn fail<T>(&mut self, e: crate::error::Error) -> Option<Result<T>> {
        self.failed = true;
        Some(Err(e))
    }
}

impl Iterator for Iter {
    type Item = Result<(Value, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.refill_forward() {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return self.fail(e),
        }
        let (k, v) = self.fwd.pop_front()?;
        if !self.below_hi(&k) {
            self.fwd.clear();
            self.fwd_next = None;
            return None;
        }
        self.lo = Bound::Excluded(k.clone());
        Some(Ok((k, v)))
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.refill_backward() {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return self.fail(e),
        }
        let (k, v) = self.back.pop_front()?;
        if !self.above_lo(&k) {
            self.back.clear();
            self.back_next = None;
            return None;
        }
        self.hi = Bound::Excluded(k.clone());
        Some(Ok((k, v)))
    }
}

impl std::fmt::Debug for Iter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter")
            .field("lo", &self.lo)
            .field("hi", &self.hi)
            .finish_non_exhaustive()
    }
}

/// The smallest key greater than every key starting with `prefix` (`None`: no such key).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Value> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(Value::from(end));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_increments_the_last_non_max_byte() {
        assert_eq!(prefix_end(b"ab").unwrap(), *b"ac");
        assert_eq!(prefix_end(&[1, 255]).unwrap(), [2]);
        assert!(prefix_end(&[255, 255]).is_none());
        assert!(prefix_end(b"").is_none());
    }
}
