//! The I/O writer thread (writes handed-off buffers, fsyncs for waiters, reclaims drained
//! segments), durability waits, and the background flusher.
//!
//! A panic on one of these threads (a broken invariant, or a panicking storage implementation)
//! poisons the log on the way out ([`PoisonOnUnwind`]) and wakes every waiter, so nobody waits
//! forever for a buffer or a sync that thread would have delivered; `Log`'s drop re-raises the
//! panic when it joins the thread.
//!
//! Group commit (see [`commit`]): durability waiters write queued buffers and `fdatasync`
//! themselves, one sync at a time, the next covering whatever was written meanwhile; the one
//! about to sync waits briefly for the committers it expects. Buffers may be written in any
//! order (by this thread or a waiter); `written_end` only advances over contiguous ranges, and
//! `durable` becomes the `written_end` observed before a successful sync. Reclaim rounds run
//! after every batch this thread writes and after every sync (on the syncing thread).
//!
//! A full disk (see [`stall`]) stalls a buffer instead of poisoning the log: it stays in
//! memory and is written again later, by this thread after a backoff or by whoever needs it.
//! Sync failures, and write failures other than a full disk, still poison.

mod commit;
mod stall;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use commit::{wait_durable, GroupCommit};
pub(crate) use stall::Stall;

use crossbeam_epoch as epoch;

use crate::blob;
use crate::buffer::Status;
use crate::error::is_out_of_space;
use crate::format::SEGMENT_HEADER_LEN;
use crate::shared::{lock, wait, Shared, Stable};
use crate::stats::bump;
use crate::sync::Ordering;

/// Poisons the log if dropped while its thread unwinds from a panic, and wakes everyone who
/// waits on the log's condvars. Without it a panic on the I/O writer (or the flusher) thread
/// left durability waiters, and writers waiting for a free buffer, asleep forever (D2).
pub(crate) struct PoisonOnUnwind<'a> {
    sh: &'a Shared,
    /// Which thread, for the poison cause.
    role: &'static str,
}

impl<'a> PoisonOnUnwind<'a> {
    pub(crate) fn new(sh: &'a Shared, role: &'static str) -> Self {
        PoisonOnUnwind { sh, role }
    }
}

impl Drop for PoisonOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            poison_after_panic(self.sh, self.role);
        }
    }
}

/// [`Shared::poison`] for a thread that is unwinding: it must not panic again (that aborts the
/// process), so it takes the stable lock even if the panic poisoned that mutex, and clears the
/// mutex poison afterwards. That is sound because the log is poisoned first: every user of
/// `Stable` checks `poison` before trusting the rest, and the log refuses all further work.
fn poison_after_panic(sh: &Shared, role: &str) {
    let mut st = sh
        .stable
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if st.poison.is_none() {
        st.poison = Some(format!(
            "the log's {role} panicked (a bug in the log or its storage); reopen the log"
        ));
    }
    st.poison_is_panic = true;
    // Release: pairs with the Acquire loads of the fast-path flag (as in `Shared::poison`).
    sh.poisoned.store(true, Ordering::Release);
    drop(st);
    // loom's mutexes are never poisoned (and have no `clear_poison`).
    #[cfg(not(loom))]
    sh.stable.clear_poison();
    sh.stable_cv.notify_all();
    sh.io_cv.notify_all();
    sh.flusher_cv.notify_all();
}

/// Body of the I/O writer thread: writes handed-off buffers (syncs are the waiters' job, see
/// [`commit`]). Exits when shut down with nothing queued.
pub(crate) fn io_loop(sh: Arc<Shared>) {
    let _poison_on_panic = PoisonOnUnwind::new(&sh, "I/O writer thread");
    loop {
        let batch = {
            let mut st = lock(&sh.stable);
            loop {
                if !st.queue.is_empty() {
                    break std::mem::take(&mut st.queue);
                }
                if st.shutdown {
                    // Stalled buffers stay unwritten: nothing waits for them any more (a
                    // closing log's last flush reported the full disk).
                    return;
                }
                match st.stall.retry_in(Instant::now()) {
                    Some(d) if d.is_zero() => break st.stall.take_idle(u64::MAX),
                    Some(d) => {
                        st = sh
                            .io_cv
                            .wait_timeout(st, d)
                            .unwrap_or_else(|_| panic!("log mutex poisoned by an earlier panic"))
                            .0;
                    }
                    None => st = wait(&sh.io_cv, st),
                }
            }
        };
        write_batch(&sh, &batch);
        reclaim(&sh);
    }
}

