//! Checkpoints follow the log's volume as well as the clock
//! (`Config::checkpoint_every_bytes`): a burst of writes gets checkpointed (so its segments
//! can be reused) long before the timer would fire.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pagecache::{Config, PageCache};

fn config(dir: &std::path::Path, every_bytes: Option<u64>) -> Config {
    let mut cfg = Config::new(dir);
    cfg.checkpoint_every_ms = Some(3_600_000); // an hour: never by time in these tests
    cfg.clean_every_ms = None;
    cfg.checkpoint_every_bytes = every_bytes;
    cfg
}

/// Writes about 4 MiB of pages, flushes, and counts the checkpoints written within `wait`
/// (returning as soon as one is).
fn checkpoints_after_a_burst(every_bytes: Option<u64>, wait: Duration) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let cache: Cache = PageCache::open(config(dir.path(), every_bytes)).unwrap();
    let before = cache.stats().checkpoints;
    let guard = crossbeam_epoch::pin();
    for i in 0..1000u64 {
        let page: Map = (0..256).map(|j| (i * 1000 + j, j)).collect();
        cache.allocate(page, &guard).unwrap();
    }
    drop(guard);
    cache.flush().unwrap();
    let deadline = Instant::now() + wait;
    while cache.stats().checkpoints == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    cache.stats().checkpoints - before
}

#[test]
fn a_burst_of_writes_is_checkpointed_before_the_timer() {
    let n = checkpoints_after_a_burst(Some(1 << 20), Duration::from_secs(20));
    assert!(
        n >= 1,
        "no checkpoint after 4 MiB of log with a 1 MiB trigger"
    );
}

#[test]
fn without_the_volume_trigger_only_the_timer_checkpoints() {
    let n = checkpoints_after_a_burst(None, Duration::from_secs(1));
    assert_eq!(n, 0, "a checkpoint without its trigger");
}
