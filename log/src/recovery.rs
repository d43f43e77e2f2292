//! The recovery scan: find the segments, replay records in LSN order from a start LSN, stop at
//! the first invalid record or LSN gap, and make everything after the stop point unreadable
//! before the log writes again.
//!
//! Why the tail must be destroyed, not just skipped: buffers are written out of order, so past
//! a torn record there may be valid records (even whole later segments) that were never made
//! durable as a prefix. New records will be written at the stop LSN; if a crash then tore the
//! new tail short of those old bytes, the next recovery would resume into them, and they carry
//! exactly the LSNs they would validate at. So the rest of the tail segment is zeroed and every
//! segment beyond it loses its header, and that is synced before any new write.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::blob;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::format::decode::{
    check_record_crc, decode_blob_pointer, decode_record_header, decode_segment_header,
};
use crate::format::{RecordKind, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::io::{Storage, StorageFile};
use crate::segments::{SegmentState, SegmentTable};
use crate::types::{DiskPtr, Lsn, SegmentId};

/// One record returned by recovery, in LSN order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RecoveredRecord {
    /// Its LSN.
    pub lsn: Lsn,
    /// Where it lives (for [`Log::read`](crate::Log::read) and `mark_dead`).
    pub ptr: DiskPtr,
    /// Its body (for oversized records, read from the blob file).
    pub body: Vec<u8>,
}

/// What the scan found.
#[derive(Debug)]
pub(crate) struct Scan {
    pub records: Vec<RecoveredRecord>,
    /// The LSN the next record gets.
    pub tail: u64,
    /// The segment holding `tail` if `tail` is inside a segment (not at a boundary).
    pub tail_segment: Option<(SegmentId, u32)>,
    pub table: SegmentTable,
}

struct Found {
    id: SegmentId,
    lsn: u64,
    salt: u32,
}

/// Reads every slot's header. Invalid headers are free slots; a valid header written with
/// another segment size is a configuration error.
fn find_segments(cfg: &Config, file: &dyn StorageFile, path: &Path) -> Result<(u64, Vec<Found>)> {
    let seg = cfg.segment_size_bytes;
    let len = file
        .len()
        .map_err(|e| Error::io("stat data file", path, e))?;
    let slots = len.div_ceil(seg);
    let mut found = Vec::new();
    let mut by_lsn = BTreeMap::new();
    for id in 0..slots {
        let mut h = [0u8; SEGMENT_HEADER_LEN];
        let offset = id * seg;
        if len - offset < SEGMENT_HEADER_LEN as u64 {
            continue;
        }
        file.read_exact_at(&mut h, offset)
            .map_err(|e| Error::io("read segment header", path, e))?;
        let Ok(hdr) = decode_segment_header(&h) else {
            confirm_read(file, path, &h, offset)?;
            continue;
        };
        if 1u64 << hdr.segment_size_shift != seg {
            return Err(Error::Config(format!(
                "segment_size_bytes = {seg} but the log at {} was created with {}",
                path.display(),
                1u64 << hdr.segment_size_shift
            )));
        }
        if let Some(other) = by_lsn.insert(hdr.lsn, id) {
            return Err(Error::corruption(
                format!("segments {other} and {id} both claim LSN {}", hdr.lsn),
                path,
                offset,
            ));
        }
        found.push(Found {
            id: SegmentId(id),
            lsn: hdr.lsn,
            // Records carry the low half (see `SEG_SALT_AT`).
            salt: hdr.salt as u32,
        });
    }
    found.sort_by_key(|f| f.lsn);
    Ok((slots, found))
}

