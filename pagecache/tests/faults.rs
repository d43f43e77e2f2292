//! Fault injection through the log's I/O seam, at the page-cache level: EIO, ENOSPC, short and
//! torn writes, failed syncs, renames and directory syncs, and read errors and bit flips, while
//! pages are allocated, updated, freed, evicted and paged in, checkpointed and cleaned
//! (`Config::small` on the simulated storage, so all of that happens constantly).
//!
//! Each run: a seeded workload with a fault plan; every failure must be an `Err` with a
//! message (a panic fails the test); successful reads must show the model's page. A mutation
//! that fails on a full disk (`Error::is_storage_full`) must have changed nothing, so the run
//! goes on without it. At the first other failed mutation the run stops (its effect is
//! uncertain: it is the one step that may or may not be in the recovered state). Then the cache is dropped with the faults still active,
//! power fails (`CrashMode::CHAOS`: unsynced writes dropped, kept or torn), and the reopened
//! cache must hold exactly the model after a prefix of the steps that includes every step
//! acknowledged by a successful `flush` or `checkpoint`.
//!
//! Also: a corrupted newest checkpoint file (bytes flipped in its header, body and end) makes
//! open fall back to the previous one, replay the log from there (after the cleaner recycled
//! older segments) and recover every page; the next open needs no fallback.
//!
//! `PAGECACHE_FAULT_SEED=<n>` reproduces; `PAGECACHE_FAULT_RUNS=<n>` scales the random runs
//! (default 160).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::steps::*;
use common::*;
use logstore::io::{
    CrashMode, Fault, FaultCounts, FaultPlan, FaultRule, SimRng, SimStorage, Site, Storage,
};
use pagecache::Error;

/// What the runs saw, to show they were not vacuous.
#[derive(Debug, Default)]
struct Tally {
    runs: u64,
    faults: u64,
    sites: FaultCounts,
    errors: BTreeMap<&'static str, u64>,
    stopped_by_failed_mutation: u64,
    continued_after_full_disk: u64,
    steps: u64,
    acked: u64,
}

/// The kind of a (clear) error; anything else is a test failure.
fn kind(e: &Error) -> &'static str {
    assert!(!e.to_string().is_empty(), "an error without a message");
    match e {
        Error::Log(logstore::Error::Poisoned { cause }) => {
            // A panic on a log thread also poisons the log; that is a bug, not a clear error.
            assert!(!cause.contains("panicked"), "{cause}");
            "log poisoned"
        }
        Error::Log(logstore::Error::Io { .. }) => "log I/O",
        Error::Log(logstore::Error::Corruption { .. }) => "log corruption",
        // A bit flipped in a read record header's LSN: "record LSN does not match its
        // position (segment reused, tail cut by recovery, or corrupted)".
        Error::Log(logstore::Error::StalePointer(_)) => "log stale pointer",
        Error::Io { .. } => "page cache I/O",
        Error::Corruption { .. } => "page cache corruption",
        other => panic!("unexpected error kind: {other:?}"),
    }
}

/// One mutation or maintenance call of the workload.
fn step(rng: &mut SimRng, pids: &[u64]) -> Option<Step> {
    let r = rng.below(100);
    if pids.len() < 4 || r >= 90 {
        return Some(Step::Alloc(rng.next_u64(), None));
    }
    let p = pids[rng.below(pids.len() as u64) as usize];
    Some(match r {
        0..=39 => Step::Set(p, rng.below(KEYS), rng.next_u64()),
        40..=49 => Step::Del(p, rng.below(KEYS)),
        50..=59 => Step::Replace(p, rng.next_u64()),
        60..=64 => Step::Free(p),
        _ => return None,
    })
}

