//! [`Reservation`]: space claimed in the log that its holder fills, then completes or aborts.

use crate::blob::{self, BlobError};
use crate::error::{Error, Result};
use crate::format::encode::{encode_blob_pointer, encode_record_header};
use crate::format::{RecordKind, BLOB_POINTER_BODY_LEN, RECORD_HEADER_LEN};
use crate::log::Log;
use crate::shared::Slot;
use crate::stats::bump;
use crate::sync::Ordering;
use crate::types::{DiskPtr, Lsn};

#[derive(Debug)]
enum Claim {
    /// A range of an I/O buffer (header + body).
    Inline(Slot),
    /// A body too large for a buffer: held here until `complete` writes the blob.
    Blob(Vec<u8>),
    /// Completed or aborted.
    Done,
}

/// Space for one record, from [`Log::reserve`]. Fill [`Reservation::body_mut`], then
/// [`complete`](Reservation::complete) it; [`abort`](Reservation::abort) or dropping it leaves
/// padding that recovery skips. Never block (on locks, I/O, or `make_stable`) while holding
/// one: the buffer it sits in cannot be written until it is finished.
#[derive(Debug)]
#[must_use = "a reservation is aborted when dropped"]
pub struct Reservation<'a> {
    log: &'a Log,
    claim: Claim,
}

impl<'a> Reservation<'a> {
    pub(crate) fn inline(log: &'a Log, slot: Slot) -> Self {
        Reservation {
            log,
            claim: Claim::Inline(slot),
        }
    }

    pub(crate) fn blob(log: &'a Log, len: usize) -> Self {
        Reservation {
            log,
            claim: Claim::Blob(vec![0; len]),
        }
    }

    pub(crate) fn inline_slot(&self) -> Option<&Slot> {
        match &self.claim {
            Claim::Inline(s) => Some(s),
            _ => None,
        }
    }

    /// The record's LSN, if already known (oversized records get theirs at `complete`).
    pub fn lsn(&self) -> Option<Lsn> {
        match &self.claim {
            Claim::Inline(s) => Some(Lsn(s.lsn)),
            _ => None,
        }
    }

    /// The body to fill, exactly the reserved length.
    pub fn body_mut(&mut self) -> &mut [u8] {
        match &mut self.claim {
            Claim::Inline(s) => {
                let buf = &self.log.shared().bufs[s.idx];
                let body = s.offset as usize + RECORD_HEADER_LEN;
                // SAFETY: this reservation holds `[offset, offset + len)` of the buffer's current
                // generation (its writer slot keeps the buffer from being sealed-and-reused), and
                // the `&mut self` borrow makes this the only live slice of it.
                unsafe { buf.mem.slice_mut(body, s.len as usize - RECORD_HEADER_LEN) }
            }
            Claim::Blob(v) => v,
            Claim::Done => unreachable!("body of a finished reservation"),
        }
    }

    /// Seals the record with its CRC. Returns its LSN and location. The record is then part
    /// of the log's order; it is durable once `make_stable`/`flush` covering it returns `Ok`
    /// (if the log was poisoned meanwhile, those report it). For oversized records the blob is
    /// written first; a failure there is returned and the record is not in the log: a full
    /// disk ([`Error::is_storage_full`]) poisons nothing (the partial blob is removed, retry
    /// later), a failed sync or any other write failure poisons the log.
    pub fn complete(mut self) -> Result<(Lsn, DiskPtr)> {
        match std::mem::replace(&mut self.claim, Claim::Done) {
            Claim::Inline(s) => {
                let ptr = self.seal_inline(s, RecordKind::Data, None);
                Ok((ptr.lsn, ptr))
            }
            Claim::Blob(body) => self.complete_blob(&body),
            Claim::Done => unreachable!("completing a finished reservation"),
        }
    }

    /// Gives the space up: recovery skips it and it counts as dead.
    pub fn abort(mut self) {
        self.abort_inner();
    }