/// [`write_batch`] on a thread that is not the I/O writer (a committer or an installer that
/// took buffers off the queue or the stall list): a panic there poisons the log too.
pub(crate) fn write_taken(sh: &Shared, batch: &[usize], role: &'static str) {
    let _poison_on_panic = PoisonOnUnwind::new(sh, role);
    write_batch(sh, batch);
}

/// Writes handed-off buffers (fresh ones from the queue, or stalled ones taken for a retry),
/// each at its own file offset, in the order given.
///
/// A write that meets a full disk stalls its buffer (see [`stall`]): it stays `HandedOff`
/// (readable from memory, never reused), is not noted written, and the batch goes on with the
/// next buffer. Any other failure poisons the log and drops the rest of the batch (never
/// marked free, so nothing reuses them; every waiter sees the poison).
pub(crate) fn write_batch(sh: &Shared, batch: &[usize]) {
    for &idx in batch {
        // Acquire: pairs with the Release in `Shared::poison`.
        if sh.poisoned.load(Ordering::Acquire) {
            return;
        }
        let buf = &sh.bufs[idx];
        let inc = buf.incarnation();
        let end = buf.end();
        // SAFETY: the buffer was handed off (sealed, no writers) and is not marked free yet, so
        // nobody writes any of its bytes until the status store below; whoever took it from
        // the queue or the stall list is its only writer (both are taken under the lock).
        let bytes = unsafe { buf.mem.slice(0, end as usize) };
        // An empty buffer (none is sealed today, see `note_written`) has nothing to write.
        if end > 0 {
            // Positional: a retry rewrites the same bytes at the same offset, so a short write
            // before an earlier failure is simply overwritten.
            if let Err(e) = sh.file.write_all_at(bytes, inc.file_offset) {
                if !is_out_of_space(&e) {
                    sh.fail("write buffer", &sh.data_path, e);
                    return;
                }
                bump(&sh.counters.full_disk_retries, 1);
                let mut st = lock(&sh.stable);
                st.stall
                    .failed(inc.base_lsn, idx, "write buffer", sh.data_path.clone(), &e);
                drop(st);
                // Waiters learn the retry failed; the I/O writer re-arms its backoff.
                sh.stable_cv.notify_all();
                sh.io_cv.notify_one();
                continue;
            }
            bump(&sh.counters.buffers_written, 1);
            bump(&sh.counters.bytes_written, u64::from(end));
        }
        // Relaxed: every completer's fetch_add happened before its writer_done (AcqRel), which
        // happened before this hand-off.
        let live = buf.live.load(Ordering::Relaxed);
        {
            // The head is read under the table lock: a `mark_dead` that ran before (and whose
            // relocated record therefore precedes it) is then ordered before this read.
            let mut table = lock(&sh.segments);
            let head = sh.reserve_head();
            table.buffer_written(inc.segment, live, head);
        }
        *lock(&buf.status) = Status::Free;
        let mut st = lock(&sh.stable);
        st.stall.written(inc.base_lsn);
        note_written(&mut st, inc.base_lsn, inc.base_lsn + u64::from(end));
        drop(st);
        sh.stable_cv.notify_all();
    }
}

