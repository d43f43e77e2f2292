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
//!
//! Why the tail segment is then closed with padding rather than appended to: a pointer to a cut
//! record may outlive the crash, and new records in the same incarnation would land on its
//! LSN, offset and salt. New records start a new segment, with a new salt that pointers carry.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::blob;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::format::decode::{
    check_record_crc, decode_blob_pointer, decode_record_header, decode_segment_header,
};
use crate::format::encode::encode_padding_header;
use crate::format::{RecordKind, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::io::{Storage, StorageFile};
use crate::segments::{SegmentState, SegmentTable, MAX_SLOTS};
use crate::types::{DiskPtr, Lsn, SegmentId, MAX_LSN};

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
    /// The LSN the next record gets: always a segment boundary (a segment the scan stopped
    /// inside is padded to its end).
    pub tail: u64,
    pub table: SegmentTable,
}

struct Found {
    id: SegmentId,
    lsn: u64,
    /// `lsn + segment size`, computed once with checked arithmetic; every other LSN derived
    /// from the header (`lsn + pos` with `pos` inside the segment) is at most this.
    end: u64,
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
    // Growth never goes past MAX_SLOTS, so a longer file is not one this log wrote; checked
    // before the table is sized from it (or every header in it read).
    if slots > MAX_SLOTS {
        return Err(Error::corruption(
            format!(
                "data file of {len} bytes has {slots} slots of {seg} bytes, more than the \
                 {MAX_SLOTS} a log grows to"
            ),
            path,
            0,
        ));
    }
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
        let end = hdr
            .lsn
            .checked_add(seg)
            .filter(|&end| end <= MAX_LSN)
            .ok_or_else(|| {
                Error::corruption(
                    format!(
                        "segment header with LSN {} beyond any LSN the log hands out",
                        hdr.lsn
                    ),
                    path,
                    offset,
                )
            })?;
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
            end,
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
            salt: f.salt,
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
    if from.0 > MAX_LSN - seg {
        return Err(Error::Config(format!(
            "recovery start {from:?} is beyond any LSN the log hands out"
        )));
    }
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
            f.salt,
            f.end,
            SegmentState::Sealed,
            (seg - SEGMENT_HEADER_LEN as u64) as i64,
        );
    }
    // If nothing at or after the start scans valid, new records begin at the first segment
    // boundary at or after `from` (segments before it were kept above).
    let mut tail = from.0.div_ceil(seg) * seg;
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
            invalidate_tail(file.as_ref(), data_path, &bytes, f.id.0 * seg, end)?;
            // The segment is closed here: new records go to a new segment (new salt). If they
            // continued at `end` in this incarnation, a pointer to a cut record (same LSN,
            // same salt) would validate against whatever new record landed on its LSN.
            pad_to_segment_end(file.as_ref(), data_path, f, end, seg)?;
            let records_end = f.lsn + end as u64;
            table.restore(f.id, f.lsn, f.salt, records_end, SegmentState::Sealed, live);
            tail = f.end;
            idx += 1;
            break;
        }
        table.restore(f.id, f.lsn, f.salt, f.end, SegmentState::Sealed, live);
        tail = f.end;
        expected = Some(f.end);
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
        table,
    })
}

