//! The free ids a restored allocator starts with, kept as ranges rather than one entry per id.
//!
//! At startup the free ids are every id below the high-water mark `next_fresh` that no live
//! page holds. A database that grew to many pages and shrank back has few live pages and a
//! high mark, and a crafted (CRC-valid) checkpoint may claim a mark near [`Pid::MAX`]: listing
//! the free ids one by one would cost memory and time in the mark, not in what is on disk. The
//! gaps between consecutive live ids are instead stored as at most `live + 1` ranges, and ids
//! are taken from the lowest range first (keeping ids dense, so the radix table stays small).
//!
//! This type is plain data; [`PidAllocator`](crate::PidAllocator) guards it with a mutex.

use std::ops::Range;

use crate::pid::Pid;

/// Disjoint, non-empty ranges of free ids, stored highest first so the lowest id is taken from
/// the end of the vector.
#[derive(Debug, Default)]
pub(crate) struct FreeRanges {
    /// Highest range first; every range non-empty; ranges disjoint and non-adjacent.
    descending: Vec<Range<u64>>,
    /// Ids in all ranges.
    len: u64,
}

impl FreeRanges {
    /// The ids below `next_fresh` not in `live`, as ranges.
    ///
    /// # Panics
    /// If `next_fresh` exceeds `Pid::MAX + 1`, a live id is not below `next_fresh`, or an id is
    /// listed twice: the caller validates ids read from disk first, so these are bugs.
    pub(crate) fn around(next_fresh: u64, live: impl IntoIterator<Item = Pid>) -> FreeRanges {
        assert!(
            next_fresh <= Pid::MAX.get() + 1,
            "next fresh id {next_fresh} beyond Pid::MAX"
        );
        let mut live: Vec<u64> = live.into_iter().map(Pid::get).collect();
        live.sort_unstable();
        if let Some(pair) = live.windows(2).find(|pair| pair[0] == pair[1]) {
            panic!("live id {} listed twice", pair[0]);
        }
        if let Some(&last) = live.last() {
            assert!(
                last < next_fresh,
                "live id {last} was never allocated (next fresh id {next_fresh})"
            );
        }
        let mut ranges = Vec::with_capacity(live.len() + 1);
        let mut start = 0;
        for id in live.into_iter().chain([next_fresh]) {
            if start < id {
                ranges.push(start..id);
            }
            start = id + 1;
        }
        let len = ranges.iter().map(|r| r.end - r.start).sum();
        ranges.reverse();
        FreeRanges {
            descending: ranges,
            len,
        }
    }

    /// Takes the lowest free id.
    pub(crate) fn take(&mut self) -> Option<Pid> {
        let lowest = self.descending.last_mut()?;
        let id = lowest.start;
        lowest.start += 1;
        if lowest.is_empty() {
            self.descending.pop();
        }
        self.len -= 1;
        Some(Pid::new(id).expect("free ranges lie below next_fresh <= Pid::MAX + 1"))
    }

    /// Ids left.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.descending.is_empty()
    }

    /// The ranges, lowest first.
    pub(crate) fn ranges(&self) -> Vec<Range<u64>> {
        self.descending.iter().rev().cloned().collect()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pids(raw: &[u64]) -> Vec<Pid> {
        raw.iter().map(|&r| Pid::new(r).unwrap()).collect()
    }

    #[test]
    fn gaps_between_live_ids_become_ranges() {
        let r = FreeRanges::around(10, pids(&[5, 0, 2, 3]));
        assert_eq!(r.ranges(), vec![1..2, 4..5, 6..10]);
        assert_eq!(r.len(), 6);
        assert!(FreeRanges::around(3, pids(&[0, 1, 2])).is_empty());
        assert!(FreeRanges::around(0, []).is_empty());
        assert_eq!(FreeRanges::around(4, []).ranges(), vec![0..4]);
    }

    #[test]
    fn the_whole_id_space_is_two_ranges_not_2_pow_42_entries() {
        let mut r = FreeRanges::around(Pid::MAX.get() + 1, pids(&[7]));
        assert_eq!(r.ranges(), vec![0..7, 8..Pid::MAX.get() + 1]);
        assert_eq!(r.len(), Pid::MAX.get());
        assert_eq!(r.take().map(Pid::get), Some(0));
    }

    #[test]
    #[should_panic(expected = "listed twice")]
    fn a_duplicate_live_id_panics() {
        let _ = FreeRanges::around(4, pids(&[1, 1]));
    }

    #[test]
    #[should_panic(expected = "never allocated")]
    fn a_live_id_at_next_fresh_panics() {
        let _ = FreeRanges::around(4, pids(&[4]));
    }

    proptest! {
        /// Taking everything yields exactly the ids below `next_fresh` that are not live, each
        /// once and in ascending order, and `len` counts them down.
        #[test]
        // Not under Miri: proptest's failure persistence needs the working directory, which
        // Miri's isolation refuses (the unit tests above cover the same code there).
        #[cfg_attr(miri, ignore)]
        fn takes_exactly_the_complement_of_the_live_ids(
            next_fresh in 0u64..300,
            live in proptest::collection::btree_set(0u64..300, 0..40),
        ) {
            let live: Vec<u64> = live.into_iter().filter(|&id| id < next_fresh).collect();
            let mut ranges = FreeRanges::around(next_fresh, pids(&live));
            let expected: Vec<u64> = (0..next_fresh).filter(|id| !live.contains(id)).collect();
            prop_assert!(ranges.ranges().len() <= live.len() + 1);
            let mut taken = Vec::new();
            while let Some(id) = ranges.take() {
                taken.push(id.get());
                prop_assert_eq!(ranges.len(), (expected.len() - taken.len()) as u64);
            }
            prop_assert!(ranges.is_empty());
            prop_assert_eq!(taken, expected);
        }
    }
}