/// Records that LSNs `[start, end)` are in the file and advances `written_end` over the
/// contiguous prefix.
///
/// Empty ranges are skipped, not inserted. The next buffer continues at the sealed end, so an
/// empty range shares its start with the next buffer's range; buffers are written in any order,
/// so inserting the empty one after the other would replace it in the map (same key), and
/// `written_end` would stop at `start` forever: every durability waiter past it would hang.
/// No buffer is sealed empty today (`seal_for` skips empty buffers; a full seal holds at least
/// the segment header or a padding record), so this is a guard for the protocol's next change.
fn note_written(st: &mut Stable, start: u64, end: u64) {
    assert!(start <= end, "written range [{start}, {end}) is reversed");
    if start == end {
        return;
    }
    assert!(
        start >= st.written_end,
        "range [{start}, {end}) written again below written_end {}",
        st.written_end
    );
    let earlier = st.written.insert(start, end);
    assert!(
        earlier.is_none(),
        "two written ranges start at {start}: [{start}, {end}) and [{start}, {earlier:?})"
    );
    while let Some(e) = {
        let we = st.written_end;
        st.written.remove(&we)
    } {
        st.written_end = e;
    }
    // A stalled buffer is never noted written, so the prefix (hence `durable`) stops below it.
    assert!(
        !st.stall.blocks(st.written_end),
        "written_end {} passed a stalled buffer",
        st.written_end
    );
}

/// Frees drained segments whose drain is durable, behind the epoch; truncates a free tail.
/// Safe to run on several threads at once: each step takes its work items under a lock.
pub(crate) fn reclaim(sh: &Shared) {
    let durable = lock(&sh.stable).durable;
    let (ids, horizon) = {
        let mut table = lock(&sh.segments);
        (table.take_reclaimable(durable), table.reuse_horizon())
    };
    let blobs: Vec<u64> = {
        let mut dead = lock(&sh.dead_blobs);
        let (ready, wait): (Vec<_>, Vec<_>) = dead
            .iter()
            .partition(|b| b.drain_lsn <= durable && b.record_end <= horizon);
        *dead = wait;
        ready.into_iter().map(|b| b.id).collect()
    };
    let guard = epoch::pin();
    if !blobs.is_empty() {
        let to_remove = sh.blobs_to_remove.clone();
        // Readers pin around blob reads too.
        guard.defer(move || lock(&to_remove).extend(blobs));
    }
    if !ids.is_empty() {
        let past_epoch = sh.past_epoch.clone();
        // Readers pin the epoch around every read: the slot is freed (and may be reused) only
        // after every reader that could have seen a pointer into it unpinned.
        guard.defer(move || lock(&past_epoch).extend(ids));
    }
    // Also advances the epoch and runs expired closures from earlier rounds.
    guard.flush();
    drop(guard);
    free_segments(sh);
    remove_blobs(sh);
    let mut table = lock(&sh.segments);
    if let Some(len) = table.shrink_target() {
        // Under the table lock so no allocation grows the file meanwhile.
        match sh.file.set_len(len) {
            Ok(()) => {
                if let Err(e) = sh.file.sync_data() {
                    drop(table);
                    sh.fail("fdatasync truncated data file", &sh.data_path, e);
                }
            }
            // The file may be shorter than the table after a growth that met a full disk, so
            // this "truncation" may grow it: then it waits for space like the growth. A longer
            // file than the table is harmless (its tail slots are free).
            Err(e) if is_out_of_space(&e) => bump(&sh.counters.full_disk_retries, 1),
            Err(e) => {
                drop(table);
                sh.fail("truncate data file", &sh.data_path, e);
            }
        }
    }
}

/// Frees the slots whose drain passed the epoch. Their headers are zeroed first, so after a
/// restart they are free slots rather than old segments recovery must keep (it cannot tell a
/// dead segment below the start LSN from a live one). The zeroing becomes durable with the
/// next sync; if a crash loses it the slot is merely kept until the upper layer frees it again.
fn free_segments(sh: &Shared) {
    let ids = std::mem::take(&mut *lock(&sh.past_epoch));
    if ids.is_empty() {
        return;
    }
    let mut table = lock(&sh.segments);
    for (i, &id) in ids.iter().enumerate() {
        let offset = id.0 * sh.seg_size();
        if let Err(e) = sh.file.write_all_at(&[0u8; SEGMENT_HEADER_LEN], offset) {
            drop(table);
            if is_out_of_space(&e) {
                // Nothing changed (the slot stays draining): try again in a later round.
                bump(&sh.counters.full_disk_retries, 1);
                lock(&sh.past_epoch).extend_from_slice(&ids[i..]);
            } else {
                sh.fail("zero freed segment header", &sh.data_path, e);
            }
            return;
        }
        table.free(id);
        bump(&sh.counters.segments_freed, 1);
    }
}

