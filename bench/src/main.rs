//! `cargo run --release`: bwtree's benchmark suite and command-line tool.
//!
//! The default, `kv`, compares bwtree with the stores its users would otherwise pick (sled, redb,
//! fjall, LMDB; RocksDB with the `rocksdb` feature), each in a child process of its own: see
//! `kv/mod.rs`. `radix` measures the mapping table against a flat array, a locked HashMap and
//! DashMap; `log` the log's append throughput and group commit against the raw file system.
//! Asking for a suite that does not exist yet is an error, not an empty table.

mod alloc_counter;
mod chart;
mod engine;
mod keys;
mod kv;
mod log_suite;
mod radix_suite;
mod report;
mod rss;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[global_allocator]
static ALLOC: alloc_counter::CountingAlloc = alloc_counter::CountingAlloc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Suite {
    /// Key-value store phases of the redb benchmark, against the peer stores (the default).
    Kv,
    /// YCSB workloads A, B, C, E, F (not built yet).
    Ycsb,
    /// In-memory ordered maps (not built yet).
    Mem,
    /// Timed mixed workload printing ops/s every second (not built yet).
    Stress,
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
    /// kv suite: engines to compare (comma-separated; default: every engine built in).
    #[arg(long, value_delimiter = ',')]
    engines: Vec<String>,
    /// kv suite: pairs of the bulk load (default: 200000, with --full 1000000).
    #[arg(long)]
    keys: Option<usize>,
    /// kv suite: every engine's cache budget in MiB.
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
        #[arg(long)]
        kv: String,
    },
}

/// The child side of the one-process-per-engine protocol.
fn run_child(spec_json: &str) -> ExitCode {
    let result = serde_json::from_str::<kv::spec::KvSpec>(spec_json)
        .map_err(engine::Error::from)
        .and_then(|spec| kv::run_child(&spec));
    match result.and_then(|report| Ok(serde_json::to_string(&report)?)) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("child failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the kv suite; its table goes to stdout, its report, table and chart to `cli.out`.
fn run_kv(cli: &Cli) -> Result<Vec<report::Row>, String> {
    let available = engine::available();
    let engines: Vec<String> = if cli.engines.is_empty() {
        available.iter().map(|s| s.to_string()).collect()
    } else {
        cli.engines.clone()
    };
    if let Some(bad) = engines.iter().find(|e| !available.contains(&e.as_str())) {
        return Err(format!(
            "engine `{bad}` is not built in (built: {})",
            available.join(", ")
        ));
    }
    let keys = cli
        .keys
        .unwrap_or(if cli.full { 1_000_000 } else { 200_000 });
    let cfg = kv::KvConfig {
        engines,
        keys,
        seed: cli.seed,
        cache_capacity_bytes: cli.cache_mib << 20,
        batches: if cli.full { 100 } else { 20 },
        range_reads: keys / 2,
        read_threads: cli.threads.iter().copied().filter(|&t| t > 1).collect(),
        scratch: cli.out.join("scratch"),
    };
    let reports = kv::run(&cfg);
    let table = kv::markdown(&reports);
    println!("\n{table}");
    let save = || -> std::io::Result<()> {
        std::fs::create_dir_all(&cli.out)?;
        std::fs::write(cli.out.join("kv.md"), &table)?;
        let json = serde_json::to_string_pretty(&reports).map_err(std::io::Error::other)?;
        std::fs::write(cli.out.join("kv.json"), json)?;
        chart::write_svg(&reports, &cli.out.join("kv.svg"))
            .map_err(|e| std::io::Error::other(e.to_string()))
    };
    save().map_err(|e| {
        format!(
            "could not save the kv results under {}: {e}",
            cli.out.display()
        )
    })?;
    eprintln!(
        "kv table, JSON and chart saved to {}/kv.{{md,json,svg}}",
        cli.out.display()
    );
    if reports.len() < cfg.engines.len() {
        return Err("some engines failed (see above)".into());
    }
    Ok(kv::rows(&reports))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::RunChild { kv }) = &cli.command {
        return run_child(kv);
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
            Suite::Kv => match run_kv(&cli) {
                Ok(kv_rows) => rows.extend(kv_rows),
                Err(e) => {
                    eprintln!("kv: {e}");
                    failed = true;
                }
            },
            Suite::Ycsb | Suite::Mem | Suite::Stress => {
                eprintln!("suite {suite:?} is not built yet (issue 6); built: kv, radix, log");
                return ExitCode::FAILURE;
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
    let others: Vec<report::Row> = rows.iter().filter(|r| r.suite != "kv").cloned().collect();
    if !others.is_empty() {
        println!("{}", report::markdown(&others, &["radix", "logstore"]));
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
