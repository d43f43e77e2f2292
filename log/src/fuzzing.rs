//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not part of the API).
//!
//! Each function runs one decoder of this crate on untrusted bytes and returns what it
//! accepted. The contract the fuzzers check: `Ok` or a typed error, never a panic, and no
//! allocation sized by a field that was not validated against the bytes present.

use std::sync::Arc;

use crate::config::Config;
use crate::error::Result;
use crate::format::decode::{
    check_blob_file, check_record_crc, decode_blob_pointer, decode_record_header,
    decode_segment_header,
};
use crate::format::{RecordKind, RECORD_HEADER_LEN};
use crate::io::{SimStorage, Storage};
use crate::recovery::{self, RecoveredRecord};
use crate::types::Lsn;
use crate::DATA_FILE;

/// Decodes `bytes` as a segment header (if they start with one) followed by records, the way
/// the recovery scan walks a segment; returns how many records validated. Blob pointer bodies
/// are decoded and the rest of `bytes` is checked as the blob file they name.
pub fn decode_records(bytes: &[u8]) -> usize {
    let (mut pos, salt, base_lsn) = match decode_segment_header(bytes) {
        Ok(h) => (
            crate::format::SEGMENT_HEADER_LEN,
            Some(h.salt as u32),
            h.lsn,
        ),
        Err(_) => (0, None, 0),
    };
    let mut records = 0;
    while bytes.len() - pos >= RECORD_HEADER_LEN {
        let rest = &bytes[pos..];
        let lsn = base_lsn.wrapping_add(pos as u64);
        let Ok(h) = decode_record_header(rest, lsn, salt) else {
            break;
        };
        if check_record_crc(&h, rest).is_err() {
            break;
        }
        let total = RECORD_HEADER_LEN + h.body_len as usize;
        if h.kind == RecordKind::BlobPointer {
            if let Ok(p) = decode_blob_pointer(&rest[RECORD_HEADER_LEN..total]) {
                let _ = check_blob_file(&rest[total..], &p);
            }
        }
        records += 1;
        pos += total;
    }
    records
}

/// Runs the recovery scan of a log in `dir` on `storage` from `from` (as `Log::open` does,
/// without starting the log's threads); returns the records it recovered.
pub fn recover(
    config: &Config,
    storage: &Arc<SimStorage>,
    from: Lsn,
) -> Result<Vec<RecoveredRecord>> {
    config.validate()?;
    let blob_dir = crate::blob::blob_dir(&config.path);
    storage
        .create_dir_all(&blob_dir)
        .map_err(|e| crate::Error::io("create blob directory", &blob_dir, e))?;
    let data_path = config.path.join(DATA_FILE);
    let file = storage
        .open_file(&data_path, true)
        .map_err(|e| crate::Error::io("open", &data_path, e))?;
    let scan = recovery::recover(config, storage.as_ref(), &file, &data_path, from)?;
    Ok(scan.records)
}

/// Rewrites the CRCs of a data file with `segment_size` slots so a fuzzer's mutations reach
/// the checks behind them: each slot whose header carries the segment magic gets its header
/// CRC recomputed, then every record in it whose header otherwise validates (magic, kind,
/// LSN, salt, length) gets its CRC recomputed, walking on until one does not.
pub fn fix_crcs(file: &mut [u8], segment_size: usize) {
    if segment_size < crate::format::SEGMENT_HEADER_LEN {
        return;
    }
    for slot in file.chunks_mut(segment_size) {
        fix_segment_crcs(slot);
    }
}

fn fix_segment_crcs(seg: &mut [u8]) {
    use crate::format::{
        encode::record_crc, REC_CRC_AT, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SEG_CRC_AT, SEG_CRC_FROM,
    };
    if seg.len() < SEGMENT_HEADER_LEN || seg[..4] != SEGMENT_MAGIC {
        return;
    }
    let crc = crc32c::crc32c(&seg[SEG_CRC_FROM..SEGMENT_HEADER_LEN]);
    seg[SEG_CRC_AT..SEG_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    let Ok(h) = decode_segment_header(seg) else {
        return;
    };
    let mut pos = SEGMENT_HEADER_LEN;
    while seg.len() - pos >= RECORD_HEADER_LEN {
        let lsn = h.lsn.wrapping_add(pos as u64);
        let Ok(rec) = decode_record_header(&seg[pos..], lsn, Some(h.salt as u32)) else {
            return;
        };
        let total = RECORD_HEADER_LEN + rec.body_len as usize;
        let bytes = &mut seg[pos..pos + total];
        let crc = record_crc(rec.kind, bytes);
        bytes[REC_CRC_AT..REC_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        pos += total;
    }
}
