//! The lock-free radix mapping table: page id -> [`Slot`].
//!
//! # Structure
//!
//! Three levels of [`FANOUT`] entries: `root[i0] -> mid[i1] -> leaf[i2]`, where `i0 i1 i2` are
//! consecutive bit groups of the [`Pid`]. The root is allocated with the table; mid and leaf
//! levels are installed lazily the first time an id under them is used. A lookup of an
//! installed slot is two dependent loads plus the slot's own, with no locks and no hashing.
//!
//! # Protocol and invariants
//!
//! - Grow-only: a parent entry goes from null to a level exactly once (CAS from null) and never
//!   changes again until the table is dropped. So a `&Slot` handed out lives as long as `&self`.
//! - Installation races: every racer allocates an all-`Free` level and CASes it into the null
//!   entry; exactly one CAS succeeds, and each loser frees its own allocation before using the
//!   winner's. `levels_installed` counts winners; `Drop` frees exactly that many levels
//!   (asserted), so a doubly-counted or unreachable installed level is caught. A loser that
//!   forgot to free would be a leak: the leak-checked Miri run in `sanitizers.sh` catches that.
//! - Publication: the winning CAS is Release and every load of a parent entry is Acquire, so a
//!   thread that sees the level pointer sees its initialised (all-`Free`) entries.

use std::fmt;
use std::ptr;

use crate::level;
use crate::pid::{Pid, FANOUT};
use crate::slot::Slot;
use crate::sync::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

type Leaf = Slot;
type Mid = AtomicPtr<Leaf>;

/// Counters describing the table's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableStats {
    /// Mid and leaf levels installed (the root is not counted).
    pub levels_installed: usize,
    /// Levels allocated by a racer that lost the installation CAS and freed again.
    pub install_races_lost: u64,
    /// Heap bytes held by the table's levels, root included.
    pub heap_bytes: usize,
}

/// The mapping table. `Send + Sync`; every method takes `&self`.
pub struct RadixTable {
    root: Box<[AtomicPtr<Mid>]>,
    levels_installed: AtomicUsize,
    install_races_lost: AtomicU64,
}

const LEVEL_BYTES: usize = FANOUT * std::mem::size_of::<usize>();

impl RadixTable {
    /// An empty table: every id is `Free`. Allocates only the root level.
    #[must_use]
    pub fn new() -> RadixTable {
        RadixTable {
            root: std::iter::repeat_with(|| AtomicPtr::new(ptr::null_mut()))
                .take(FANOUT)
                .collect(),
            levels_installed: AtomicUsize::new(0),
            install_races_lost: AtomicU64::new(0),
        }
    }

    /// The slot of `pid`, installing the levels above it if this is the first use of its range.
    #[must_use]
    pub fn slot(&self, pid: Pid) -> &Slot {
        let [i0, i1, i2] = pid.level_indices();
        let mid = self.child_or_install(&self.root[i0], || AtomicPtr::new(ptr::null_mut()));
        // SAFETY: `mid` is a level of Mid entries installed in this table; installed levels are
        // freed only in Drop, which needs `&mut self`, so it outlives the returned borrow of self.
        let leaf_entry = unsafe { level::entry(mid, i1) };
        let leaf = self.child_or_install(leaf_entry, Slot::free);
        // SAFETY: as above, for the leaf level.
        unsafe { level::entry(leaf, i2) }
    }

    /// The slot of `pid` if its levels are installed, without installing anything. `None` means
    /// no id in that range was ever used: the slot is `Free`.
    #[must_use]
    pub fn get(&self, pid: Pid) -> Option<&Slot> {
        let [i0, i1, i2] = pid.level_indices();
        // Acquire: pairs with the Release of the installing CAS (see module docs).
        let mid = self.root[i0].load(Ordering::Acquire);
        if mid.is_null() {
            return None;
        }
        // SAFETY: installed levels live until Drop (`&mut self`), beyond the borrow of self.
        let leaf = unsafe { level::entry(mid, i1) }.load(Ordering::Acquire);
        if leaf.is_null() {
            return None;
        }
        // SAFETY: as above.
        Some(unsafe { level::entry(leaf, i2) })
    }

    /// The child level behind `entry`, installed with `make` if absent.
    fn child_or_install<T>(&self, entry: &AtomicPtr<T>, make: impl FnMut() -> T) -> *mut T {
        // Acquire: pairs with the winner's Release CAS so the level's entries are visible.
        let existing = entry.load(Ordering::Acquire);
        if !existing.is_null() {
            return existing;
        }
        let fresh = level::alloc(make);
        crate::debug_delay::before_cas();
        // Success Release publishes the initialised level; failure Acquire reads the winner's.
        match entry.compare_exchange(ptr::null_mut(), fresh, Ordering::Release, Ordering::Acquire) {
            Ok(_) => {
                // Relaxed: a statistic, checked against the levels found in Drop (`&mut self`,
                // after every installer's thread synchronised with the dropping thread).
                self.levels_installed.fetch_add(1, Ordering::Relaxed);
                fresh
            }
            Err(winner) => {
                // SAFETY: `fresh` came from level::alloc::<T> above and was never published, so
                // no other reference to it exists.
                unsafe { level::free(fresh) };
                // Relaxed: a statistic only.
                self.install_races_lost.fetch_add(1, Ordering::Relaxed);
                winner
            }
        }
    }

