//! Locating records by file position: for an upper layer that keeps only `(offset, length)`
//! of a record (an evicted page in one 62-bit word), the log rebuilds the full [`DiskPtr`]
//! from the slot's current segment. A position in a slot that moved on to another segment
//! gives a pointer whose LSN the record there does not carry, so reading it fails as
//! [`Error::StalePointer`](crate::Error::StalePointer).

use crate::error::{Error, Result};
use crate::log::Log;
use crate::reservation::Reservation;
use crate::shared::lock;
use crate::types::{DiskPtr, Lsn, SegmentId};

impl Log {
    /// The pointer to the inline record of `record_len` bytes at `file_offset`, as the slot
    /// holding it is now. Errors if the slot is free. The record itself is not read: use
    /// [`Log::read`] (which checks it) or [`Log::read_at`].
    pub fn pointer_at(&self, file_offset: u64, record_len: u32) -> Result<DiskPtr> {
        let seg = self.config().segment_size_bytes;
        let id = SegmentId(file_offset / seg);
        let (seg_lsn, salt) = lock(&self.shared().segments)
            .segment_lsn(id)
            .ok_or_else(|| {
                Error::StalePointer(format!(
                    "offset {file_offset}: segment slot {id:?} holds no segment"
                ))
            })?;
        Ok(DiskPtr {
            lsn: Lsn(seg_lsn + file_offset % seg),
            offset: file_offset,
            len: record_len,
            salt,
            blob: 0,
        })
    }

    /// Reads the record at `file_offset` (see [`Log::pointer_at`]); returns its pointer and
    /// body.
    pub fn read_at(&self, file_offset: u64, record_len: u32) -> Result<(DiskPtr, Vec<u8>)> {
        let ptr = self.pointer_at(file_offset, record_len)?;
        let body = self.read(ptr)?;
        Ok((ptr, body))
    }
}

impl Reservation<'_> {
    /// Where the record will be once completed, known at reservation time for records stored
    /// inline (`None` for oversized records, which get their place at `complete`). Lets an
    /// upper layer publish the location before completing, and abort if publishing fails.
    pub fn disk_ptr(&self) -> Option<DiskPtr> {
        self.inline_slot().map(|s| DiskPtr {
            lsn: Lsn(s.lsn),
            offset: s.file_offset,
            len: s.len,
            salt: s.salt,
            blob: 0,
        })
    }
}
