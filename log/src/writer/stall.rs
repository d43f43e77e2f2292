//! A full disk stalls buffers instead of poisoning the log.
//!
//! Why a full disk is retryable and nothing else is: a `pwrite` that fails with `ENOSPC`
//! (or `EDQUOT`) acknowledged nothing. The buffer stays in memory, `HandedOff` (readers copy
//! its records from there), and is written again later at the same file offset, so the bytes
//! of a short write that preceded the failure are simply overwritten. A failed **sync** is
//! different (the "fsyncgate" lesson): the kernel may already have dropped the dirty pages it
//! could not write and marked them clean, so a retried `fdatasync` can succeed without the data
//! ever reaching the disk. Sync failures of any kind, and write failures other than a full disk
//! (`EIO`, ...), therefore still poison the log.
//!
//! Protocol (all under the `stable` lock):
//! - The thread whose write of buffer `idx` (LSNs from `base`) fails with a full disk records
//!   it here ([`Stall::failed`]): `idx` joins `bufs` as idle, stamped with the next value of
//!   the failure clock, the cause is kept, and the retry backoff doubles. It does not mark the
//!   buffer free or note it written, so `written_end` (hence `durable`) stops below `base`:
//!   later buffers may be written and freed, but the contiguous prefix never passes the
//!   stalled one.
//! - A retrier takes the idle buffers it needs ([`Stall::take_idle`], marking them taken:
//!   exactly one thread writes a buffer at a time) and writes them in LSN order; a success
//!   removes the buffer ([`Stall::written`]), a failure makes it idle again with a new stamp.
//! - Retriers: the I/O writer thread after the backoff (every idle buffer); durability waiters
//!   whose target lies past a stalled buffer (the stalled buffers below the target); an
//!   installer that needs the stalled buffer free (the stalled buffers up to that one).
//! - Waiting never hangs on a full disk, and gives up only for its own buffers: a waiter notes
//!   the clock ([`Stall::clock`]) when it starts, and returns [`Stall::error`] (an
//!   [`Error::Io`] with the `ENOSPC`) once a buffer it depends on carries a later stamp, that
//!   is, the write of that buffer failed after the wait began ([`Stall::failed_below`] for a
//!   durability waiter, [`Stall::buffer_failed`] for an installer). A failure of some other
//!   stalled buffer does not end the wait. Why that cannot hang: every buffer a waiter depends
//!   on is idle (it takes and writes it: the write succeeds, and the buffer is no longer in
//!   the way, or fails, and the wait ends), or taken by a thread that is writing it (which
//!   wakes the waiter when the write is over, either way).

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::Error;

/// The first retry backoff of the I/O writer after a failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(1);
/// The longest backoff between two retries by the I/O writer.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// Buffers waiting for disk space: a field of `Stable`, so behind the `stable` lock.
#[derive(Debug, Default)]
pub(crate) struct Stall {
    /// Stalled buffers by base LSN.
    bufs: BTreeMap<u64, Entry>,
    /// Full-disk write failures so far (monotonic): the clock [`Entry::failed_at`] reads.
    failures: u64,
    /// The latest failure, for the error waiters return.
    cause: Option<Cause>,
    /// When the I/O writer should retry next (`None`: nothing stalled).
    next_retry: Option<Instant>,
    backoff: Duration,
}

/// One stalled buffer.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The buffer's index.
    idx: usize,
    /// A thread is writing it now.
    taken: bool,
    /// The value of `Stall::failures` right after its latest failed write.
    failed_at: u64,
}

/// What failed, kept so every waiter can get its own [`Error::Io`].
#[derive(Debug)]
struct Cause {
    op: &'static str,
    path: PathBuf,
    kind: io::ErrorKind,
    raw_os_error: Option<i32>,
}

impl Stall {
    /// The failure clock: a waiter notes it when it starts (see the module comment).
    pub(crate) fn clock(&self) -> u64 {
        self.failures
    }

    /// Whether a stalled buffer holds LSNs below `lsn`.
    pub(crate) fn blocks(&self, lsn: u64) -> bool {
        self.bufs.keys().next().is_some_and(|&base| base < lsn)
    }

    /// Whether the write of a stalled buffer holding LSNs below `lsn` failed after the clock
    /// read `seen`: a durability waiter for `lsn` that started at `seen` gives up.
    pub(crate) fn failed_below(&self, lsn: u64, seen: u64) -> bool {
        self.bufs.range(..lsn).any(|(_, e)| e.failed_at > seen)
    }

    /// Whether buffer `idx` is stalled and its write failed after the clock read `seen`: an
    /// installer waiting for it since `seen` gives up.
    pub(crate) fn buffer_failed(&self, idx: usize, seen: u64) -> bool {
        self.bufs
            .values()
            .any(|e| e.idx == idx && e.failed_at > seen)
    }

