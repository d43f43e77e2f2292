//! The one place this crate takes its concurrency primitives from: std normally, loom's modelled
//! types under `cfg(loom)`. Nothing else in the crate imports `std::sync::atomic` directly.
//!
//! Modelled under loom: the buffer state word and the per-incarnation fields published through
//! it (the protocols the loom models in `buffer::state` and `buffer` explore), with `fence`.
//! Everything around file I/O (mutexes, condvars, threads, counters, the poison flag, the
//! current-buffer sequence) is std in every build: loom does not model I/O, and the models never
//! touch it.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64};

// Outside the modelled protocols; std even under loom (see the module comment).
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64 as StdAtomicU64};

pub(crate) use std::sync::atomic::Ordering;
