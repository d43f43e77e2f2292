//! The `kv` suite: the phases of the public redb benchmark, scaled, for every engine in the same
//! run on the same machine.
//!
//! Each engine runs in a child process of its own (this binary re-executed with the hidden
//! `run-child` subcommand) on a fresh directory, so its peak RSS is its own and no engine inherits
//! another's page-cache or allocator state. Every child regenerates the same seeded keys and gets
//! the same cache budget. Phases, in order:
//!
//! - bulk load: N random pairs (24-byte keys, 150-byte values) in write groups of 1000 with no
//!   sync, then one flush; the flush is timed.
//! - size after load: bytes allocated under the store's directory, and over the raw key+value
//!   bytes.
//! - individual writes: 1000 single-insert commits, each durable before the next.
//! - batch writes: durable commits of 1000 inserts each.
//! - len: counting the keys (checked).
//! - random reads, twice: every loaded key once in random order (values checked), from one read
//!   snapshot where the store has them; the second pass shows the warmed cache.
//! - range reads, twice: 10 pairs from a random loaded key (the count checked: 10, fewer only
//!   from the store's last 9 keys).
//! - random reads with 2 threads (each `--threads` value above 1).
//! - range reads with 2 threads: the same number of ranges as one pass above, split over the
//!   threads, each with its own snapshot; the figure is their aggregate rate.
//! - removals: half of the loaded keys in groups of 1000, no sync, then one flush.
//! - size after removals, and peak RSS (`VmHWM`, which includes the harness's own keys).
//! - bulk load with 2 threads, measured last but shown after the bulk load: N fresh pairs of the
//!   same shape, split between the threads, each loading its part like the bulk load (groups of
//!   1000, no sync), then one flush. It runs on a fresh store of its own, opened after the main
//!   store is measured (peak RSS included) and deleted: it starts empty like the bulk load, and
//!   every count, size and RSS figure above is the main store's alone. Afterwards (untimed) the
//!   store must hold exactly those N keys, each readable with its value.

mod child;
pub mod spec;
mod table;
mod work;

use std::path::PathBuf;

pub use child::run as run_child;
pub use spec::EngineReport;
pub use table::{markdown, rows};

use crate::{engine, isolate};

/// The parent's view of a `kv` run.
#[derive(Clone, Debug)]
pub struct KvConfig {
    pub engines: Vec<String>,
    pub keys: usize,
    pub seed: u64,
    pub cache_capacity_bytes: u64,
    pub batches: usize,
    pub range_reads: usize,
    /// Thread counts above 1 for the concurrent phases.
    pub threads: Vec<usize>,
    /// Runs per engine; the table shows each phase's median.
    pub repeats: usize,
    /// Where each engine's fresh directory is created (on a real disk, not tmpfs).
    pub scratch: PathBuf,
}

/// Runs every engine in its own child process, `repeats` rounds of one child per engine (rounds
/// interleave the engines, so slow spells of a shared machine spread over all of them), and keeps
/// each phase's median. An engine that fails is reported on stderr and left out.
pub fn run(cfg: &KvConfig) -> Vec<EngineReport> {
    let mut runs: Vec<Vec<EngineReport>> = vec![Vec::new(); cfg.engines.len()];
    let mut failed = vec![false; cfg.engines.len()];
    for round in 0..cfg.repeats.max(1) {
        for (i, name) in cfg.engines.iter().enumerate() {
            if failed[i] {
                continue;
            }
            if cfg.repeats > 1 && i == 0 {
                eprintln!("kv: round {} of {}", round + 1, cfg.repeats);
            }
            match run_one(cfg, name) {
                Ok(report) => runs[i].push(report),
                Err(e) => {
                    eprintln!("kv: engine {name} failed: {e}");
                    failed[i] = true;
                }
            }
        }
    }
    runs.into_iter()
        .zip(failed)
        .filter(|(_, failed)| !failed)
        .map(|(reports, _)| spec::median(reports))
        .collect()
}

fn run_one(cfg: &KvConfig, name: &str) -> engine::Result<EngineReport> {
    let (_dir, db) = isolate::fresh_dir(&cfg.scratch, "kv", name)?;
    let spec = spec::KvSpec {
        engine: name.to_string(),
        dir: db,
        seed: cfg.seed,
        keys: cfg.keys,
        cache_capacity_bytes: cfg.cache_capacity_bytes,
        background_threads: 2,
        individual_writes: 1000,
        batches: cfg.batches,
        batch_size: 1000,
        range_reads: cfg.range_reads,
        range_len: 10,
        threads: cfg.threads.clone(),
    };
    eprintln!(
        "kv: {name} ({} keys, cache {} MiB)",
        cfg.keys,
        cfg.cache_capacity_bytes >> 20
    );
    isolate::run_child("kv", &spec)
}
