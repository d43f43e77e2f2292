//! The `kv` phases, run inside the child process of one engine (see the module above for what
//! each phase means). Every phase checks what it reads, so a fast wrong answer fails the run.
//!
//! The main store runs every phase but the concurrent bulk loads, then peak RSS is taken and the
//! store deleted; each concurrent bulk load then runs on a fresh store of its own (see
//! [`concurrent_load`]), so it starts from the same empty state as the one-thread bulk load and
//! changes nothing the other phases count.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::spec::{EngineReport, KvSpec, Phase, Unit};
use super::work::{self, check, RangeCheck};
use crate::engine::{self, Durability, Engine, OpenOptions, Result};
use crate::keys::{self, Dataset, KEY_LEN, VALUE_LEN};
use crate::rss;

const DURABLE: &str = "durable each";
const LAZY: &str = "none + 1 flush";
const READ: &str = "-";
/// Pairs per write group of the bulk loads (one atomic group each, no sync).
const BULK_GROUP: usize = 1000;
/// The one-thread bulk load; the concurrent ones are named `bulk load, N threads` after it.
const BULK_LOAD: &str = "bulk load";

struct Run<'a> {
    spec: &'a KvSpec,
    data: &'a Dataset,
    engine: &'a dyn Engine,
    phases: Vec<Phase>,
}

/// Runs every phase and reports the figures: the main store's phases and peak RSS, then each
/// concurrent bulk load on a fresh store, its row placed after the one-thread bulk load's.
pub fn run(spec: &KvSpec) -> Result<EngineReport> {
    let (mut phases, harness_rss_bytes) = main_store(spec)?;
    // The main store is measured: free its disk and page cache before the next store.
    std::fs::remove_dir_all(&spec.dir)?;
    let after_load = phases
        .iter()
        .position(|p| p.name == BULK_LOAD)
        .expect("the bulk load ran")
        + 1;
    for (i, &threads) in spec.threads.iter().enumerate() {
        phases.insert(after_load + i, concurrent_load(spec, threads)?);
    }
    Ok(EngineReport {
        engine: spec.engine.clone(),
        phases,
        harness_rss_bytes,
    })
}

/// The main store: every phase but the concurrent bulk loads, then peak RSS (the store's and
/// the harness's only: taken before the concurrent loads generate keys and open stores).
/// Returns the phases and the harness's RSS before the store was opened.
fn main_store(spec: &KvSpec) -> Result<(Vec<Phase>, u64)> {
    let extra = spec.individual_writes + spec.batches * spec.batch_size;
    let data = Dataset::generate(spec.seed, spec.keys + extra);
    let harness_rss_bytes = rss::current_bytes().unwrap_or(0);
    let raw_bytes = (spec.keys * (KEY_LEN + VALUE_LEN)) as u64;
    let options = open_options(spec, spec.dir.clone(), spec.keys + extra);
    let engine = engine::open(&spec.engine, &options)?;
    let mut run = Run {
        spec,
        data: &data,
        engine: &*engine,
        phases: Vec::new(),
    };
    run.phases(raw_bytes)?;
    let mut phases = run.phases;
    drop(engine);
    let peak = rss::peak_bytes().unwrap_or(0);
    phases.push(Phase {
        name: "peak RSS".into(),
        durability: READ.into(),
        value: peak as f64,
        unit: Unit::Bytes,
        ops: 0,
        secs: 0.0,
        note: format!(
            "harness {:.0} MiB",
            harness_rss_bytes as f64 / f64::from(1u32 << 20)
        ),
    });
    Ok((phases, harness_rss_bytes))
}

/// `bulk load, N threads`: `spec.keys` fresh pairs of the same shape as the main load's (their
/// own seed, the same for every engine) split into `threads` disjoint parts, each inserted by a
/// thread of its own in write groups of [`BULK_GROUP`] without sync, then one flush; timed
/// like the one-thread bulk load. It runs on a fresh store of its own, so it starts empty as
/// that load does and leaves the main store's counts, sizes and removals as they were. Checked
/// afterwards, untimed: the store holds exactly these keys, each with its value.
fn concurrent_load(spec: &KvSpec, threads: usize) -> Result<Phase> {
    assert!(
        threads > 1,
        "the one-thread bulk load runs on the main store"
    );
    let data = Dataset::generate(spec.seed ^ (0x10ad_0000 + threads as u64), spec.keys);
    let dir = spec.dir.with_file_name(format!("load-{threads}-threads"));
    let options = open_options(spec, dir.clone(), spec.keys);
    let store = engine::open(&spec.engine, &options)?;
    let engine = &*store;
    let mut run = Run {
        spec,
        data: &data,
        engine,
        phases: Vec::new(),
    };
    let loaded = data.keys();
    let name = format!("{BULK_LOAD}, {threads} threads");
    run.timed(&name, LAZY, loaded.len(), |bar| {
        work::on_threads(loaded, threads, |part| {
            work::write_all(engine, &data, part, BULK_GROUP, Durability::None, bar)
        })?;
        engine.flush()
    })?;
    let counted = engine.len()?;
    check(counted == loaded.len() as u64, || {
        format!("len {counted} after {name}, expected {}", loaded.len())
    })?;
    let order: Vec<u32> = (0..u32::try_from(loaded.len())?).collect();
    let hidden = ProgressBar::hidden();
    work::read_all(engine, &data, loaded, &order, threads, &hidden)?;
    let phase = run.phases.pop().expect("the load was timed");
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(phase)
}

