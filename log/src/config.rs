//! [`Config`]: the log's knobs, validated once at open.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::format::{RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};

/// The largest record body accepted at all (inline or blob): 1 GiB. Larger values are an
/// [`Error::RecordTooLarge`]; split them above this layer.
pub const MAX_RECORD_BYTES: u64 = 1 << 30;

// The largest buffer (= largest segment) must fit the state word's offset field.
const _: () = assert!(1 << 30 <= crate::buffer::state::MAX_BUFFER_BYTES);

/// Options of a [`Log`](crate::Log).
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory holding the data file `log.dat` and the `blobs/` directory.
    pub path: PathBuf,
    /// Size of one segment slot (header included). Power of two, 4 KiB ..= 1 GiB. Cannot change
    /// after the log is created (the segment header records it).
    pub segment_size_bytes: u64,
    /// Size of one in-memory I/O buffer. Power of two, 1 KiB ..= `segment_size_bytes`. Records
    /// with `RECORD_HEADER_LEN + len > io_buffer_size_bytes - SEGMENT_HEADER_LEN` go to a blob
    /// file. Memory use is `io_buffer_count * io_buffer_size_bytes`.
    pub io_buffer_size_bytes: u64,
    /// Number of rotating I/O buffers (2 ..= 64): writers keep reserving in one while sealed
    /// ones are written out.
    pub io_buffer_count: usize,
    /// Make completed records durable in the background every this many milliseconds;
    /// `None` = only on `flush`/`make_stable`.
    pub flush_every_ms: Option<u64>,
    /// Group commit: the longest a committer about to `fdatasync` waits for the other
    /// committers it expects to join the same sync, in microseconds. It waits only when more
    /// committers were recently seen waiting at once than are present, never longer than the
    /// recent duration of a sync, and stops as soon as they are all there and written; a lone
    /// committer never waits. 0 disables gathering (every sync starts as soon as possible,
    /// later committers share the next one). At most 1 s.
    pub group_commit_wait_us: u64,
}

impl Config {
    /// Production defaults for a log in `path`: 8 MiB segments, 4 x 1 MiB buffers, flush every
    /// 200 ms, gather committers for at most 1 ms.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Config {
            path: path.into(),
            segment_size_bytes: 8 << 20,
            io_buffer_size_bytes: 1 << 20,
            io_buffer_count: 4,
            flush_every_ms: Some(200),
            group_commit_wait_us: 1000,
        }
    }

    /// Tiny sizes that make segment switches, buffer rotation and blobs common (tests).
    pub fn small(path: impl Into<PathBuf>) -> Self {
        Config {
            path: path.into(),
            segment_size_bytes: 8 << 10,
            io_buffer_size_bytes: 2 << 10,
            io_buffer_count: 3,
            flush_every_ms: None,
            group_commit_wait_us: 1000,
        }
    }

    /// Largest record body stored inline in the log; larger bodies go to a blob file.
    pub fn max_inline_body(&self) -> u64 {
        self.io_buffer_size_bytes - SEGMENT_HEADER_LEN as u64 - RECORD_HEADER_LEN as u64
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let seg = self.segment_size_bytes;
        let buf = self.io_buffer_size_bytes;
        if !seg.is_power_of_two() || !(4 << 10..=1 << 30).contains(&seg) {
            return Err(Error::Config(format!(
                "segment_size_bytes = {seg}: must be a power of two between 4 KiB and 1 GiB"
            )));
        }
        if !buf.is_power_of_two() || !(1 << 10..=seg).contains(&buf) {
            return Err(Error::Config(format!(
                "io_buffer_size_bytes = {buf}: must be a power of two between 1 KiB and the \
                 segment size ({seg})"
            )));
        }
        if !(2..=64).contains(&self.io_buffer_count) {
            return Err(Error::Config(format!(
                "io_buffer_count = {}: must be between 2 and 64",
                self.io_buffer_count
            )));
        }
        if self.flush_every_ms == Some(0) {
            return Err(Error::Config(
                "flush_every_ms = Some(0): use None to disable".into(),
            ));
        }
        if self.group_commit_wait_us > 1_000_000 {
            return Err(Error::Config(format!(
                "group_commit_wait_us = {}: must be at most 1 000 000 (1 s)",
                self.group_commit_wait_us
            )));
        }
        Ok(())
    }
}
