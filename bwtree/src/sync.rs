//! The crate's sync shim. The tree's own state lives in the page cache (whose slot words loom
//! models); this crate only keeps statistics counters and the orphan list's "non-empty" hint,
//! which stay std atomics even under loom (nothing synchronizes through them, and every
//! modelled access would multiply the interleavings loom explores), and yields between
//! restarts, which must be loom's.

pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use loom::thread::yield_now;
#[cfg(not(loom))]
pub(crate) use std::thread::yield_now;
