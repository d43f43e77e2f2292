//! State shared by the [`Log`](crate::Log) handle, its reservations, the I/O writer thread and
//! the flusher: the buffer rotation (reserve, seal, hand off, install), the full-disk stall and
//! the poison flag.
//!
//! Rotation protocol. `current` is the sequence number of the one installed, unsealed buffer
//! (`bufs[current % count]`). A reserver CASes that buffer's word. When a record does not fit,
//! or `flush`/`make_stable` needs the buffer written, one thread wins the seal CAS; that sealer
//! (1) writes the end-of-segment padding if the buffer was full at the segment's end, (2) drops
//! its writer slot (the last writer out hands the buffer to the I/O writer), then (3) installs
//! the next buffer: it waits until `bufs[(seq + 1) % count]` was written out, allocates a new
//! segment if the next LSN starts one, publishes the new incarnation, and advances `current`.
//! Everyone else who meets a sealed word waits for `current` to advance; nobody waits while
//! holding a reservation, except as documented on [`Log::reserve`](crate::Log::reserve).
//!
//! A full disk. Step (3) may find `bufs[(seq + 1) % count]` stalled (its write met `ENOSPC`
//! and waits for a retry, `writer/stall.rs`). The installer then retries that write once (or
//! waits for the thread retrying it) and, if that write fails, gives up *before changing
//! anything*: it parks the step in
//! `Stable::pending_install` (under the `stable` lock) and returns. The seal stands, `current`
//! stays at `seq`, and the sealed buffer is handed off as usual. Invariant: while
//! `pending_install` is set, `current` names a sealed buffer and the parked step is
//! `current + 1`; at most one step is parked, and only the thread that took it out of
//! `pending_install` (or the sealer, before parking it) may install. A thread that meets the
//! sealed word (`wait_for_advance`) takes the parked step and becomes the installer, unless a
//! write of the buffer that step needs failed since it started waiting: then it returns the
//! full-disk error instead of waiting. A reserver whose own seal parked the step returns that
//! error at once (its install was its one retry). So reservations fail promptly once every
//! buffer waits for the stalled one, and the rotation resumes on the first call after space is
//! freed. A poisoned log parks nothing: every caller hears the poison.
//!
//! Readers. A reader that needs the current buffer handed off (`seal_for_read`) never waits
//! for *another* thread's install to advance `current`, and never fails because the next
//! buffer cannot be installed. But a reader that wins the seal is the sealer, so it installs
//! the next buffer like any sealer: it waits until that buffer is written out and free
//! (retrying it once if it is stalled), and on a full disk parks the step and goes on.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::buffer::state::{Reserve, Snapshot};
use crate::buffer::{Incarnation, IoBuffer, Status};
use crate::config::Config;
use crate::error::{is_out_of_space, Error, Result};
use crate::format::encode::{encode_record_header, encode_segment_header};
use crate::format::{RecordKind, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::io::{Storage, StorageFile};
use crate::segments::SegmentTable;
use crate::stats::{bump, Counters};
use crate::sync::{
    yield_now, AtomicBool, AtomicU64, Condvar, Mutex, MutexGuard, Ordering, StdAtomicU64,
};
use crate::types::SegmentId;

/// Locks a mutex. A poisoned mutex means a thread panicked mid-update (a broken invariant),
/// so propagating the panic is right.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
        .unwrap_or_else(|_| panic!("log mutex poisoned by an earlier panic"))
}

pub(crate) fn wait<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(g)
        .unwrap_or_else(|_| panic!("log mutex poisoned by an earlier panic"))
}

/// How many `validated_view`s [`Shared::reserve_head`] tries before it falls back to the
/// coarser `reserve_limit`.
pub(crate) const HEAD_VIEW_TRIES: usize = 64;

