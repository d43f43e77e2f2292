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
//!
//! # Walking the table
//!
//! A walk over every page (checkpoint, cleaning, eviction, teardown) must cost what the table
//! holds, not what the id space spans: a database reopened with a high-water mark near
//! [`Pid::MAX`] and a handful of pages would otherwise loop over 2^42 ids.
//! [`RadixTable::present`] visits exactly the ids of a range whose leaf level is installed
//! (the ids for which [`RadixTable::get`] returns `Some`), skipping each null root or mid entry
//! in one step, so it costs at most `FANOUT` entry loads per root entry plus one step per
//! installed slot. It takes no lock: a level installed concurrently may or may not be seen,
//! but a level installed before the walk started always is (grow-only, Acquire loads).

use std::fmt;
use std::ops::Range;
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
    /// Slots in installed leaf levels: the most ids a walk with [`RadixTable::present`] can
    /// visit. Every one costs its 8 bytes whether it holds a page or not.
    pub slots_installed: u64,
    /// Levels allocated by a racer that lost the installation CAS and freed again.
    pub install_races_lost: u64,
    /// Heap bytes held by the table's levels, root included.
    pub heap_bytes: usize,
}

/// The mapping table. `Send + Sync`; every method takes `&self`.
pub struct RadixTable {
    root: Box<[AtomicPtr<Mid>]>,
    levels_installed: AtomicUsize,
    /// The leaf levels among `levels_installed`.
    leaves_installed: AtomicUsize,
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
            leaves_installed: AtomicUsize::new(0),
            install_races_lost: AtomicU64::new(0),
        }
    }

    /// The slot of `pid`, installing the levels above it if this is the first use of its range.
    #[must_use]
    pub fn slot(&self, pid: Pid) -> &Slot {
        let [i0, i1, i2] = pid.level_indices();
        let mid = self.child_or_install(&self.root[i0], || AtomicPtr::new(ptr::null_mut()), None);
        // SAFETY: `mid` is a level of Mid entries installed in this table; installed levels are
        // freed only in Drop, which needs `&mut self`, so it outlives the returned borrow of self.
        let leaf_entry = unsafe { level::entry(mid, i1) };
        let leaf = self.child_or_install(leaf_entry, Slot::free, Some(&self.leaves_installed));
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

    /// The first id at or after `from` whose leaf level is installed, with its slot; `None` if
    /// there is none up to [`Pid::MAX`]. Skips a whole null subtree per step (module docs).
    #[must_use]
    pub fn next_present(&self, from: u64) -> Option<(Pid, &Slot)> {
        let [first_i0, mut i1, mut i2] = Pid::new(from)?.level_indices();
        for i0 in first_i0..FANOUT {
            // Acquire: pairs with the Release of the installing CAS (see module docs).
            let mid = self.root[i0].load(Ordering::Acquire);
            if !mid.is_null() {
                for j1 in i1..FANOUT {
                    // SAFETY: installed levels live until Drop (`&mut self`), beyond the
                    // borrow of self.
                    let leaf = unsafe { level::entry(mid, j1) }.load(Ordering::Acquire);
                    if !leaf.is_null() {
                        let pid = Pid::from_level_indices([i0, j1, i2]);
                        // SAFETY: as above, for the leaf level.
                        return Some((pid, unsafe { level::entry(leaf, i2) }));
                    }
                    // The next leaf starts at its first slot.
                    i2 = 0;
                }
            }
            // The next mid starts at its first leaf.
            (i1, i2) = (0, 0);
        }
        None
    }

    /// Every id in `range` whose leaf level is installed, ascending, with its slot: the ids
    /// for which [`Self::get`] is `Some`, found without probing the absent ones (module docs).
    /// `Free` slots of installed leaves are included; the caller filters by state.
    #[must_use]
    pub fn present(&self, range: Range<u64>) -> Present<'_> {
        Present {
            table: self,
            next: range.start,
            end: range.end,
        }
    }

    /// The child level behind `entry`, installed with `make` if absent. A winning install
    /// also bumps `kind_count` (the leaf count) when given.
    fn child_or_install<T>(
        &self,
        entry: &AtomicPtr<T>,
        make: impl FnMut() -> T,
        kind_count: Option<&AtomicUsize>,
    ) -> *mut T {
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
                if let Some(count) = kind_count {
                    // Relaxed: as above.
                    count.fetch_add(1, Ordering::Relaxed);
                }
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
        let leaves = self.leaves_installed.load(Ordering::Relaxed) as u64;
        TableStats {
            levels_installed,
            slots_installed: leaves * FANOUT as u64,
            install_races_lost: self.install_races_lost.load(Ordering::Relaxed),
            heap_bytes: (levels_installed + 1) * LEVEL_BYTES,
        }
    }
}

