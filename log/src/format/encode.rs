//! Encoding half of the on-disk format: writes headers into caller-provided bytes.

use super::*;

/// Writes a segment header for the segment starting at `lsn` into `out[..SEGMENT_HEADER_LEN]`.
pub(crate) fn encode_segment_header(out: &mut [u8], segment_size_shift: u32, lsn: u64, salt: u64) {
    let h = &mut out[..SEGMENT_HEADER_LEN];
    h[SEG_MAGIC_AT..SEG_MAGIC_AT + 4].copy_from_slice(&SEGMENT_MAGIC);
    h[SEG_VERSION_AT..SEG_VERSION_AT + 2].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[SEG_RESERVED16_AT..SEG_RESERVED16_AT + 2].fill(0);
    h[SEG_SHIFT_AT..SEG_SHIFT_AT + 4].copy_from_slice(&segment_size_shift.to_le_bytes());
    h[SEG_LSN_AT..SEG_LSN_AT + 8].copy_from_slice(&lsn.to_le_bytes());
    h[SEG_SALT_AT..SEG_SALT_AT + 8].copy_from_slice(&salt.to_le_bytes());
    let crc = crc32c::crc32c(&h[SEG_CRC_FROM..]);
    h[SEG_CRC_AT..SEG_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Seals the record occupying all of `rec` (header + body): writes its header with `kind`, the
/// body length `rec.len() - RECORD_HEADER_LEN`, its segment's `salt`, `lsn`, and the CRC (over
/// header and body, or the header only for padding). The body must already be in place.
pub(crate) fn encode_record_header(rec: &mut [u8], kind: RecordKind, lsn: u64, salt: u32) {
    let body_len = rec.len() - RECORD_HEADER_LEN;
    let body_len =
        u32::try_from(body_len).expect("record body length fits u32 (checked at reserve)");
    write_header_fields(rec, kind, body_len, lsn, salt);
    let crc = record_crc(kind, rec);
    rec[REC_CRC_AT..REC_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Writes just the header of a Padding record whose `body_len` bytes follow it (their content
/// is not covered by its CRC, so they need not be in `out`).
pub(crate) fn encode_padding_header(
    out: &mut [u8; RECORD_HEADER_LEN],
    body_len: u32,
    lsn: u64,
    salt: u32,
) {
    write_header_fields(out, RecordKind::Padding, body_len, lsn, salt);
    let crc = record_crc(RecordKind::Padding, out);
    out[REC_CRC_AT..REC_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Every header field but the CRC.
fn write_header_fields(rec: &mut [u8], kind: RecordKind, body_len: u32, lsn: u64, salt: u32) {
    rec[REC_KIND_AT] = kind as u8;
    rec[REC_RESERVED8_AT] = 0;
    rec[REC_MAGIC_AT..REC_MAGIC_AT + 2].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
    rec[REC_LEN_AT..REC_LEN_AT + 4].copy_from_slice(&body_len.to_le_bytes());
    rec[REC_SALT_AT..REC_SALT_AT + 4].copy_from_slice(&salt.to_le_bytes());
    rec[REC_LSN_AT..REC_LSN_AT + 8].copy_from_slice(&lsn.to_le_bytes());
}

/// The CRC a record of `kind` must carry; `rec` is header + body.
pub(crate) fn record_crc(kind: RecordKind, rec: &[u8]) -> u32 {
    match kind {
        RecordKind::Padding => crc32c::crc32c(&rec[REC_CRC_FROM..RECORD_HEADER_LEN]),
        RecordKind::Data | RecordKind::BlobPointer => crc32c::crc32c(&rec[REC_CRC_FROM..]),
    }
}

/// The inline body of a blob pointer record.
pub(crate) fn encode_blob_pointer(p: &BlobPointer) -> [u8; BLOB_POINTER_BODY_LEN] {
    let mut b = [0u8; BLOB_POINTER_BODY_LEN];
    b[0..8].copy_from_slice(&p.id.to_le_bytes());
    b[8..16].copy_from_slice(&p.len.to_le_bytes());
    b[16..20].copy_from_slice(&p.crc.to_le_bytes());
    b
}

/// A whole blob file (header + body) for blob `id`. Returns the bytes and the CRC the pointer
/// record carries.
pub(crate) fn encode_blob_file(id: u64, body: &[u8]) -> (Vec<u8>, u32) {
    let mut out = vec![0u8; BLOB_HEADER_LEN + body.len()];
    out[..4].copy_from_slice(&BLOB_MAGIC);
    out[BLOB_VERSION_AT..BLOB_VERSION_AT + 2].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[BLOB_RESERVED_AT..BLOB_ID_AT].fill(0);
    out[BLOB_ID_AT..BLOB_ID_AT + 8].copy_from_slice(&id.to_le_bytes());
    out[BLOB_LEN_AT..BLOB_LEN_AT + 8].copy_from_slice(&(body.len() as u64).to_le_bytes());
    out[BLOB_HEADER_LEN..].copy_from_slice(body);
    let crc = crc32c::crc32c(&out[BLOB_CRC_FROM..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    (out, crc)
}
