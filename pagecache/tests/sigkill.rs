//! SIGKILL crash test through the page cache. The parent re-executes this test binary as a
//! child (selected by `PAGECACHE_SIGKILL_CHILD`) that runs a seeded workload of allocate /
//! prepend (Set, Del) / replace / free on a real-file `PageCache` whose background thread
//! checkpoints and cleans every few milliseconds. The child prints each operation before it
//! issues it and `ack <n>` after each `flush()` returns; the parent kills it with SIGKILL at a
//! random moment, reopens, and checks that the recovered pages are exactly the model after some
//! prefix of the printed operations that contains every acknowledged one (the durability
//! contract, DESIGN.md section 6). The next child continues from the recovered state.
//!
//! Necessary but not sufficient (VERIFY.md): the kernel page cache survives SIGKILL, so this
//! cannot catch a missing fsync; the model test's power-loss crashes on the simulated storage
//! do. What it does catch: torn records and checkpoints at the moment of the kill, recovery of a
//! log cut mid-checkpoint or mid-cleaning, and a prefix violated by real concurrency (the
//! background thread against the workload).
//!
//! `PAGECACHE_SIGKILL_CYCLES=<n>` (or `LOG_CRASH_CYCLES`, as `sanitizers.sh` sets it; default
//! 40) and `PAGECACHE_SIGKILL_SEED=<n>` (the kill moments and child seeds; the interleaving
//! with the kill is timing and does not reproduce exactly).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::steps::*;
use common::*;
use logstore::io::SimRng;
use pagecache::{Config, PageCache};

const CHILD_ENV: &str = "PAGECACHE_SIGKILL_CHILD";
const PIDS_ENV: &str = "PAGECACHE_SIGKILL_PIDS";
const CHILD_SEED_ENV: &str = "PAGECACHE_SIGKILL_CHILD_SEED";
/// The child allocates no more pages past this many.
const MAX_PAGES: usize = 160;

fn cfg(dir: &Path) -> Config {
    Config {
        checkpoint_every_ms: Some(15),
        clean_every_ms: Some(5),
        ..Config::small(dir)
    }
}

/// The child: runs only when re-executed by the parent.
#[test]
fn sigkill_child_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut pids: Vec<u64> = std::env::var(PIDS_ENV)
        .unwrap()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let mut rng = SimRng::new(std::env::var(CHILD_SEED_ENV).unwrap().parse().unwrap());
    let cache: Cache = PageCache::open(cfg(Path::new(&dir))).unwrap();
    let mut out = std::io::stdout().lock();
    // `@` marks our lines: the harness prints "test sigkill_child_entry ... " without a
    // newline before the test's own output.
    let mut say = |line: String| {
        writeln!(out, "@{line}").unwrap();
        out.flush().unwrap();
    };
    for issued in 1u64.. {
        let step = pick(&mut rng, &pids);
        say(step.line());
        run_step(&cache, &step, &mut pids, &mut say);
        if issued % 16 == 0 {
            cache.flush().unwrap();
            say(format!("ack {issued}"));
        }
    }
}

fn pick(rng: &mut SimRng, pids: &[u64]) -> Step {
    let r = rng.below(100);
    if pids.len() < 8 || (r >= 88 && pids.len() < MAX_PAGES) {
        return Step::Alloc(rng.next_u64(), None);
    }
    let p = pids[rng.below(pids.len() as u64) as usize];
    match r {
        0..=49 => Step::Set(p, rng.below(KEYS), rng.next_u64()),
        50..=64 => Step::Del(p, rng.below(KEYS)),
        65..=79 => Step::Replace(p, rng.next_u64()),
        // 80..=87, and 88.. once the pages reached MAX_PAGES.
        _ => Step::Free(p),
    }
}

/// Issues `step`, retrying CAS races with the background cleaner.
fn run_step(cache: &Cache, step: &Step, pids: &mut Vec<u64>, say: &mut impl FnMut(String)) {
    let guard = crossbeam_epoch::pin();
    match *step {
        Step::Alloc(seed, _) => {
            let p = cache.allocate(base(seed), &guard).unwrap().get();
            say(format!("pid {p}"));
            pids.push(p);
        }
        Step::Set(p, k, v) => update(cache, pid(p), Op::Set(k, v)),
        Step::Del(p, k) => update(cache, pid(p), Op::Del(k)),
        Step::Replace(p, seed) => loop {
            let view = cache.read(pid(p), &guard).unwrap().expect("live page");
            if cache.replace(base(seed), &view, &guard).unwrap().is_ok() {
                break;
            }
        },
        Step::Free(p) => {
            loop {
                let view = cache.read(pid(p), &guard).unwrap().expect("live page");
                if cache.free(&view, &guard).unwrap().is_ok() {
                    break;
                }
            }
            pids.retain(|&q| q != p);
        }
    }
}

