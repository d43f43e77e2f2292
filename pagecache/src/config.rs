//! [`Config`]: the page cache's knobs, with the log's underneath.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::location::MAX_RECORD_LEN;

/// How to open a page cache.
#[derive(Clone, Debug)]
pub struct Config {
    /// The database directory (the log's files and the checkpoints live here).
    pub path: PathBuf,
    /// Heap bytes resident pages may use; colder pages are evicted past it.
    pub cache_capacity_bytes: usize,
    /// Most fragments a page may have (in memory: chain length). Past it, a prepend writes a
    /// consolidated base.
    pub fragment_cap: u32,
    /// Write a checkpoint every this many milliseconds (`None`: only on clean shutdown and
    /// explicit [`PageCache::checkpoint`](crate::PageCache::checkpoint) calls).
    pub checkpoint_every_ms: Option<u64>,
    /// Also write a checkpoint once the durable log has grown by this many bytes since the
    /// last one (`None`: by time only). Segments are reused only below the older kept
    /// checkpoint, so without this a burst of writes keeps everything it wrote (a bulk load
    /// grew the log to the total bytes written, about 7x the data) until the timer fires.
    /// Checked every 200 ms on the background thread.
    pub checkpoint_every_bytes: Option<u64>,
    /// Run a cleaning pass every this many milliseconds (`None`: only explicit
    /// [`PageCache::clean`](crate::PageCache::clean) calls).
    pub clean_every_ms: Option<u64>,
    /// Cleaning relocates pages until sealed-segment bytes / live bytes is at most this.
    pub target_space_amplification: f64,
    /// Most bytes one cleaning pass relocates (bounds its interference with foreground work).
    pub clean_pass_max_bytes: u64,
    /// The log's knobs (its `path` is overwritten with `path`).
    pub log: logstore::Config,
}

impl Config {
    /// Production defaults in `path`: 256 MiB cache, 8 fragments, checkpoint every 30 s or
    /// 32 MiB of log,
    /// clean every second towards 1.25x space amplification, the log's defaults.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        Config {
            log: logstore::Config::new(path.clone()),
            path,
            cache_capacity_bytes: 256 << 20,
            fragment_cap: 8,
            checkpoint_every_ms: Some(30_000),
            checkpoint_every_bytes: Some(16 << 20),
            clean_every_ms: Some(1_000),
            target_space_amplification: 1.25,
            clean_pass_max_bytes: 64 << 20,
        }
    }

    /// Tiny sizes so that eviction, cleaning and segment reuse happen constantly (tests).
    /// No background threads: tests call `checkpoint`/`clean` themselves.
    pub fn small(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        Config {
            log: logstore::Config::small(path.clone()),
            path,
            cache_capacity_bytes: 16 << 10,
            fragment_cap: 4,
            checkpoint_every_ms: None,
            checkpoint_every_bytes: None,
            clean_every_ms: None,
            target_space_amplification: 1.25,
            clean_pass_max_bytes: 64 << 10,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(2..=64).contains(&self.fragment_cap) {
            return Err(Error::Config(format!(
                "fragment_cap = {}: must be between 2 and 64",
                self.fragment_cap
            )));
        }
        if self.log.io_buffer_size_bytes > MAX_RECORD_LEN + 1 {
            return Err(Error::Config(format!(
                "log.io_buffer_size_bytes = {}: the page cache addresses records of at most \
                 {} bytes",
                self.log.io_buffer_size_bytes,
                MAX_RECORD_LEN + 1
            )));
        }
        if self.target_space_amplification.is_nan() || self.target_space_amplification < 1.05 {
            return Err(Error::Config(format!(
                "target_space_amplification = {}: must be at least 1.05",
                self.target_space_amplification
            )));
        }
        for (name, v) in [
            ("checkpoint_every_ms", self.checkpoint_every_ms),
            ("checkpoint_every_bytes", self.checkpoint_every_bytes),
            ("clean_every_ms", self.clean_every_ms),
        ] {
            if v == Some(0) {
                return Err(Error::Config(format!(
                    "{name} = Some(0): use None to disable"
                )));
            }
        }
        Ok(())
    }
}