/// A seal [`Shared::try_seal`] won.
#[derive(Debug)]
pub(crate) struct Sealed {
    /// The LSN where the sealed buffer ends (the next buffer's base).
    pub end: u64,
    /// The install of the next buffer met a stalled buffer whose retry failed: the step is
    /// parked in `Stable::pending_install`, and this is the full-disk error.
    pub install_deferred: Option<Error>,
}

/// Durability bookkeeping, behind `Shared::stable`.
#[derive(Debug, Default)]
pub(crate) struct Stable {
    /// Buffers handed off, not yet taken by the I/O writer.
    pub queue: Vec<usize>,
    /// Written ranges `start -> end` not yet contiguous with `written_end`.
    pub written: BTreeMap<u64, u64>,
    /// Every LSN below this is written to the file.
    pub written_end: u64,
    /// Every LSN below this is written and synced.
    pub durable: u64,
    /// The highest `durable` anyone waits for.
    pub sync_requested: u64,
    /// Who leads the next sync, how many committers to gather (`writer::commit`).
    pub commit: crate::writer::GroupCommit,
    /// Buffers whose write met a full disk, waiting to be retried (`writer/stall.rs`).
    pub stall: crate::writer::Stall,
    /// A rotation step that could not run because the buffer it installs is stalled (see the
    /// module comment): whoever next meets the sealed buffer takes it and retries.
    pub pending_install: Option<PendingInstall>,
    /// The first failure that poisoned the log (a failed sync, a write failure other than a
    /// full disk, or a panic).
    pub poison: Option<String>,
    /// The poison came from a panicking log thread (a broken invariant), not an I/O failure:
    /// then reads are refused too.
    pub poison_is_panic: bool,
    /// The I/O writer should exit once its queue is empty.
    pub shutdown: bool,
    /// The flusher should exit.
    pub flusher_stop: bool,
    /// Readers waiting (on `stable_cv`) for a buffer to be handed off; hand-offs notify
    /// `stable_cv` only when this is non-zero.
    pub read_waiters: usize,
}

/// The arguments of an [`Shared::install`] that gave up (see [`Stable::pending_install`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingInstall {
    pub seq: u64,
    pub base: u64,
    pub prev: Option<(SegmentId, u32)>,
}

/// A claimed byte range in a buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    pub idx: usize,
    pub offset: u32,
    pub len: u32,
    pub lsn: u64,
    pub file_offset: u64,
    pub salt: u32,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub cfg: Config,
    pub storage: Arc<dyn Storage>,
    pub file: Arc<dyn StorageFile>,
    pub data_path: PathBuf,
    pub bufs: Box<[IoBuffer]>,
    /// Sequence number of the installed buffer. Release store by the installer after the
    /// word's install; Acquire loads pair with it (a stale value is harmless: the word's
    /// generation and the incarnation's `seq` are what is trusted).
    pub current: AtomicU64,
    /// The end (base LSN + capacity) of the latest installed buffer: an upper bound of every
    /// LSN reserved so far, for [`Shared::reserve_head`] when it cannot get a validated view.
    /// Monotonic (`fetch_max`, Release, by the installer before the word's install); Acquire
    /// loads pair with it.
    pub reserve_limit: StdAtomicU64,
    pub segments: Arc<Mutex<SegmentTable>>,
    pub stable: Mutex<Stable>,
    /// Durable advanced, a buffer was freed, `current` advanced, or poison.
    pub stable_cv: Condvar,
    /// Work for the I/O writer.
    pub io_cv: Condvar,
    /// Wakes the flusher early (shutdown).
    pub flusher_cv: Condvar,
    /// Fast-path copy of `stable.poison.is_some()`. Release when set (after the cause is
    /// stored under the lock), Acquire when read; the cause itself is read under the lock.
    pub poisoned: AtomicBool,
    pub next_blob: StdAtomicU64,
    pub salts: SaltSource,
    pub counters: Counters,
    /// Blobs whose pointer records were marked dead, waiting for durability and the horizon.
    pub dead_blobs: Mutex<Vec<DeadBlob>>,
    /// Drained segments past the epoch, to be freed by the I/O writer.
    pub past_epoch: Arc<Mutex<Vec<SegmentId>>>,
    /// Blobs past the epoch, to be removed by the I/O writer.
    pub blobs_to_remove: Arc<Mutex<Vec<u64>>>,
}

