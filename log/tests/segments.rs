//! Segment accounting and reuse: records marked dead drain their segments; drained segments
//! below the reuse horizon are freed (after durability and the epoch) and reused, so a churning
//! workload keeps the file bounded; recovery from the horizon sees only the live tail.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use logstore::io::{SimStorage, Storage};
use logstore::{Config, DiskPtr, Error, Log, Lsn, SegmentState, DATA_FILE};

/// The smallest legal segments with 1 KiB buffers: segment switches and reuse on every test.
fn four_kib_segments() -> Config {
    Config {
        segment_size_bytes: 4096,
        io_buffer_size_bytes: 1024,
        ..small_config()
    }
}

#[test]
fn churn_reuses_segments_and_bounds_the_file() {
    let sim = SimStorage::new();
    let cfg = four_kib_segments();
    let (log, _) = open_sim(&sim, &cfg);
    let mut prev: Vec<DiskPtr> = Vec::new();
    let mut max_slots = 0;
    let mut reused = false;
    let mut last_round: Vec<Vec<u8>> = Vec::new();
    let mut horizon = Lsn(0);
    let mut first_round: Vec<DiskPtr> = Vec::new();
    for round in 0..60u64 {
        let mut ptrs = Vec::new();
        last_round.clear();
        for i in 0..20u64 {
            // One oversized record per round: its blob file must go away with it.
            let b = body(round << 16 | i, if i == 7 { 3000 } else { 300 });
            ptrs.push(log.append(&b).unwrap().1);
            last_round.push(b);
        }
        log.flush().unwrap();
        for p in prev.drain(..) {
            log.mark_dead(p).unwrap();
        }
        // The upper layer would checkpoint here: everything before this round is dead.
        horizon = ptrs[0].lsn();
        log.set_reuse_horizon(horizon);
        log.flush().unwrap();
        if round == 0 {
            first_round = ptrs.clone();
        }
        prev = ptrs;
        let stats = log.segment_stats();
        max_slots = max_slots.max(stats.len());
        for s in &stats {
            if let Some(lsn) = s.lsn {
                reused |= lsn.0 / cfg.segment_size_bytes != s.id.0;
            }
        }
    }
    assert!(reused, "some slot holds an LSN range other than its first");
    assert!(
        max_slots <= 16,
        "file grew to {max_slots} slots despite churn"
    );
    let drained: Vec<_> = log
        .segment_stats()
        .into_iter()
        .filter(|s| s.state == SegmentState::Sealed)
        .collect();
    for s in &drained {
        assert!(
            s.live_bytes > 0,
            "sealed segment without live bytes should drain: {s:?}"
        );
    }
    // Pointers into reused slots are refused, not served with someone else's bytes.
    let stats = log.segment_stats();
    let mut refused = 0;
    for p in &first_round {
        let slot = &stats[(p.file_offset() / cfg.segment_size_bytes) as usize];
        if slot
            .lsn
            .is_some_and(|l| l.0 != p.lsn().0 / cfg.segment_size_bytes * cfg.segment_size_bytes)
        {
            assert!(log.read(*p).is_err(), "read through a stale pointer");
            assert!(
                log.mark_dead(*p).is_err(),
                "mark_dead through a stale pointer"
            );
            refused += 1;
        }
    }
    assert!(refused > 0, "first-round slots were reused");
    drop(log);
    let (log, recs) = Log::open(cfg.clone(), Arc::new(sim.clone()), horizon).unwrap();
    assert_eq!(
        bodies(&recs),
        last_round,
        "recovery from the horizon sees the last round"
    );
    drop(log);
    let blobs = sim.read_dir(Path::new("/db/blobs")).unwrap().len();
    assert!(
        blobs <= 3,
        "{blobs} blob files left: dead blobs are not removed"
    );
    let len = sim
        .volatile_contents(&Path::new("/db").join(DATA_FILE))
        .unwrap()
        .len();
    assert!(len <= 16 * 4096, "data file is {len} bytes");
}

