//! The one place this crate takes its atomics from: std normally, loom's modelled types under
//! `cfg(loom)`. Nothing else in the crate imports `std::sync::atomic` directly.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize};
#[cfg(loom)]
pub(crate) use loom::sync::Arc;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::Arc;

pub(crate) use std::sync::atomic::Ordering;
