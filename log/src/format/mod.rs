//! The on-disk format: one source of truth for every offset, size and magic number. The byte
//! diagrams live in `docs/LOG_FORMAT.md`; the constants here are what the code uses, and the
//! compile-time checks below keep the two halves (`encode`, `decode`) consistent.
//!
//! All integers are little-endian. Checksums are CRC32C (Castagnoli).
//!
//! Format versions:
//! - 1: first version (segment header 32 B, record header 24 B, blob header 32 B).

pub(crate) mod decode;
pub(crate) mod encode;

/// Format version written into every segment and blob header. Bump with a comment above on any
/// change of layout or meaning.
pub const FORMAT_VERSION: u16 = 1;

/// Segment header: `magic | crc | version | reserved | segment_size_shift | segment_lsn | salt`.
pub const SEGMENT_HEADER_LEN: usize = 32;
pub(crate) const SEGMENT_MAGIC: [u8; 4] = *b"BWLS";
pub(crate) const SEG_MAGIC_AT: usize = 0;
pub(crate) const SEG_CRC_AT: usize = 4;
/// The CRC covers the header from here to its end.
pub(crate) const SEG_CRC_FROM: usize = 8;
pub(crate) const SEG_VERSION_AT: usize = 8;
pub(crate) const SEG_RESERVED16_AT: usize = 10;
pub(crate) const SEG_SHIFT_AT: usize = 12;
pub(crate) const SEG_LSN_AT: usize = 16;
/// A random value chosen each time a slot starts a segment. Every record written in that
/// incarnation carries its low 32 bits, so records left in a slot by an earlier incarnation
/// never validate under a new header, even one for the same LSN range (which recovery
/// re-issues after cutting a torn tail).
pub(crate) const SEG_SALT_AT: usize = 24;

/// Record header: `crc | kind | 0 | magic | body_len | salt | lsn`, then the body.
pub const RECORD_HEADER_LEN: usize = 24;
pub(crate) const RECORD_MAGIC: u16 = 0xB7E1;
pub(crate) const REC_CRC_AT: usize = 0;
/// The CRC covers the header from here to its end, then (except for padding) the body.
pub(crate) const REC_CRC_FROM: usize = 4;
pub(crate) const REC_KIND_AT: usize = 4;
pub(crate) const REC_RESERVED8_AT: usize = 5;
pub(crate) const REC_MAGIC_AT: usize = 6;
pub(crate) const REC_LEN_AT: usize = 8;
/// Low 32 bits of the segment header's salt.
pub(crate) const REC_SALT_AT: usize = 12;
pub(crate) const REC_LSN_AT: usize = 16;

/// Body of a [`RecordKind::BlobPointer`] record: `blob_id u64 | blob_len u64 | blob_crc u32`.
pub(crate) const BLOB_POINTER_BODY_LEN: usize = 20;

/// Blob file header: `magic | crc | version | 0 (6 B) | blob_id | body_len`, then the body.
/// The CRC covers header bytes 8..32 and the body.
pub const BLOB_HEADER_LEN: usize = 32;
pub(crate) const BLOB_MAGIC: [u8; 4] = *b"BWBL";
pub(crate) const BLOB_CRC_FROM: usize = 8;
pub(crate) const BLOB_VERSION_AT: usize = 8;
pub(crate) const BLOB_RESERVED_AT: usize = 10;
pub(crate) const BLOB_ID_AT: usize = 16;
pub(crate) const BLOB_LEN_AT: usize = 24;

const _: () = assert!(SEG_SALT_AT + 8 == SEGMENT_HEADER_LEN);
const _: () = assert!(SEG_LSN_AT + 8 == SEG_SALT_AT);
const _: () = assert!(SEG_SHIFT_AT + 4 == SEG_LSN_AT);
const _: () = assert!(REC_LSN_AT + 8 == RECORD_HEADER_LEN);
const _: () = assert!(REC_SALT_AT + 4 == REC_LSN_AT);
const _: () = assert!(REC_LEN_AT + 4 == REC_SALT_AT);
const _: () = assert!(BLOB_LEN_AT + 8 == BLOB_HEADER_LEN);
const _: () = assert!(BLOB_ID_AT + 8 == BLOB_LEN_AT);