    fn abort_inner(&mut self) {
        let sh = self.log.shared();
        match std::mem::replace(&mut self.claim, Claim::Done) {
            Claim::Inline(s) => {
                let buf = &sh.bufs[s.idx];
                // SAFETY: as in `body_mut`; the reservation is finished right after.
                let rec = unsafe { buf.mem.slice_mut(s.offset as usize, s.len as usize) };
                encode_record_header(rec, RecordKind::Padding, s.lsn, s.salt);
                bump(&sh.counters.records_aborted, 1);
                sh.finish(s.idx);
            }
            Claim::Blob(_) => bump(&sh.counters.records_aborted, 1),
            Claim::Done => {}
        }
    }

    /// Writes the header (body already in place) and drops the writer slot.
    fn seal_inline(&self, s: Slot, kind: RecordKind, blob: Option<u64>) -> DiskPtr {
        let sh = self.log.shared();
        let buf = &sh.bufs[s.idx];
        // SAFETY: as in `body_mut`; `self.claim` is already `Done`, so no other slice of the
        // range exists, and the writer slot is dropped only after this slice's last use.
        let rec = unsafe { buf.mem.slice_mut(s.offset as usize, s.len as usize) };
        encode_record_header(rec, kind, s.lsn, s.salt);
        // Relaxed: read by the I/O writer after the hand-off chain (see `write_batch`).
        buf.live.fetch_add(u64::from(s.len), Ordering::Relaxed);
        // Relaxed: folded into the log-wide counter at hand-off (see `Shared::finish`).
        buf.records.fetch_add(1, Ordering::Relaxed);
        sh.finish(s.idx);
        DiskPtr {
            lsn: Lsn(s.lsn),
            offset: s.file_offset,
            len: s.len,
            salt: s.salt,
            blob: blob.unwrap_or(0),
        }
    }

    fn complete_blob(&self, body: &[u8]) -> Result<(Lsn, DiskPtr)> {
        let sh = self.log.shared();
        sh.check_poison()?;
        // Relaxed: uniqueness only.
        let id = sh.next_blob.fetch_add(1, Ordering::Relaxed);
        let p = match blob::write_blob(sh.storage.as_ref(), &sh.cfg.path, id, body) {
            Ok(p) => p,
            Err(BlobError::Write(e)) if e.is_storage_full() => {
                // Nothing acknowledged, nothing poisoned: free the space the partial file
                // took (best effort: a leftover is an orphan no pointer names) and report.
                bump(&sh.counters.full_disk_retries, 1);
                remove_orphan_blob(sh, id);
                return Err(e);
            }
            Err(BlobError::Write(e)) => {
                if matches!(e, Error::Io { .. }) {
                    sh.poison(e.to_string());
                }
                return Err(e);
            }
            // Never retried, whatever the code (an `ENOSPC` from fsync included): the caller
            // hears the poison, not a retryable full disk.
            Err(BlobError::Sync(e)) => {
                sh.poison(e.to_string());
                return Err(sh.poison_error());
            }
        };
        bump(&sh.counters.blobs_written, 1);
        let slot = match sh.reserve_inline((RECORD_HEADER_LEN + BLOB_POINTER_BODY_LEN) as u32) {
            Ok(slot) => slot,
            Err(e) => {
                // No pointer will name the blob (a full disk stalled the rotation).
                remove_orphan_blob(sh, id);
                return Err(e);
            }
        };
        let buf = &sh.bufs[slot.idx];
        // SAFETY: we hold the fresh slot's range; no other slice of it exists.
        let b = unsafe {
            buf.mem.slice_mut(
                slot.offset as usize + RECORD_HEADER_LEN,
                BLOB_POINTER_BODY_LEN,
            )
        };
        b.copy_from_slice(&encode_blob_pointer(&p));
        let ptr = self.seal_inline(slot, RecordKind::BlobPointer, Some(id));
        Ok((ptr.lsn, ptr))
    }
}

/// Removes a blob file no pointer record names (after a failed `complete`). Best effort: an
/// orphan left behind costs space, never correctness (no pointer names it).
fn remove_orphan_blob(sh: &crate::shared::Shared, id: u64) {
    let path = blob::blob_path(&sh.cfg.path, id);
    let _ = sh.storage.remove_file(&path);
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.abort_inner();
    }
}