/// A blob whose pointer record is dead. Its file may be removed once the death is durable
/// (`drain_lsn`), no recovery can replay the pointer (`record_end` below the reuse horizon),
/// and no reader can still be reading it (epoch).
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeadBlob {
    pub id: u64,
    pub record_end: u64,
    pub drain_lsn: u64,
}

/// Random 64-bit segment salts: a process-random SipHash key over a counter. Uniqueness is
/// what matters (a new incarnation of a slot must not repeat the old one's salt), so no
/// cryptographic quality is needed; seeding from the OS (through `RandomState`) means two
/// processes, or two runs after a crash, do not repeat each other's sequence.
#[derive(Debug, Default)]
pub(crate) struct SaltSource {
    keys: std::hash::RandomState,
    counter: StdAtomicU64,
}

impl SaltSource {
    pub(crate) fn next(&self) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = self.keys.build_hasher();
        // Relaxed: uniqueness of the counter value is all that matters.
        h.write_u64(self.counter.fetch_add(1, Ordering::Relaxed));
        h.finish()
    }
}

impl Shared {
    pub(crate) fn seg_size(&self) -> u64 {
        self.cfg.segment_size_bytes
    }

    pub(crate) fn check_poison(&self) -> Result<()> {
        // Acquire: pairs with the Release in `poison` (the cause is then read under the lock).
        if !self.poisoned.load(Ordering::Acquire) {
            return Ok(());
        }
        let st = lock(&self.stable);
        Err(Error::Poisoned {
            cause: st.poison.clone().unwrap_or_default(),
        })
    }

    /// Whether reads must be refused: only after a panic poisoned the log. After an I/O
    /// failure records are still read (see [`crate::Log::read`]).
    pub(crate) fn reads_refused(&self) -> bool {
        // Acquire: pairs with the Release in `poison` / `poison_after_panic`.
        self.poisoned.load(Ordering::Acquire) && lock(&self.stable).poison_is_panic
    }

    pub(crate) fn poison_error(&self) -> Error {
        let st = lock(&self.stable);
        Error::Poisoned {
            cause: st.poison.clone().unwrap_or_else(|| "unknown".into()),
        }
    }

    /// Records the first failure and wakes every waiter. Never cleared.
    pub(crate) fn poison(&self, cause: String) {
        let mut st = lock(&self.stable);
        if st.poison.is_none() {
            st.poison = Some(cause);
        }
        self.poisoned.store(true, Ordering::Release);
        drop(st);
        self.stable_cv.notify_all();
        self.io_cv.notify_all();
    }

    /// Poisons with an I/O error and returns the error for the caller.
    pub(crate) fn fail(
        &self,
        op: &'static str,
        path: &std::path::Path,
        e: std::io::Error,
    ) -> Error {
        let err = Error::io(op, path, e);
        self.poison(err.to_string());
        err
    }

    fn initial_offset(&self, base: u64) -> u32 {
        if base % self.seg_size() == 0 {
            SEGMENT_HEADER_LEN as u32
        } else {
            0
        }
    }

