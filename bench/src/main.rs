//! `cargo run --release`: bwtree's benchmark suite and command-line tool.
//!
//! The default, `kv`, compares bwtree with the stores its users would otherwise pick (sled, redb,
//! fjall, LMDB; RocksDB with the `rocksdb` feature), each in a child process of its own: see
//! `kv/mod.rs`. `radix` measures the mapping table against a flat array, a locked HashMap and
//! DashMap; `log` the log's append throughput and group commit against the raw file system.
//! Asking for a suite that does not exist yet is an error, not an empty table.

mod alloc_counter;
mod chart;
mod crash;
mod engine;
mod engine_suites;
mod isolate;
mod keys;
mod kv;
mod log_suite;
mod mem;
mod radix_suite;
mod report;
mod rss;
mod stress;
mod ycsb;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[global_allocator]
static ALLOC: alloc_counter::CountingAlloc = alloc_counter::CountingAlloc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Suite {
    /// Key-value store phases of the redb benchmark, against the peer stores (the default).
    Kv,
    /// YCSB workloads A, B, C, E, F, uniform and zipfian, against the peer stores.
    Ycsb,
    /// In-memory ordered maps: bwtree (temporary) against BTreeMap, SkipMap and TreeIndex.
    Mem,
    /// bwtree under a timed mixed workload, printing ops/s every second (soak and sanitizer runs).
    Stress,
    /// SIGKILL torture: kill a child running writes at random moments, check what recovers.
    Crash,
    /// Mapping-table lookup and CAS throughput, memory per id.
    Radix,
    /// Log append throughput and durable group commit against the raw file system.
    Log,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogCaseArg {
    /// Append throughput, no sync until the end.
    Append,
    /// Durable group commit (`append` + `make_stable` per record).
    Commit,
}

/// bwtree's benchmark suite: every figure measured in this run, beside its baselines.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Suites to run (default: kv).
    #[arg(long, value_enum, value_delimiter = ',')]
    suite: Vec<Suite>,
    /// The long version: more keys, more repeats and more operations per run.
    #[arg(long)]
    full: bool,
    /// kv and ycsb suites: engines to compare (comma-separated; default: every engine built in).
    #[arg(long, value_delimiter = ',')]
    engines: Vec<String>,
    /// kv and ycsb suites: pairs loaded (default: kv 200000 and ycsb 100000; with --full, 1M).
    #[arg(long)]
    keys: Option<usize>,
    /// kv suite: runs per engine, the table shows medians (default: 1, with --full 3).
    #[arg(long)]
    repeats: Option<usize>,
    /// stress and crash suites: how long to run, in minutes (default: stress 0.25, with --full
    /// 5; crash 1, or unbounded with --cycles).
    #[arg(long)]
    minutes: Option<f64>,
    /// stress suite: check every answer against per-thread models, and everything after the
    /// final flush and a clean reopen (non-zero exit on a mismatch).
    #[arg(long)]
    verify: bool,
    /// crash suite: stop after this many kill-and-recover cycles.
    #[arg(long)]
    cycles: Option<u64>,
    /// kv and ycsb suites: every engine's cache budget in MiB.
    #[arg(long, default_value_t = 64)]
    cache_mib: u64,
    /// Threads to measure with (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Log suite: cases to run (comma-separated; default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    log_case: Vec<LogCaseArg>,
    /// Log suite: record sizes of the append case in bytes (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "64,1024,16384")]
    log_records: Vec<usize>,
    /// Log suite: `Config::io_buffer_size_bytes` in KiB (default: the log's default).
    #[arg(long)]
    log_io_buffer_kib: Option<u64>,
    /// Log suite: `Config::io_buffer_count` (default: the log's default).
    #[arg(long)]
    log_io_buffers: Option<usize>,
    /// Seed of every generated key stream.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// Where results.json, the kv table and chart go (and the stores' scratch directories).
    #[arg(long, default_value = "target/bench-results")]
    out: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Internal: runs one engine's share of a suite and prints its report as JSON on stdout.
    #[command(hide = true)]
    RunChild {
        /// A `kv::spec::KvSpec` as JSON.
        #[arg(long, conflicts_with = "ycsb")]
        kv: Option<String>,
        /// A `ycsb::YcsbSpec` as JSON.
        #[arg(long)]
        ycsb: Option<String>,
    },
    /// Internal: one child of the crash suite, killed by its parent (`crash::child`).
    #[command(hide = true)]
    CrashChild {
        /// A `crash::child::ChildSpec` as JSON.
        spec: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::RunChild { kv, ycsb }) = &cli.command {
        return engine_suites::run_child(kv.as_deref(), ycsb.as_deref());
    }
    if let Some(Command::CrashChild { spec }) = &cli.command {
        return crash::child::main(spec);
    }
    let suites = if cli.suite.is_empty() {
        vec![Suite::Kv]
    } else {
        cli.suite.clone()
    };
    let mut rows = Vec::new();
    let mut failed = false;
    for suite in suites {
        match suite {
            Suite::Kv | Suite::Ycsb => {
                let name = if suite == Suite::Kv { "kv" } else { "ycsb" };
                match engine_suites::run(name, &engine_suites::Options::from(&cli)) {
                    Ok(suite_rows) => rows.extend(suite_rows),
                    Err(e) => {
                        eprintln!("{name}: {e}");
                        failed = true;
                    }
                }
            }
            Suite::Stress => {
                let minutes = cli.minutes.unwrap_or(if cli.full { 5.0 } else { 0.25 });
                let cfg = stress::StressConfig {
                    dir: cli.out.join("scratch"),
                    duration: std::time::Duration::from_secs_f64(minutes * 60.0),
                    threads: cli.threads.iter().copied().max().unwrap_or(2),
                    keys: cli.keys.unwrap_or(10_000) as u64,
                    cache_capacity_bytes: cli.cache_mib << 20,
                    seed: cli.seed,
                    verify: cli.verify,
                };
                match stress::run(&cfg) {
                    Ok(stress_rows) => rows.extend(stress_rows),
                    Err(e) => {
                        eprintln!("stress: {e}");
                        failed = true;
                    }
                }
            }
            Suite::Crash => {
                let cfg = crash::CrashConfig {
                    scratch: cli.out.join("scratch"),
                    cycles: cli.cycles,
                    duration: match (cli.minutes, cli.cycles) {
                        (Some(m), _) => Some(std::time::Duration::from_secs_f64(m * 60.0)),
                        (None, Some(_)) => None,
                        (None, None) => Some(std::time::Duration::from_secs(60)),
                    },
                    seed: cli.seed,
                };
                match crash::run(&cfg) {
                    Ok(crash_rows) => rows.extend(crash_rows),
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
            Suite::Mem => {
                let cfg = mem::MemConfig {
                    keys: cli
                        .keys
                        .unwrap_or(if cli.full { 1_000_000 } else { 200_000 }),
                    threads: cli.threads.clone(),
                    seed: cli.seed,
                };
                rows.extend(mem::run(&cfg, |msg| eprintln!("running {msg}")));
            }
            Suite::Radix => {
                let cfg = radix_suite::RadixConfig {
                    id_counts: vec![1_000_000, 16_000_000],
                    threads: cli.threads.clone(),
                    ops_per_thread: if cli.full { 20_000_000 } else { 4_000_000 },
                    repeats: if cli.full { 7 } else { 3 },
                    seed: cli.seed,
                };
                rows.extend(radix_suite::run(&cfg, |msg| eprintln!("running {msg}")));
            }
            Suite::Log => {
                let cfg = log_suite::LogConfig {
                    dir: cli.out.join("scratch"),
                    threads: cli.threads.clone(),
                    cases: if cli.log_case.is_empty() {
                        vec![log_suite::LogCase::Append, log_suite::LogCase::Commit]
                    } else {
                        cli.log_case
                            .iter()
                            .map(|c| match c {
                                LogCaseArg::Append => log_suite::LogCase::Append,
                                LogCaseArg::Commit => log_suite::LogCase::Commit,
                            })
                            .collect()
                    },
                    records: cli.log_records.clone(),
                    append_bytes: if cli.full { 1 << 30 } else { 256 << 20 },
                    commits_per_thread: if cli.full { 5000 } else { 1000 },
                    repeats: if cli.full { 5 } else { 3 },
                    io_buffer_size_bytes: cli.log_io_buffer_kib.map(|k| k << 10),
                    io_buffer_count: cli.log_io_buffers,
                };
                rows.extend(log_suite::run(&cfg, |msg| eprintln!("running {msg}")));
            }
        }
    }
    let others: Vec<report::Row> = rows
        .iter()
        .filter(|r| !["kv", "ycsb", "stress", "crash"].contains(&r.suite))
        .cloned()
        .collect();
    if !others.is_empty() {
        println!(
            "{}",
            report::markdown(&others, &["radix", "logstore", "bwtree"])
        );
    }
    match report::save_json(&rows, &cli.out) {
        Ok(path) => {
            eprintln!("results saved to {}", path.display());
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("could not save results under {}: {e}", cli.out.display());
            ExitCode::FAILURE
        }
    }
}