/// What the parent heard from one child.
#[derive(Default)]
struct Heard {
    steps: Vec<Step>,
    acked: usize,
}

impl Heard {
    fn hear(&mut self, line: &str) {
        if let Some(p) = line.strip_prefix("pid ").and_then(|p| p.parse().ok()) {
            match self.steps.last_mut() {
                Some(Step::Alloc(_, at @ None)) => *at = Some(p),
                other => panic!("pid line after {other:?}"),
            }
        } else if let Some(n) = line.strip_prefix("ack ").and_then(|n| n.parse().ok()) {
            assert_eq!(n, self.steps.len(), "ack counts every step issued");
            self.acked = n;
        } else {
            self.steps
                .push(Step::parse(line).unwrap_or_else(|| panic!("bad line {line:?}")));
        }
    }
}

/// Runs one child until killed; returns what it printed.
fn run_child(db: &Path, model: &Model, seed: u64, kill_after: Duration) -> Heard {
    let pids: Vec<String> = model.keys().map(u64::to_string).collect();
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(&exe)
        .args([
            "--exact",
            "sigkill_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, db)
        .env(PIDS_ENV, pids.join(","))
        .env(CHILD_SEED_ENV, seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let heard = Arc::new(Mutex::new(Heard::default()));
    let reader = {
        let heard = heard.clone();
        std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            // A line without its newline was cut by the kill (a pipe write of a short line is
            // atomic, so this should not happen): its step was not issued yet, drop it.
            while stdout.read_line(&mut line).is_ok_and(|n| n > 0) && line.ends_with('\n') {
                if let Some((_, ours)) = line.trim_end().split_once('@') {
                    heard.lock().unwrap().hear(ours);
                }
                line.clear();
            }
        })
    };
    std::thread::sleep(kill_after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    let heard = std::mem::take(&mut *heard.lock().unwrap());
    heard
}

/// Every page the cache holds with a pid up to `bound`.
fn recovered(db: &Path, bound: u64) -> Model {
    let cache: Cache = PageCache::open(cfg(db)).unwrap();
    let mut pages = Model::new();
    for raw in 0..=bound {
        if let Some(m) = contents(&cache, pid(raw)) {
            pages.insert(raw, m);
        }
    }
    cache.close().unwrap();
    pages
}

#[test]
fn sigkill_cycles_recover_a_prefix_with_everything_acknowledged() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let cycles = env_count(&["PAGECACHE_SIGKILL_CYCLES", "LOG_CRASH_CYCLES"], 40);
    let mut rng = SimRng::new(logstore::io::seed_from_env("PAGECACHE_SIGKILL_SEED"));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut model = Model::new();
    let (mut max_pid, mut steps, mut acked, mut beyond_ack) = (0u64, 0usize, 0usize, 0usize);
    for cycle in 0..cycles {
        let kill_after = Duration::from_millis(30 + rng.below(250));
        let heard = run_child(&db, &model, rng.next_u64(), kill_after);
        for s in &heard.steps {
            if let Step::Alloc(_, Some(p)) = s {
                max_pid = max_pid.max(*p);
            }
        }
        // Pids no child printed are the pending allocation of each cycle at most, so a page
        // above this bound would have to come from nowhere.
        let got = recovered(&db, max_pid + 64);
        let n = matching_prefix(&model, &heard.steps, heard.acked, &got)
            .unwrap_or_else(|why| panic!("cycle {cycle}: {why}"));
        max_pid = max_pid.max(got.keys().copied().max().unwrap_or(0));
        steps += heard.steps.len();
        acked += heard.acked;
        beyond_ack += n - heard.acked;
        model = got;
    }
    eprintln!(
        "{cycles} SIGKILL cycles: {steps} steps issued, {acked} acknowledged, {beyond_ack} \
         recovered beyond the acknowledgement; {} pages at the end",
        model.len()
    );
    assert!(acked > 0, "no child ever acknowledged a flush");
}
