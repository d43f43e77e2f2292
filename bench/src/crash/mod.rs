//! The `crash` suite: SIGKILL torture of bwtree through its public API.
//!
//! The parent runs chains of cycles on one directory. Each cycle re-executes this binary as a
//! child (`crash-child`, see `child.rs`) that opens the database with frequent background work
//! (flushes, checkpoints, cleaning; tiny nodes, segments and cache: `db.rs`), reports the
//! state it recovered, and runs 1-3 writer threads ("lanes", each with its own keys, so they
//! race on the same nodes), each a seeded sequence of inserts, removes, batches,
//! compare-and-swaps and updates over three trees (`workload.rs`), acknowledging its flushes.
//! The parent kills it with SIGKILL at a random moment (`kill.rs`: in recovery, mid-workload,
//! right after an acknowledgement) and checks the state the *next* child recovers: in each
//! lane's keys it must equal the lane's model after a prefix of its writes containing every
//! acknowledged one (`check.rs`). So every cycle is a crash, a recovery of a crashed database, and a crash
//! again; one cycle in eight the parent instead opens the database itself, checks it and
//! closes it cleanly. A chain ends after [`CHAIN_CYCLES`] cycles with a clean open and check.
//!
//! SIGKILL leaves the kernel's page cache intact, so this cannot catch a missing fsync (the
//! model tests' power-loss crashes on the simulated storage do; docs/VERIFICATION.md).

mod check;
pub mod child;
mod db;
mod kill;
mod workload;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use logstore::io::SimRng;

use crate::engine::Result;
use crate::report::Row;
use check::{matching_prefix, Expectation};
use child::ChildSpec;
use db::{config, open_trees, read_state, Timers};
use kill::{ChildCounters, KillPlan};
use workload::{Lane, State, TREE_NAMES};

/// Cycles on one directory before starting over on a fresh one.
const CHAIN_CYCLES: u64 = 50;
/// Most writer threads in a child (drawn per child from 1 to this).
const MAX_LANES: u64 = 3;

/// How long a crash run goes on.
#[derive(Clone, Debug)]
pub struct CrashConfig {
    /// Where the chains' directories go (each removed once its chain passed).
    pub scratch: PathBuf,
    /// Stop after this many cycles ...
    pub cycles: Option<u64>,
    /// ... or once this much time has passed (whichever comes first).
    pub duration: Option<Duration>,
    pub seed: u64,
}

/// Totals over the run.
#[derive(Debug, Default)]
struct Totals {
    cycles: u64,
    acked: u64,
    recovered: u64,
    killed_before_ready: u64,
    parent_checks: u64,
    counters: ChildCounters,
    /// How long children took to report their state, lately (a moving average).
    open_time: Duration,
}

impl Totals {
    /// Counts a passed check of `expected` that found a prefix of `n` writes.
    fn checked(&mut self, expected: &Expectation, n: u64) {
        self.acked += expected.ran.map_or(0, |(_, acked)| acked);
        self.recovered += n;
    }
}

/// One directory and what it must hold (one expectation per lane of the last child).
struct Chain {
    dir: PathBuf,
    expected: Vec<Expectation>,
}

impl Chain {
    /// Checks `found` against every lane's expectation; counts what passed.
    fn check(&self, found: &State, totals: &mut Totals) -> std::result::Result<(), String> {
        for expected in &self.expected {
            let n = matching_prefix(expected, found)
                .map_err(|e| format!("lane {}: {e}", expected.lane.index))?;
            totals.checked(expected, n);
        }
        Ok(())
    }
}

/// Runs cycles until the configured count or time is reached; the first failure ends the run
/// with an error naming the seed, the cycle and what differed.
pub fn run(cfg: &CrashConfig) -> Result<Vec<Row>> {
    std::fs::create_dir_all(&cfg.scratch)?;
    eprintln!(
        "crash: seed {} ({} cycles per directory)",
        cfg.seed, CHAIN_CYCLES
    );
    let mut rng = SimRng::new(cfg.seed);
    let mut totals = Totals {
        open_time: Duration::from_millis(40),
        ..Totals::default()
    };
    let start = Instant::now();
    let mut last_report = start;
    let mut chain: Option<Chain> = None;
    while !done(cfg, totals.cycles, start) {
        let cycle = totals.cycles;
        if cycle % CHAIN_CYCLES == 0 {
            if let Some(old) = chain.take() {
                finish_chain(old, &mut totals).map_err(|e| failed(cfg.seed, cycle, &e))?;
            }
            chain = Some(new_chain(&cfg.scratch, cycle)?);
        }
        let c = chain.as_mut().expect("a chain was just started");
        run_cycle(c, &mut rng, &mut totals).map_err(|e| {
            let e = format!("{e}\n  the database is kept in {}", c.dir.display());
            failed(cfg.seed, cycle, &e.into())
        })?;
        totals.cycles += 1;
        if last_report.elapsed() >= Duration::from_secs(10) {
            eprintln!("{}", summary(&totals, start.elapsed()));
            last_report = Instant::now();
        }
    }
    if let Some(old) = chain.take() {
        finish_chain(old, &mut totals).map_err(|e| failed(cfg.seed, totals.cycles, &e))?;
    }
    let secs = start.elapsed();
    eprintln!("{}", summary(&totals, secs));
    Ok(vec![Row {
        suite: "crash",
        case: "SIGKILL cycles".into(),
        engine: "bwtree".into(),
        value: totals.cycles as f64 / secs.as_secs_f64(),
        unit: "cycles/s",
        higher_is_better: true,
        extra: format!(
            "{} cycles, {} writes acknowledged",
            totals.cycles, totals.acked
        ),
    }])
}

