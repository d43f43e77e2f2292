//! [`Log`]: open (with recovery), reserve, read, make stable, account, close.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_epoch as epoch;

use crate::blob;
use crate::buffer::{IoBuffer, Status};
use crate::config::{Config, MAX_RECORD_BYTES};
use crate::error::{Error, Result};
use crate::format::decode::{check_record_crc, decode_blob_pointer, decode_record_header};
use crate::format::{RecordKind, RECORD_HEADER_LEN};
use crate::io::Storage;
use crate::recovery::{self, RecoveredRecord};
use crate::reservation::Reservation;
use crate::segments::SegmentStats;
use crate::shared::{lock, DeadBlob, SaltSource, Shared, Stable};
use crate::stats::{Counters, LogStats};
use crate::sync::{AtomicBool, StdAtomicU64};
use crate::types::{DiskPtr, Lsn};
use crate::writer;

/// The data file's name inside [`Config::path`].
pub const DATA_FILE: &str = "log.dat";

/// An open log. Shared by reference between threads (`&Log` is all an operation needs).
#[derive(Debug)]
pub struct Log {
    shared: Arc<Shared>,
    io_thread: Option<JoinHandle<()>>,
    flusher: Option<JoinHandle<()>>,
}

impl Log {
    /// Opens (creating if needed) the log in `config.path`, recovers it from `from` (an LSN at
    /// which a record or a segment starts, e.g. the upper layer's checkpoint LSN, or
    /// `Lsn(0)`), and returns it with every valid record at or after `from` in LSN order.
    ///
    /// Recovery stops at the first torn or invalid record; that tail is made unreadable (and
    /// synced) before this returns, so new records continue right after the last valid one.
    /// Segments may be reused only once their LSN range is below `from` (see
    /// [`Log::set_reuse_horizon`]).
    pub fn open(
        config: Config,
        storage: Arc<dyn Storage>,
        from: Lsn,
    ) -> Result<(Log, Vec<RecoveredRecord>)> {
        config.validate()?;
        let dir = config.path.clone();
        ensure_dir(storage.as_ref(), &dir)?;
        ensure_dir(storage.as_ref(), &blob::blob_dir(&dir))?;
        let data_path = dir.join(DATA_FILE);
        let existed = storage
            .exists(&data_path)
            .map_err(|e| Error::io("stat", &data_path, e))?;
        let file = storage
            .open_file(&data_path, true)
            .map_err(|e| Error::io("open", &data_path, e))?;
        if !existed {
            storage
                .sync_dir(&dir)
                .map_err(|e| Error::io("fsync directory", &dir, e))?;
        }
        let scan = recovery::recover(&config, storage.as_ref(), &file, &data_path, from)?;
        let next_blob = blob::max_blob_id(storage.as_ref(), &dir)? + 1;
        let bufs = (0..config.io_buffer_count)
            .map(|_| IoBuffer::new(config.io_buffer_size_bytes as usize))
            .collect();
        let stable = Stable {
            written_end: scan.tail,
            durable: scan.tail,
            ..Stable::default()
        };
        let shared = Arc::new(Shared {
            cfg: config,
            storage,
            file,
            data_path,
            bufs,
            current: StdAtomicU64::new(0),
            segments: Arc::new(Mutex::new(scan.table)),
            stable: Mutex::new(stable),
            stable_cv: Condvar::new(),
            io_cv: Condvar::new(),
            flusher_cv: Condvar::new(),
            poisoned: AtomicBool::new(false),
            next_blob: StdAtomicU64::new(next_blob),
            salts: SaltSource::default(),
            counters: Counters::default(),
            dead_blobs: Mutex::new(Vec::new()),
            past_epoch: Arc::new(Mutex::new(Vec::new())),
            blobs_to_remove: Arc::new(Mutex::new(Vec::new())),
        });
        shared.install(0, scan.tail, scan.tail_segment)?;
        // The first segment may have grown the file: leave open with nothing unsynced.
        shared
            .file
            .sync_data()
            .map_err(|e| Error::io("fdatasync data file", &shared.data_path, e))?;
        let io_thread = {
            let sh = shared.clone();
            std::thread::Builder::new()
                .name("logstore-io".into())
                .spawn(move || writer::io_loop(sh))
                .map_err(|e| Error::io("spawn I/O thread", &dir, e))?
        };
        let mut log = Log {
            shared: shared.clone(),
            io_thread: Some(io_thread),
            flusher: None,
        };
        if let Some(ms) = shared.cfg.flush_every_ms {
            let sh = shared.clone();
            let handle = std::thread::Builder::new()
                .name("logstore-flusher".into())
                .spawn(move || writer::flusher_loop(sh, Duration::from_millis(ms)))
                .map_err(|e| Error::io("spawn flusher thread", &dir, e))?;
            log.flusher = Some(handle);
        }
        Ok((log, scan.records))
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &Config {
        &self.shared.cfg
    }

    /// Claims space for a record with a body of `len` bytes. Bodies up to
    /// [`Config::max_inline_body`] go into an I/O buffer; larger ones (up to
    /// [`MAX_RECORD_BYTES`]) into a blob file written at `complete`.
    ///
    /// May wait for a buffer to be written out. Holding another reservation while calling this
    /// can deadlock once every buffer is sealed behind the held one: finish one reservation
    /// before starting the next.
    pub fn reserve(&self, len: usize) -> Result<Reservation<'_>> {
        self.shared.check_poison()?;
        if len as u64 > MAX_RECORD_BYTES {
            return Err(Error::RecordTooLarge {
                len: len as u64,
                max: MAX_RECORD_BYTES,
            });
        }
        if len as u64 > self.shared.cfg.max_inline_body() {
            return Ok(Reservation::blob(self, len));
        }
        let slot = self
            .shared
            .reserve_inline((RECORD_HEADER_LEN + len) as u32)?;
        Ok(Reservation::inline(self, slot))
    }