/// Issues a mutation; on success the model follows it.
fn mutate(cache: &Cache, s: &mut Step, model: &mut Model) -> Result<(), Error> {
    let guard = crossbeam_epoch::pin();
    let current = |p: u64| -> Result<_, Error> {
        Ok(cache.read(pid(p), &guard)?.expect("a live page exists"))
    };
    match s {
        Step::Alloc(seed, at) => *at = Some(cache.allocate(base(*seed), &guard)?.get()),
        Step::Set(p, k, v) => {
            let r = cache.prepend(Op::Set(*k, *v), &current(*p)?, &guard)?;
            assert!(r.is_ok(), "a single thread lost a race");
        }
        Step::Del(p, k) => {
            let r = cache.prepend(Op::Del(*k), &current(*p)?, &guard)?;
            assert!(r.is_ok(), "a single thread lost a race");
        }
        Step::Replace(p, seed) => {
            let r = cache.replace(base(*seed), &current(*p)?, &guard)?;
            assert!(r.is_ok(), "a single thread lost a race");
        }
        Step::Free(p) => {
            let r = cache.free(&current(*p)?, &guard)?;
            assert!(r.is_ok(), "a single thread lost a race");
        }
    }
    s.apply(model);
    Ok(())
}

/// A maintenance call or a checked read; `Ok(true)` if it acknowledged everything so far.
fn maintain(cache: &Cache, rng: &mut SimRng, model: &Model) -> Result<bool, Error> {
    match rng.below(6) {
        0 => cache.flush().map(|()| true),
        1 => cache.checkpoint().map(|()| true),
        2 => cache.clean().map(|_| false),
        3 => {
            let guard = crossbeam_epoch::pin();
            if let Some((&p, _)) = model.iter().nth(rng.below(model.len() as u64 + 1) as usize) {
                if let Some(view) = cache.read(pid(p), &guard)? {
                    cache.evict(&view, &guard)?;
                }
            }
            Ok(false)
        }
        _ => {
            for (&p, want) in model.iter().take(8) {
                let guard = crossbeam_epoch::pin();
                let got = cache.read(pid(p), &guard)?.map(|v| v.consolidate());
                assert_eq!(got.as_ref(), Some(want), "page {p} reads back wrong");
            }
            Ok(false)
        }
    }
}

/// One run (see the module comment); `what` and `seed` name it in failures.
fn one_run(what: &str, seed: u64, plan: FaultPlan, tally: &mut Tally) {
    one_run_with(what, seed, plan, None, tally);
}

/// A full disk for a while: `room` bytes of free space from the start, freed after step
/// `free_at`; the same open cache must flush again after that.
struct DiskFull {
    room: u64,
    free_at: usize,
}

fn one_run_with(what: &str, seed: u64, plan: FaultPlan, full: Option<DiskFull>, tally: &mut Tally) {
    let sim = SimStorage::new();
    let cfg = small_config();
    let cache = open_sim(&sim, &cfg);
    sim.set_fault_plan(Some(plan));
    if let Some(f) = &full {
        sim.set_capacity(Some(sim.used_bytes() + f.room));
    }
    let mut rng = SimRng::new(seed);
    let (mut model, mut steps, mut acked) = (Model::new(), Vec::new(), 0);
    for i in 0..300 {
        if full.as_ref().is_some_and(|f| f.free_at == i) {
            sim.set_capacity(None);
        }
        let pids: Vec<u64> = model.keys().copied().collect();
        let (result, mutation) = match step(&mut rng, &pids) {
            Some(mut s) => {
                let r = mutate(&cache, &mut s, &mut model);
                steps.push(s);
                (r.map(|()| false), true)
            }
            None => (maintain(&cache, &mut rng, &model), false),
        };
        match result {
            Ok(true) => acked = steps.len(),
            Ok(false) => {}
            Err(e) => {
                *tally.errors.entry(kind(&e)).or_default() += 1;
                if mutation && e.is_storage_full() {
                    // A full disk is met at the reservation, before anything is published,
                    // and poisons nothing: the step did not happen, and the run goes on.
                    steps.pop();
                    tally.continued_after_full_disk += 1;
                } else if mutation {
                    tally.stopped_by_failed_mutation += 1;
                    break;
                }
            }
        }
    }
    if full.is_some() {
        sim.set_capacity(None);
        cache
            .flush()
            .unwrap_or_else(|e| panic!("{what}, seed {seed}: flush after the full disk: {e}"));
        acked = steps.len();
    }
    tally.faults += sim.fault_counts().total();
    tally.sites.merge(&sim.fault_counts());
    // Dropping runs a last checkpoint, still under faults: it may fail, never damage.
    drop(cache);
    sim.set_fault_plan(None);
    sim.crash(seed, CrashMode::CHAOS);
    let got = read_all(&sim, &cfg, &steps);
    if let Err(why) = matching_prefix(&Model::new(), &steps, acked, &got) {
        panic!("{what}, seed {seed}: {why}");
    }
    tally.runs += 1;
    tally.steps += steps.len() as u64;
    tally.acked += acked as u64;
}

