//! [`Log`]: open (with recovery), reserve, read, make stable, account, close.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_epoch as epoch;

use crate::blob;
use crate::buffer::{IoBuffer, Status};
use crate::config::{Config, MAX_RECORD_BYTES};
use crate::error::{Error, Result};
use crate::format::decode::{check_record_crc, decode_blob_pointer, decode_record_header};
use crate::format::{RecordKind, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::io::Storage;
use crate::lock::DirLock;
use crate::recovery::{self, RecoveredRecord};
use crate::reservation::Reservation;
use crate::segments::SegmentStats;
use crate::shared::{lock, wait, DeadBlob, SaltSource, Shared, Stable};
use crate::stats::{bump, Counters, LogStats};
use crate::sync::{AtomicBool, AtomicU64, Condvar, Mutex, StdAtomicU64};
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
    /// Released after `Drop::drop` has stopped the threads and flushed (fields drop after it).
    _lock: DirLock,
}

impl Log {
    /// Opens (creating if needed) the log in `config.path`, recovers it from `from` (an LSN at
    /// which a record or a segment starts, e.g. the upper layer's checkpoint LSN, or
    /// `Lsn(0)`), and returns it with every valid record at or after `from` in LSN order.
    ///
    /// Recovery stops at the first torn or invalid record; that tail is made unreadable (and
    /// synced) before this returns. The segment it stopped in is closed (padded to its end), so
    /// new records start a new segment and pointers to cut records stay stale.
    /// Segments may be reused only once their LSN range is below `from` (see
    /// [`Log::set_reuse_horizon`]).
    ///
    /// The log holds the directory's exclusive lock ([`DirLock`]) until it is dropped; an open
    /// of a directory whose lock is held fails with [`Error::Locked`].
    pub fn open(
        config: Config,
        storage: Arc<dyn Storage>,
        from: Lsn,
    ) -> Result<(Log, Vec<RecoveredRecord>)> {
        config.validate()?;
        let lock = DirLock::acquire(storage.as_ref(), &config.path)?;
        Self::open_locked(config, storage, from, lock)
    }

