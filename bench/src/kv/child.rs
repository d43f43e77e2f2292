//! The `kv` phases, run inside the child process of one engine (see the module above for what
//! each phase means). Every phase checks what it reads, so a fast wrong answer fails the run.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::spec::{EngineReport, KvSpec, Phase, Unit};
use crate::engine::{self, Durability, Engine, Op, OpenOptions, Result};
use crate::keys::{self, Dataset, Key, KEY_LEN, VALUE_LEN};
use crate::rss;

/// Progress is reported every this many operations (keeps the bar off the measured path).
const TICK: usize = 1024;
const DURABLE: &str = "durable each";
const LAZY: &str = "none + 1 flush";
const READ: &str = "-";

struct Run<'a> {
    spec: &'a KvSpec,
    data: &'a Dataset,
    engine: &'a dyn Engine,
    phases: Vec<Phase>,
}

/// Runs every phase on a fresh store and reports the figures.
pub fn run(spec: &KvSpec) -> Result<EngineReport> {
    let extra = spec.individual_writes + spec.batches * spec.batch_size;
    let data = Dataset::generate(spec.seed, spec.keys + extra);
    let harness_rss_bytes = rss::current_bytes().unwrap_or(0);
    let raw_bytes = (spec.keys * (KEY_LEN + VALUE_LEN)) as u64;
    let options = OpenOptions {
        dir: spec.dir.clone(),
        cache_capacity_bytes: spec.cache_capacity_bytes,
        max_data_bytes: raw_bytes + (extra * (KEY_LEN + VALUE_LEN)) as u64,
        background_threads: spec.background_threads,
    };
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
    Ok(EngineReport {
        engine: spec.engine.clone(),
        phases,
        harness_rss_bytes,
    })
}

impl Run<'_> {
    fn phases(&mut self, raw_bytes: u64) -> Result<()> {
        let spec = self.spec;
        let (loaded, rest) = self.data.keys().split_at(spec.keys);
        let (singles, batched) = rest.split_at(spec.individual_writes);
        self.timed("bulk load", LAZY, loaded.len(), |bar| {
            write_all(self.engine, self.data, loaded, 1000, Durability::None, bar)?;
            self.engine.flush()
        })?;
        self.size("size after load", raw_bytes)?;
        self.timed("individual writes", DURABLE, singles.len(), |bar| {
            for key in singles {
                self.engine
                    .insert(key, self.data.value(key), Durability::Durable)?;
                bar.inc(1);
            }
            Ok(())
        })?;
        self.timed("batch writes", DURABLE, batched.len(), |bar| {
            let size = spec.batch_size;
            write_all(
                self.engine,
                self.data,
                batched,
                size,
                Durability::Durable,
                bar,
            )
        })?;
        let total = self.data.keys().len() as u64;
        self.len_phase(total)?;
        for pass in ["1st", "2nd"] {
            let order = keys::shuffled(loaded.len(), spec.seed, 1);
            let name = format!("random reads ({pass})");
            self.timed(&name, READ, order.len(), |bar| {
                read_all(self.engine, self.data, loaded, &order, 1, bar)
            })?;
        }
        for pass in ["1st", "2nd"] {
            let order = keys::shuffled(loaded.len(), spec.seed, 2);
            let count = spec.range_reads.min(order.len());
            let name = format!("range reads x{} ({pass})", spec.range_len);
            self.timed(&name, READ, count, |bar| {
                scan_all(self.engine, loaded, &order[..count], spec.range_len, bar)
            })?;
        }
        for &threads in &spec.read_threads {
            let order = keys::shuffled(loaded.len(), spec.seed, 3);
            let name = format!("random reads, {threads} threads");
            self.timed(&name, READ, order.len(), |bar| {
                read_all(self.engine, self.data, loaded, &order, threads, bar)
            })?;
        }
        let removed = &loaded[..loaded.len() / 2];
        self.timed("removals (half)", LAZY, removed.len(), |bar| {
            remove_all(self.engine, removed, bar)?;
            self.engine.flush()
        })?;
        let left = total - removed.len() as u64;
        let counted = self.engine.len()?;
        check(counted == left, || {
            format!("len {counted} after removals, expected {left}")
        })?;
        self.size("size after removals", left * (KEY_LEN + VALUE_LEN) as u64)
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

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(what().into())
    }
}

/// Inserts `keys` with their values in write groups of `group` operations.
fn write_all(
    engine: &dyn Engine,
    data: &Dataset,
    keys: &[Key],
    group: usize,
    durability: Durability,
    bar: &ProgressBar,
) -> Result<()> {
    let mut ops = Vec::with_capacity(group);
    let (mut done, mut shown) = (0, 0);
    for chunk in keys.chunks(group) {
        ops.clear();
        ops.extend(chunk.iter().map(|k| Op::Insert(k, data.value(k))));
        engine.write(&ops, durability)?;
        done += chunk.len();
        if done - shown >= TICK.min(keys.len() / 100).max(1) {
            bar.set_position(done as u64);
            shown = done;
        }
    }
    bar.set_position(done as u64);
    Ok(())
}

fn remove_all(engine: &dyn Engine, keys: &[Key], bar: &ProgressBar) -> Result<()> {
    for chunk in keys.chunks(1000) {
        let ops: Vec<Op<'_>> = chunk.iter().map(|k| Op::Remove(k)).collect();
        engine.write(&ops, Durability::None)?;
        bar.inc(chunk.len() as u64);
    }
    Ok(())
}

/// Reads `keys[i]` for every `i` of `order`, split across `threads` threads, each with its own
/// reader; every value must be present with its full length.
fn read_all(
    engine: &dyn Engine,
    data: &Dataset,
    keys: &[Key],
    order: &[u32],
    threads: usize,
    bar: &ProgressBar,
) -> Result<()> {
    let share = order.len().div_ceil(threads.max(1));
    std::thread::scope(|s| {
        let workers: Vec<_> = order
            .chunks(share.max(1))
            .map(|part| s.spawn(move || read_part(engine, data, keys, part, bar)))
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("reader thread panicked"))
    })
}

fn read_part(
    engine: &dyn Engine,
    data: &Dataset,
    keys: &[Key],
    part: &[u32],
    bar: &ProgressBar,
) -> Result<()> {
    let mut reader = engine.reader()?;
    for (i, &index) in part.iter().enumerate() {
        let key = &keys[index as usize];
        let len = reader.get(key)?;
        check(len == Some(data.value(key).len()), || {
            format!("get of a loaded key returned {len:?}")
        })?;
        if i % TICK == TICK - 1 {
            bar.inc(TICK as u64);
        }
    }
    Ok(())
}

fn scan_all(
    engine: &dyn Engine,
    keys: &[Key],
    starts: &[u32],
    len: usize,
    bar: &ProgressBar,
) -> Result<()> {
    let mut reader = engine.reader()?;
    for (i, &index) in starts.iter().enumerate() {
        let found = reader.scan(&keys[index as usize], len)?;
        // The start key itself is present; the range ends early only at the end of the keys.
        check(found >= 1, || {
            "a range from a loaded key found nothing".into()
        })?;
        if i % TICK == TICK - 1 {
            bar.inc(TICK as u64);
        }
    }
    Ok(())
}