    /// Claims `total` bytes (header + body) in the current buffer, sealing and rotating as
    /// needed. `total` fits an empty buffer (checked by the caller).
    pub(crate) fn reserve_inline(&self, total: u32) -> Result<Slot> {
        loop {
            self.check_poison()?;
            // Acquire: pairs with the installer's Release store (stale is fine, see field doc).
            let seq = self.current.load(Ordering::Acquire);
            let idx = (seq % self.bufs.len() as u64) as usize;
            let buf = &self.bufs[idx];
            let snap = buf.word.load();
            match snap.try_reserve(total, buf.capacity()) {
                Reserve::Fits { next, offset } => {
                    if buf.word.cas(snap, next).is_err() {
                        bump(&self.counters.cas_retries, 1);
                    } else {
                        // Our slot pins this incarnation: its facts cannot change under us.
                        let inc = buf.incarnation();
                        // The capacity `try_reserve` checked against was loaded after the word
                        // and validated only by the CAS (generation): if that ever let a stale
                        // capacity through, the range would overrun the buffer or the segment.
                        assert!(
                            u64::from(offset) + u64::from(total) <= u64::from(inc.capacity),
                            "reservation [{offset}, +{total}) beyond capacity {} of {inc:?}",
                            inc.capacity
                        );
                        return Ok(Slot {
                            idx,
                            offset,
                            len: total,
                            lsn: inc.base_lsn + u64::from(offset),
                            file_offset: inc.file_offset + u64::from(offset),
                            salt: inc.salt,
                        });
                    }
                }
                Reserve::Full => {
                    if let Some(Sealed {
                        install_deferred: Some(e),
                        ..
                    }) = self.try_seal(idx, snap, true)?
                    {
                        // Our install already retried the stalled buffer it needs (or a
                        // retry by another thread failed while it waited): that is this
                        // call's one retry. Looping would meet the sealed word and retry
                        // the parked install a second time (`wait_for_advance`).
                        return Err(e);
                    }
                }
                Reserve::Sealed => self.wait_for_advance(seq)?,
                Reserve::Busy => yield_now(),
            }
        }
    }

    /// Seals buffer `idx` if its word still is `snap`; `pad` fills the rest of the segment
    /// when the buffer ends there. On success rotates to the next buffer (or parks the
    /// install, see [`Sealed::install_deferred`]) and says where the sealed buffer ends;
    /// `None` if another thread changed the word first.
    pub(crate) fn try_seal(&self, idx: usize, snap: Snapshot, pad: bool) -> Result<Option<Sealed>> {
        let buf = &self.bufs[idx];
        let Some(sealed) = snap.try_seal_join() else {
            return Ok(None);
        };
        if buf.word.cas(snap, sealed).is_err() {
            bump(&self.counters.cas_retries, 1);
            return Ok(None);
        }
        let counter = if pad {
            &self.counters.buffers_sealed_full
        } else {
            &self.counters.buffers_sealed_early
        };
        bump(counter, 1);
        // We own the seal and a writer slot: the incarnation is pinned.
        let inc = buf.incarnation();
        let off = sealed.offset();
        let seg_off = inc.base_lsn % self.seg_size();
        let ends_segment = seg_off + u64::from(inc.capacity) == self.seg_size();
        let end = if pad && ends_segment {
            let rest = inc.capacity - off;
            // SAFETY: `[off, capacity)` lies past every reservation (the offset is frozen by our
            // seal) and belongs to the sealer alone.
            let tail = unsafe { buf.mem.slice_mut(off as usize, rest as usize) };
            if tail.len() >= RECORD_HEADER_LEN {
                let lsn = inc.base_lsn + u64::from(off);
                encode_record_header(tail, RecordKind::Padding, lsn, inc.salt);
            } else {
                tail.fill(0);
            }
            inc.capacity
        } else {
            off
        };
        buf.set_end(end);
        // Narrow the range readers look for records in: the next buffer starts at `end`, and
        // this must happen before it is installed, or a reader could find a record of the
        // next buffer inside this one's stale range.
        *lock(&buf.status) = Status::Filling {
            base: inc.base_lsn,
            len: end,
        };
        self.finish(idx);
        let next_base = inc.base_lsn + u64::from(end);
        let next = PendingInstall {
            seq: inc.seq + 1,
            base: next_base,
            prev: Some((inc.segment, inc.salt)),
        };
        let install_deferred = match self.install_or_defer(next) {
            Ok(()) => None,
            // Parked (never on a poisoned log, see `install_or_defer`): the seal stands and
            // the buffer is handed off as usual; the rotation waits for disk space (whoever
            // meets the sealed buffer retries the install).
            Err(e) if e.is_storage_full() => Some(e),
            Err(e) => return Err(e),
        };
        Ok(Some(Sealed {
            end: next_base,
            install_deferred,
        }))
    }

