//! The child: opens the database (recovering from the last kill), reports everything it
//! finds, then runs its seeded sequence until the parent kills it, acknowledging each flush.
//!
//! Lines on stdout, each written whole before the step it announces:
//! - `kv <tree> <key hex> <value hex>`, one per pair found at open, then `ready <pairs>`;
//! - `ack <writes> <splits> <merges> <evictions> <page-ins> <checkpoints> <bytes relocated>`
//!   after each `flush()` returns (the counters since open);
//! - `bad <message>` before exiting with an error: a call failed or answered differently
//!   from the model.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use super::db::{config, execute, open_trees, read_state, Timers};
use super::workload::{Step, Workload};
use crate::engine::Result;

/// What one child runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChildSpec {
    pub dir: PathBuf,
    pub seed: u64,
    pub timers: Timers,
}

/// The `crash-child` subcommand.
pub fn main(spec: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let result = serde_json::from_str::<ChildSpec>(spec)
        .map_err(Into::into)
        .and_then(|spec| run(&spec, &mut out));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Best effort: the parent treats an early exit as a failure either way.
            let _ = writeln!(out, "bad {}", e.to_string().replace('\n', " | "));
            let _ = out.flush();
            ExitCode::from(2)
        }
    }
}

fn run(spec: &ChildSpec, out: &mut impl Write) -> Result<()> {
    let db = config(&spec.dir, spec.timers).open()?;
    let trees = open_trees(&db)?;
    let state = read_state(&trees)?;
    let mut pairs = 0;
    for (t, map) in state.iter().enumerate() {
        for (k, v) in map {
            writeln!(out, "kv {t} {} {}", hex(k), hex(v))?;
            pairs += 1;
        }
    }
    writeln!(out, "ready {pairs}")?;
    out.flush()?;
    let mut work = Workload::new(spec.seed, state);
    loop {
        match work.step() {
            (Step::Write(op), expected) => {
                let got = execute(&trees, &op)?;
                if got != expected {
                    return Err(format!(
                        "write {} ({op:?}) returned {got:?}, the model says {expected:?}",
                        work.writes
                    )
                    .into());
                }
            }
            (Step::Flush, _) => {
                db.flush()?;
                let s = db.stats();
                writeln!(
                    out,
                    "ack {} {} {} {} {} {} {}",
                    work.writes,
                    s.splits,
                    s.merges,
                    s.cache.evictions,
                    s.cache.page_ins,
                    s.cache.checkpoints,
                    s.cache.bytes_relocated
                )?;
                out.flush()?;
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