/// Every page of the reopened cache, up to the highest pid the steps could have used.
fn read_all(sim: &SimStorage, cfg: &pagecache::Config, steps: &[Step]) -> Model {
    let cache = open_sim(sim, cfg);
    let bound = steps.len() as u64 + 8;
    let pages = (0..=bound)
        .filter_map(|raw| contents(&cache, pid(raw)).map(|m| (raw, m)))
        .collect();
    cache.close().unwrap();
    pages
}

#[test]
fn random_faults_during_pagecache_work_give_errors_and_a_recoverable_prefix() {
    let base_seed = logstore::io::seed_from_env("PAGECACHE_FAULT_SEED");
    let runs = env_count(&["PAGECACHE_FAULT_RUNS"], 160);
    let mut tally = Tally::default();
    for i in 0..runs {
        let seed = base_seed.wrapping_add(i);
        // From rare (long runs reach checkpoints and cleaning) to frequent.
        let p = [0.002, 0.005, 0.01, 0.03][i as usize % 4];
        one_run("random", seed, FaultPlan::random(seed, p), &mut tally);
    }
    eprintln!("random faults: {tally:?}; injected: {}", tally.sites);
    assert!(tally.faults > 0, "no fault was injected: {tally:?}");
    assert!(!tally.errors.is_empty(), "no fault surfaced: {tally:?}");
    assert!(tally.acked > 0, "nothing was ever acknowledged: {tally:?}");
}

#[test]
fn each_site_and_fault_kind_gives_an_error_and_a_recoverable_prefix() {
    let base_seed = logstore::io::seed_from_env("PAGECACHE_FAULT_SEED");
    let cases = [
        (Site::Write, Fault::Eio, None),
        (Site::Write, Fault::Enospc, None),
        (Site::Write, Fault::ShortWrite, None),
        (Site::Write, Fault::TornWrite, None),
        (Site::Write, Fault::Eio, Some("checkpoint")),
        (Site::SyncData, Fault::Eio, None),
        (Site::SyncAll, Fault::Eio, Some("checkpoint")),
        (Site::SyncDir, Fault::Eio, None),
        (Site::SetLen, Fault::Enospc, None),
        (Site::Create, Fault::Enospc, Some("checkpoint")),
        (Site::Rename, Fault::Eio, Some("checkpoint")),
        (Site::Rename, Fault::Enospc, Some("checkpoint")),
        (Site::Remove, Fault::Eio, Some("checkpoint")),
        (Site::Read, Fault::Eio, None),
        (Site::Read, Fault::BitFlip, None),
    ];
    let mut tally = Tally::default();
    for (c, &(site, fault, path)) in cases.iter().enumerate() {
        let before = tally.faults;
        for nth in [1u64, 4, 20] {
            let seed = base_seed.wrapping_add(c as u64 * 100 + nth);
            let mut rule = FaultRule::nth(site, nth, fault);
            if let Some(path) = path {
                rule = rule.path_contains(path);
            }
            let what = format!("{site:?} {fault:?} {path:?} call {nth}");
            one_run(&what, seed, FaultPlan::new(seed).rule(rule), &mut tally);
        }
        assert!(
            tally.faults > before,
            "{site:?} {fault:?} {path:?}: never injected"
        );
    }
    eprintln!("each site and fault: {tally:?}; injected: {}", tally.sites);
}

