//! Startup time for a database of many pages, with and without a fresh checkpoint.
//! A measurement, not a pass/fail speed check:
//! `cargo test --release -p pagecache --test startup -- --ignored --nocapture`
//! (`PC_STARTUP_PAGES`, default 1M).

mod common;

use std::time::Instant;

use common::*;
use pagecache::{Config, PageCache};

fn pages() -> u64 {
    std::env::var("PC_STARTUP_PAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn config(dir: &std::path::Path) -> Config {
    let mut cfg = Config::new(dir);
    cfg.checkpoint_every_ms = None;
    cfg.clean_every_ms = None;
    cfg
}

/// Fills a database; returns the pids. With `checkpoint_at_end` the cache closes normally
/// (final checkpoint); otherwise it is flushed and abandoned, so the next open replays the
/// whole log after the initial (empty) checkpoint.
fn fill(dir: &std::path::Path, n: u64, checkpoint_at_end: bool) -> Vec<radix::Pid> {
    let cache: Cache = PageCache::open(config(dir)).unwrap();
    let guard = crossbeam_epoch::pin();
    let pids: Vec<_> = (0..n)
        .map(|i| cache.allocate(Map::from([(i, i)]), &guard).unwrap())
        .collect();
    drop(guard);
    if checkpoint_at_end {
        cache.close().unwrap();
    } else {
        cache.flush().unwrap();
        // Like a crash right after the flush: no final checkpoint. (Leaks the cache's threads
        // until the test process exits.)
        std::mem::forget(cache);
    }
    pids
}

fn reopen_and_check(dir: &std::path::Path, pids: &[radix::Pid], label: &str) {
    let t = Instant::now();
    let cache: Cache = PageCache::open(config(dir)).unwrap();
    let took = t.elapsed();
    println!(
        "{label}: open of {} pages took {:.3} s ({} resident bytes)",
        pids.len(),
        took.as_secs_f64(),
        cache.stats().resident_bytes
    );
    for (i, pid) in pids.iter().enumerate().step_by(pids.len() / 100 + 1) {
        assert_eq!(
            contents(&cache, *pid),
            Some(Map::from([(i as u64, i as u64)]))
        );
    }
}

#[test]
#[ignore = "measurement; run in release"]
fn startup_with_and_without_a_fresh_checkpoint() {
    let n = pages();
    let with = tempfile::tempdir().unwrap();
    let pids = fill(with.path(), n, true);
    reopen_and_check(with.path(), &pids, "fresh checkpoint");
    let without = tempfile::tempdir().unwrap();
    let pids = fill(without.path(), n, false);
    reopen_and_check(without.path(), &pids, "log replay, no fresh checkpoint");
}