/// Removes blob files whose removal passed the epoch, then syncs the blob directory once.
/// A failure poisons the log like any other failed write or sync.
fn remove_blobs(sh: &Shared) {
    let ids = std::mem::take(&mut *lock(&sh.blobs_to_remove));
    if ids.is_empty() {
        return;
    }
    for id in ids {
        let path = blob::blob_path(&sh.cfg.path, id);
        if let Err(e) = sh.storage.remove_file(&path) {
            sh.fail("remove dead blob", &path, e);
            return;
        }
    }
    let dir = blob::blob_dir(&sh.cfg.path);
    if let Err(e) = sh.storage.sync_dir(&dir) {
        sh.fail("fsync blob directory", &dir, e);
    }
}

/// Body of the flusher thread: `flush` every `every`, until stopped or poisoned (a full disk
/// only fails this round).
pub(crate) fn flusher_loop(sh: Arc<Shared>, every: Duration) {
    let _poison_on_panic = PoisonOnUnwind::new(&sh, "flusher thread");
    let mut next = Instant::now() + every;
    loop {
        {
            let mut st = lock(&sh.stable);
            loop {
                if st.flusher_stop {
                    return;
                }
                let now = Instant::now();
                if now >= next {
                    break;
                }
                st = sh
                    .flusher_cv
                    .wait_timeout(st, next - now)
                    .unwrap_or_else(|_| panic!("log mutex poisoned by an earlier panic"))
                    .0;
            }
        }
        let r = sh.seal_for(None).and_then(|t| wait_durable(&sh, t));
        if r.is_err() && sh.check_poison().is_err() {
            return; // poisoned: every later call reports it.
        }
        // A full disk: the next round tries again (the data stays in memory meanwhile).
        next = Instant::now() + every;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stable_at(lsn: u64) -> Stable {
        Stable {
            written_end: lsn,
            durable: lsn,
            ..Stable::default()
        }
    }

    #[test]
    fn out_of_order_ranges_join_the_prefix() {
        let mut st = stable_at(100);
        note_written(&mut st, 300, 400);
        note_written(&mut st, 200, 300);
        assert_eq!(st.written_end, 100, "a hole at [100, 200) stops the prefix");
        note_written(&mut st, 100, 200);
        assert_eq!(st.written_end, 400);
        assert!(st.written.is_empty());
    }

    /// N3: an empty range noted after the non-empty range with the same start (the buffer after
    /// an empty one continues at its end) used to replace it in the map, so `written_end`
    /// stopped at that start forever.
    #[test]
    fn empty_range_does_not_hide_the_range_starting_at_its_end() {
        let mut st = stable_at(0);
        note_written(&mut st, 200, 300); // the next buffer, written first
        note_written(&mut st, 200, 200); // the empty one
        note_written(&mut st, 0, 200);
        assert_eq!(st.written_end, 300);
        assert!(st.written.is_empty());
    }

    #[test]
    fn empty_range_at_the_prefix_end_is_a_no_op() {
        let mut st = stable_at(64);
        note_written(&mut st, 64, 64);
        assert_eq!(st.written_end, 64);
        assert!(st.written.is_empty());
    }

    #[test]
    #[should_panic(expected = "two written ranges start at")]
    fn the_same_start_twice_is_a_broken_invariant() {
        let mut st = stable_at(0);
        note_written(&mut st, 100, 200);
        note_written(&mut st, 100, 150);
    }
}