fn done(cfg: &CrashConfig, cycles: u64, start: Instant) -> bool {
    cfg.cycles.is_some_and(|n| cycles >= n) || cfg.duration.is_some_and(|d| start.elapsed() >= d)
}

fn failed(seed: u64, cycle: u64, e: &crate::engine::Error) -> crate::engine::Error {
    format!("crash: FAILED in cycle {cycle} of the run with --seed {seed}: {e}").into()
}

fn new_chain(scratch: &Path, cycle: u64) -> Result<Chain> {
    let dir = scratch.join(format!("crash-{}-{cycle}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(Chain {
        dir,
        expected: vec![Expectation::exactly(State::default())],
    })
}

/// One child: spawn, kill, and check what it recovered against what its predecessor did.
fn run_cycle(chain: &mut Chain, rng: &mut SimRng, totals: &mut Totals) -> Result<()> {
    if rng.below(8) == 0 {
        check_in_parent(chain, totals)?;
    }
    let spec = ChildSpec {
        dir: chain.dir.join("db"),
        seed: rng.next_u64(),
        lanes: 1 + rng.below(MAX_LANES),
        timers: draw_timers(rng),
    };
    let plan = KillPlan::draw(rng, totals.open_time);
    let heard = kill::run_child(&spec, plan, &chain.dir.join("child.stderr"))
        .map_err(|e| format!("child seed {}, {plan:?}: {e}", spec.seed))?;
    if let Some(t) = heard.ready_after {
        totals.open_time = (totals.open_time * 7 + t) / 8;
    }
    let Some(recovered) = heard.recovered else {
        // Killed in recovery: it wrote nothing, the next child must satisfy the same check.
        totals.killed_before_ready += 1;
        return Ok(());
    };
    chain
        .check(&recovered, totals)
        .map_err(|e| format!("recovered by child seed {}: {e}", spec.seed))?;
    totals.counters += heard.counters;
    chain.expected = Lane::all(spec.lanes)
        .map(|lane| Expectation {
            lane,
            start: lane.part(&recovered),
            ran: Some((
                spec.seed,
                heard.acked.get(lane.index as usize).copied().unwrap_or(0),
            )),
        })
        .collect();
    Ok(())
}

fn draw_timers(rng: &mut SimRng) -> Timers {
    let mut maybe_ms =
        |p_none: u64, lo: u64, hi: u64| (rng.below(100) >= p_none).then(|| lo + rng.below(hi - lo));
    Timers {
        flush_every_ms: maybe_ms(50, 1, 20),
        checkpoint_every_ms: maybe_ms(10, 5, 40),
        clean_every_ms: maybe_ms(10, 2, 20),
        debug_delay: rng.below(4) == 0,
    }
}

/// Opens the database in this process, checks it, and closes it cleanly.
fn check_in_parent(chain: &mut Chain, totals: &mut Totals) -> Result<()> {
    let db = config(&chain.dir.join("db"), Timers::QUIET).open()?;
    let state = read_state(&open_trees(&db)?)?;
    // The default tree and the workload's named ones, nothing else.
    for name in db.tree_names()? {
        let ours = |n: &[u8]| {
            TREE_NAMES
                .iter()
                .any(|t| !t.is_empty() && n == t.as_bytes())
        };
        if &*name != b"__bwtree_default" && !ours(&name) {
            return Err(format!(
                "a tree no one created: {:?}",
                name.escape_ascii().to_string()
            )
            .into());
        }
    }
    drop(db);
    chain
        .check(&state, totals)
        .map_err(|e| format!("opened by the parent: {e}"))?;
    totals.parent_checks += 1;
    chain.expected = vec![Expectation::exactly(state)];
    Ok(())
}

fn finish_chain(mut chain: Chain, totals: &mut Totals) -> Result<()> {
    // A clean close, then one more open: nothing may change.
    check_in_parent(&mut chain, totals)
        .and_then(|()| check_in_parent(&mut chain, totals))
        .map_err(|e| format!("{e}\n  the database is kept in {}", chain.dir.display()))?;
    std::fs::remove_dir_all(&chain.dir)?;
    Ok(())
}

fn summary(t: &Totals, elapsed: Duration) -> String {
    let c = &t.counters;
    format!(
        "crash: {} cycles in {:.1} s ({:.1}/s): {} writes acknowledged, {} recovered \
         ({} beyond the acknowledgements); {} kills during recovery (children open in ~{} ms), \
         {} clean opens by the parent; children did {} splits, {} merges, {} evictions, {} page-ins, {} checkpoints, \
         {} KiB relocated by cleaning",
        t.cycles,
        elapsed.as_secs_f64(),
        t.cycles as f64 / elapsed.as_secs_f64(),
        t.acked,
        t.recovered,
        t.recovered.saturating_sub(t.acked),
        t.killed_before_ready,
        t.open_time.as_millis(),
        t.parent_checks,
        c.splits,
        c.merges,
        c.evictions,
        c.page_ins,
        c.checkpoints,
        c.bytes_relocated >> 10
    )
}