    /// [`Shared::install`]; if it fails because the buffer to install is stalled on a full
    /// disk, parks the step in `pending_install` for the next thread that meets the sealed
    /// buffer (`wait_for_advance`), and returns the error.
    ///
    /// Only a stalled buffer write is parked, and never on a poisoned log: a poisoned log
    /// installs nothing any more, and every caller must hear the poison, not a full disk.
    fn install_or_defer(&self, p: PendingInstall) -> Result<()> {
        let r = self.install(p.seq, p.base, p.prev);
        if let Err(e) = &r {
            if e.is_storage_full() {
                let mut st = lock(&self.stable);
                if st.poison.is_some() {
                    drop(st);
                    return Err(self.poison_error());
                }
                assert!(
                    st.pending_install.is_none(),
                    "two deferred installs: {:?} and {p:?}",
                    st.pending_install
                );
                st.pending_install = Some(p);
                drop(st);
                self.stable_cv.notify_all();
            }
        }
        r
    }

    /// Waits until buffer `idx` is written out and free (for its next install). If it is
    /// queued (handed off, not yet taken), the I/O writer writes it; under loom there is no
    /// I/O writer, so this writes the queue itself, as a committer does (whoever takes the
    /// queue under the lock owns those buffers). If it is stalled on a full disk, retries its
    /// write (or waits for the thread retrying it), and fails with the full-disk error once a write of `idx` failed since
    /// this call started (a failure of another stalled buffer does not count): an install
    /// must not wait for free space with the whole rotation behind it.
    fn wait_free(&self, idx: usize) -> Result<()> {
        let buf = &self.bufs[idx];
        let mut st = lock(&self.stable);
        let seen = st.stall.clock();
        loop {
            if st.poison.is_some() {
                drop(st);
                return Err(self.poison_error());
            }
            let free = buf.word.load().is_handoff() && *lock(&buf.status) == Status::Free;
            if free {
                return Ok(());
            }
            let batch = if let Some(base) = st.stall.base_of(idx) {
                if st.stall.buffer_failed(idx, seen) {
                    return Err(st.stall.error());
                }
                // The stalled buffers up to ours, oldest first (the prefix advances too).
                st.stall.take_idle(base + 1)
            } else if cfg!(loom) && st.queue.contains(&idx) {
                // Not outside loom: the I/O writer is woken by the hand-off, and a storage
                // panic then stays on that thread (`tests/panics.rs`).
                std::mem::take(&mut st.queue)
            } else {
                Vec::new()
            };
            if batch.is_empty() {
                // Being written (or retried) by another thread, which wakes us either way.
                st = wait(&self.stable_cv, st);
                continue;
            }
            drop(st);
            crate::writer::write_taken(self, &batch, "installer writing buffers");
            st = lock(&self.stable);
        }
    }

    /// Drops one writer slot of buffer `idx`; the last writer out of a sealed buffer hands it
    /// to the I/O writer.
    pub(crate) fn finish(&self, idx: usize) {
        let buf = &self.bufs[idx];
        let after = buf.word.writer_done();
        if after.is_handoff() {
            // Relaxed: every completer's increment happened before its writer_done (AcqRel),
            // which this last writer's writer_done follows. swap(0) resets it for the next use.
            bump(
                &self.counters.records_completed,
                buf.records.swap(0, Ordering::Relaxed),
            );
            {
                // From now on nobody writes the bytes until the buffer is free again: readers
                // may copy them (see `Log::read`). Every writer's bytes happen before this
                // (their writer_done RMWs precede ours on the word).
                let mut status = lock(&buf.status);
                let Status::Filling { base, len } = *status else {
                    panic!("hand-off of buffer {idx} in status {:?}", *status);
                };
                *status = Status::HandedOff { base, len };
            }
            let mut st = lock(&self.stable);
            st.queue.push(idx);
            let wake_readers = st.read_waiters > 0;
            drop(st);
            self.io_cv.notify_one();
            if wake_readers {
                self.stable_cv.notify_all();
            }
        }
    }

