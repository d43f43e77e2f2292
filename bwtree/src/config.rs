//! [`Config`]: how to open a database (builder), and the knobs derived from it.

use std::path::PathBuf;

use crate::core::Knobs;
use crate::db::Db;
use crate::error::{Error, Result};

/// The log's I/O buffer: one record holds a whole node, so this bounds node size (8 MiB: a
/// 1 MiB key, a 1 MiB value, and 1 MiB fences on each side fit with room to spare).
const IO_BUFFER_BYTES: u64 = pagecache::MAX_RECORD_LEN + 1;

/// How to open a database. A builder: `Config::new().path("db").open()`.
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) path: Option<PathBuf>,
    pub(crate) temporary: bool,
    pub(crate) cache_capacity_bytes: u64,
    pub(crate) flush_every_ms: Option<u64>,
    pub(crate) segment_size_bytes: usize,
    pub(crate) io_buffer_size_bytes: u64,
    pub(crate) consolidation_threshold: usize,
    pub(crate) node_max_entries: usize,
    pub(crate) node_max_bytes: usize,
    pub(crate) merge_below_entries: Option<usize>,
    pub(crate) checkpoint_every_ms: Option<u64>,
    pub(crate) clean_every_ms: Option<u64>,
    pub(crate) debug_delay: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}

impl Config {
    /// Defaults: 1 GiB cache, flush every 500 ms, 8 MiB segments, consolidate at 8 deltas,
    /// split nodes past 64 entries or 16 KiB, merge them below 16 entries, checkpoint every
    /// 30 s, clean the log every second.
    pub fn new() -> Config {
        Config {
            path: None,
            temporary: false,
            cache_capacity_bytes: 1 << 30,
            flush_every_ms: Some(500),
            segment_size_bytes: 8 << 20,
            io_buffer_size_bytes: IO_BUFFER_BYTES,
            consolidation_threshold: 8,
            node_max_entries: 64,
            node_max_bytes: 16 << 10,
            merge_below_entries: None,
            checkpoint_every_ms: Some(30_000),
            clean_every_ms: Some(1_000),
            debug_delay: false,
        }
    }

    /// The database directory (created if missing).
    pub fn path<P: Into<PathBuf>>(mut self, p: P) -> Config {
        self.path = Some(p.into());
        self
    }

    /// A database deleted when its last handle is dropped (in a fresh directory under the
    /// system's temporary directory unless `path` is set).
    pub fn temporary(mut self, yes: bool) -> Config {
        self.temporary = yes;
        self
    }

    /// Heap bytes cached pages may use; colder pages are evicted past it.
    pub fn cache_capacity_bytes(mut self, bytes: u64) -> Config {
        self.cache_capacity_bytes = bytes;
        self
    }

    /// Make writes durable every this many milliseconds (`None`: only on `flush`).
    pub fn flush_every_ms(mut self, ms: Option<u64>) -> Config {
        self.flush_every_ms = ms;
        self
    }

    /// Size of one log segment (a power of two, at least the I/O buffer size).
    pub fn segment_size_bytes(mut self, bytes: usize) -> Config {
        self.segment_size_bytes = bytes;
        self
    }

    /// Size of one log I/O buffer (the largest node; keys and values are limited to an
    /// eighth of it, at most 1 MiB). Smaller values are for tests.
    pub fn io_buffer_size_bytes(mut self, bytes: u64) -> Config {
        self.io_buffer_size_bytes = bytes;
        self
    }

    /// Consolidate a node once its delta chain has this many fragments (2..=64).
    pub fn consolidation_threshold(mut self, n: usize) -> Config {
        self.consolidation_threshold = n;
        self
    }

    /// Split nodes holding more than this many entries (at least 2).
    pub fn node_max_entries(mut self, n: usize) -> Config {
        self.node_max_entries = n;
        self
    }

    /// Split nodes whose keys and values exceed this many bytes.
    pub fn node_max_bytes(mut self, n: usize) -> Config {
        self.node_max_bytes = n;
        self
    }

    /// Merge nodes holding fewer entries than this (default: a quarter of
    /// `node_max_entries`, at least 1).
    pub fn merge_below_entries(mut self, n: usize) -> Config {
        self.merge_below_entries = Some(n);
        self
    }

