//! The one place this crate takes its concurrency primitives from: std normally, loom's modelled
//! types under `cfg(loom)`. Nothing else in the crate imports `std::sync::atomic` directly.
//!
//! Modelled under loom: the buffer state word and the per-incarnation fields published through
//! it (the protocols the loom models in `buffer::state` and `buffer` explore), with `fence`;
//! the current-buffer sequence; the log's mutexes and condvars (so a model explores the
//! rotation, hand-off, stall and durability waits of a whole `Log` on in-memory storage:
//! `shared::loom_models`); and the yields of the spin loops that wait for another thread (a
//! std yield would spin forever under loom's scheduler).
//!
//! std in every build: counters, statistics, salts and the poison fast-path flag (hints read
//! without ordering consequences in the models, or read again under a lock), and the storage
//! implementations' own locks (held only inside one storage call).
//!
//! Under loom a `Condvar::wait_timeout` never times out: code that relies on a timeout to make
//! progress (the group commit's gathering) skips that wait under `cfg(loom)`.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread::yield_now;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread::yield_now;

// Outside the modelled protocols; std even under loom (see the module comment).
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64 as StdAtomicU64};

pub(crate) use std::sync::atomic::Ordering;