    /// Installs buffer `seq` for LSNs from `base`. `prev` is the segment (and its salt) of
    /// buffer `seq - 1` (None at open when starting a new segment).
    pub(crate) fn install(
        &self,
        seq: u64,
        base: u64,
        prev: Option<(SegmentId, u32)>,
    ) -> Result<()> {
        let idx = (seq % self.bufs.len() as u64) as usize;
        let buf = &self.bufs[idx];
        // The only step that may fail with a full disk, and it changes nothing: a failed
        // install can be retried from the start (see `install_or_defer`).
        self.wait_free(idx)?;
        let seg = self.seg_size();
        let in_seg = base % seg;
        let buf_size = self.cfg.io_buffer_size_bytes;
        let (segment, capacity, salt) = if in_seg == 0 {
            let mut table = lock(&self.segments);
            if let Some((p, _)) = prev {
                table.seal(p, base);
            }
            let salt = self.salts.next();
            let (id, grow) = match table.allocate(base, salt as u32) {
                Ok(allocated) => allocated,
                Err(why) => {
                    drop(table);
                    // The rotation cannot go on: everyone waiting for it must hear why.
                    self.poison(why.clone());
                    return Err(Error::Config(why));
                }
            };
            if let Some(len) = grow {
                // Growth is geometric, so this sync is rare; it keeps "after flush nothing is
                // unsynced" literally true (the size change need not wait for the next data).
                match self.file.set_len(len) {
                    // A failed sync is never retried, whatever its error code (`ENOSPC`
                    // included, see `writer/stall.rs`): the log is poisoned, and the caller
                    // hears that, not a retryable full disk (which would park this install).
                    Ok(()) => self.file.sync_data().map_err(|e| {
                        self.fail("fdatasync grown data file", &self.data_path, e);
                        self.poison_error()
                    })?,
                    // A full disk: go on without the slack. The buffers of the new segment
                    // extend the file when they are written (`pwrite` past the end), and a
                    // write that finds no space stalls and is retried; the sync after it covers
                    // the size. Recovery sizes the slot table from the file's length.
                    Err(e) if is_out_of_space(&e) => bump(&self.counters.full_disk_retries, 1),
                    Err(e) => return Err(self.fail("grow data file", &self.data_path, e)),
                }
            }
            table.buffer_installed(id);
            drop(table);
            // SAFETY: the buffer is free (written out, no writers): the installer owns it.
            let hdr = unsafe { buf.mem.slice_mut(0, SEGMENT_HEADER_LEN) };
            encode_segment_header(hdr, seg.trailing_zeros(), base, salt);
            (id, buf_size.min(seg), salt as u32)
        } else {
            let (id, salt) =
                prev.expect("a buffer inside a segment follows one in the same segment");
            lock(&self.segments).buffer_installed(id);
            (id, buf_size.min(seg - in_seg), salt)
        };
        let inc = Incarnation {
            seq,
            base_lsn: base,
            file_offset: segment.0 * seg + in_seg,
            segment,
            capacity: capacity as u32,
            salt,
        };
        // Seqlock write section (see `IoBuffer::validated_view`): the word says "installing"
        // while the fields change. No lock is taken inside it, so a reader spinning on
        // `validated_view` under the segments lock cannot wait on us while we wait on it.
        // Release: a thread ordered after a reservation in this incarnation (which Acquired the
        // fresh word stored below) reads this bound or a later one.
        self.reserve_limit
            .fetch_max(base + u64::from(inc.capacity), Ordering::Release);
        let generation = buf.word.begin_install();
        buf.set_incarnation(inc);
        *lock(&buf.status) = Status::Filling {
            base,
            len: inc.capacity,
        };
        buf.word
            .install(Snapshot::fresh(generation, self.initial_offset(base)));
        // Release: a thread that sees the new sequence also sees the installed word.
        self.current.store(seq, Ordering::Release);
        let st = lock(&self.stable);
        drop(st);
        self.stable_cv.notify_all();
        Ok(())
    }