    /// Convenience: reserve, copy `body`, complete.
    pub fn append(&self, body: &[u8]) -> Result<(Lsn, DiskPtr)> {
        let mut r = self.reserve(body.len())?;
        r.body_mut().copy_from_slice(body);
        r.complete()
    }

    /// Blocks until every record reserved at or before `lsn` and completed is durable (written
    /// and fsynced). Seals the buffer holding `lsn` if it is still open. Do not call while
    /// holding a reservation.
    pub fn make_stable(&self, lsn: Lsn) -> Result<()> {
        let target = self.shared.seal_for(Some(lsn.0.saturating_add(1)))?;
        writer::wait_durable(&self.shared, target)
    }

    /// Blocks until every record completed before the call is durable.
    pub fn flush(&self) -> Result<()> {
        let target = self.shared.seal_for(None)?;
        writer::wait_durable(&self.shared, target)
    }

    /// Every LSN below this is durable.
    pub fn durable_lsn(&self) -> Lsn {
        Lsn(lock(&self.shared.stable).durable)
    }

    /// Reads a completed record's body, whether written out yet or still in a buffer. Checks
    /// that the record still carries `ptr`'s LSN (a pointer into a reused segment is a
    /// [`Error::StalePointer`]) and its CRC.
    pub fn read(&self, ptr: DiskPtr) -> Result<Vec<u8>> {
        self.shared.check_poison()?;
        let sh = &self.shared;
        let len = ptr.len as usize;
        if len < RECORD_HEADER_LEN || len as u64 > sh.cfg.io_buffer_size_bytes {
            return Err(Error::StalePointer(format!(
                "{ptr:?}: impossible record length"
            )));
        }
        // The pin keeps the segment from being freed (and reused) while we read it.
        let _guard = epoch::pin();
        let rec = match self.read_from_buffers(&ptr) {
            Some(rec) => rec,
            None => {
                let mut rec = vec![0u8; len];
                sh.file
                    .read_exact_at(&mut rec, ptr.offset)
                    .map_err(|e| Error::io("read record", &sh.data_path, e))?;
                rec
            }
        };
        // The salt is not checked: a pointer handed out by this log names a record of the
        // current incarnation, and the LSN check catches a reused slot.
        let h = decode_record_header(&rec, ptr.lsn.0, None).map_err(|e| {
            Error::StalePointer(format!("{ptr:?}: {} (segment reused, or corrupted)", e.0))
        })?;
        if RECORD_HEADER_LEN + h.body_len as usize != len || h.kind == RecordKind::Padding {
            return Err(Error::StalePointer(format!(
                "{ptr:?} does not name a completed record"
            )));
        }
        check_record_crc(&h, &rec)
            .map_err(|e| Error::corruption(e.0, &sh.data_path, ptr.offset))?;
        let body = &rec[RECORD_HEADER_LEN..];
        if h.kind == RecordKind::BlobPointer {
            let p = decode_blob_pointer(body)
                .map_err(|e| Error::corruption(e.0, &sh.data_path, ptr.offset))?;
            return blob::read_blob(sh.storage.as_ref(), &sh.cfg.path, &p);
        }
        Ok(body.to_vec())
    }

