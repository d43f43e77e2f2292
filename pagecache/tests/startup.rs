//! Startup time for a database of many pages, with and without a fresh checkpoint.
//! A measurement, not a pass/fail speed check:
//! `cargo test --release -p pagecache --test startup -- --ignored --nocapture`
//! (`PC_STARTUP_PAGES`, default 1M).

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::*;
use pagecache::{Config, PageCache};

fn pages() -> u64 {
    std::env::var("PC_STARTUP_PAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn config(dir: &Path) -> Config {
    let mut cfg = Config::new(dir);
    cfg.checkpoint_every_ms = None;
    cfg.clean_every_ms = None;
    cfg
}

/// Fills a database; returns the pids and the directory to reopen. With `checkpoint_at_end`
/// the cache closes normally (final checkpoint) and the directory is `dir`; otherwise it is
/// flushed and its files are copied to `crashed` while it is still open (what a crash right
/// after the flush leaves: no final checkpoint), so the next open replays the whole log after
/// the initial (empty) checkpoint. The copy is needed because `dir` stays locked by the
/// abandoned cache.
fn fill(dir: &Path, crashed: &Path, n: u64, checkpoint_at_end: bool) -> (Vec<radix::Pid>, PathBuf) {
    let cache: Cache = PageCache::open(config(dir)).unwrap();
    let guard = crossbeam_epoch::pin();
    let pids: Vec<_> = (0..n)
        .map(|i| cache.allocate(Map::from([(i, i)]), &guard).unwrap())
        .collect();
    drop(guard);
    if checkpoint_at_end {
        cache.close().unwrap();
        return (pids, dir.to_path_buf());
    }
    cache.flush().unwrap();
    copy_dir(dir, crashed);
    // Leaks the cache's threads until the test process exits.
    std::mem::forget(cache);
    (pids, crashed.to_path_buf())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

fn reopen_and_check(dir: &Path, pids: &[radix::Pid], label: &str) {
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
    let (pids, dir) = fill(&with.path().join("db"), Path::new(""), n, true);
    reopen_and_check(&dir, &pids, "fresh checkpoint");
    let without = tempfile::tempdir().unwrap();
    let crashed = without.path().join("crashed");
    let (pids, dir) = fill(&without.path().join("db"), &crashed, n, false);
    reopen_and_check(&dir, &pids, "log replay, no fresh checkpoint");
}