    /// Waits until `current` moves past `seq` (the buffer we met sealed is being rotated).
    pub(crate) fn wait_for_advance(&self, seq: u64) -> Result<()> {
        for _ in 0..64 {
            // Acquire: pairs with the installer's Release store of `current`.
            if self.current.load(Ordering::Acquire) != seq {
                return Ok(());
            }
            std::thread::yield_now();
        }
        let mut st = lock(&self.stable);
        // The failure clock when we came (see `wait_free`).
        let seen = st.stall.clock();
        loop {
            if st.poison.is_some() {
                drop(st);
                return Err(self.poison_error());
            }
            // Acquire: pairs with the installer's Release store of `current`.
            if self.current.load(Ordering::Acquire) != seq {
                return Ok(());
            }
            if let Some(p) = st.pending_install {
                assert_eq!(
                    p.seq,
                    seq + 1,
                    "a deferred install that is not the next one"
                );
                // One retry per caller: a failed write, since we started, of the buffer the
                // parked step needs is our answer (other stalled buffers do not count).
                let idx = (p.seq % self.bufs.len() as u64) as usize;
                if st.stall.buffer_failed(idx, seen) {
                    return Err(st.stall.error());
                }
                // Taking it under the lock makes us the installer (as the sealer was).
                st.pending_install = None;
                drop(st);
                return self.install_or_defer(p);
            }
            st = wait(&self.stable_cv, st);
        }
    }

    /// Seals buffer `idx` if it still fills the incarnation from `base` and LSNs up to `end`
    /// were reserved in it, so a reader can wait for its hand-off (see `Log::read`). Unlike
    /// [`Shared::seal_for`] it never waits for another thread's install to advance `current`,
    /// and a parked install is not its error: a reader must not fail because the next buffer
    /// cannot be installed yet (a full disk). If it wins the seal it is the installer, though,
    /// and waits as one (see the module comment, "Readers").
    pub(crate) fn seal_for_read(&self, idx: usize, base: u64, end: u64) -> Result<()> {
        let buf = &self.bufs[idx];
        loop {
            let Some((snap, inc)) = buf.validated_view() else {
                // Mid-install (which waits for nothing once it has a free buffer).
                yield_now();
                continue;
            };
            if inc.base_lsn != base || snap.is_sealed() {
                return Ok(());
            }
            let head = base + u64::from(snap.offset());
            if head < end {
                return Err(Error::StalePointer(format!(
                    "LSNs up to {end} have not been reserved yet (reserved up to {head})"
                )));
            }
            if self.try_seal(idx, snap, false)?.is_some() {
                return Ok(());
            }
        }
    }

    /// An upper bound of every LSN reserved so far (used as the LSN whose durability makes a
    /// drain durable). Bounds every reservation this thread is ordered after: the `current`
    /// load cannot return a sequence older than one it has already seen (coherence).
    ///
    /// Called under the segments lock, so it never spins unboundedly: after
    /// [`HEAD_VIEW_TRIES`] views that did not validate (reservers keep moving the offset, or
    /// the buffer is being installed) it returns `reserve_limit`, the end of the latest
    /// installed buffer. That is also an upper bound (at most one buffer above the precise
    /// head), so the only cost of the fallback is that a drain becomes durable a little later.
    pub(crate) fn reserve_head(&self) -> u64 {
        for _ in 0..HEAD_VIEW_TRIES {
            // Acquire: pairs with the installer's Release store of `current`.
            let seq = self.current.load(Ordering::Acquire);
            let buf = &self.bufs[(seq % self.bufs.len() as u64) as usize];
            if let Some((snap, inc)) = buf.validated_view() {
                if !snap.is_sealed() {
                    return inc.base_lsn + u64::from(snap.offset());
                }
                // Sealed: its capacity bounds everything reserved in it.
                return inc.base_lsn + u64::from(inc.capacity);
            }
            std::hint::spin_loop();
        }
        bump(&self.counters.head_view_fallbacks, 1);
        // Acquire: pairs with the installer's Release `fetch_max` (see the field).
        self.reserve_limit.load(Ordering::Acquire)
    }