/// How every store of a run is opened: on `dir`, sized for `pairs` pairs.
fn open_options(spec: &KvSpec, dir: PathBuf, pairs: usize) -> OpenOptions {
    OpenOptions {
        dir,
        cache_capacity_bytes: spec.cache_capacity_bytes,
        max_data_bytes: (pairs * (KEY_LEN + VALUE_LEN)) as u64,
        background_threads: spec.background_threads,
    }
}

impl Run<'_> {
    fn phases(&mut self, raw_bytes: u64) -> Result<()> {
        let (spec, data, engine) = (self.spec, self.data, self.engine);
        let (loaded, rest) = data.keys().split_at(spec.keys);
        let (singles, batched) = rest.split_at(spec.individual_writes);
        self.timed(BULK_LOAD, LAZY, loaded.len(), |bar| {
            work::write_all(engine, data, loaded, BULK_GROUP, Durability::None, bar)?;
            engine.flush()
        })?;
        self.size("size after load", raw_bytes)?;
        self.timed("individual writes", DURABLE, singles.len(), |bar| {
            for key in singles {
                engine.insert(key, data.value(key), Durability::Durable)?;
                bar.inc(1);
            }
            Ok(())
        })?;
        self.timed("batch writes", DURABLE, batched.len(), |bar| {
            let size = spec.batch_size;
            work::write_all(engine, data, batched, size, Durability::Durable, bar)
        })?;
        let total = data.keys().len() as u64;
        self.len_phase(total)?;
        for pass in ["1st", "2nd"] {
            let order = keys::shuffled(loaded.len(), spec.seed, 1);
            let name = format!("random reads ({pass})");
            self.timed(&name, READ, order.len(), |bar| {
                work::read_all(engine, data, loaded, &order, 1, bar)
            })?;
        }
        // Every key of the data set is stored now (the removals come last).
        let ranges = RangeCheck::new(data.keys(), spec.range_len);
        for pass in ["1st", "2nd"] {
            self.range_reads(&format!(" ({pass})"), 2, 1, &ranges)?;
        }
        for &threads in &spec.threads {
            let order = keys::shuffled(loaded.len(), spec.seed, 3);
            let name = format!("random reads, {threads} threads");
            self.timed(&name, READ, order.len(), |bar| {
                work::read_all(engine, data, loaded, &order, threads, bar)
            })?;
        }
        for &threads in &spec.threads {
            self.range_reads(&format!(", {threads} threads"), 4, threads, &ranges)?;
        }
        let removed = &loaded[..loaded.len() / 2];
        self.timed("removals (half)", LAZY, removed.len(), |bar| {
            work::remove_all(engine, removed, bar)?;
            engine.flush()
        })?;
        let left = total - removed.len() as u64;
        let counted = engine.len()?;
        check(counted == left, || {
            format!("len {counted} after removals, expected {left}")
        })?;
        self.size("size after removals", left * (KEY_LEN + VALUE_LEN) as u64)
    }

    /// `range reads xL<suffix>`: `spec.range_reads` ranges of `spec.range_len` pairs, each from
    /// a loaded key in the seeded order `stream`, split over `threads` threads (the figure is
    /// their aggregate rate); each range's length is checked against `ranges`.
    fn range_reads(
        &mut self,
        suffix: &str,
        stream: u64,
        threads: usize,
        ranges: &RangeCheck,
    ) -> Result<()> {
        let (spec, engine) = (self.spec, self.engine);
        let loaded = &self.data.keys()[..spec.keys];
        let order = keys::shuffled(loaded.len(), spec.seed, stream);
        let count = spec.range_reads.min(order.len());
        let name = format!("range reads x{}{suffix}", spec.range_len);
        self.timed(&name, READ, count, |bar| {
            work::scan_all(engine, loaded, &order[..count], ranges, threads, bar)
        })
    }

    /// Runs `work` (which does `ops` operations) under a progress bar and records its rate.
    fn timed<F>(&mut self, name: &str, durability: &str, ops: usize, work: F) -> Result<()>
    where
        F: FnOnce(&ProgressBar) -> Result<()>,
    {
        let bar = progress_bar(&self.spec.engine, name, ops);
        let start = Instant::now();
        work(&bar)?;
        let secs = start.elapsed().as_secs_f64();
        let value = ops as f64 / secs;
        bar.finish_with_message(format!("{name}: {}", Unit::OpsPerSec.format(value)));
        if bar.is_hidden() {
            eprintln!(
                "  {} {name}: {}",
                self.spec.engine,
                Unit::OpsPerSec.format(value)
            );
        }
        self.phases.push(Phase {
            name: name.into(),
            durability: durability.into(),
            value,
            unit: Unit::OpsPerSec,
            ops: ops as u64,
            secs,
            note: String::new(),
        });
        Ok(())
    }

    fn len_phase(&mut self, expected: u64) -> Result<()> {
        let start = Instant::now();
        let counted = self.engine.len()?;
        let secs = start.elapsed().as_secs_f64();
        check(counted == expected, || {
            format!("len {counted}, expected {expected}")
        })?;
        self.phases.push(Phase {
            name: "len".into(),
            durability: READ.into(),
            value: secs,
            unit: Unit::Secs,
            ops: 1,
            secs,
            note: String::new(),
        });
        Ok(())
    }

    fn size(&mut self, name: &str, raw_bytes: u64) -> Result<()> {
        let bytes = engine::dir_size_bytes(&self.spec.dir)?;
        self.phases.push(Phase {
            name: name.into(),
            durability: READ.into(),
            value: bytes as f64,
            unit: Unit::Bytes,
            ops: 0,
            secs: 0.0,
            note: format!("{:.2}x raw", bytes as f64 / raw_bytes.max(1) as f64),
        });
        Ok(())
    }
}

