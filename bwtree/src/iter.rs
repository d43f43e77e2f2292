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
use crate::leaf_scan::{after, before, leaf_entries};
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
    /// Entries the next refill copies at most (see [`Iter::next_batch`]).
    batch: usize,
}

/// Entries the first refill of each side copies at most.
const FIRST_BATCH: usize = 16;
/// The most entries a refill copies (more than a leaf holds with the default node size).
const MAX_BATCH: usize = 1 << 12;

fn bound_ref(b: &Bound<Value>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k),
        Bound::Excluded(k) => Bound::Excluded(k),
        Bound::Unbounded => Bound::Unbounded,
    }
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
            batch: FIRST_BATCH,
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

    /// Copies entries of the next leaf into `fwd`: at most `self.batch` of them, so a short
    /// scan copies only what it is likely to use. Returns false once the range is exhausted.
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
            let limit = self.next_batch();
            let guard = crossbeam_epoch::pin();
            let leaf = self.tree.descend(Probe::At(&key), Mode::Read, &guard)?;
            let high = leaf.header.high;
            let from = bound_ref(&from);
            let cut = match leaf_entries(&leaf.view, from, Bound::Unbounded, high.map(|h| &**h)) {
                Some(entries) => self.copy_forward(entries, limit),
                None => {
                    let node = materialize(&leaf.view).expect("a leaf is a tree node");
                    let start = node.keys.partition_point(|k| !after(k, from));
                    let entries = node.keys[start..].iter().zip(&node.vals[start..]);
                    self.copy_forward(entries, limit)
                }
            };
            self.fwd_next = match cut {
                Some(last) => Some(Bound::Excluded(last)),
                None => high.cloned().map(Bound::Included),
            };
        }
        Ok(true)
    }

    /// Copies `entries` (ascending, from the cursor on) into `fwd` while they lie below `hi`,
    /// at most `limit` of them. Returns the last key copied if `limit` cut the leaf short.
    fn copy_forward<'a>(
        &mut self,
        entries: impl Iterator<Item = (&'a Value, &'a Value)>,
        limit: usize,
    ) -> Option<Value> {
        for (k, v) in entries {
            if !self.below_hi(k) {
                return None;
            }
            if self.fwd.len() == limit {
                return self.fwd.back().map(|(k, _)| k.clone());
            }
            if self.above_lo(k) {
                self.fwd.push_back((k.clone(), v.clone()));
            }
        }
        None
    }

    /// Copies entries of the previous leaf into `back` (at most `self.batch`). Returns false
    /// once exhausted.
    fn refill_backward(&mut self) -> Result<bool> {
        while self.back.is_empty() {
            let Some(until) = self.back_next.take() else {
                return Ok(false);
            };
            let probe = match &until {
                Bound::Included(k) => Probe::At(k),
                Bound::Excluded(k) if k.is_empty() => return Ok(false),
                Bound::Excluded(k) => Probe::Below(Some(k)),
                Bound::Unbounded => Probe::Below(None),
            };
            let limit = self.next_batch();
            let guard = crossbeam_epoch::pin();
            let leaf = self.tree.descend(probe, Mode::Read, &guard)?;
            let (low, high) = (leaf.header.low, leaf.header.high.map(|h| &**h));
            let to = bound_ref(&until);
            let cut = match leaf_entries(&leaf.view, Bound::Unbounded, to, high) {
                Some(entries) => self.copy_backward(entries.rev(), limit),
                None => {
                    let node = materialize(&leaf.view).expect("a leaf is a tree node");
                    let end = node.keys.partition_point(|k| before(k, to));
                    let entries = node.keys[..end].iter().zip(&node.vals[..end]).rev();
                    self.copy_backward(entries, limit)
                }
            };
            let low_done = match &self.lo {
                Bound::Included(l) | Bound::Excluded(l) => low <= l,
                Bound::Unbounded => false,
            };
            self.back_next = match cut {
                Some(last) => Some(Bound::Excluded(last)),
                None => (!low.is_empty() && !low_done).then(|| Bound::Excluded(low.clone())),
            };
        }
        Ok(true)
    }

    /// As [`Iter::copy_forward`], descending, into `back`, while entries lie above `lo`.
    fn copy_backward<'a>(
        &mut self,
        entries: impl Iterator<Item = (&'a Value, &'a Value)>,
        limit: usize,
    ) -> Option<Value> {
        for (k, v) in entries {
            if !self.above_lo(k) {
                return None;
            }
            if self.back.len() == limit {
                return self.back.back().map(|(k, _)| k.clone());
            }
            if self.below_hi(k) {
                self.back.push_back((k.clone(), v.clone()));
            }
        }
        None
    }

    /// How many entries the next refill copies: few at first (most scans are short), then
    /// doubling up to whole leaves.
    fn next_batch(&mut self) -> usize {
        let limit = self.batch;
        self.batch = self.batch.saturating_mul(2).min(MAX_BATCH);
        limit
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
    use super::{prefix_end, FIRST_BATCH};
    use crate::Config;

    fn key(i: u32) -> [u8; 4] {
        i.to_be_bytes()
    }

    /// Scans that cross the refill limit (a leaf cut short, resumed after its last copied
    /// key) while writes land between items: keys stay in order, none twice, and every key
    /// present for the whole scan is returned, from either end.
    #[test]
    fn refills_cut_short_resume_after_the_last_key() {
        let db = Config::new().temporary(true).open().unwrap();
        let n = 40 * FIRST_BATCH as u32;
        for i in (0..n).step_by(2) {
            db.insert(key(i), b"v").unwrap();
        }
        for backward in [false, true] {
            let mut it = db.range(key(10)..key(n - 10));
            let mut seen = Vec::new();
            let mut step = 0;
            loop {
                let item = if backward { it.next_back() } else { it.next() };
                let Some(item) = item else { break };
                let k = u32::from_be_bytes(item.unwrap().0[..].try_into().unwrap());
                seen.push(k);
                // Odd keys come and go; even ones stay for the whole scan.
                step += 1;
                db.insert(key((step * 7 % n) | 1), b"w").unwrap();
                db.remove(key((step * 13 % n) | 1)).unwrap();
            }
            if backward {
                seen.reverse();
            }
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, none twice");
            let evens: Vec<u32> = seen.iter().copied().filter(|k| k % 2 == 0).collect();
            let want: Vec<u32> = (10..n - 10).step_by(2).collect();
            assert_eq!(evens, want, "every key present throughout is returned");
        }
    }

    #[test]
    fn prefix_end_increments_the_last_non_max_byte() {
        assert_eq!(prefix_end(b"ab").unwrap(), *b"ac");
        assert_eq!(prefix_end(&[1, 255]).unwrap(), [2]);
        assert!(prefix_end(&[255, 255]).is_none());
        assert!(prefix_end(b"").is_none());
    }
}
