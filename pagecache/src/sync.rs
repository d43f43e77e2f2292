//! The crate's sync shim: std atomics normally, loom's under `cfg(loom)`.
//!
//! The statistics counters (`stats.rs`) and a node's CLOCK heat are std atomics even under
//! loom: they are Relaxed hints nothing synchronizes through, and modelling every update and
//! read of them multiplied the interleavings a model of a whole tree explores without
//! exploring anything of the protocol.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

// Outside the modelled protocols; std even under loom (see the module comment).
pub(crate) use std::sync::atomic::{AtomicU64 as StdAtomicU64, AtomicU8 as StdAtomicU8};
