//! `cargo run --release`: bwtree's benchmark suite and command-line tool.
//!
//! Suites built so far: `radix` (the mapping table against a flat array, a locked HashMap and
//! DashMap) and `log` (append throughput and group commit against the raw file system). The
//! key-value suites against peer stores arrive with the Bw-tree; asking for one that does not
//! exist yet is an error, not an empty table.

mod alloc_counter;
mod log_suite;
mod radix_suite;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

#[global_allocator]
static ALLOC: alloc_counter::CountingAlloc = alloc_counter::CountingAlloc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Suite {
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
    /// Suites to run (default: all that exist).
    #[arg(long, value_enum, value_delimiter = ',')]
    suite: Vec<Suite>,
    /// The long version: more repeats and more operations per run.
    #[arg(long)]
    full: bool,
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
    /// Where results.json goes.
    #[arg(long, default_value = "target/bench-results")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let suites = if cli.suite.is_empty() {
        vec![Suite::Radix, Suite::Log]
    } else {
        cli.suite.clone()
    };
    let mut rows = Vec::new();
    for suite in suites {
        match suite {
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
    println!("{}", report::markdown(&rows, &["radix", "logstore"]));
    match report::save_json(&rows, &cli.out) {
        Ok(path) => {
            eprintln!("results saved to {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("could not save results under {}: {e}", cli.out.display());
            ExitCode::FAILURE
        }
    }
}