#[test]
fn mark_dead_lowers_live_bytes() {
    let sim = SimStorage::new();
    let cfg = small_config();
    let (log, _) = open_sim(&sim, &cfg);
    let (_, p) = log.append(b"hello").unwrap();
    log.flush().unwrap();
    assert_eq!(log.read(p).unwrap(), b"hello");
    let stats = log.segment_stats();
    let before = stats[0].live_bytes;
    log.mark_dead(p).unwrap();
    assert_eq!(
        log.segment_stats()[0].live_bytes,
        before - i64::from(p.record_len())
    );
}

/// Freed slots have their headers zeroed, so a restart sees them free instead of keeping them
/// as old segments below the start LSN (which recovery must assume live).
#[test]
fn freed_slots_stay_free_across_restart() {
    let sim = SimStorage::new();
    let cfg = four_kib_segments();
    let (log, _) = open_sim(&sim, &cfg);
    let mut ptrs = Vec::new();
    for i in 0..120u64 {
        ptrs.push(log.append(&body(i, 300)).unwrap().1);
    }
    log.flush().unwrap();
    let keep = ptrs.split_off(100);
    for p in ptrs {
        log.mark_dead(p).unwrap();
    }
    let horizon = keep[0].lsn();
    log.set_reuse_horizon(horizon);
    // Each flush runs a reclaim round: drains become durable, then pass the epoch.
    for _ in 0..20 {
        log.append(b"tick").unwrap();
        log.flush().unwrap();
    }
    let free_before: Vec<_> = log
        .segment_stats()
        .iter()
        .filter(|s| s.state == SegmentState::Free)
        .map(|s| s.id)
        .collect();
    assert!(
        free_before.len() >= 5,
        "drained slots were freed: {:?}",
        log.segment_stats()
    );
    drop(log);
    let (log, _) = Log::open(cfg, Arc::new(sim), horizon).unwrap();
    // Recovery closes the tail segment and the reopened log starts a new one, which takes one
    // free slot; every other slot free before must still be free.
    let after = log.segment_stats();
    let taken: Vec<_> = free_before
        .iter()
        .filter(|id| after[id.0 as usize].state != SegmentState::Free)
        .map(|id| after[id.0 as usize])
        .collect();
    assert!(
        taken.len() <= 1 && taken.iter().all(|s| s.state == SegmentState::Active),
        "freed slots came back after restart: {taken:?}"
    );
}

/// After a restart, segments below the recovery start are assumed fully live until the upper
/// layer hands over its live set with `reset_live`; then the dead ones drain and are freed.
#[test]
fn reset_live_after_restart_frees_dead_old_segments() {
    let sim = SimStorage::new();
    let cfg = four_kib_segments();
    let mut live = Vec::new();
    let horizon;
    {
        let (log, _) = open_sim(&sim, &cfg);
        for i in 0..120u64 {
            let p = log.append(&body(i, 300)).unwrap().1;
            if i % 40 == 0 {
                live.push(p); // a few old records stay live
            }
        }
        let (lsn, p) = log.append(b"checkpoint").unwrap();
        live.push(p);
        horizon = lsn;
        log.flush().unwrap();
    }
    let (log, recs) = Log::open(cfg, Arc::new(sim), horizon).unwrap();
    assert_eq!(recs.len(), 1);
    log.set_reuse_horizon(horizon);
    let kept = |log: &Log| {
        log.segment_stats()
            .iter()
            .filter(|s| s.state != SegmentState::Free)
            .count()
    };
    let before = kept(&log);
    // The upper layer would have stored the pointers in its checkpoint: round-trip them.
    let live: Vec<DiskPtr> = live
        .iter()
        .map(|p| DiskPtr::from_bytes(&p.to_bytes()).expect("a pointer the log handed out"))
        .collect();
    // Three old records, and the checkpoint record: recovery sealed its segment (new records
    // go to a new one), so it is counted too.
    assert_eq!(
        log.reset_live(live.iter().copied()),
        4,
        "three old live records and the checkpoint record counted"
    );
    for _ in 0..20 {
        log.append(b"tick").unwrap();
        log.flush().unwrap();
    }
    let after = kept(&log);
    assert!(
        after < before,
        "dead old segments were not freed: {before} -> {after}"
    );
    for p in &live[..3] {
        log.read(*p).expect("live old records stay readable");
    }
}

