//! Identifier newtypes: logical positions ([`Lsn`]), physical locations ([`DiskPtr`]) and
//! [`SegmentId`]s. Never bare integers across an API.

use std::fmt;

use crate::error::{Error, Result};
use crate::format::{BLOB_POINTER_BODY_LEN, RECORD_HEADER_LEN};

/// No LSN the log hands out reaches this (it would take 4 EiB of records). LSNs read from disk
/// (segment headers) or given as input (the recovery start) above it are rejected, so adding a
/// segment size (at most 1 GiB) to any accepted LSN cannot overflow.
pub(crate) const MAX_LSN: u64 = 1 << 62;

/// The smallest segment size a log can have (`Config::segment_size_bytes`).
pub(crate) const MIN_SEGMENT_BYTES: u64 = 4 << 10;
/// The largest record length (header + inline body) any buffer can hold.
const MAX_BUFFER_RECORD_BYTES: u64 = 1 << 30;

/// A logical byte position in the endless log. Record LSNs strictly increase in the order the
/// records were reserved; segment `k` of the LSN space covers `[k * segment_size, (k + 1) *
/// segment_size)` including its header bytes, so LSN and in-segment offset agree modulo the
/// segment size.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Debug for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lsn({})", self.0)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The index of a fixed-size segment slot in the data file (`file offset / segment_size`).
/// Slots are reused for new LSN ranges once drained.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SegmentId(pub u64);

/// The id of an oversized record's blob file (`blobs/<id as 16 hex digits>`). Ids start at 1.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct BlobId(pub u64);

/// Where a completed record lives: the LSN and file offset of its (inline) record, the inline
/// record's total length, and for oversized records the blob holding the body.
///
/// The LSN is redundant with the offset on purpose: [`Log::read`](crate::Log::read) checks that
/// the record header at `offset` still carries this LSN, so a pointer into a reused segment
/// fails loudly instead of returning someone else's bytes. The pointer also carries the salt
/// of the segment incarnation the record was written in (the low 32 bits every record header
/// of it carries): LSNs can be handed out again after recovery cut a torn tail (the cut
/// records were never durable, but a pointer to one may survive in memory or in a checkpoint
/// written without a flush), and the salt tells the new record at that LSN from the lost one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DiskPtr {
    pub(crate) lsn: Lsn,
    pub(crate) offset: u64,
    pub(crate) len: u32,
    /// Low 32 bits of the segment incarnation's salt.
    pub(crate) salt: u32,
    /// 0 = inline record; otherwise the blob id.
    pub(crate) blob: u64,
}

impl DiskPtr {
    /// Bytes of [`DiskPtr::to_bytes`]: `lsn u64 | file offset u64 | record length u32 |
    /// segment salt u32 | blob id u64` (0 = none), little-endian.
    pub const ENCODED_LEN: usize = 32;