/// The iterator of [`RadixTable::present`].
#[derive(Debug)]
pub struct Present<'t> {
    table: &'t RadixTable,
    /// The next id to look at.
    next: u64,
    end: u64,
}

impl<'t> Iterator for Present<'t> {
    type Item = (Pid, &'t Slot);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let Some((pid, slot)) = self.table.next_present(self.next) else {
            self.next = self.end;
            return None;
        };
        if pid.get() >= self.end {
            self.next = self.end;
            return None;
        }
        self.next = pid.get() + 1;
        Some((pid, slot))
    }
}

impl Default for RadixTable {
    fn default() -> Self {
        RadixTable::new()
    }
}

impl Drop for RadixTable {
    fn drop(&mut self) {
        let (mut freed, mut leaves) = (0, 0);
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
                    leaves += 1;
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
        assert_eq!(
            leaves,
            self.leaves_installed.load(Ordering::Relaxed),
            "radix table freed a different number of leaf levels than it installed"
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

    fn present_ids(table: &RadixTable, range: Range<u64>) -> Vec<u64> {
        table.present(range).map(|(p, _)| p.get()).collect()
    }

    #[test]
    fn present_skips_absent_subtrees_and_matches_get() {
        let table = RadixTable::new();
        assert_eq!(table.next_present(0).map(|(p, _)| p), None);
        let fan = FANOUT as u64;
        // One leaf under root entry 0 (its second leaf), one leaf at the very top.
        let low = pid(fan + 5);
        let _ = table.slot(low);
        let _ = table.slot(Pid::MAX);
        let top_leaf = Pid::MAX.get() + 1 - fan;
        assert_eq!(table.next_present(0).unwrap().0, pid(fan));
        assert_eq!(table.next_present(fan + 7).unwrap().0, pid(fan + 7));
        assert_eq!(table.next_present(2 * fan).unwrap().0, pid(top_leaf));
        assert_eq!(table.next_present(Pid::MAX.get()).unwrap().0, Pid::MAX);
        assert!(table.next_present(Pid::MAX.get() + 1).is_none());
        assert!(table.next_present(u64::MAX).is_none());
        let all = present_ids(&table, 0..Pid::MAX.get() + 1);
        let expected: Vec<u64> = (fan..2 * fan).chain(top_leaf..=Pid::MAX.get()).collect();
        assert_eq!(all, expected);
        assert_eq!(all.len() as u64, table.stats().slots_installed);
        // Ranges cut inside leaves, empty and reversed ranges.
        assert_eq!(
            present_ids(&table, fan + 3..fan + 6),
            vec![fan + 3, fan + 4, fan + 5]
        );
        assert!(present_ids(&table, 0..fan).is_empty());
        assert!(present_ids(&table, 2 * fan..top_leaf).is_empty());
        assert!(present_ids(&table, 9..9).is_empty());
        let (hi, lo) = (fan + 10, fan + 3);
        assert!(
            present_ids(&table, hi..lo).is_empty(),
            "a reversed range is empty"
        );
        let (p, slot) = table.present(low.get()..low.get() + 1).next().unwrap();
        assert_eq!(p, low);
        assert!(std::ptr::eq(slot, table.get(low).unwrap()));
    }

    /// The walk visits exactly the slots of the installed leaves, for random sparse tables and
    /// ranges spanning several mid levels (seeded; the seed is printed on failure).
    #[test]
    fn present_visits_exactly_the_installed_leaves_over_random_tables() {
        use rand::{Rng, SeedableRng};
        let seed = std::env::var("RADIX_PRESENT_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(rand::random::<u64>);
        println!("RADIX_PRESENT_SEED={seed}");
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let fan = FANOUT as u64;
        for round in 0..20 {
            let table = RadixTable::new();
            let window = (8 * fan * fan).min(Pid::MAX.get() + 1);
            let base = rng.random_range(0..=Pid::MAX.get() + 1 - window);
            let mut leaves = std::collections::BTreeSet::new();
            for _ in 0..rng.random_range(0..6) {
                let id = base + rng.random_range(0..window);
                let _ = table.slot(pid(id));
                leaves.insert(id / fan * fan);
            }
            let a = base + rng.random_range(0..window);
            let b = base + rng.random_range(0..=window);
            let expected: Vec<u64> = leaves
                .iter()
                .flat_map(|&start| start.max(a)..(start + fan).min(b))
                .collect();
            let got = present_ids(&table, a..b);
            assert_eq!(got, expected, "seed {seed} round {round}: range {a}..{b}");
            assert!(
                got.iter().all(|&r| table.get(pid(r)).is_some()),
                "seed {seed}"
            );
        }
    }
}