/// When the live data moves to low slots and the high ones are freed, the file is truncated.
#[test]
fn free_tail_slots_are_truncated() {
    let sim = SimStorage::new();
    let cfg = four_kib_segments();
    let file_len = |sim: &SimStorage| {
        sim.volatile_contents(&Path::new("/db").join(DATA_FILE))
            .unwrap()
            .len()
    };
    let (log, _) = open_sim(&sim, &cfg);
    let mut ptrs = Vec::new();
    for i in 0..200u64 {
        ptrs.push(log.append(&body(i, 300)).unwrap().1);
    }
    log.flush().unwrap();
    let grown = file_len(&sim);
    assert!(grown >= 16 * 4096, "file grew to {grown}");
    let mut round = 0u64;
    // Retire everything, keep writing: new segments land in the lowest free slots, the high
    // ones drain and are freed, then the free tail is cut off.
    while file_len(&sim) >= grown && round < 400 {
        for p in ptrs.drain(..) {
            log.mark_dead(p).unwrap();
        }
        let (lsn, p) = log.append(&body(1000 + round, 300)).unwrap();
        ptrs.push(p);
        log.set_reuse_horizon(lsn);
        log.flush().unwrap();
        round += 1;
    }
    assert!(
        file_len(&sim) < grown,
        "file never shrank from {grown} bytes"
    );
    drop(log);
    let horizon = ptrs[0].lsn();
    let (_log, recs) = Log::open(cfg, Arc::new(sim), horizon).unwrap();
    assert_eq!(recs.len(), 1);
}

/// `mark_dead` is caller input: marking a record dead twice is an error, whether its buffer is
/// still in flight or written out (it used to be an assertion failure once written, with the
/// segment table's mutex poisoned for every later call).
#[test]
fn marking_a_record_dead_twice_is_an_error() {
    let sim = SimStorage::new();
    let (log, _) = open_sim(&sim, &four_kib_segments());
    let (_, a) = log.append(b"in flight").unwrap();
    let (_, b) = log.append(b"written").unwrap();
    log.mark_dead(a).unwrap();
    assert!(matches!(log.mark_dead(a), Err(Error::StalePointer(_))));
    log.flush().unwrap();
    let live = |log: &Log| log.segment_stats()[0].live_bytes;
    let before = live(&log);
    log.mark_dead(b).unwrap();
    assert_eq!(live(&log), before - i64::from(b.record_len()));
    assert!(matches!(log.mark_dead(b), Err(Error::StalePointer(_))));
    assert!(matches!(log.mark_dead(a), Err(Error::StalePointer(_))));
    assert_eq!(live(&log), before - i64::from(b.record_len()));
    log.append(b"still works").unwrap();
    log.flush().unwrap();
}

/// Regression: after a restart from an LSN inside the tail segment, the records of that segment
/// before the start were never counted, so marking one dead drove the count below the truth
/// (and the segment could drain while still holding live records). `reset_live` now counts
/// the active segment too, and without it those bytes are assumed live.
#[test]
fn records_before_the_start_in_the_tail_segment_are_counted() {
    let sim = SimStorage::new();
    let cfg = four_kib_segments();
    let (a, b) = {
        let (log, _) = open_sim(&sim, &cfg);
        let a = log.append(&body(1, 100)).unwrap().1;
        let b = log.append(&body(2, 100)).unwrap().1;
        log.flush().unwrap();
        (a, b)
    };
    let live_of = |log: &Log| -> i64 {
        log.segment_stats()
            .iter()
            .filter(|s| s.state != SegmentState::Free)
            .map(|s| s.live_bytes)
            .sum()
    };
    let len = |p: DiskPtr| i64::from(p.record_len());
    // Without `reset_live`: the bytes before the start are assumed live (never undercounted).
    {
        let (log, recs) = Log::open(cfg.clone(), Arc::new(sim.clone()), b.lsn()).unwrap();
        assert_eq!(recs.len(), 1);
        assert!(live_of(&log) >= len(a) + len(b), "{}", live_of(&log));
    }
    let (log, _) = Log::open(cfg, Arc::new(sim), b.lsn()).unwrap();
    assert_eq!(log.reset_live([a, b]), 2);
    assert_eq!(live_of(&log), len(a) + len(b));
    log.mark_dead(a).unwrap();
    assert_eq!(live_of(&log), len(b), "only b is live");
}