/// Scans one segment from `pos`; appends its records; returns the stop offset (segment size if
/// the segment is complete) and its live bytes.
fn scan_segment(
    storage: &dyn Storage,
    cfg: &Config,
    bytes: &[u8],
    f: &Found,
    mut pos: usize,
    records: &mut Vec<RecoveredRecord>,
) -> Result<(usize, i64)> {
    let seg = bytes.len();
    let mut live = 0i64;
    while seg - pos >= RECORD_HEADER_LEN {
        let lsn = f.lsn + pos as u64;
        let rest = &bytes[pos..];
        let Ok(h) = decode_record_header(rest, lsn, Some(f.salt)) else {
            return Ok((pos, live));
        };
        if check_record_crc(&h, rest).is_err() {
            return Ok((pos, live));
        }
        let total = RECORD_HEADER_LEN + h.body_len as usize;
        let body = &rest[RECORD_HEADER_LEN..total];
        let offset = f.id.0 * cfg.segment_size_bytes + pos as u64;
        let mut ptr = DiskPtr {
            lsn: Lsn(lsn),
            offset,
            len: total as u32,
            blob: 0,
        };
        match h.kind {
            RecordKind::Padding => {}
            RecordKind::Data => {
                live += total as i64;
                records.push(RecoveredRecord {
                    lsn: Lsn(lsn),
                    ptr,
                    body: body.to_vec(),
                });
            }
            RecordKind::BlobPointer => {
                let p = decode_blob_pointer(body).map_err(|e| {
                    Error::corruption(format!("blob pointer: {}", e.0), &cfg.path, offset)
                })?;
                // The blob was synced (file and directory) before its pointer was completed, so
                // a missing or bad blob behind a valid pointer is corruption, not a torn tail.
                let data = blob::read_blob(storage, &cfg.path, &p)?;
                ptr.blob = p.id;
                live += total as i64;
                records.push(RecoveredRecord {
                    lsn: Lsn(lsn),
                    ptr,
                    body: data,
                });
            }
        }
        pos += total;
    }
    Ok((seg, live))
}

/// Runs the scan from `from` and destroys the tail. See the module comment.
pub(crate) fn recover(
    cfg: &Config,
    storage: &dyn Storage,
    file: &Arc<dyn StorageFile>,
    data_path: &Path,
    from: Lsn,
) -> Result<Scan> {
    let seg = cfg.segment_size_bytes;
    let (slots, found) = find_segments(cfg, file.as_ref(), data_path)?;
    let start_seg = from.0 - from.0 % seg;
    let mut table = SegmentTable::new(seg, slots, from);
    let mut records = Vec::new();
    let mut bytes = vec![0u8; seg as usize];

    // Segments wholly before the start are kept as they are, assumed fully live (the upper
    // layer knows which of their records still matter).
    let first = found
        .iter()
        .position(|f| f.lsn >= start_seg)
        .unwrap_or(found.len());
    for f in &found[..first] {
        table.restore(
            f.id,
            f.lsn,
            SegmentState::Sealed,
            (seg - SEGMENT_HEADER_LEN as u64) as i64,
        );
    }
    // If nothing at or after the start scans valid, new records begin at the first segment
    // boundary at or after `from` (segments before it were kept above).
    let mut tail = from.0.div_ceil(seg) * seg;
    let mut tail_segment = None;
    // The scan must begin with the start segment itself: buffers are written out of order, so
    // a later segment may be on disk while the start segment's header never got there, and
    // resuming at the later one would skip a hole (not a prefix). A missing start segment ends
    // the log at the start.
    let mut expected = Some(start_seg);
    let mut idx = first;
    while let (Some(want), Some(f)) = (expected, found.get(idx)) {
        if f.lsn != want {
            break; // LSN gap: the log ends at `want`.
        }
        read_segment(file.as_ref(), data_path, &mut bytes, f.id.0 * seg)?;
        let pos = if f.lsn == start_seg {
            ((from.0 - start_seg) as usize).max(SEGMENT_HEADER_LEN)
        } else {
            SEGMENT_HEADER_LEN
        };
        let (end, mut live) = scan_segment(storage, cfg, &bytes, f, pos, &mut records)?;
        // Like whole segments before the start, the start segment's bytes before `from` are
        // assumed live (the upper layer's `reset_live` knows better): counting only the records
        // scanned let `mark_dead` of an earlier record drain a segment that still held data.
        live += (pos - SEGMENT_HEADER_LEN) as i64;
        if end < seg as usize {
            // About to destroy everything after `end`: make sure the bytes were not a transient
            // read error (a flipped bit on the way) rather than what the disk holds.
            confirm_read(file.as_ref(), data_path, &bytes, f.id.0 * seg)?;
            table.restore(f.id, f.lsn, SegmentState::Active, live);
            tail = f.lsn + end as u64;
            tail_segment = Some((f.id, f.salt));
            invalidate_tail(file.as_ref(), data_path, &bytes, f.id.0 * seg, end)?;
            idx += 1;
            break;
        }
        table.restore(f.id, f.lsn, SegmentState::Sealed, live);
        tail = f.lsn + seg;
        expected = Some(f.lsn + seg);
        idx += 1;
    }
    // Everything beyond the stop point loses its header: it is not part of the log.
    for f in &found[idx..] {
        assert!(
            f.lsn >= tail,
            "segment {:?} below the tail left unscanned",
            f.id
        );
        file.write_all_at(&[0u8; SEGMENT_HEADER_LEN], f.id.0 * seg)
            .map_err(|e| Error::io("invalidate segment header", data_path, e))?;
    }
    // One sync makes the destroyed tail durable before any new write (and any earlier zeroing
    // still in the page cache).
    file.sync_data()
        .map_err(|e| Error::io("fdatasync data file", data_path, e))?;
    let scanned_everything = first == 0
        && found
            .first()
            .is_none_or(|f| from.0 <= f.lsn + SEGMENT_HEADER_LEN as u64);
    if scanned_everything {
        // Every valid segment was scanned, so every live pointer is known: blob files nobody
        // points to are orphans (a crash between a blob's fsync and its pointer, a pointer in
        // the destroyed tail, or a removal that did not complete). Only after the tail's
        // destruction is durable, or a torn pointer could come back without its blob.
        remove_orphan_blobs(storage, &cfg.path, &records)?;
    }
    Ok(Scan {
        records,
        tail,
        tail_segment,
        table,
    })
}

