//! The log suite: append throughput and durable group commit of `logstore::Log` against the raw
//! file system it sits on, measured in the same run, in the same directory.
//!
//! - Append: N records of 64 B, 1 KiB and 16 KiB from 1 and 2 threads, then one `flush()`;
//!   once with `append` (copies the body) and once with `reserve` + filling `body_mut` in place
//!   (the zero-copy path the upper layer uses); baseline: the same bytes written with
//!   `write_all` in 1 MiB chunks, then one `fdatasync` (the file system's sequential bandwidth).
//! - Group commit: each thread loops `append(128 B)` + `make_stable(lsn)`; baseline: each thread
//!   loops `pwrite(128 B)` + `fdatasync` (one sync per record). Commits per fsync are summed
//!   over every run of the case.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logstore::io::FileStorage;
use logstore::{Config, Log, LogStats, Lsn};

use crate::report::Row;

/// Settings of one run of the suite.
#[derive(Clone, Debug)]
pub struct LogConfig {
    pub dir: PathBuf,
    pub threads: Vec<usize>,
    /// Which cases to run.
    pub cases: Vec<LogCase>,
    /// Record sizes of the append case.
    pub records: Vec<usize>,
    /// Bytes appended per append case (split over the threads).
    pub append_bytes: u64,
    /// Commits per thread in the group-commit case.
    pub commits_per_thread: u64,
    /// Runs per case (alternating ours and the baseline); the median is reported.
    pub repeats: usize,
    /// Overrides of `Config::io_buffer_size_bytes` / `io_buffer_count` (None: the defaults).
    pub io_buffer_size_bytes: Option<u64>,
    pub io_buffer_count: Option<usize>,
}

/// A case of the log suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogCase {
    /// Append throughput (no sync until the end).
    Append,
    /// Durable group commit.
    Commit,
}

/// How the append case fills records.
#[derive(Clone, Copy, Debug)]
enum Fill {
    /// `Log::append`: reserve, copy the caller's body, complete.
    Copy,
    /// `reserve` + fill `body_mut` in place + `complete`.
    InPlace,
}

/// The median of `repeats` timings of `run`.
fn median_time(repeats: usize, mut run: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..repeats.max(1)).map(|_| run()).collect();
    times.sort();
    times[times.len() / 2]
}

fn fresh_dir(base: &Path, name: &str) -> PathBuf {
    let dir = base.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the benchmark directory");
    dir
}

fn open_log(dir: &Path, run: &LogConfig) -> Log {
    let mut cfg = Config::new(dir);
    cfg.flush_every_ms = None;
    if let Some(size) = run.io_buffer_size_bytes {
        cfg.io_buffer_size_bytes = size;
    }
    if let Some(count) = run.io_buffer_count {
        cfg.io_buffer_count = count;
    }
    let (log, recovered) = Log::open(cfg, Arc::new(FileStorage::new()), Lsn(0)).expect("open log");
    assert!(recovered.is_empty(), "benchmark log must start empty");
    log
}

fn log_append(run: &LogConfig, record: usize, count: u64, threads: usize, fill: Fill) -> Duration {
    let log = open_log(&fresh_dir(&run.dir, "log"), run);
    let body = vec![0xa5u8; record];
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..count / threads as u64 {
                    match fill {
                        Fill::Copy => {
                            log.append(&body).expect("append");
                        }
                        Fill::InPlace => {
                            let mut r = log.reserve(record).expect("reserve");
                            r.body_mut().fill(0xa5);
                            r.complete().expect("complete");
                        }
                    }
                }
            });
        }
    });
    log.flush().expect("flush");
    start.elapsed()
}

fn raw_append(dir: &Path, total: u64) -> Duration {
    let mut file = File::create(dir.join("raw.dat")).expect("create raw file");
    let chunk = vec![0xa5u8; 1 << 20];
    let start = Instant::now();
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).expect("raw write");
        left -= n as u64;
    }
    file.sync_data().expect("raw fdatasync");
    start.elapsed()
}

