//! The child: opens the database (recovering from the last kill), reports everything it
//! finds, then runs one writer thread per lane, each on its seeded sequence over its own keys
//! (so the threads race on the same nodes), until the parent kills it. Each thread
//! acknowledges its own flushes.
//!
//! Lines on stdout, each written whole before the step it announces:
//! - `kv <tree> <key hex> <value hex>`, one per pair found at open, then `ready <pairs>`;
//! - `ack <lane> <writes> <splits> <merges> <evictions> <page-ins> <checkpoints> <bytes
//!   relocated>` after each `flush()` of that lane's thread returns (the counters since open);
//! - `bad <message>` before exiting with an error: a call failed or answered differently
//!   from the model.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::db::{config, execute, open_trees, read_state, Timers};
use super::workload::{Lane, State, Step, Workload};
use crate::engine::Result;

/// What one child runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChildSpec {
    pub dir: PathBuf,
    pub seed: u64,
    /// Writer threads, one per lane.
    pub lanes: u64,
    pub timers: Timers,
}

/// The `crash-child` subcommand.
pub fn main(spec: &str) -> ExitCode {
    let out = Mutex::new(std::io::stdout());
    let result = serde_json::from_str::<ChildSpec>(spec)
        .map_err(Into::into)
        .and_then(|spec| run(&spec, &out));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&out, format!("bad {}", e.to_string().replace('\n', " | ")));
            ExitCode::from(2)
        }
    }
}

/// Writes one whole line (best effort: the parent treats an early exit as a failure anyway).
fn say(out: &Mutex<std::io::Stdout>, line: String) {
    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn run(spec: &ChildSpec, out: &Mutex<std::io::Stdout>) -> Result<()> {
    let db = config(&spec.dir, spec.timers).open()?;
    let trees = open_trees(&db)?;
    let state = read_state(&trees)?;
    report_state(&state, out)?;
    std::thread::scope(|s| {
        let writers: Vec<_> = Lane::all(spec.lanes)
            .map(|lane| {
                let work = Workload::new(spec.seed, lane, lane.part(&state));
                let (db, trees) = (&db, &trees);
                s.spawn(move || match write(db, trees, lane, work, out) {
                    Ok(never) => match never {},
                    // Stop the other writers too: the first failure is the one to report.
                    Err(e) => {
                        say(out, format!("bad {}", e.to_string().replace('\n', " | ")));
                        std::process::exit(2);
                    }
                })
            })
            .collect();
        writers.into_iter().for_each(|w| {
            let _ = w.join();
        });
    });
    Ok(())
}

fn report_state(state: &State, out: &Mutex<std::io::Stdout>) -> Result<()> {
    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
    let mut pairs = 0;
    for (t, map) in state.iter().enumerate() {
        for (k, v) in map {
            writeln!(out, "kv {t} {} {}", hex(k), hex(v))?;
            pairs += 1;
        }
    }
    writeln!(out, "ready {pairs}")?;
    out.flush()?;
    Ok(())
}

/// One lane's writer: runs its sequence until killed.
fn write(
    db: &bwtree::Db,
    trees: &[bwtree::Tree],
    lane: Lane,
    mut work: Workload,
    out: &Mutex<std::io::Stdout>,
) -> Result<std::convert::Infallible> {
    loop {
        match work.step() {
            (Step::Write(op), expected) => {
                let got = execute(trees, &op)?;
                if got != expected {
                    return Err(format!(
                        "lane {} write {} ({op:?}) returned {got:?}, the model says {expected:?}",
                        lane.index, work.writes
                    )
                    .into());
                }
            }
            (Step::Flush, _) => {
                db.flush()?;
                let s = db.stats();
                say(
                    out,
                    format!(
                        "ack {} {} {} {} {} {} {} {}",
                        lane.index,
                        work.writes,
                        s.splits,
                        s.merges,
                        s.cache.evictions,
                        s.cache.page_ins,
                        s.cache.checkpoints,
                        s.cache.bytes_relocated
                    ),
                );
            }
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(2 * bytes.len() + 1);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    // An empty value is "-": a line never ends in a blank field.
    if s.is_empty() {
        s.push('-');
    }
    s
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s == "-" {
        return Some(Vec::new());
    }
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
