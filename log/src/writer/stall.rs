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
//!   it here ([`Stall::failed`]): `idx` joins `bufs` as idle, `failures` grows, the cause is
//!   kept, and the retry backoff doubles. It does not mark the buffer free or note it written,
//!   so `written_end` (hence `durable`) stops below `base`: later buffers may be written and
//!   freed, but the contiguous prefix never passes the stalled one.
//! - A retrier takes the idle buffers ([`Stall::take_idle`], marking them taken: exactly one
//!   thread writes a buffer at a time) and writes them in LSN order; a success removes the
//!   buffer ([`Stall::written`]), a failure makes it idle again.
//! - Retriers: the I/O writer thread after the backoff; durability waiters whose target lies
//!   past a stalled buffer; an installer that needs the stalled buffer free.
//! - Waiting never hangs on a full disk: a waiter notes `failures` when it starts, and once a
//!   retry failed after that while what it waits for still depends on a stalled buffer, it
//!   returns [`Stall::error`] (an [`Error::Io`] with the `ENOSPC`).

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
    /// Stalled buffers by base LSN: (buffer index, whether a thread is writing it now).
    bufs: BTreeMap<u64, (usize, bool)>,
    /// Full-disk write failures so far (monotonic).
    pub failures: u64,
    /// The latest failure, for the error waiters return.
    cause: Option<Cause>,
    /// When the I/O writer should retry next (`None`: nothing stalled).
    next_retry: Option<Instant>,
    backoff: Duration,
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
    /// Whether buffer `idx` is stalled (idle or being retried).
    pub(crate) fn holds(&self, idx: usize) -> bool {
        self.bufs.values().any(|&(i, _)| i == idx)
    }

    /// Whether a stalled buffer holds LSNs below `lsn`.
    pub(crate) fn blocks(&self, lsn: u64) -> bool {
        self.bufs.keys().next().is_some_and(|&base| base < lsn)
    }

    /// Takes every idle stalled buffer for a retry, in LSN order.
    pub(crate) fn take_idle(&mut self) -> Vec<usize> {
        let mut out = Vec::new();
        for (idx, taken) in self.bufs.values_mut() {
            if !*taken {
                *taken = true;
                out.push(*idx);
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
        let prev = self.bufs.insert(base, (idx, false));
        assert!(
            prev.is_none_or(|(i, taken)| i == idx && taken),
            "buffer {idx} at {base} failed while {prev:?} was stalled there"
        );
        self.failures += 1;
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
        if !self.bufs.values().any(|&(_, taken)| !taken) {
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
        assert_eq!(s.take_idle(), vec![0, 1], "LSN order");
        assert!(
            s.take_idle().is_empty(),
            "taken buffers are not handed out twice"
        );
        assert_eq!(s.retry_in(Instant::now()), None);
        s.failed(100, 0, "write buffer", "/db/log.dat".into(), &enospc());
        assert_eq!(s.failures, 3);
        assert!(s.error().is_storage_full());
        s.written(100);
        s.written(200);
        assert!(!s.blocks(u64::MAX) && !s.holds(0) && !s.holds(1));
    }
}
