//! Four threads on one cache with a 16 KiB budget (eviction and page-in all the time): random
//! prepend / replace / evict / read on shared pages and allocate / free on private ones, then
//! close, reopen and check again.
//!
//! Exact final state: thread `t` alone writes key `t` of every shared page, and counts its own
//! successful updates, so key `t` of page `p` must equal that count. A lost update (a CAS that
//! installed over a state it did not read), a resurrected chain or a torn page-in shows as a
//! wrong count. Seeded: `PC_STRESS_SEED=<n>` reproduces a run's choices (not its interleaving);
//! `PC_STRESS_MS` sets the length (default 2000).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use logstore::io::SimRng;

use common::*;
use logstore::io::SimStorage;
use radix::Pid;

const THREADS: u64 = 4;
const SHARED_PAGES: usize = 4;

/// What one thread did: its successful updates per shared page, and its live private pages
/// with their contents.
#[derive(Debug, Default)]
struct Outcome {
    counts: [u64; SHARED_PAGES],
    private: BTreeMap<Pid, Map>,
    ops: u64,
    lost_races: u64,
}

fn my_value(page: &Map, t: u64) -> u64 {
    page.get(&t).copied().unwrap_or(0)
}

/// One thread's run until `deadline`.
fn worker(cache: &Cache, shared: &[Pid], t: u64, seed: u64, deadline: Instant) -> Outcome {
    let mut rng = SimRng::new(seed ^ t.wrapping_mul(0xA24B_AED4_963E_E407));
    let mut out = Outcome::default();
    while Instant::now() < deadline {
        out.ops += 1;
        let i = rng.below(SHARED_PAGES as u64) as usize;
        let pid = shared[i];
        let guard = crossbeam_epoch::pin();
        match rng.below(10) {
            // prepend: key t goes from what we read to +1
            0..=3 => {
                let view = cache.read(pid, &guard).unwrap().expect("shared pages live");
                let seen = my_value(&view.consolidate(), t);
                assert_eq!(seen, out.counts[i], "thread {t}, page {pid:?}: lost update");
                match cache.prepend(Op::Set(t, seen + 1), &view, &guard).unwrap() {
                    Ok(_) => out.counts[i] += 1,
                    Err(_) => out.lost_races += 1,
                }
            }
            // replace: a consolidated base with key t + 1
            4 => {
                let view = cache.read(pid, &guard).unwrap().expect("shared pages live");
                let mut base = view.consolidate();
                let seen = my_value(&base, t);
                base.insert(t, seen + 1);
                match cache.replace(base, &view, &guard).unwrap() {
                    Ok(_) => out.counts[i] += 1,
                    Err(_) => out.lost_races += 1,
                }
            }
            5 => {
                let view = cache.read(pid, &guard).unwrap().expect("shared pages live");
                let _ = cache.evict(&view, &guard).unwrap();
            }
            6 | 7 => {
                let view = cache.read(pid, &guard).unwrap().expect("shared pages live");
                let page = view.consolidate();
                assert_eq!(
                    my_value(&page, t),
                    out.counts[i],
                    "thread {t}, page {pid:?}"
                );
            }
            8 if out.private.len() < 8 => {
                let base: Map = [(t, rng.below(1000)), (100 + t, out.ops)].into();
                let mine = cache.allocate(base.clone(), &guard).unwrap();
                assert!(
                    !shared.contains(&mine),
                    "allocate handed out a live shared page {mine:?}"
                );
                let prev = out.private.insert(mine, base);
                assert!(
                    prev.is_none(),
                    "allocate handed out live page {mine:?} twice"
                );
            }
            _ => {
                let Some((&mine, expect)) = out.private.iter().next() else {
                    continue;
                };
                let view = cache
                    .read(mine, &guard)
                    .unwrap()
                    .expect("private page lives");
                assert_eq!(&view.consolidate(), expect, "private page {mine:?}");
                // Eviction by other threads may change the slot under us: retry later.
                if cache.free(&view, &guard).unwrap().is_ok() {
                    out.private.remove(&mine);
                } else {
                    out.lost_races += 1;
                }
            }
        }
    }
    out
}

/// Every shared and private page holds exactly what the threads counted.
fn check(cache: &Cache, shared: &[Pid], outcomes: &[Outcome], when: &str) {
    for (i, &pid) in shared.iter().enumerate() {
        let page = contents(cache, pid).expect("shared pages live");
        for (t, out) in outcomes.iter().enumerate() {
            assert_eq!(
                my_value(&page, t as u64),
                out.counts[i],
                "{when}: page {pid:?}, key {t}"
            );
        }
    }
    for out in outcomes {
        for (&pid, expect) in &out.private {
            assert_eq!(
                contents(cache, pid).as_ref(),
                Some(expect),
                "{when}: {pid:?}"
            );
        }
    }
}

#[test]
fn four_threads_update_evict_and_free_then_reopen() {
    let seed = logstore::io::seed_from_env("PC_STRESS_SEED");
    let ms = std::env::var("PC_STRESS_MS").map_or(2000, |s| s.parse().expect("PC_STRESS_MS"));
    println!("pagecache stress: PC_STRESS_SEED={seed} PC_STRESS_MS={ms}");

    let sim = SimStorage::new();
    let cfg = small_config();
    let cache = open_sim(&sim, &cfg);
    let shared: Vec<Pid> = {
        let guard = crossbeam_epoch::pin();
        (0..SHARED_PAGES)
            .map(|_| {
                // Filler so each page has some size for the budget.
                let base: Map = (1000..1040).map(|k| (k, k)).collect();
                cache.allocate(base, &guard).unwrap()
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_millis(ms);
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (cache, shared) = (&cache, &shared);
                s.spawn(move || worker(cache, shared, t, seed, deadline))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stats = cache.stats();
    let ops: u64 = outcomes.iter().map(|o| o.ops).sum();
    let lost: u64 = outcomes.iter().map(|o| o.lost_races).sum();
    println!("pagecache stress: {ops} ops, {lost} lost races, {stats:?}");
    assert!(stats.evictions > 0 && stats.page_ins > 0, "{stats:?}");
    check(&cache, &shared, &outcomes, "before close");
    cache.close().unwrap();

    let cache = open_sim(&sim, &cfg);
    check(&cache, &shared, &outcomes, "after reopen");
    cache.close().unwrap();
}
