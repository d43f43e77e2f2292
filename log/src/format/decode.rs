//! Decoding half of the on-disk format: validates before it trusts. Every function checks
//! magic, version, reserved bits, lengths against the bytes actually present, and CRCs; a
//! failure is an [`Invalid`] naming the broken fact (recovery turns it into "end of log" or a
//! typed corruption error, never a panic).

use super::*;

/// Why bytes did not decode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Invalid(pub &'static str);

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A decoded segment header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct SegmentHeader {
    pub segment_size_shift: u32,
    pub lsn: u64,
    pub salt: u64,
}

/// Decodes and checks a segment header from `b` (at least `SEGMENT_HEADER_LEN` bytes).
pub(crate) fn decode_segment_header(b: &[u8]) -> Result<SegmentHeader, Invalid> {
    if b.len() < SEGMENT_HEADER_LEN {
        return Err(Invalid("segment header truncated"));
    }
    let h = &b[..SEGMENT_HEADER_LEN];
    if h[SEG_MAGIC_AT..SEG_MAGIC_AT + 4] != SEGMENT_MAGIC {
        return Err(Invalid("segment magic mismatch"));
    }
    if u32_at(h, SEG_CRC_AT) != crc32c::crc32c(&h[SEG_CRC_FROM..]) {
        return Err(Invalid("segment header CRC mismatch"));
    }
    if u16_at(h, SEG_VERSION_AT) != FORMAT_VERSION {
        return Err(Invalid("unsupported segment format version"));
    }
    if u16_at(h, SEG_RESERVED16_AT) != 0 {
        return Err(Invalid("segment header reserved bits set"));
    }
    let shift = u32_at(h, SEG_SHIFT_AT);
    let lsn = u64_at(h, SEG_LSN_AT);
    if !(12..=30).contains(&shift) {
        return Err(Invalid("segment size out of range"));
    }
    if lsn % (1u64 << shift) != 0 {
        return Err(Invalid("segment LSN not aligned to the segment size"));
    }
    Ok(SegmentHeader {
        segment_size_shift: shift,
        lsn,
        salt: u64_at(h, SEG_SALT_AT),
    })
}

/// Decodes a record header from the start of `b` and checks everything but the CRC: magic,
/// kind, reserved bits, that the header carries `expected_lsn` and (if given) the segment's
/// `expected_salt` (so stale bytes of a reused segment never validate), and that the body fits
/// in `b`. `b` ends where the segment ends.
pub(crate) fn decode_record_header(
    b: &[u8],
    expected_lsn: u64,
    expected_salt: Option<u32>,
) -> Result<RecordHeader, Invalid> {
    if b.len() < RECORD_HEADER_LEN {
        return Err(Invalid("record header truncated"));
    }
    if u16_at(b, REC_MAGIC_AT) != RECORD_MAGIC {
        return Err(Invalid("record magic mismatch"));
    }
    let kind = RecordKind::from_byte(b[REC_KIND_AT]).ok_or(Invalid("unknown record kind"))?;
    if b[REC_RESERVED8_AT] != 0 {
        return Err(Invalid("record reserved bits set"));
    }
    if expected_salt.is_some_and(|salt| salt != u32_at(b, REC_SALT_AT)) {
        return Err(Invalid(
            "record salt is not its segment's (left by an earlier incarnation)",
        ));
    }
    let lsn = u64_at(b, REC_LSN_AT);
    if lsn != expected_lsn {
        return Err(Invalid("record LSN does not match its position"));
    }
    let body_len = u32_at(b, REC_LEN_AT);
    if body_len as usize > b.len() - RECORD_HEADER_LEN {
        return Err(Invalid("record length exceeds the segment"));
    }
    if kind == RecordKind::BlobPointer && body_len as usize != BLOB_POINTER_BODY_LEN {
        return Err(Invalid("blob pointer record of the wrong length"));
    }
    Ok(RecordHeader {
        kind,
        body_len,
        lsn,
        crc: u32_at(b, REC_CRC_AT),
    })
}

/// Checks the CRC of the record `h` at the start of `b` (header + body present).
pub(crate) fn check_record_crc(h: &RecordHeader, b: &[u8]) -> Result<(), Invalid> {
    let end = RECORD_HEADER_LEN + h.body_len as usize;
    let rec = b.get(..end).ok_or(Invalid("record truncated"))?;
    if super::encode::record_crc(h.kind, rec) != h.crc {
        return Err(Invalid("record CRC mismatch"));
    }
    Ok(())
}

/// Decodes a blob pointer body (exactly `BLOB_POINTER_BODY_LEN` bytes, checked by the header).
pub(crate) fn decode_blob_pointer(body: &[u8]) -> Result<BlobPointer, Invalid> {
    if body.len() != BLOB_POINTER_BODY_LEN {
        return Err(Invalid("blob pointer body length"));
    }
    let p = BlobPointer {
        id: u64_at(body, 0),
        len: u64_at(body, 8),
        crc: u32_at(body, 16),
    };
    if p.id == 0 {
        return Err(Invalid("blob id 0"));
    }
    Ok(p)
}

/// Checks a whole blob file against the pointer that names it; returns the body range.
pub(crate) fn check_blob_file(
    b: &[u8],
    p: &BlobPointer,
) -> Result<std::ops::Range<usize>, Invalid> {
    if b.len() < BLOB_HEADER_LEN || b[..4] != BLOB_MAGIC {
        return Err(Invalid("blob magic mismatch"));
    }
    if u16_at(b, BLOB_VERSION_AT) != FORMAT_VERSION {
        return Err(Invalid("unsupported blob format version"));
    }
    if u64_at(b, BLOB_ID_AT) != p.id || u64_at(b, BLOB_LEN_AT) != p.len {
        return Err(Invalid("blob header does not match its pointer"));
    }
    if (b.len() - BLOB_HEADER_LEN) as u64 != p.len {
        return Err(Invalid("blob file length does not match its pointer"));
    }
    let crc = u32_at(b, 4);
    if crc != p.crc || crc32c::crc32c(&b[BLOB_CRC_FROM..]) != crc {
        return Err(Invalid("blob CRC mismatch"));
    }
    Ok(BLOB_HEADER_LEN..b.len())
}