fn append_rows(cfg: &LogConfig, rows: &mut Vec<Row>) {
    for &record in &cfg.records {
        let count = cfg.append_bytes / record as u64;
        for &threads in &cfg.threads {
            let case = format!("append {record} B x {count}, {threads} thr, +1 flush");
            let log_time = median_time(cfg.repeats, || {
                log_append(cfg, record, count, threads, Fill::Copy)
            });
            let in_place_time = median_time(cfg.repeats, || {
                log_append(cfg, record, count, threads, Fill::InPlace)
            });
            let raw_time = median_time(cfg.repeats, || {
                raw_append(&fresh_dir(&cfg.dir, "raw"), count * record as u64)
            });
            for (engine, time) in [
                ("logstore", log_time),
                ("logstore reserve+fill in place", in_place_time),
                ("raw write_all 1 MiB", raw_time),
            ] {
                let mb_s = (count * record as u64) as f64 / time.as_secs_f64() / 1e6;
                rows.push(Row {
                    suite: "log",
                    case: case.clone(),
                    engine: engine.to_string(),
                    value: mb_s,
                    unit: "MB/s",
                    higher_is_better: true,
                    extra: format!("{:.0} records/s", count as f64 / time.as_secs_f64()),
                });
            }
        }
    }
}

/// Time for the commits, and the log's counters (its `fdatasync`s and gatherings).
fn log_commits(run: &LogConfig, per_thread: u64, threads: usize) -> (Duration, LogStats) {
    let log = open_log(&fresh_dir(&run.dir, "log"), run);
    let body = [0x5au8; 128];
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..per_thread {
                    let (lsn, _) = log.append(&body).expect("append");
                    log.make_stable(lsn).expect("make_stable");
                }
            });
        }
    });
    (start.elapsed(), log.stats())
}

fn raw_commits(dir: &Path, per_thread: u64, threads: usize) -> Duration {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.join("raw.dat"))
        .expect("create raw file");
    let body = [0x5au8; 128];
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads as u64 {
            let file = &file;
            s.spawn(move || {
                for i in 0..per_thread {
                    let offset = (i * threads as u64 + t) * body.len() as u64;
                    file.write_all_at(&body, offset).expect("raw write");
                    file.sync_data().expect("raw fdatasync");
                }
            });
        }
    });
    start.elapsed()
}

fn commit_rows(cfg: &LogConfig, rows: &mut Vec<Row>) {
    for &threads in &cfg.threads {
        let n = cfg.commits_per_thread;
        let case = format!("durable commit 128 B, {threads} thr x {n}");
        let (mut syncs, mut gathers, mut timeouts, mut runs) = (0, 0, 0, 0);
        let log_time = median_time(cfg.repeats, || {
            let (time, stats) = log_commits(cfg, n, threads);
            syncs += stats.syncs;
            gathers += stats.group_commit_gathers;
            timeouts += stats.group_commit_timeouts;
            runs += 1;
            time
        });
        let raw_time = median_time(cfg.repeats, || {
            raw_commits(&fresh_dir(&cfg.dir, "raw"), n, threads)
        });
        for (engine, time) in [("logstore", log_time), ("raw write+fdatasync", raw_time)] {
            let commits = (n * threads as u64) as f64;
            rows.push(Row {
                suite: "log",
                case: case.clone(),
                engine: engine.to_string(),
                value: commits / time.as_secs_f64(),
                unit: "commits/s",
                higher_is_better: true,
                extra: format!(
                    "{:.0} us/commit per thread{}",
                    time.as_secs_f64() * 1e6 / n as f64,
                    if engine == "logstore" {
                        let all = commits * f64::from(runs);
                        format!(
                            ", {:.2} commits per fsync, {:.0}% of syncs gathered, {:.0}% of \
                             those timed out",
                            all / syncs.max(1) as f64,
                            100.0 * gathers as f64 / syncs.max(1) as f64,
                            100.0 * timeouts as f64 / gathers.max(1) as f64
                        )
                    } else {
                        String::new()
                    }
                ),
            });
        }
    }
}

/// Runs the suite and returns its rows.
pub fn run(cfg: &LogConfig, mut progress: impl FnMut(&str)) -> Vec<Row> {
    let mut rows = Vec::new();
    if cfg.cases.contains(&LogCase::Append) {
        progress("log: append throughput");
        append_rows(cfg, &mut rows);
    }
    if cfg.cases.contains(&LogCase::Commit) {
        progress("log: durable group commit");
        commit_rows(cfg, &mut rows);
    }
    let _ = std::fs::remove_dir_all(&cfg.dir);
    rows
}