/// What a record is. Zero is deliberately not a kind, so zeroed bytes never parse.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum RecordKind {
    /// A completed record whose body the upper layer wrote.
    Data = 1,
    /// Skipped space: an aborted reservation or the unused end of a segment. Its CRC covers
    /// only the header (the body is whatever the aborted holder left).
    Padding = 2,
    /// A completed record whose body lives in a blob file; the inline body says which.
    BlobPointer = 3,
}

impl RecordKind {
    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(RecordKind::Data),
            2 => Some(RecordKind::Padding),
            3 => Some(RecordKind::BlobPointer),
            _ => None,
        }
    }
}

/// A decoded record header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct RecordHeader {
    pub kind: RecordKind,
    pub body_len: u32,
    pub lsn: u64,
    pub crc: u32,
}

/// The body of a blob pointer record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct BlobPointer {
    pub id: u64,
    pub len: u64,
    pub crc: u32,
}

#[cfg(test)]
mod tests {
    use super::decode::*;
    use super::encode::*;
    use super::*;

    #[test]
    fn segment_header_roundtrip_and_zero_rejection() {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        assert!(decode_segment_header(&b).is_err(), "zeroes must not parse");
        encode_segment_header(&mut b, 13, 8192 * 5, 0xDEAD_BEEF_0042);
        let h = decode_segment_header(&b).unwrap();
        assert_eq!(h.segment_size_shift, 13);
        assert_eq!(h.lsn, 8192 * 5);
        assert_eq!(h.salt, 0xDEAD_BEEF_0042);
        for i in 0..SEGMENT_HEADER_LEN {
            let mut c = b;
            c[i] ^= 0x10;
            assert!(
                decode_segment_header(&c).is_err(),
                "flip at {i} must not parse"
            );
        }
    }

    #[test]
    fn record_roundtrip_and_zero_rejection() {
        let mut rec = vec![0u8; RECORD_HEADER_LEN + 5];
        assert!(decode_record_header(&rec, 0, Some(0)).is_err());
        rec[RECORD_HEADER_LEN..].copy_from_slice(b"hello");
        encode_record_header(&mut rec, RecordKind::Data, 777, 9);
        let h = decode_record_header(&rec, 777, Some(9)).unwrap();
        assert!(
            decode_record_header(&rec, 777, Some(8)).is_err(),
            "other salt"
        );
        assert!(decode_record_header(&rec, 777, None).is_ok());
        assert_eq!(h.kind, RecordKind::Data);
        assert_eq!(h.body_len, 5);
        assert!(check_record_crc(&h, &rec).is_ok());
        assert!(
            decode_record_header(&rec, 778, Some(9)).is_err(),
            "wrong LSN must not parse"
        );
        for i in 0..rec.len() {
            let mut c = rec.clone();
            c[i] ^= 1;
            let ok = decode_record_header(&c, 777, Some(9)).and_then(|h| check_record_crc(&h, &c));
            assert!(ok.is_err(), "flip at {i} must not validate");
        }
    }

    #[test]
    fn padding_header_alone_equals_a_padding_record_header() {
        let mut rec = vec![0u8; RECORD_HEADER_LEN + 100];
        encode_record_header(&mut rec, RecordKind::Padding, 4096 + 500, 0x1234);
        let mut alone = [0u8; RECORD_HEADER_LEN];
        encode_padding_header(&mut alone, 100, 4096 + 500, 0x1234);
        assert_eq!(&rec[..RECORD_HEADER_LEN], &alone);
    }

    #[test]
    fn padding_crc_ignores_body() {
        let mut rec = vec![0xAAu8; RECORD_HEADER_LEN + 40];
        encode_record_header(&mut rec, RecordKind::Padding, 64, 3);
        rec[RECORD_HEADER_LEN + 3] = 0;
        let h = decode_record_header(&rec, 64, Some(3)).unwrap();
        assert_eq!(h.kind, RecordKind::Padding);
        assert!(check_record_crc(&h, &rec).is_ok());
    }
}
