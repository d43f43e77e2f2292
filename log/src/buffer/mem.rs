//! The bytes of one I/O buffer, written by many threads at once at disjoint offsets.
//!
//! This is the crate's one unsafe module. The invariant every caller relies on:
//! - a writer touches only `[offset, offset + len)` of a reservation it holds in the current
//!   generation of the buffer (the state word gives disjoint ranges, see `state.rs`);
//! - the sealer touches only the padding range `[frozen offset, capacity)` it owns by sealing;
//! - the installer and the I/O writer touch the buffer only while it has no writers: the
//!   installer between "written out" and `install`, the I/O writer between the hand-off and
//!   "written out";
//! - a reader (`Log::read`) copies bytes only of a buffer whose status is `HandedOff` (sealed,
//!   no writers), under the buffer's `status` lock, which keeps it from being marked written
//!   out (and so from being reinstalled) meanwhile. It never reads a buffer that is still
//!   `Filling`: the pointer it reads through may be forged or stale, so "the record is
//!   completed" is not something it may assume.

use std::cell::UnsafeCell;

/// A fixed-size byte buffer with interior mutability at byte granularity.
pub(crate) struct BufMem {
    cells: Box<[UnsafeCell<u8>]>,
}

// SAFETY: the bytes are plain data; all concurrent access follows the disjoint-range protocol
// in the module comment, enforced by the buffer state word and the status lock.
unsafe impl Sync for BufMem {}

impl std::fmt::Debug for BufMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BufMem({} bytes)", self.cells.len())
    }
}

impl BufMem {
    pub(crate) fn new(len: usize) -> Self {
        BufMem {
            cells: (0..len).map(|_| UnsafeCell::new(0)).collect(),
        }
    }

    fn range_ptr(&self, offset: usize, len: usize) -> *mut u8 {
        let end = offset.checked_add(len).expect("buffer range overflows");
        assert!(
            end <= self.cells.len(),
            "buffer range {offset}+{len} beyond {}",
            self.cells.len()
        );
        // `UnsafeCell<u8>` has the layout of `u8`, and the pointer comes from the cells, so
        // writing through it is interior mutation, not a write through a shared reference.
        UnsafeCell::raw_get(self.cells[offset..end].as_ptr())
    }

    /// Exclusive access to `[offset, offset + len)`.
    ///
    /// # Safety
    /// For the lifetime of the returned slice no other thread or reference reads or writes any
    /// byte of the range: the caller holds a reservation (or sealer padding range) covering it
    /// in the current generation, or is the installer/I/O writer of a buffer with no writers.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice_mut(&self, offset: usize, len: usize) -> &mut [u8] {
        let ptr = self.range_ptr(offset, len);
        // SAFETY: `ptr..ptr+len` is in bounds (checked above) and, per this function's contract,
        // accessed by nobody else while the slice lives.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    /// Shared access to `[offset, offset + len)`.
    ///
    /// # Safety
    /// For the lifetime of the returned slice nobody writes any byte of the range: the buffer
    /// is handed off (sealed, no writers) and kept from being reinstalled (the caller is the
    /// I/O writer before it marks the buffer free, or holds the `status` lock of a `HandedOff`
    /// buffer).
    pub(crate) unsafe fn slice(&self, offset: usize, len: usize) -> &[u8] {
        let ptr = self.range_ptr(offset, len);
        // SAFETY: in bounds (checked above); no writer for the slice's lifetime per the contract.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}