    /// The base LSN of stalled buffer `idx`, if it is stalled.
    pub(crate) fn base_of(&self, idx: usize) -> Option<u64> {
        self.bufs
            .iter()
            .find_map(|(&base, e)| (e.idx == idx).then_some(base))
    }

    /// Takes every idle stalled buffer whose base is below `lsn` for a retry, in LSN order.
    pub(crate) fn take_idle(&mut self, lsn: u64) -> Vec<usize> {
        let mut out = Vec::new();
        for e in self.bufs.range_mut(..lsn).map(|(_, e)| e) {
            if !e.taken {
                e.taken = true;
                out.push(e.idx);
            }
        }
        out
    }

    /// The write of buffer `idx` (from `base`) failed on a full disk.
    pub(crate) fn failed(
        &mut self,
        base: u64,
        idx: usize,
        op: &'static str,
        path: PathBuf,
        e: &io::Error,
    ) {
        self.failures += 1;
        let entry = Entry {
            idx,
            taken: false,
            failed_at: self.failures,
        };
        let prev = self.bufs.insert(base, entry);
        assert!(
            prev.is_none_or(|p| p.idx == idx && p.taken),
            "buffer {idx} at {base} failed while {prev:?} was stalled there"
        );
        self.cause = Some(Cause {
            op,
            path,
            kind: e.kind(),
            raw_os_error: e.raw_os_error(),
        });
        self.backoff = (self.backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
        self.next_retry = Some(Instant::now() + self.backoff);
    }

    /// Buffer `base` was written (it may not have been stalled: then nothing changes).
    pub(crate) fn written(&mut self, base: u64) {
        if self.bufs.remove(&base).is_some() && self.bufs.is_empty() {
            self.next_retry = None;
            self.backoff = Duration::ZERO;
        }
    }

    /// How long the I/O writer should wait before retrying (zero: now); `None` if nothing
    /// idle is stalled.
    pub(crate) fn retry_in(&self, now: Instant) -> Option<Duration> {
        if self.bufs.values().all(|e| e.taken) {
            return None;
        }
        Some(
            self.next_retry
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(now)),
        )
    }

    /// The error for a caller whose wait depends on a stalled buffer.
    pub(crate) fn error(&self) -> Error {
        let c = self
            .cause
            .as_ref()
            .expect("a stall error after a recorded failure");
        let source = match c.raw_os_error {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(c.kind, "no space left on device"),
        };
        Error::io(c.op, &c.path, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enospc() -> io::Error {
        io::Error::from_raw_os_error(libc::ENOSPC)
    }

    #[test]
    fn a_stalled_buffer_is_retried_by_one_thread_at_a_time() {
        let mut s = Stall::default();
        s.failed(200, 1, "write buffer", "/db/log.dat".into(), &enospc());
        s.failed(100, 0, "write buffer", "/db/log.dat".into(), &enospc());
        assert!(s.blocks(101) && !s.blocks(100));
        assert_eq!(s.take_idle(u64::MAX), vec![0, 1], "LSN order");
        assert!(
            s.take_idle(u64::MAX).is_empty(),
            "taken buffers are not handed out twice"
        );
        assert_eq!(s.retry_in(Instant::now()), None);
        s.failed(100, 0, "write buffer", "/db/log.dat".into(), &enospc());
        assert_eq!(s.clock(), 3);
        assert!(s.error().is_storage_full());
        s.written(100);
        s.written(200);
        assert!(!s.blocks(u64::MAX) && s.base_of(0).is_none() && s.base_of(1).is_none());
    }

    /// A waiter gives up only for the buffers it depends on: the later buffer's failed retry
    /// does not end a wait for the earlier one (nor for LSNs below both).
    #[test]
    fn a_failure_counts_only_for_the_buffers_it_stalls() {
        let mut s = Stall::default();
        s.failed(100, 0, "write buffer", "/db/log.dat".into(), &enospc());
        s.failed(200, 1, "write buffer", "/db/log.dat".into(), &enospc());
        let seen = s.clock();
        assert_eq!(s.take_idle(200), vec![0], "only what the waiter needs");
        assert_eq!(s.take_idle(u64::MAX), vec![1]);
        s.failed(200, 1, "write buffer", "/db/log.dat".into(), &enospc());
        assert!(!s.failed_below(200, seen), "a waiter for [.., 200) goes on");
        assert!(
            !s.buffer_failed(0, seen),
            "an installer of buffer 0 goes on"
        );
        assert!(s.failed_below(201, seen) && s.buffer_failed(1, seen));
        assert_eq!(s.base_of(1), Some(200));
        s.written(100);
        assert!(!s.blocks(200) && s.blocks(201));
    }
}
