//! Page identifiers.

use std::fmt;

/// Bits of a page id consumed by each of the table's three levels.
///
/// 14 bits per level gives 2^42 page ids with 128 KiB levels. Under loom the levels shrink to 4
/// entries (64 ids) so models stay small, and under Miri to 16 entries (4096 ids).
pub(crate) const LEVEL_BITS: u32 = if cfg!(loom) {
    2
} else if cfg!(miri) {
    4
} else {
    14
};
/// Entries in one level of the table.
pub(crate) const FANOUT: usize = 1 << LEVEL_BITS;
/// Levels from the root to the slots.
pub(crate) const DEPTH: u32 = 3;

/// A logical page id: the index of one slot in the mapping table.
///
/// Ids are dense and start at 0; the allocator hands out `0..`[`Pid::MAX`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pid(u64);

impl Pid {
    /// The largest page id the table can hold (2^42 - 1 in normal builds).
    pub const MAX: Pid = Pid((1u64 << (LEVEL_BITS * DEPTH)) - 1);

    /// Wraps a raw id. Returns `None` above [`Pid::MAX`], e.g. for a corrupt id read from disk.
    #[must_use]
    pub const fn new(raw: u64) -> Option<Pid> {
        if raw <= Pid::MAX.0 {
            Some(Pid(raw))
        } else {
            None
        }
    }

    /// The raw id, e.g. for encoding on disk.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The id at `indices` (root first), the inverse of [`Self::level_indices`].
    pub(crate) fn from_level_indices(indices: [usize; DEPTH as usize]) -> Pid {
        let raw = indices.iter().fold(0u64, |acc, &i| {
            assert!(i < FANOUT, "level index {i} out of range");
            (acc << LEVEL_BITS) | i as u64
        });
        Pid(raw)
    }

    /// The index into each level, root first.
    pub(crate) fn level_indices(self) -> [usize; DEPTH as usize] {
        let mask = (FANOUT - 1) as u64;
        let at = |level: u32| ((self.0 >> (LEVEL_BITS * (DEPTH - 1 - level))) & mask) as usize;
        [at(0), at(1), at(2)]
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pid({})", self.0)
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_covers_at_least_2_pow_40_outside_miri_and_loom() {
        if !cfg!(any(miri, loom)) {
            assert!(Pid::MAX.get() >= (1 << 40));
        }
        assert!(Pid::new(Pid::MAX.get()).is_some());
        assert!(Pid::new(Pid::MAX.get() + 1).is_none());
    }

    #[test]
    fn level_indices_recompose_the_id() {
        for raw in [0, 1, FANOUT as u64 - 1, FANOUT as u64, Pid::MAX.get()] {
            let [a, b, c] = Pid::new(raw).unwrap().level_indices();
            let back = (((a as u64) << LEVEL_BITS | b as u64) << LEVEL_BITS) | c as u64;
            assert_eq!(back, raw);
            assert!(a < FANOUT && b < FANOUT && c < FANOUT);
            assert_eq!(Pid::from_level_indices([a, b, c]).get(), raw);
        }
    }
}