    /// Seals the current buffer if it holds data below `want` (None = all data), then returns
    /// the LSN that must become durable.
    pub(crate) fn seal_for(&self, want: Option<u64>) -> Result<u64> {
        loop {
            self.check_poison()?;
            // Acquire: pairs with the installer's Release store of `current`.
            let seq = self.current.load(Ordering::Acquire);
            let idx = (seq % self.bufs.len() as u64) as usize;
            let Some((snap, inc)) = self.bufs[idx].validated_view() else {
                // Mid-install, as in `seal_for_read`.
                yield_now();
                continue;
            };
            if snap.is_sealed() {
                // Being rotated (or a stale sequence): retry on the next buffer.
                self.wait_for_advance(seq)?;
                continue;
            }
            let base = inc.base_lsn;
            let head = base + u64::from(snap.offset());
            let target = want.map_or(head, |w| w.min(head));
            if target <= base || snap.offset() == self.initial_offset(base) {
                return Ok(target.min(base));
            }
            if let Some(Sealed { end, .. }) = self.try_seal(idx, snap, false)? {
                // A parked install is not ours to report: the durability wait that follows
                // meets the stalled buffer itself if it needs it.
                debug_assert!(end >= target);
                return Ok(target);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;

    use crate::buffer::state::Snapshot;
    use crate::io::SimStorage;
    use crate::{Config, Log, Lsn};

    /// `reserve_head` runs under the segments lock; it used to retry `validated_view` until
    /// one validated, so a buffer stuck mid-install (or a storm of reservers) made it spin
    /// with the lock held. It now falls back to the end of the latest installed buffer.
    #[test]
    fn reserve_head_is_bounded_while_the_current_buffer_is_installing() {
        let (log, _) =
            Log::open(Config::small("/db"), Arc::new(SimStorage::new()), Lsn(0)).expect("open log");
        let (lsn, _) = log.append(b"some record").expect("append");
        let sh = log.shared();
        let precise = sh.reserve_head();
        assert!(precise > lsn.0, "head {precise} not above record {lsn:?}");
        let seq = sh.current.load(std::sync::atomic::Ordering::Acquire);
        let buf = &sh.bufs[(seq % sh.bufs.len() as u64) as usize];
        let inc = buf.incarnation();
        // Make the current buffer look mid-install: a sealer joins and leaves (no other
        // writers), then an install begins.
        let live = buf.word.load();
        let sealed = live.try_seal_join().expect("seal");
        buf.word.cas(live, sealed).expect("seal CAS");
        assert!(buf.word.writer_done().is_handoff());
        let generation = buf.word.begin_install();
        let fallbacks = log.stats().head_view_fallbacks;
        let head = sh.reserve_head();
        assert_eq!(head, inc.base_lsn + u64::from(inc.capacity));
        assert!(
            head >= precise,
            "fallback {head} below the precise head {precise}"
        );
        assert_eq!(log.stats().head_view_fallbacks, fallbacks + 1);
        // Put the buffer back as it was (same offset, no writers) so the log works and closes.
        buf.word.install(Snapshot::fresh(generation, live.offset()));
        assert_eq!(sh.reserve_head(), precise);
        log.append(b"after").expect("append after the restore");
        log.flush().expect("flush");
    }
}
