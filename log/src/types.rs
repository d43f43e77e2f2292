//! Identifier newtypes: logical positions ([`Lsn`]), physical locations ([`DiskPtr`]) and
//! [`SegmentId`]s. Never bare integers across an API.

use std::fmt;

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
/// fails loudly instead of returning someone else's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DiskPtr {
    pub(crate) lsn: Lsn,
    pub(crate) offset: u64,
    pub(crate) len: u32,
    /// 0 = inline record; otherwise the blob id.
    pub(crate) blob: u64,
}

impl DiskPtr {
    /// Bytes of [`DiskPtr::to_bytes`]: `lsn u64 | file offset u64 | record length u32 |
    /// blob id u64` (0 = none), little-endian.
    pub const ENCODED_LEN: usize = 28;

    /// Rebuilds a pointer from its parts (e.g. read back from the upper layer's checkpoint).
    /// Nothing is checked here; [`Log::read`](crate::Log::read) checks the record it names.
    pub fn from_parts(lsn: Lsn, file_offset: u64, record_len: u32, blob: Option<BlobId>) -> Self {
        DiskPtr {
            lsn,
            offset: file_offset,
            len: record_len,
            blob: blob.map_or(0, |b| b.0),
        }
    }

    /// A fixed-size little-endian encoding, for the upper layer's page table on disk.
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let mut b = [0u8; Self::ENCODED_LEN];
        b[0..8].copy_from_slice(&self.lsn.0.to_le_bytes());
        b[8..16].copy_from_slice(&self.offset.to_le_bytes());
        b[16..20].copy_from_slice(&self.len.to_le_bytes());
        b[20..28].copy_from_slice(&self.blob.to_le_bytes());
        b
    }

    /// Decodes [`DiskPtr::to_bytes`].
    pub fn from_bytes(b: &[u8; Self::ENCODED_LEN]) -> Self {
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        DiskPtr {
            lsn: Lsn(u64_at(0)),
            offset: u64_at(8),
            len: u32::from_le_bytes(b[16..20].try_into().expect("4 bytes")),
            blob: u64_at(20),
        }
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

    #[test]
    fn disk_ptr_bytes_roundtrip() {
        let p = DiskPtr::from_parts(Lsn(123_456), 7 << 20, 4242, Some(BlobId(9)));
        assert_eq!(DiskPtr::from_bytes(&p.to_bytes()), p);
        let q = DiskPtr::from_parts(Lsn(1), 2, 3, None);
        assert_eq!(DiskPtr::from_bytes(&q.to_bytes()), q);
        assert_eq!(q.blob_id(), None);
    }
}