    /// A fixed-size little-endian encoding, for the upper layer's page table on disk.
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let mut b = [0u8; Self::ENCODED_LEN];
        b[0..8].copy_from_slice(&self.lsn.0.to_le_bytes());
        b[8..16].copy_from_slice(&self.offset.to_le_bytes());
        b[16..20].copy_from_slice(&self.len.to_le_bytes());
        b[20..24].copy_from_slice(&self.salt.to_le_bytes());
        b[24..32].copy_from_slice(&self.blob.to_le_bytes());
        b
    }

    /// Decodes [`DiskPtr::to_bytes`] (e.g. read back from the upper layer's checkpoint). This
    /// and the log's own answers (`complete`, recovery) are the only ways to get a pointer.
    ///
    /// Rejects, with [`Error::StalePointer`], bytes no pointer of any log encodes to: a record
    /// length below a record header or above the largest buffer, LSN or offset ranges that
    /// overflow, LSN and offset that disagree within a segment, a blob pointer record of the
    /// wrong length. A well-formed pointer can still be stale or forged; [`Log::read`] checks
    /// the record it names (and never touches memory a writer may be filling).
    ///
    /// [`Log::read`]: crate::Log::read
    pub fn from_bytes(b: &[u8; Self::ENCODED_LEN]) -> Result<Self> {
        let u64_at = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(x)
        };
        let u32_at = |at: usize| {
            let mut x = [0u8; 4];
            x.copy_from_slice(&b[at..at + 4]);
            u32::from_le_bytes(x)
        };
        let ptr = DiskPtr {
            lsn: Lsn(u64_at(0)),
            offset: u64_at(8),
            len: u32_at(16),
            salt: u32_at(20),
            blob: u64_at(24),
        };
        ptr.check_shape().map_err(|why| {
            Error::StalePointer(format!("{ptr:?} is not a pointer of this log: {why}"))
        })?;
        Ok(ptr)
    }

    /// The configuration-independent facts every pointer the log hands out satisfies.
    pub(crate) fn check_shape(&self) -> std::result::Result<(), &'static str> {
        let len = u64::from(self.len);
        if len < RECORD_HEADER_LEN as u64 {
            return Err("record length below a record header");
        }
        if len > MAX_BUFFER_RECORD_BYTES {
            return Err("record length above the largest buffer");
        }
        if self.lsn.0.checked_add(len).is_none() || self.offset.checked_add(len).is_none() {
            return Err("record range overflows");
        }
        // Segments are powers of two of at least this size, and LSN and file offset agree
        // modulo the segment size.
        if self.lsn.0 % MIN_SEGMENT_BYTES != self.offset % MIN_SEGMENT_BYTES {
            return Err("LSN and file offset disagree within a segment");
        }
        if self.blob != 0 && len != (RECORD_HEADER_LEN + BLOB_POINTER_BODY_LEN) as u64 {
            return Err("blob pointer record of the wrong length");
        }
        Ok(())
    }

    /// The record's LSN.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// The byte offset of the record header in the data file.
    pub fn file_offset(&self) -> u64 {
        self.offset
    }

    /// Bytes the record occupies in the data file (header + inline body): what
    /// [`Log::mark_dead`](crate::Log::mark_dead) subtracts from its segment's live bytes.
    pub fn record_len(&self) -> u32 {
        self.len
    }

    /// The blob holding the body, for records larger than an I/O buffer.
    pub fn blob_id(&self) -> Option<BlobId> {
        (self.blob != 0).then_some(BlobId(self.blob))
    }

    /// The segment slot holding the record.
    pub fn segment(&self, segment_size_bytes: u64) -> SegmentId {
        SegmentId(self.offset / segment_size_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ptr(lsn: u64, offset: u64, len: u32, blob: u64) -> DiskPtr {
        DiskPtr {
            lsn: Lsn(lsn),
            offset,
            len,
            salt: 0xA5C3_0F1E,
            blob,
        }
    }

    #[test]
    fn disk_ptr_bytes_roundtrip() {
        let p = ptr(123_456 + (7 << 20), 123_456, 44, 9);
        assert_eq!(DiskPtr::from_bytes(&p.to_bytes()).unwrap(), p);
        let q = ptr(4096 + 32, 32, 30, 0);
        assert_eq!(DiskPtr::from_bytes(&q.to_bytes()).unwrap(), q);
        assert_eq!(q.blob_id(), None);
    }

    /// Decoding used to accept anything, and `Log::read` then added `lsn + len` unchecked
    /// (an overflow panic in debug builds, a wrapped range in release).
    #[test]
    fn malformed_pointers_do_not_decode() {
        let cases = [
            (ptr(u64::MAX - 10, u64::MAX - 10, 100, 0), "overflows"),
            (ptr(64, 64, 23, 0), "below a record header"),
            (ptr(64, 64, 0, 0), "below a record header"),
            (ptr(64, 64, (1 << 30) + 1, 0), "above the largest buffer"),
            (ptr(64, 65, 30, 0), "disagree"),
            (
                ptr(64, 64, 30, 5),
                "blob pointer record of the wrong length",
            ),
        ];
        for (p, why) in cases {
            match DiskPtr::from_bytes(&p.to_bytes()) {
                Err(Error::StalePointer(msg)) => assert!(msg.contains(why), "{p:?}: {msg}"),
                other => panic!("{p:?} decoded: {other:?}"),
            }
        }
    }
}