/// Zeroes `[end, segment end)` of the tail segment unless it already reads as zeroes.
fn invalidate_tail(
    file: &dyn StorageFile,
    path: &Path,
    bytes: &[u8],
    seg_offset: u64,
    end: usize,
) -> Result<()> {
    if bytes[end..].iter().all(|&b| b == 0) {
        return Ok(());
    }
    let zeroes = vec![0u8; bytes.len() - end];
    file.write_all_at(&zeroes, seg_offset + end as u64)
        .map_err(|e| Error::io("zero torn tail", path, e))
}

/// Reads a whole segment; bytes past the end of the file read as zeroes.
fn read_segment(file: &dyn StorageFile, path: &Path, buf: &mut [u8], offset: u64) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read segment", path, e)),
        }
    }
    buf[done..].fill(0);
    Ok(())
}

/// Re-reads `expected.len()` bytes at `offset` and fails if they differ: recovery only treats
/// bytes as a torn tail (and destroys what follows) when two reads agree on them.
fn confirm_read(file: &dyn StorageFile, path: &Path, expected: &[u8], offset: u64) -> Result<()> {
    let mut again = vec![0u8; expected.len()];
    read_segment(file, path, &mut again, offset)?;
    if again != expected {
        return Err(Error::corruption(
            "two reads of the same bytes differ (unstable device or memory); nothing was \
             changed, retry opening",
            path,
            offset,
        ));
    }
    Ok(())
}

/// Removes blob files not named by any recovered record, then syncs the blob directory.
fn remove_orphan_blobs(
    storage: &dyn Storage,
    dir: &Path,
    records: &[RecoveredRecord],
) -> Result<()> {
    let referenced: std::collections::HashSet<u64> = records.iter().map(|r| r.ptr.blob).collect();
    let blob_dir = blob::blob_dir(dir);
    let entries = storage
        .read_dir(&blob_dir)
        .map_err(|e| Error::io("list blobs", &blob_dir, e))?;
    let mut removed = false;
    for path in entries {
        let id = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| u64::from_str_radix(n, 16).ok());
        if id.is_some_and(|id| !referenced.contains(&id)) {
            storage
                .remove_file(&path)
                .map_err(|e| Error::io("remove orphan blob", &path, e))?;
            removed = true;
        }
    }
    if removed {
        storage
            .sync_dir(&blob_dir)
            .map_err(|e| Error::io("fsync blob directory", &blob_dir, e))?;
    }
    Ok(())
}