/// Closes the tail segment at `end` (its rest already zeroed): a Padding record from `end` to
/// the segment's end, so the next recovery steps over the rest into the following segment. If
/// fewer than a record header's bytes remain, their zeroes already say "nothing here".
fn pad_to_segment_end(
    file: &dyn StorageFile,
    path: &Path,
    f: &Found,
    end: usize,
    seg: u64,
) -> Result<()> {
    let rest = seg as usize - end;
    if rest < RECORD_HEADER_LEN {
        return Ok(());
    }
    let mut padding = [0u8; RECORD_HEADER_LEN];
    let body_len = (rest - RECORD_HEADER_LEN) as u32;
    encode_padding_header(&mut padding, body_len, f.lsn + end as u64, f.salt);
    file.write_all_at(&padding, f.id.0 * seg + end as u64)
        .map_err(|e| Error::io("pad recovered tail segment", path, e))
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

#[cfg(all(test, not(loom)))]
mod tests {
    use std::io;
    use std::sync::Arc;

    use super::*;
    use crate::format::encode::encode_segment_header;
    use crate::io::SimStorage;
    use crate::Log;

    fn cfg() -> Config {
        Config::small("/db")
    }

    /// A data file holding one segment at `lsn`, scanned to its end (a padding record fills it).
    fn sim_with_segment_at(lsn: u64) -> SimStorage {
        let cfg = cfg();
        let seg = cfg.segment_size_bytes;
        let sim = SimStorage::new();
        sim.create_dir_all(&cfg.path).unwrap();
        let file = sim
            .open_file(&cfg.path.join(crate::DATA_FILE), true)
            .unwrap();
        let mut bytes = vec![0u8; seg as usize];
        let salt = 0x0123_4567_89AB_CDEF;
        encode_segment_header(&mut bytes, seg.trailing_zeros(), lsn, salt);
        let mut pad = [0u8; RECORD_HEADER_LEN];
        let body = (seg as usize - SEGMENT_HEADER_LEN - RECORD_HEADER_LEN) as u32;
        encode_padding_header(&mut pad, body, lsn + SEGMENT_HEADER_LEN as u64, salt as u32);
        bytes[SEGMENT_HEADER_LEN..SEGMENT_HEADER_LEN + RECORD_HEADER_LEN].copy_from_slice(&pad);
        file.write_all_at(&bytes, 0).unwrap();
        sim
    }

    /// Before: a header LSN near `u64::MAX` (valid CRC) made `lsn + segment size` overflow when
    /// recovery scanned that segment to its end: a panic in debug builds.
    #[test]
    fn header_lsn_beyond_max_lsn_is_corruption() {
        let seg = cfg().segment_size_bytes;
        let huge = u64::MAX - (seg - 1);
        let sim = sim_with_segment_at(huge);
        match Log::open(cfg(), Arc::new(sim), Lsn(0)) {
            Err(Error::Corruption { what, .. }) => assert!(what.contains("beyond"), "{what}"),
            other => panic!("{other:?}"),
        }
        // Recovering from that segment itself: the start is out of range too.
        let sim = sim_with_segment_at(huge);
        let r = Log::open(cfg(), Arc::new(sim), Lsn(huge));
        assert!(matches!(r, Err(Error::Config(_))), "{r:?}");
        // Just below the bound is fine.
        let sim = sim_with_segment_at(MAX_LSN - seg);
        let (_log, recs) = Log::open(cfg(), Arc::new(sim), Lsn(MAX_LSN - seg)).unwrap();
        assert!(recs.is_empty());
    }

    /// Before: `from.div_ceil(seg) * seg` overflowed (a panic in debug builds).
    #[test]
    fn recovery_start_beyond_max_lsn_is_a_config_error() {
        for from in [u64::MAX, u64::MAX - 5, MAX_LSN] {
            let r = Log::open(cfg(), Arc::new(SimStorage::new()), Lsn(from));
            assert!(matches!(r, Err(Error::Config(_))), "{from}: {r:?}");
        }
    }

    /// A file whose length claims 2^50 bytes of slots (sparse, or a lying device).
    #[derive(Debug)]
    struct HugeFile;

    impl StorageFile for HugeFile {
        fn read_at(&self, buf: &mut [u8], _offset: u64) -> io::Result<usize> {
            buf.fill(0);
            Ok(buf.len())
        }
        fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<usize> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn sync_all(&self) -> io::Result<()> {
            Ok(())
        }
        fn len(&self) -> io::Result<u64> {
            Ok(1 << 50)
        }
        fn set_len(&self, _len: u64) -> io::Result<()> {
            Err(io::ErrorKind::Unsupported.into())
        }
    }

    /// Before: recovery read every one of the file's 2^37 slot headers and sized the table
    /// from the length.
    #[test]
    fn slot_count_from_the_file_length_is_capped() {
        let file: Arc<dyn StorageFile> = Arc::new(HugeFile);
        let sim = SimStorage::new();
        let r = recover(&cfg(), &sim, &file, Path::new("/db/log.dat"), Lsn(0));
        match r {
            Err(Error::Corruption { what, .. }) => assert!(what.contains("slots"), "{what}"),
            other => panic!("{other:?}"),
        }
    }
}