    /// Memory counters.
    #[must_use]
    pub fn stats(&self) -> TableStats {
        // Relaxed: statistics, read without ordering against concurrent installs.
        let levels_installed = self.levels_installed.load(Ordering::Relaxed);
        TableStats {
            levels_installed,
            install_races_lost: self.install_races_lost.load(Ordering::Relaxed),
            heap_bytes: (levels_installed + 1) * LEVEL_BYTES,
        }
    }
}

impl Default for RadixTable {
    fn default() -> Self {
        RadixTable::new()
    }
}

impl Drop for RadixTable {
    fn drop(&mut self) {
        let mut freed = 0;
        for root_entry in self.root.iter() {
            // Acquire (under &mut self nothing races; Acquire keeps loom's model honest).
            let mid = root_entry.load(Ordering::Acquire);
            if mid.is_null() {
                continue;
            }
            for i1 in 0..FANOUT {
                // SAFETY: `mid` is an installed Mid level, still allocated.
                let leaf = unsafe { level::entry(mid, i1) }.load(Ordering::Acquire);
                if !leaf.is_null() {
                    // SAFETY: an installed leaf level, freed once here; `&mut self` means no
                    // `&Slot` borrowed from the table is alive.
                    unsafe { level::free(leaf) };
                    freed += 1;
                }
            }
            // SAFETY: as for the leaf: installed once, freed once, no outstanding borrows.
            unsafe { level::free(mid) };
            freed += 1;
        }
        let installed = self.levels_installed.load(Ordering::Relaxed);
        assert_eq!(
            freed, installed,
            "radix table freed a different number of levels than it installed"
        );
    }
}

impl fmt::Debug for RadixTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RadixTable")
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::slot::SlotWord;

    fn pid(raw: u64) -> Pid {
        Pid::new(raw).unwrap()
    }

    #[test]
    fn unused_ids_are_free_and_allocate_nothing() {
        let table = RadixTable::new();
        assert!(table.get(pid(12345 % (Pid::MAX.get() + 1))).is_none());
        assert_eq!(table.stats().levels_installed, 0);
    }

    #[test]
    fn a_slot_keeps_its_word_and_neighbours_stay_free() {
        let table = RadixTable::new();
        let target = pid(FANOUT as u64 + 3);
        table
            .slot(target)
            .try_replace(SlotWord::FREE, SlotWord::on_disk(77))
            .unwrap();
        assert_eq!(table.get(target).unwrap().load(), SlotWord::on_disk(77));
        assert!(table.get(pid(FANOUT as u64 + 4)).unwrap().load().is_free());
        assert_eq!(table.stats().levels_installed, 2, "one mid and one leaf");
    }

    #[test]
    fn the_largest_id_is_addressable() {
        let table = RadixTable::new();
        table
            .slot(Pid::MAX)
            .try_replace(SlotWord::FREE, SlotWord::reserved(1))
            .unwrap();
        table
            .slot(pid(0))
            .try_replace(SlotWord::FREE, SlotWord::reserved(2))
            .unwrap();
        assert_eq!(table.get(Pid::MAX).unwrap().load(), SlotWord::reserved(1));
        assert_eq!(table.get(pid(0)).unwrap().load(), SlotWord::reserved(2));
        assert_eq!(table.stats().levels_installed, 4);
    }

    #[test]
    fn sparse_ids_cost_one_leaf_each_not_the_whole_range() {
        let table = RadixTable::new();
        let stride = (FANOUT * FANOUT) as u64;
        for i in 0..8 {
            let _ = table.slot(pid(i * stride));
        }
        assert_eq!(table.stats().levels_installed, 16, "8 mids + 8 leaves");
        assert_eq!(table.stats().heap_bytes, 17 * LEVEL_BYTES);
    }

    #[test]
    fn racing_installers_agree_on_one_level() {
        let table = RadixTable::new();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let table = &table;
                s.spawn(move || {
                    for i in 0..FANOUT as u64 / 4 {
                        let id = pid(i * 4 + t);
                        table
                            .slot(id)
                            .try_replace(SlotWord::FREE, SlotWord::on_disk(id.get()))
                            .unwrap();
                    }
                });
            }
        });
        for i in 0..FANOUT as u64 {
            assert_eq!(table.get(pid(i)).unwrap().load(), SlotWord::on_disk(i));
        }
        assert_eq!(table.stats().levels_installed, 2);
    }
}