    /// Write a checkpoint every this many milliseconds, and after every 32 MiB of log (`None`:
    /// only on close).
    pub fn checkpoint_every_ms(mut self, ms: Option<u64>) -> Config {
        self.checkpoint_every_ms = ms;
        self
    }

    /// How often the background thread cleans log segments (`None`: never; tests that must be
    /// deterministic call [`Db::clean`] themselves).
    pub fn clean_every_ms(mut self, ms: Option<u64>) -> Config {
        self.clean_every_ms = ms;
        self
    }

    /// Testbed: yield at random before each CAS so rare interleavings become common.
    pub fn debug_delay(mut self, yes: bool) -> Config {
        self.debug_delay = yes;
        self
    }

    /// Opens the database.
    pub fn open(&self) -> Result<Db> {
        Db::open_with(self.clone(), std::sync::Arc::new(logstore::io::FileStorage))
    }

    /// Opens the database on another storage implementation (tests: the log's simulated
    /// disk with power loss and fault injection). Not part of the stable API.
    #[doc(hidden)]
    pub fn open_on_storage(
        &self,
        storage: std::sync::Arc<dyn logstore::io::Storage>,
    ) -> Result<Db> {
        Db::open_with(self.clone(), storage)
    }

    /// The largest key or value this configuration accepts.
    pub(crate) fn max_part_bytes(&self) -> usize {
        let body = self.io_buffer_size_bytes.saturating_sub(64) as usize;
        (body / 8).min(crate::tree::MAX_KEY_BYTES)
    }

    pub(crate) fn knobs(&self) -> Result<Knobs> {
        let bad = |what: String| Err(Error::Unsupported(format!("configuration: {what}")));
        if !(2..=64).contains(&self.consolidation_threshold) {
            return bad(format!(
                "consolidation_threshold = {}: must be 2..=64",
                self.consolidation_threshold
            ));
        }
        if self.node_max_entries < 2 {
            return bad(format!(
                "node_max_entries = {}: must be at least 2",
                self.node_max_entries
            ));
        }
        let part = self.max_part_bytes();
        let body = self.io_buffer_size_bytes.saturating_sub(64) as usize;
        // A record holds the node's payload, two fences and per-entry length prefixes.
        let overhead = 2 * part + 16 * (self.node_max_entries + 80) + (body / 32);
        let hard = body.saturating_sub(overhead);
        if part < 64 || hard < 4 * part {
            return bad(format!(
                "io_buffer_size_bytes = {}: too small for nodes of {} entries",
                self.io_buffer_size_bytes, self.node_max_entries
            ));
        }
        let merge_below = self
            .merge_below_entries
            .unwrap_or((self.node_max_entries / 4).max(1));
        if merge_below > self.node_max_entries / 2 {
            return bad(format!(
                "merge_below_entries = {merge_below}: must be at most half of node_max_entries"
            ));
        }
        Ok(Knobs {
            consolidation_threshold: self.consolidation_threshold,
            node_max_entries: self.node_max_entries,
            node_max_bytes: self.node_max_bytes.min(hard),
            merge_below_entries: merge_below,
            node_hard_max_bytes: hard,
            max_part_bytes: part,
            debug_delay: self.debug_delay,
        })
    }

    pub(crate) fn cache_config(&self, path: PathBuf) -> pagecache::Config {
        let mut c = pagecache::Config::new(path);
        c.cache_capacity_bytes = self.cache_capacity_bytes as usize;
        c.fragment_cap = (2 * self.consolidation_threshold as u32).clamp(2, 64);
        c.checkpoint_every_ms = self.checkpoint_every_ms;
        c.clean_every_ms = self.clean_every_ms;
        if self.checkpoint_every_ms.is_none() {
            // No periodic checkpoints at all: not by log volume either.
            c.checkpoint_every_bytes = None;
        }
        c.log.flush_every_ms = self.flush_every_ms;
        c.log.segment_size_bytes = self.segment_size_bytes as u64;
        c.log.io_buffer_size_bytes = self.io_buffer_size_bytes;
        c
    }
}
