//! Raw levels of the radix table: heap arrays of exactly [`FANOUT`] entries, addressed by a thin
//! pointer to their first entry so that a parent entry is one `AtomicPtr` and a lookup is one
//! dependent load per level. All the table's `unsafe` lives here.

use std::ptr;

use crate::pid::FANOUT;

/// Allocates a level of `FANOUT` entries made by `make` and leaks it as a thin pointer.
/// Free it with [`free`].
pub(crate) fn alloc<T>(make: impl FnMut() -> T) -> *mut T {
    let entries: Box<[T]> = std::iter::repeat_with(make).take(FANOUT).collect();
    assert_eq!(entries.len(), FANOUT);
    Box::into_raw(entries).cast::<T>()
}

/// Frees a level made by [`alloc`], dropping its entries.
///
/// # Safety
/// `level` came from [`alloc`] with the same `T`, has not been freed, and no reference into it
/// outlives this call.
pub(crate) unsafe fn free<T>(level: *mut T) {
    let entries = ptr::slice_from_raw_parts_mut(level, FANOUT);
    // SAFETY: per the contract, `entries` is exactly the Box<[T]> leaked by `alloc` (same element
    // type, length FANOUT), freed only once, with no outstanding references.
    drop(unsafe { Box::from_raw(entries) });
}

/// The entry at `index` of a level.
///
/// # Safety
/// `level` came from [`alloc`] with the same `T` and stays allocated for `'a`.
pub(crate) unsafe fn entry<'a, T>(level: *mut T, index: usize) -> &'a T {
    assert!(index < FANOUT, "level index {index} out of range");
    // SAFETY: `level` points at FANOUT entries of one allocation (contract) and `index < FANOUT`
    // was just checked, so the offset stays inside that allocation.
    let at = unsafe { level.add(index) };
    // SAFETY: `at` points at an initialised entry that lives for 'a (contract). Levels are only
    // ever accessed through shared references (their entries are atomics), so no `&mut` aliases.
    unsafe { &*at }
}
