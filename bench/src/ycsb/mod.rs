//! The `ycsb` suite: YCSB core workloads on each engine, in a child process of its own (as `kv`).
//!
//! Records have 16-byte keys and 100-byte values. After loading `records` records (groups of
//! 1000, no sync, one flush), each of the workloads below runs `ops` operations with uniform and
//! with scrambled-zipfian (0.99) record choice, on 1 and 2 threads, against the same store:
//!
//! - A: 50% reads, 50% updates. B: 95% reads, 5% updates. C: reads only.
//! - E: 95% scans (1-100 pairs from the chosen record), 5% inserts of new records.
//! - F: 50% reads, 50% read-modify-writes.
//!
//! Writes are not synced (YCSB's usual setting): each store's own periodic flush applies, and
//! redb and LMDB commit one unsynced transaction per write. Reads choose among the loaded
//! records only (records inserted by E are not read back), and every read checks its value.

mod child;
pub mod dist;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use child::run as run_child;
use child::OpKind;
use dist::Distribution;

use crate::engine;
use crate::isolate;
use crate::kv::spec::EngineReport;

/// The YCSB core workloads measured here (D is left out: it reads the latest inserts, which
/// this harness does not track).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Workload {
    A,
    B,
    C,
    E,
    F,
}

impl Workload {
    pub const ALL: [Workload; 5] = [
        Workload::A,
        Workload::B,
        Workload::C,
        Workload::E,
        Workload::F,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::A => "A",
            Workload::B => "B",
            Workload::C => "C",
            Workload::E => "E",
            Workload::F => "F",
        }
    }

    /// The operation for a roll of `dice` in `0..100`.
    fn pick(self, dice: u32) -> OpKind {
        match self {
            Workload::A if dice < 50 => OpKind::Read,
            Workload::A => OpKind::Update,
            Workload::B if dice < 95 => OpKind::Read,
            Workload::B => OpKind::Update,
            Workload::C => OpKind::Read,
            Workload::E if dice < 95 => OpKind::Scan,
            Workload::E => OpKind::Insert,
            Workload::F if dice < 50 => OpKind::Read,
            Workload::F => OpKind::ReadModifyWrite,
        }
    }
}

/// One engine's YCSB run, as sent to its child.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct YcsbSpec {
    pub engine: String,
    pub dir: PathBuf,
    pub seed: u64,
    pub records: u64,
    /// Operations per (workload, distribution, threads) run, over all threads.
    pub ops: u64,
    pub cache_capacity_bytes: u64,
    pub workloads: Vec<Workload>,
    pub distributions: Vec<Distribution>,
    pub threads: Vec<usize>,
}

/// The parent's view of a YCSB run.
#[derive(Clone, Debug)]
pub struct YcsbConfig {
    pub engines: Vec<String>,
    pub records: u64,
    pub ops: u64,
    pub seed: u64,
    pub cache_capacity_bytes: u64,
    pub threads: Vec<usize>,
    pub scratch: PathBuf,
}

/// Runs every engine in its own child process and collects the reports of those that finished.
pub fn run(cfg: &YcsbConfig) -> Vec<EngineReport> {
    let mut reports = Vec::new();
    for name in &cfg.engines {
        match run_one(cfg, name) {
            Ok(report) => reports.push(report),
            Err(e) => eprintln!("ycsb: engine {name} failed: {e}"),
        }
    }
    reports
}

fn run_one(cfg: &YcsbConfig, name: &str) -> engine::Result<EngineReport> {
    let (_dir, db) = isolate::fresh_dir(&cfg.scratch, "ycsb", name)?;
    let spec = YcsbSpec {
        engine: name.to_string(),
        dir: db,
        seed: cfg.seed,
        records: cfg.records,
        ops: cfg.ops,
        cache_capacity_bytes: cfg.cache_capacity_bytes,
        workloads: Workload::ALL.to_vec(),
        distributions: vec![Distribution::Uniform, Distribution::Zipfian],
        threads: cfg.threads.clone(),
    };
    eprintln!(
        "ycsb: {name} ({} records, {} ops per run)",
        cfg.records, cfg.ops
    );
    isolate::run_child("ycsb", &spec)
}
