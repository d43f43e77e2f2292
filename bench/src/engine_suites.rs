//! The suites that compare whole stores (`kv`, `ycsb`): choosing the engines and sizes from the
//! command line, and saving each suite's table, JSON and chart as `<out>/<suite>.{md,json,svg}`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::kv::{self, EngineReport};
use crate::{chart, engine, report, ycsb, Cli};

/// What the engine suites take from the command line.
#[derive(Clone, Debug)]
pub struct Options {
    engines: Vec<String>,
    keys: Option<usize>,
    full: bool,
    seed: u64,
    cache_capacity_bytes: u64,
    threads: Vec<usize>,
    repeats: Option<usize>,
    out: PathBuf,
}

impl From<&Cli> for Options {
    fn from(cli: &Cli) -> Self {
        Self {
            engines: cli.engines.clone(),
            keys: cli.keys,
            full: cli.full,
            seed: cli.seed,
            cache_capacity_bytes: cli.cache_mib << 20,
            threads: cli.threads.clone(),
            repeats: cli.repeats,
            out: cli.out.clone(),
        }
    }
}

impl Options {
    /// The engines asked for (default: every engine built in), each checked to be built in.
    fn engines(&self) -> Result<Vec<String>, String> {
        let available = engine::available();
        if self.engines.is_empty() {
            return Ok(available.iter().map(|s| s.to_string()).collect());
        }
        match self
            .engines
            .iter()
            .find(|e| !available.contains(&e.as_str()))
        {
            Some(bad) => Err(format!(
                "engine `{bad}` is not built in (built: {})",
                available.join(", ")
            )),
            None => Ok(self.engines.clone()),
        }
    }
}

/// Runs the suite `name` (`kv` or `ycsb`): prints its table, saves its files, returns its rows.
pub fn run(name: &str, options: &Options) -> Result<Vec<report::Row>, String> {
    let engines = options.engines()?;
    let scratch = options.out.join("scratch");
    let reports = match name {
        "kv" => {
            let keys = options
                .keys
                .unwrap_or(if options.full { 1_000_000 } else { 200_000 });
            kv::run(&kv::KvConfig {
                engines: engines.clone(),
                keys,
                seed: options.seed,
                cache_capacity_bytes: options.cache_capacity_bytes,
                batches: if options.full { 100 } else { 20 },
                range_reads: keys / 2,
                threads: options.threads.iter().copied().filter(|&t| t > 1).collect(),
                repeats: options.repeats.unwrap_or(if options.full { 3 } else { 1 }),
                scratch,
            })
        }
        "ycsb" => {
            let records = options
                .keys
                .unwrap_or(if options.full { 1_000_000 } else { 100_000 });
            ycsb::run(&ycsb::YcsbConfig {
                engines: engines.clone(),
                records: records as u64,
                ops: if options.full { 1_000_000 } else { 100_000 },
                seed: options.seed,
                cache_capacity_bytes: options.cache_capacity_bytes,
                threads: options.threads.clone(),
                scratch,
            })
        }
        other => unreachable!("not an engine suite: {other}"),
    };
    let table = kv::markdown(&reports);
    println!("\n## {name}\n\n{table}");
    save(name, &reports, &table, &options.out).map_err(|e| {
        format!(
            "could not save results under {}: {e}",
            options.out.display()
        )
    })?;
    if reports.len() < engines.len() {
        return Err("some engines failed (see above)".into());
    }
    let suite = if name == "kv" { "kv" } else { "ycsb" };
    Ok(kv::rows(suite, &reports))
}

fn save(
    name: &str,
    reports: &[EngineReport],
    table: &str,
    out: &std::path::Path,
) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join(format!("{name}.md")), table)?;
    let json = serde_json::to_string_pretty(reports).map_err(std::io::Error::other)?;
    std::fs::write(out.join(format!("{name}.json")), json)?;
    let title = format!("{name} suite: each engine relative to the best per phase (1.0 = best)");
    chart::write_svg(reports, &title, &out.join(format!("{name}.svg")))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    eprintln!(
        "{name}: table, JSON and chart saved to {}/{name}.{{md,json,svg}}",
        out.display()
    );
    Ok(())
}

/// The child side of the one-process-per-engine protocol (see `isolate.rs`).
pub fn run_child(kv_spec: Option<&str>, ycsb_spec: Option<&str>) -> ExitCode {
    let result: engine::Result<EngineReport> = match (kv_spec, ycsb_spec) {
        (Some(json), None) => serde_json::from_str(json)
            .map_err(engine::Error::from)
            .and_then(|spec| kv::run_child(&spec)),
        (None, Some(json)) => serde_json::from_str(json)
            .map_err(engine::Error::from)
            .and_then(|spec| ycsb::run_child(&spec)),
        _ => Err("run-child takes exactly one of --kv and --ycsb".into()),
    };
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