/// A full disk in the middle of the workload (the simulator's capacity, a persistent
/// `ENOSPC` until space is freed): mutations that meet it fail typed and change nothing,
/// reads go on, maintenance fails and is retried; once space is freed the same open cache
/// flushes everything, and a power loss after that keeps every step that succeeded.
#[test]
fn a_full_disk_mid_workload_changes_nothing_it_fails_and_the_cache_resumes() {
    let base_seed = logstore::io::seed_from_env("PAGECACHE_FAULT_SEED");
    let runs = env_count(&["PAGECACHE_FAULT_RUNS"], 160) / 2;
    let mut tally = Tally::default();
    for i in 0..runs {
        let seed = base_seed.wrapping_add(i);
        let mut rng = SimRng::new(seed ^ 0xd15c);
        let full = DiskFull {
            room: (2 << 10) + rng.below(16 << 10),
            free_at: 150 + rng.below(100) as usize,
        };
        one_run_with(
            "disk full",
            seed,
            FaultPlan::new(seed),
            Some(full),
            &mut tally,
        );
    }
    eprintln!("disk full: {tally:?}");
    assert_eq!(tally.stopped_by_failed_mutation, 0, "{tally:?}");
    // With 2-18 KiB of room, mutations meet the full disk about 20 times per run; the bound
    // leaves a wide margin and still fails if the disk stops filling before `free_at`.
    assert!(
        tally.continued_after_full_disk >= tally.runs,
        "the disk rarely filled: {tally:?}"
    );
    assert!(
        !tally.errors.contains_key("log poisoned"),
        "a full disk poisoned the log: {tally:?}"
    );
}

/// The newest checkpoint file in `/db`.
fn newest_checkpoint(sim: &SimStorage) -> PathBuf {
    sim.files()
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("checkpoint-") && !n.ends_with(".tmp"))
        })
        .max()
        .expect("a checkpoint exists")
}

#[test]
fn a_corrupted_newest_checkpoint_falls_back_to_the_previous_and_recovers_everything() {
    let seed = logstore::io::seed_from_env("PAGECACHE_FAULT_SEED");
    let sim = SimStorage::new();
    let cfg = small_config();
    let cache = open_sim(&sim, &cfg);
    let mut rng = SimRng::new(seed);
    let mut model = Model::new();
    let mut work = |cache: &Cache, n: usize| {
        for _ in 0..n {
            let pids: Vec<u64> = model.keys().copied().collect();
            if let Some(mut s) = step(&mut rng, &pids) {
                mutate(cache, &mut s, &mut model).unwrap();
            }
        }
    };
    // Rounds of overwrites, cleaning and checkpoints, so that segments below the older
    // checkpoints are recycled: the fallback must need none of them, and still find every
    // record after the previous checkpoint (the reuse horizon keeps those).
    for _ in 0..6 {
        work(&cache, 150);
        cache.clean().unwrap();
        cache.checkpoint().unwrap();
    }
    work(&cache, 150);
    let freed = cache.log().stats().segments_freed;
    cache.close().unwrap();
    let newest = newest_checkpoint(&sim);
    let len = sim.volatile_contents(&newest).unwrap().len() as u64;
    let model = &model;
    for at in [0, 5, 12, 40, len / 2, len - 1] {
        let copy = sim.snapshot();
        let f = copy.open_file(&newest, false).unwrap();
        let mut byte = [0u8];
        f.read_exact_at(&mut byte, at).unwrap();
        f.write_all_at(&[byte[0] ^ 0x5a], at).unwrap();
        f.sync_data().unwrap();
        let reopened = open_sim(&copy, &cfg);
        assert_eq!(
            reopened.stats().checkpoint_fallbacks,
            1,
            "byte {at} of {len} flipped: no fallback"
        );
        for (&p, want) in model {
            assert_eq!(contents(&reopened, pid(p)).as_ref(), Some(want), "page {p}");
        }
        reopened.close().unwrap();
        let again = open_sim(&copy, &cfg);
        assert_eq!(
            again.stats().checkpoint_fallbacks,
            0,
            "byte {at}: the corrupt checkpoint is still the newest"
        );
        drop(again);
    }
    eprintln!(
        "fallback: {} pages, {freed} segments recycled before the last checkpoint",
        model.len()
    );
    assert!(freed > 0, "no segment was recycled");
}
