//! # radix: the mapping table and page-id allocator under bwtree's page cache
//!
//! The Bw-tree names pages by logical id ([`Pid`]) and finds each page's newest state through one
//! atomic word per id: install a new delta = CAS that word. This crate provides
//!
//! - [`RadixTable`]: a dense, grow-only, three-level radix table of [`Slot`]s, levels installed
//!   lazily by CAS. Lookups are a fixed number of dependent loads; no locks, no hashing; unused
//!   id ranges cost nothing. 2^42 ids. [`RadixTable::present`] walks the installed slots of
//!   an id range, skipping absent subtrees, so a walk costs what the table holds.
//! - [`SlotWord`]: the typed snapshot of a slot's value: `Free`, `InMemory` pointer, `OnDisk`
//!   location or `Reserved` (tag bits documented in [`slot`](crate::slot)).
//! - [`PidAllocator`]: fresh ids from a counter; freed ids return for reuse only from an
//!   epoch-deferred closure, so no thread pinned at the time of the free sees the id reused.
//!   Resumed at startup from the high-water mark and the live ids, it keeps the free ids below
//!   the mark as a few ranges (the gaps between live ids), never one entry per id.
//!
//! The table never dereferences slot pointers: reclaiming what they point to is the caller's job,
//! through crossbeam-epoch. No I/O happens here.
//!
//! Verification: unit tests in each module, loom models under `cfg(loom)` (`src/loom_models.rs`),
//! a multi-threaded stress test (`tests/stress.rs`), and Miri (see `sanitizers.sh`).

mod allocator;
mod debug_delay;
mod free_ranges;
mod level;
mod pid;
pub mod slot;
mod stack;
mod sync;
mod table;

#[cfg(all(test, loom))]
mod loom_models;

pub use allocator::{AllocatorStats, FreeIds, PidAllocator};
pub use pid::Pid;
pub use slot::{Slot, SlotState, SlotWord, MAX_PAYLOAD};
pub use table::{Present, RadixTable, TableStats};
