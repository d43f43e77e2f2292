//! Counters for the testbed and benchmarks (DESIGN.md section 7). Relaxed increments: they are
//! statistics, read without ordering guarantees, and never used to make decisions.

use crate::sync::{Ordering, StdAtomicU64};

/// A snapshot of the log's counters since open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogStats {
    /// Records completed (inline and oversized) in buffers already handed to the writer:
    /// exact after `flush`, behind by the records of open buffers before it.
    pub records_completed: u64,
    /// Reservations aborted or dropped.
    pub records_aborted: u64,
    /// Oversized records written to blob files.
    pub blobs_written: u64,
    /// Reserve or seal CASes that lost a race and retried.
    pub cas_retries: u64,
    /// Buffers sealed because a reservation did not fit.
    pub buffers_sealed_full: u64,
    /// Buffers sealed early by `flush`/`make_stable`/the flusher.
    pub buffers_sealed_early: u64,
    /// Buffers written to the data file.
    pub buffers_written: u64,
    /// Bytes written to the data file from buffers.
    pub bytes_written: u64,
    /// `fdatasync` calls for durability (group commits).
    pub syncs: u64,
    /// Syncs whose leader waited for other committers it expected (see
    /// [`Config::group_commit_wait_us`](crate::Config::group_commit_wait_us)).
    pub group_commit_gathers: u64,
    /// Gatherings that ran into their deadline (an expected committer did not come).
    pub group_commit_timeouts: u64,
    /// Segment slots freed for reuse.
    pub segments_freed: u64,
    /// Times the reserve head (drain LSNs) fell back to the end of the latest installed buffer
    /// because no validated view of the current buffer came within a bounded number of tries.
    pub head_view_fallbacks: u64,
    /// Reads of a record whose buffer was still being filled, which waited for its hand-off.
    pub buffered_read_waits: u64,
    /// Writes (buffers, data-file growth, freed-segment headers) that met a full disk and were
    /// kept to be retried, rather than poisoning the log.
    pub full_disk_retries: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub records_completed: StdAtomicU64,
    pub records_aborted: StdAtomicU64,
    pub blobs_written: StdAtomicU64,
    pub cas_retries: StdAtomicU64,
    pub buffers_sealed_full: StdAtomicU64,
    pub buffers_sealed_early: StdAtomicU64,
    pub buffers_written: StdAtomicU64,
    pub bytes_written: StdAtomicU64,
    pub syncs: StdAtomicU64,
    pub group_commit_gathers: StdAtomicU64,
    pub group_commit_timeouts: StdAtomicU64,
    pub segments_freed: StdAtomicU64,
    pub head_view_fallbacks: StdAtomicU64,
    pub buffered_read_waits: StdAtomicU64,
    pub full_disk_retries: StdAtomicU64,
}

/// Adds `n` to a counter (Relaxed: statistics only).
pub(crate) fn bump(c: &StdAtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> LogStats {
        let g = |c: &StdAtomicU64| c.load(Ordering::Relaxed);
        LogStats {
            records_completed: g(&self.records_completed),
            records_aborted: g(&self.records_aborted),
            blobs_written: g(&self.blobs_written),
            cas_retries: g(&self.cas_retries),
            buffers_sealed_full: g(&self.buffers_sealed_full),
            buffers_sealed_early: g(&self.buffers_sealed_early),
            buffers_written: g(&self.buffers_written),
            bytes_written: g(&self.bytes_written),
            syncs: g(&self.syncs),
            group_commit_gathers: g(&self.group_commit_gathers),
            group_commit_timeouts: g(&self.group_commit_timeouts),
            segments_freed: g(&self.segments_freed),
            head_view_fallbacks: g(&self.head_view_fallbacks),
            buffered_read_waits: g(&self.buffered_read_waits),
            full_disk_retries: g(&self.full_disk_retries),
        }
    }
}