    /// Copies the record from the buffer holding it, if it is not yet written out.
    fn read_from_buffers(&self, ptr: &DiskPtr) -> Option<Vec<u8>> {
        let lsn = ptr.lsn.0;
        let len = u64::from(ptr.len);
        for buf in self.shared.bufs.iter() {
            let status = lock(&buf.status);
            if let Status::InUse { base, len: avail } = *status {
                if lsn >= base && lsn + len <= base + u64::from(avail) {
                    // SAFETY: the record is completed (its holder wrote it before handing out the
                    // pointer), so nobody writes its range; holding `status` keeps the buffer
                    // from being marked written out and reinstalled while we copy.
                    let bytes = unsafe { buf.mem.slice((lsn - base) as usize, len as usize) };
                    return Some(bytes.to_vec());
                }
            }
        }
        None
    }

    /// Tells the log the record at `ptr` is no longer needed (its segment's live bytes drop;
    /// an empty sealed segment drains and is reused once that is durable and no reader can
    /// hold a pointer into it).
    ///
    /// For an oversized record the blob file is removed once that is durable, the pointer
    /// record is below the reuse horizon (no recovery will replay it) and no reader can be
    /// reading it.
    pub fn mark_dead(&self, ptr: DiskPtr) -> Result<()> {
        let head = {
            // The head is read under the table lock, so it also covers the relocated records
            // of every `mark_dead` that emptied the segment before us (drain_lsn must).
            let mut table = lock(&self.shared.segments);
            let head = self.shared.reserve_head();
            table.mark_dead(&ptr, head).map_err(Error::StalePointer)?;
            head
        };
        if let Some(id) = ptr.blob_id() {
            lock(&self.shared.dead_blobs).push(DeadBlob {
                id: id.0,
                record_end: ptr.lsn.0 + u64::from(ptr.len),
                drain_lsn: head,
            });
        }
        Ok(())
    }

    /// After recovery: tells the log the location of every record the upper layer still
    /// needs. Sealed and active segments get exact live-byte counts (segments below the recovery start
    /// are otherwise assumed fully live), so empty ones drain and are reused. Returns how many
    /// pointers were counted (stale pointers are ignored). Call it before completing any
    /// record after open: the active segment's count is replaced too.
    pub fn reset_live(&self, live: impl IntoIterator<Item = DiskPtr>) -> usize {
        let mut table = lock(&self.shared.segments);
        let head = self.shared.reserve_head();
        table.reset_live(live, head)
    }

    /// Promises that later opens recover from `lsn` or later, allowing drained segments below
    /// it to be reused.
    pub fn set_reuse_horizon(&self, lsn: Lsn) {
        lock(&self.shared.segments).set_reuse_horizon(lsn);
    }

    /// Counters since open.
    pub fn stats(&self) -> LogStats {
        self.shared.counters.snapshot()
    }

    /// Per-slot state and live bytes.
    pub fn segment_stats(&self) -> Vec<SegmentStats> {
        lock(&self.shared.segments).stats()
    }
}

fn ensure_dir(storage: &dyn Storage, dir: &Path) -> Result<()> {
    if storage.exists(dir).map_err(|e| Error::io("stat", dir, e))? {
        return Ok(());
    }
    storage
        .create_dir_all(dir)
        .map_err(|e| Error::io("create directory", dir, e))?;
    // The new entry is durable only once its parent is synced.
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        storage
            .sync_dir(parent)
            .map_err(|e| Error::io("fsync directory", parent, e))?;
    }
    Ok(())
}

impl Drop for Log {
    /// Flushes (unless poisoned) and stops the background threads.
    fn drop(&mut self) {
        let sh = &self.shared;
        lock(&sh.stable).flusher_stop = true;
        sh.flusher_cv.notify_all();
        if let Some(h) = self.flusher.take() {
            propagate_panic(h.join());
        }
        if sh.check_poison().is_ok() {
            let _ = sh.seal_for(None).and_then(|t| writer::wait_durable(sh, t));
        }
        lock(&sh.stable).shutdown = true;
        sh.io_cv.notify_all();
        if let Some(h) = self.io_thread.take() {
            propagate_panic(h.join());
        }
    }
}

/// A background thread's panic is a broken invariant: surface it in the dropping thread
/// (unless that one is already unwinding).
fn propagate_panic(r: std::thread::Result<()>) {
    if let Err(p) = r {
        if !std::thread::panicking() {
            std::panic::resume_unwind(p);
        }
    }
}