fn progress_bar(engine: &str, phase: &str, len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    let style =
        ProgressStyle::with_template("{prefix:>8} {msg:<28} [{bar:30}] {pos}/{len} {per_sec}")
            .expect("valid template")
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(engine.to_string());
    bar.set_message(phase.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every built engine through every phase on a tiny store, two and three threads for the
    /// concurrent phases: each phase checks what it reads (values, range lengths, counts), so a
    /// run that returns is a run whose answers were right.
    #[test]
    fn every_built_engine_runs_every_phase() {
        for name in engine::available() {
            let scratch = tempfile::tempdir().expect("temporary directory");
            let spec = KvSpec {
                engine: name.into(),
                dir: scratch.path().join("db"),
                seed: 7,
                keys: 2500,
                cache_capacity_bytes: 8 << 20,
                background_threads: 2,
                individual_writes: 5,
                batches: 2,
                batch_size: 100,
                range_reads: 1000,
                range_len: 10,
                threads: vec![2, 3],
            };
            let report = run(&spec).unwrap_or_else(|e| panic!("{name}: {e}"));
            let names: Vec<&str> = report.phases.iter().map(|p| p.name.as_str()).collect();
            assert_eq!(
                names[..4],
                [
                    "bulk load",
                    "bulk load, 2 threads",
                    "bulk load, 3 threads",
                    "size after load"
                ],
                "{name}: the concurrent loads follow the bulk load"
            );
            for phase in [
                "range reads x10, 2 threads",
                "range reads x10, 3 threads",
                "random reads, 3 threads",
            ] {
                assert!(names.contains(&phase), "{name}: no {phase} in {names:?}");
            }
            for p in &report.phases {
                assert!(p.value.is_finite(), "{name}: {} is {}", p.name, p.value);
                assert!(p.value > 0.0, "{name}: {} is {}", p.name, p.value);
            }
            let ops = |phase: &str| {
                report
                    .phases
                    .iter()
                    .find(|p| p.name == phase)
                    .map(|p| p.ops)
            };
            assert_eq!(
                ops("bulk load, 2 threads"),
                Some(2500),
                "{name}: pairs loaded"
            );
            assert_eq!(
                ops("range reads x10, 3 threads"),
                ops("range reads x10 (1st)"),
                "{name}: as many ranges as the one-thread pass"
            );
            // The concurrent loads' stores are gone; the main store was measured, then deleted.
            let left: Vec<_> = std::fs::read_dir(scratch.path())
                .expect("scratch")
                .collect();
            assert!(left.is_empty(), "{name}: stores left behind: {left:?}");
        }
    }
}
