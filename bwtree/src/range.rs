//! Range reads on a [`Tree`], all built on [`Iter`].

use std::ops::{Bound, RangeBounds};

use crate::error::Result;
use crate::iter::{prefix_end, Iter};
use crate::tree::Tree;
use crate::value::Value;

fn owned(b: Bound<&impl AsRef<[u8]>>) -> Bound<Value> {
    match b {
        Bound::Included(k) => Bound::Included(Value::copy_from(k.as_ref())),
        Bound::Excluded(k) => Bound::Excluded(Value::copy_from(k.as_ref())),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl Tree {
    /// Every entry, in key order (also from the back).
    pub fn iter(&self) -> Iter {
        Iter::new(self.clone(), Bound::Unbounded, Bound::Unbounded)
    }

    /// The entries whose keys lie in `range`.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        Iter::new(
            self.clone(),
            owned(range.start_bound()),
            owned(range.end_bound()),
        )
    }

    /// The entries whose keys start with `prefix`.
    pub fn scan_prefix<P: AsRef<[u8]>>(&self, prefix: P) -> Iter {
        let start = Bound::Included(Value::copy_from(prefix.as_ref()));
        let end = prefix_end(prefix.as_ref()).map_or(Bound::Unbounded, Bound::Excluded);
        Iter::new(self.clone(), start, end)
    }

    /// The entry with the greatest key below `key`.
    pub fn get_lt<K: AsRef<[u8]>>(&self, key: K) -> Result<Option<(Value, Value)>> {
        self.range(..key.as_ref()).next_back().transpose()
    }

    /// The entry with the smallest key above `key`.
    pub fn get_gt<K: AsRef<[u8]>>(&self, key: K) -> Result<Option<(Value, Value)>> {
        let lo = Bound::Excluded(Value::copy_from(key.as_ref()));
        Iter::new(self.clone(), lo, Bound::Unbounded)
            .next()
            .transpose()
    }

    /// The entry with the smallest key.
    pub fn first(&self) -> Result<Option<(Value, Value)>> {
        self.iter().next().transpose()
    }

    /// The entry with the greatest key.
    pub fn last(&self) -> Result<Option<(Value, Value)>> {
        self.iter().next_back().transpose()
    }

    /// The number of entries. Walks every leaf (like sled): O(n). Unlike sled's, a page that
    /// cannot be read is an error, never a short count.
    pub fn len(&self) -> Result<usize> {
        let mut n = 0;
        for entry in self.iter() {
            entry?;
            n += 1;
        }
        Ok(n)
    }

    /// Whether the tree holds no entry (an unreadable first page is an error).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.first()?.is_none())
    }
}
