//! What the parent asks of a `kv` child process and what the child reports back: both cross the
//! process boundary as JSON (the spec as an argument, the report on the child's stdout).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One engine's run of the `kv` suite.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KvSpec {
    pub engine: String,
    /// A fresh directory for the store.
    pub dir: PathBuf,
    pub seed: u64,
    /// Pairs of the bulk load.
    pub keys: usize,
    pub cache_capacity_bytes: u64,
    pub background_threads: usize,
    /// Single-insert durable commits.
    pub individual_writes: usize,
    /// Durable batches, of `batch_size` inserts each.
    pub batches: usize,
    pub batch_size: usize,
    /// Range reads per pass, of `range_len` pairs each.
    pub range_reads: usize,
    pub range_len: usize,
    /// Thread counts above 1 for the concurrent phases: random reads, range reads and bulk
    /// load (the last on a fresh store of its own).
    pub threads: Vec<usize>,
}

/// How a measured figure reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    /// Operations per second: higher is better.
    OpsPerSec,
    /// Bytes: lower is better.
    Bytes,
    /// Seconds: lower is better.
    Secs,
}

impl Unit {
    pub fn higher_is_better(self) -> bool {
        self == Unit::OpsPerSec
    }

    pub fn name(self) -> &'static str {
        match self {
            Unit::OpsPerSec => "ops/s",
            Unit::Bytes => "bytes",
            Unit::Secs => "s",
        }
    }

    /// The figure for a table cell.
    pub fn format(self, value: f64) -> String {
        match self {
            Unit::OpsPerSec => match value {
                v if v >= 1e6 => format!("{:.2}M/s", v / 1e6),
                v if v >= 1e3 => format!("{:.1}k/s", v / 1e3),
                v => format!("{v:.0}/s"),
            },
            Unit::Bytes => format!("{:.1} MiB", value / f64::from(1u32 << 20)),
            Unit::Secs => match value {
                v if v >= 1.0 => format!("{v:.2} s"),
                v if v >= 1e-3 => format!("{:.1} ms", v * 1e3),
                v => format!("{:.1} us", v * 1e6),
            },
        }
    }
}

/// One measured phase of one engine.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    /// When its writes are durable: "durable each", "none + 1 flush", or "-" for reads.
    pub durability: String,
    pub value: f64,
    pub unit: Unit,
    /// Operations done and wall time (0 for measurements that are not timed).
    pub ops: u64,
    pub secs: f64,
    /// A note shown beside the figure (e.g. size over the raw bytes).
    pub note: String,
}

/// Everything one child measured (the `kv` and `ycsb` suites both report this).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EngineReport {
    pub engine: String,
    pub phases: Vec<Phase>,
    /// Resident memory before the store was opened (the harness's keys and value pool).
    pub harness_rss_bytes: u64,
}

/// One report whose every phase value is the median over `reports` (runs of one engine with the
/// same phases); notes and timings are the median run's.
pub fn median(mut reports: Vec<EngineReport>) -> EngineReport {
    assert!(!reports.is_empty(), "a median of no runs");
    let mut merged = reports.swap_remove(0);
    for phase in &mut merged.phases {
        let mut values: Vec<f64> = reports
            .iter()
            .filter_map(|r| r.phases.iter().find(|p| p.name == phase.name))
            .map(|p| p.value)
            .chain([phase.value])
            .collect();
        values.sort_by(f64::total_cmp);
        phase.value = values[values.len() / 2];
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_per_phase() {
        let run = |v: f64| EngineReport {
            engine: "e".into(),
            phases: vec![Phase {
                name: "p".into(),
                durability: "-".into(),
                value: v,
                unit: Unit::OpsPerSec,
                ops: 1,
                secs: 1.0,
                note: String::new(),
            }],
            harness_rss_bytes: 0,
        };
        assert_eq!(
            median(vec![run(5.0), run(1.0), run(3.0)]).phases[0].value,
            3.0
        );
        assert_eq!(median(vec![run(2.0)]).phases[0].value, 2.0);
    }
}