    /// As [`Log::open`], with the directory's lock already taken (by a layer that had to read
    /// the directory first). The log holds `lock` until it is dropped.
    pub fn open_locked(
        config: Config,
        storage: Arc<dyn Storage>,
        from: Lsn,
        lock: DirLock,
    ) -> Result<(Log, Vec<RecoveredRecord>)> {
        config.validate()?;
        if lock.dir() != config.path {
            return Err(Error::Config(format!(
                "the lock held is for {}, the log is in {}",
                lock.dir().display(),
                config.path.display()
            )));
        }
        let dir = config.path.clone();
        let blob_dir = blob::blob_dir(&dir);
        ensure_dir(storage.as_ref(), &blob_dir)?;
        let data_path = dir.join(DATA_FILE);
        let file = storage
            .open_file(&data_path, true)
            .map_err(|e| Error::io("open", &data_path, e))?;
        // Every open makes the entries durable, not only the open that created them: an open
        // that died between creating an entry and syncing its directory leaves the entry in
        // the page cache only, and the next open finds it "existing".
        for d in [parent_dir(&dir), dir.as_path(), blob_dir.as_path()] {
            sync_dir(storage.as_ref(), d)?;
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
            current: AtomicU64::new(0),
            reserve_limit: StdAtomicU64::new(0),
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
        // Recovery always ends at a segment boundary: new records start a new segment.
        shared.install(0, scan.tail, None)?;
        // The first segment may have grown the file: leave open with nothing unsynced.
        shared
            .file
            .sync_data()
            .map_err(|e| Error::io("fdatasync data file", &shared.data_path, e))?;
        let mut log = Log {
            shared: shared.clone(),
            io_thread: spawn_io_thread(&shared)?,
            flusher: None,
            _lock: lock,
        };
        // No flusher under loom either (std threads cannot touch modelled atomics).
        if let Some(ms) = shared.cfg.flush_every_ms.filter(|_| !cfg!(loom)) {
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
    ///
    /// On a full disk, reservations go on filling the buffers that are free; once the next
    /// buffer to fill is one whose write stalled, this retries that write and returns its
    /// full-disk [`Error::Io`] if it fails again (it never waits for space to be freed).
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
    ///
    /// On a full disk it does not wait for space: if a buffer it needs cannot be written it
    /// returns that [`Error::Io`] (`ENOSPC`, see [`Error::is_storage_full`]) once a retry
    /// failed; the records stay in memory and a later call succeeds once space is freed.
    pub fn make_stable(&self, lsn: Lsn) -> Result<()> {
        let target = self.shared.seal_for(Some(lsn.0.saturating_add(1)))?;
        writer::wait_durable(&self.shared, target)
    }

    /// Blocks until every record completed before the call is durable. On a full disk, fails
    /// as [`Log::make_stable`] does.
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
    ///
    /// A record still in an I/O buffer is copied only once that buffer is handed off (sealed,
    /// every holder finished), because until then any byte of it may be under a holder's
    /// pen, and the pointer may be stale or forged. So reading a record of the buffer being
    /// filled seals that buffer early (like [`Log::make_stable`]) and waits for its other
    /// holders to finish, which they do without blocking. Do not call this while holding a
    /// reservation: if it sits in the buffer the record is in, the wait never ends.
    ///
    /// Reads go on while the disk is full: a record in a buffer whose write stalled is copied
    /// from that buffer (it stays in memory, handed off, until a retry writes it), and reading
    /// a record of the buffer being filled seals it without waiting for another thread's
    /// install of the next buffer. (If this read wins the seal it installs the next buffer
    /// itself, waiting until that one is written out and retrying it once if it stalled; on a
    /// full disk the install is parked for a later caller and the read goes on.) Reads go on after an I/O failure poisoned the log too: every read checks the
    /// record's LSN, salt and CRC, so a record that a failed write or sync lost is an error,
    /// never wrong data, and that error is reported as the poison (its cause is what went
    /// wrong). After a panic poisoned the log (a broken invariant) reads are refused.
    pub fn read(&self, ptr: DiskPtr) -> Result<Vec<u8>> {
        if self.shared.reads_refused() {
            return Err(self.shared.poison_error());
        }
        let read = self.read_checked(ptr);
        if read.is_err() {
            self.shared.check_poison()?;
        }
        read
    }

    /// [`Log::read`] without the poison policy.
    fn read_checked(&self, ptr: DiskPtr) -> Result<Vec<u8>> {
        let sh = &self.shared;
        let end = self.check_ptr(&ptr)?;
        let len = ptr.len as usize;
        let rec = match self.read_from_buffers(ptr.lsn.0, end)? {
            Some(rec) => rec,
            None => {
                // The pin keeps the segment from being freed (and reused) while we read it.
                let _guard = epoch::pin();
                let mut rec = vec![0u8; len];
                sh.file.read_exact_at(&mut rec, ptr.offset).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        Error::StalePointer(format!("{ptr:?} points past the end of the file"))
                    } else {
                        Error::io("read record", &sh.data_path, e)
                    }
                })?;
                rec
            }
        };
        // LSN and salt: a reused slot has other LSNs there, or the same LSNs in another
        // incarnation (LSNs after a cut tail are handed out again, with a new salt).
        let h = decode_record_header(&rec, ptr.lsn.0, Some(ptr.salt)).map_err(|e| {
            Error::StalePointer(format!(
                "{ptr:?}: {} (segment reused, tail cut by recovery, or corrupted)",
                e.0
            ))
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
            let _guard = epoch::pin();
            return blob::read_blob(sh.storage.as_ref(), &sh.cfg.path, &p);
        }
        Ok(body.to_vec())
    }

    /// Checks what can be checked of `ptr` without reading: its shape, and that its record
    /// lies inside one segment of this log's geometry (after the header, LSN and offset at the
    /// same place). Returns the LSN where the record ends. All arithmetic is checked: a
    /// pointer is input, and may have been forged.
    fn check_ptr(&self, ptr: &DiskPtr) -> Result<u64> {
        let stale = |why: &str| Error::StalePointer(format!("{ptr:?}: {why}"));
        ptr.check_shape().map_err(stale)?;
        let seg = self.shared.seg_size();
        let len = u64::from(ptr.len);
        if len > self.shared.cfg.max_inline_body() + RECORD_HEADER_LEN as u64 {
            return Err(stale("impossible record length"));
        }
        let in_seg = ptr.lsn.0 % seg;
        if ptr.offset % seg != in_seg {
            return Err(stale("LSN and file offset disagree within a segment"));
        }
        if in_seg < SEGMENT_HEADER_LEN as u64 || in_seg + len > seg {
            return Err(stale("record range outside a segment's records"));
        }
        ptr.lsn
            .0
            .checked_add(len)
            .ok_or_else(|| stale("record range overflows"))
    }

    /// Copies the record `[lsn, end)` from the buffer holding it, if it is not yet written
    /// out; `None` if no buffer holds it (then it is in the file, or nowhere).
    ///
    /// Only a `HandedOff` buffer is copied from (nobody writes it until the I/O writer marks
    /// it free, which needs the status lock we hold). A `Filling` one is sealed if needed and
    /// waited for; ranges that only partly overlap a buffer are left to the file read, which
    /// cannot race with anyone.
    fn read_from_buffers(&self, lsn: u64, end: u64) -> Result<Option<Vec<u8>>> {
        loop {
            let mut filling = None;
            for (idx, buf) in self.shared.bufs.iter().enumerate() {
                let status = lock(&buf.status);
                if !status.covers(lsn, end) {
                    continue;
                }
                match *status {
                    Status::HandedOff { base, .. } => {
                        // SAFETY: the buffer is handed off (sealed, no writers): nobody writes
                        // any of its bytes until the I/O writer sets `Free`, which needs the
                        // `status` lock held here; every writer's bytes happen before the
                        // hand-off that set this status (see `Shared::finish`). `covers` put
                        // the range inside the buffer's written range.
                        let bytes =
                            unsafe { buf.mem.slice((lsn - base) as usize, (end - lsn) as usize) };
                        return Ok(Some(bytes.to_vec()));
                    }
                    Status::Filling { base, .. } => filling = Some((idx, base)),
                    Status::Free => unreachable!("a free buffer covers nothing"),
                }
                break;
            }
            let Some((idx, base)) = filling else {
                return Ok(None);
            };
            self.wait_handed_off(idx, base, end)?;
        }
    }

    /// Waits until buffer `idx` no longer fills the incarnation starting at `base`, sealing it
    /// first if it is the current buffer and holds `[.., end)`. A range past what has been
    /// reserved is no completed record: `StalePointer`, without waiting.
    fn wait_handed_off(&self, idx: usize, base: u64, end: u64) -> Result<()> {
        let sh = &self.shared;
        // Seals without waiting for another thread's install of the next buffer. If this
        // reader wins the seal it installs the next buffer itself, waiting until that one is
        // written out and free (one retry if it is stalled; on a full disk the install is
        // parked, not failed): see "Readers" in `shared.rs`.
        sh.seal_for_read(idx, base, end)?;
        bump(&sh.counters.buffered_read_waits, 1);
        let buf = &sh.bufs[idx];
        let mut st = lock(&sh.stable);
        st.read_waiters += 1;
        let r = loop {
            if st.poison.is_some() {
                break Err(());
            }
            // Lock order stable -> status, as in `Shared::install`. `finish` sets `HandedOff`
            // before it takes `stable` to queue the buffer and wake us, so checking under
            // `stable` cannot miss the wake-up.
            let filling =
                matches!(*lock(&buf.status), Status::Filling { base: b, .. } if b == base);
            if !filling {
                break Ok(());
            }
            st = wait(&sh.stable_cv, st);
        };
        st.read_waiters -= 1;
        drop(st);
        r.map_err(|()| sh.poison_error())
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
    /// it to be reused. If that moves the horizon, runs a reclamation round at once (free the
    /// segments it released behind the epoch, truncate a free tail) instead of waiting for the
    /// next sync; a failed write or truncation there poisons the log like any other, and the
    /// next call reports it.
    pub fn set_reuse_horizon(&self, lsn: Lsn) {
        let moved = lock(&self.shared.segments).set_reuse_horizon(lsn);
        if moved && self.shared.check_poison().is_ok() {
            let _poison_on_panic =
                writer::PoisonOnUnwind::new(&self.shared, "caller raising the reuse horizon");
            writer::reclaim(&self.shared);
        }
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

/// Creates `dir` and its missing ancestors, then syncs the parent of each directory it created
/// (top-down), so every new entry is durable (`create_dir_all` makes none of them durable).
/// `Log::open` syncs `dir`'s parent again anyway; this covers the ancestors above it.
pub(crate) fn ensure_dir(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut next = Some(dir).filter(|d| !d.as_os_str().is_empty());
    while let Some(d) = next {
        if storage.exists(d).map_err(|e| Error::io("stat", d, e))? {
            break;
        }
        missing.push(d);
        next = d.parent().filter(|p| !p.as_os_str().is_empty());
    }
    if missing.is_empty() {
        return Ok(());
    }
    storage
        .create_dir_all(dir)
        .map_err(|e| Error::io("create directory", dir, e))?;
    for created in missing.iter().rev() {
        sync_dir(storage, parent_dir(created))?;
    }
    Ok(())
}

/// The directory holding `path`'s entry (`.` for a bare relative name).
fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn sync_dir(storage: &dyn Storage, dir: &Path) -> Result<()> {
    storage
        .sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))
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

/// Starts the I/O writer thread. Not under loom: a std thread cannot touch the modelled buffer
/// words, and none is needed for correctness, because durability waiters write handed-off
/// buffers themselves (`writer::commit`), so a model's flushes and its close still complete.
fn spawn_io_thread(shared: &Arc<Shared>) -> Result<Option<JoinHandle<()>>> {
    if cfg!(loom) {
        return Ok(None);
    }
    let sh = shared.clone();
    std::thread::Builder::new()
        .name("logstore-io".into())
        .spawn(move || writer::io_loop(sh))
        .map(Some)
        .map_err(|e| Error::io("spawn I/O thread", &shared.cfg.path, e))
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
