//! Minimized failures, each with its cause.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use logstore::io::{CrashMode, SimStorage, Storage};
use logstore::{Config, Error, Log, Lsn, DATA_FILE};

/// Found by the power-loss model (aligned records, CHAOS crashes). Cause: recovery cut a torn
/// tail in segment 1 and invalidated segment 2 by zeroing its header only; the next segment
/// the log started had the same LSN range and landed in the same slot, so the old records of
/// that slot, at the same positions with the same LSNs, validated again right after the new
/// ones. Fix: every segment incarnation gets a random salt, stamped into each record header
/// and checked by recovery.
#[test]
fn reissued_segment_lsn_does_not_resurrect_old_records() {
    let cfg = Config {
        segment_size_bytes: 4096,
        io_buffer_size_bytes: 1024,
        ..Config::small("/db")
    };
    let seg = cfg.segment_size_bytes;
    let sim = SimStorage::new();
    let mut ptrs = Vec::new();
    {
        let (log, _) = Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)).unwrap();
        for i in 0..90u64 {
            ptrs.push(log.append(&body(i, 100)).unwrap().1);
        }
        log.flush().unwrap();
    }
    // Damage a record in the middle of segment 1 (as a torn, unsynced write would).
    let victim = ptrs.iter().position(|p| p.lsn().0 > seg + seg / 2).unwrap();
    assert!(
        ptrs.last().unwrap().lsn().0 > 2 * seg + 1000,
        "segment 2 holds many records"
    );
    let f = sim
        .open_file(&Path::new("/db").join(DATA_FILE), false)
        .unwrap();
    f.write_all_at(&[0u8; 8], ptrs[victim].file_offset())
        .unwrap();
    f.sync_data().unwrap();
    drop(f);
    let (log, recs) = Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)).unwrap();
    assert_eq!(recs.len(), victim);
    // Same sizes as before, so the new records line up with the old ones; stop a few records
    // into segment 2, well before where its old records end.
    let mut expect = bodies(&recs);
    let mut k = 1000u64;
    loop {
        let b = body(k, 100);
        let (lsn, _) = log.append(&b).unwrap();
        expect.push(b);
        k += 1;
        if lsn.0 > 2 * seg + 300 {
            break;
        }
    }
    log.flush().unwrap();
    drop(log);
    let (_log, recs) = Log::open(cfg, Arc::new(sim), Lsn(0)).unwrap();
    let got = bodies(&recs);
    assert!(
        got == expect,
        "old records of the reused slot came back: {} recovered, {} expected",
        got.len(),
        expect.len()
    );
}

/// Found by review. Cause: recovery started scanning at the first segment it found at or
/// after the start, not at the start itself. Buffers are written out of order, so the start
/// segment's first buffer (holding its header) may be lost in a crash while a later segment's
/// buffers survive; recovery then returned the later records, which are not a prefix, and the
/// missing LSN range was skipped forever. Fix: the scan expects the start segment itself; a
/// hole there ends the log at the start.
#[test]
fn a_missing_start_segment_ends_the_log_instead_of_being_skipped() {
    let cfg = Config {
        segment_size_bytes: 4096,
        io_buffer_size_bytes: 1024,
        ..Config::small("/db")
    };
    let sim = SimStorage::new();
    {
        let (log, _) = Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)).unwrap();
        for i in 0..90u64 {
            log.append(&body(i, 100)).unwrap();
        }
        log.flush().unwrap();
    }
    // Segment 0's header is gone, as if its first buffer never reached the disk.
    let f = sim
        .open_file(&Path::new("/db").join(DATA_FILE), false)
        .unwrap();
    let mut header = [0u8; 32];
    let slot_of_segment_0 = (0..4u64)
        .find(|slot| {
            f.read_exact_at(&mut header, slot * 4096).unwrap();
            header[..4] == *b"BWLS" && u64::from_le_bytes(header[16..24].try_into().unwrap()) == 0
        })
        .expect("segment 0 is in one of the first slots");
    f.write_all_at(&[0u8; 32], slot_of_segment_0 * 4096)
        .unwrap();
    f.sync_data().unwrap();
    drop(f);

    let (log, recs) = Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)).unwrap();
    assert!(
        recs.is_empty(),
        "recovered {} records from after a hole",
        recs.len()
    );
    // The log continues from the start, and what it writes now is what a reopen returns.
    let fresh: Vec<Vec<u8>> = (500..520u64).map(|i| body(i, 100)).collect();
    for b in &fresh {
        log.append(b).unwrap();
    }
    log.flush().unwrap();
    drop(log);
    let (_log, recs) = Log::open(cfg, Arc::new(sim), Lsn(0)).unwrap();
    assert_eq!(
        bodies(&recs),
        fresh,
        "old segments after the hole came back"
    );
}

/// Found in review. Cause: after recovery cut a torn tail, new records continued right after
/// the last valid one, in the same segment incarnation (same salt). A pointer to a cut record
/// (completed, never durable, but kept in memory or in a checkpoint written without a flush)
/// then named the same LSN, offset and salt as a new record of the same length, and `read`
/// returned the new record's bytes. Fix: recovery pads the tail segment to its end, so new
/// records start a new segment incarnation and no LSN of the cut tail segment is handed out
/// again.
#[test]
fn stale_pointer_into_the_cut_tail_segment_is_stale() {
    let sim = SimStorage::new();
    let cfg = small_config();
    let stale = {
        let (log, _) = open_sim(&sim, &cfg);
        log.append(b"durable").unwrap();
        log.flush().unwrap();
        let (_, p) = log.append(b"cut by the crash").unwrap();
        sim.crash(1, CrashMode::DROP_UNSYNCED);
        p
    };
    let (log, recs) = open_sim(&sim, &cfg);
    assert_eq!(bodies(&recs), vec![b"durable".to_vec()]);
    let (_, fresh) = log.append(b"written after it").unwrap();
    assert_eq!(fresh.record_len(), stale.record_len(), "same length");
    assert!(
        matches!(log.read(stale), Err(Error::StalePointer(_))),
        "a cut record's pointer read {:?}",
        log.read(stale)
    );
    assert!(log.mark_dead(stale).is_err(), "a cut record marked dead");
    assert_eq!(log.read(fresh).unwrap(), b"written after it");
    log.flush().unwrap();
    assert!(matches!(log.read(stale), Err(Error::StalePointer(_))));
}

/// Found in review, the same cause one segment further: the cut tail spanned whole later
/// segments (their headers were never durable, or were zeroed by recovery), and the reopened
/// log hands their LSNs out again, in the same slots, at the same offsets when the record
/// lengths repeat. Only the salt tells the two incarnations apart, so pointers carry it and
/// `read`/`mark_dead` check it.
#[test]
fn stale_pointer_into_a_cut_later_segment_is_stale() {
    let sim = SimStorage::new();
    let cfg = Config {
        segment_size_bytes: 4096,
        io_buffer_size_bytes: 1024,
        ..small_config()
    };
    let seg = cfg.segment_size_bytes;
    let len_of = |i: u64| 10 + (i as usize * 7) % 90;
    // Session 1 fills 16 segments, growing the file one slot at a time (growth syncs it).
    let kept = {
        let (log, _) = open_sim(&sim, &cfg);
        let mut n = 0;
        while log.append(&body(n, 100)).unwrap().0 .0 < 15 * seg + 100 {
            n += 1;
        }
        n + 1
    };
    // Session 2 starts at segment 16 (recovery padded segment 15): the file grows by a step of
    // two slots (synced before any of session 2 is written), and the two segments it writes
    // fill them without growing or truncating the file, so nothing of it is synced; then
    // power fails.
    let cut: Vec<_> = {
        let (log, recs) = open_sim(&sim, &cfg);
        assert_eq!(recs.len() as u64, kept);
        let mut cut = Vec::new();
        for i in 0.. {
            let (lsn, p) = log.append(&body(1000 + i, len_of(i))).unwrap();
            assert!(lsn.0 >= 16 * seg, "session 2 starts a new segment");
            cut.push(p);
            if lsn.0 > 17 * seg + 1000 {
                break;
            }
        }
        sim.crash(2, CrashMode::DROP_UNSYNCED);
        cut
    };
    let (log, recs) = open_sim(&sim, &cfg);
    assert_eq!(recs.len() as u64, kept, "session 2 was lost whole");
    // Hand out the cut records' LSNs again: same lengths, in order, from the same boundary.
    let mut reissued = 0;
    for (i, old) in cut.iter().enumerate() {
        let (lsn, new) = log
            .append(&body(5000 + i as u64, len_of(i as u64)))
            .unwrap();
        if (lsn, new.file_offset(), new.record_len())
            == (old.lsn(), old.file_offset(), old.record_len())
        {
            reissued += 1;
        }
        assert!(
            matches!(log.read(*old), Err(Error::StalePointer(_))),
            "cut record {i} read through its old pointer"
        );
    }
    assert_eq!(
        reissued,
        cut.len(),
        "every cut LSN re-issued at its old place"
    );
    log.flush().unwrap();
    for old in &cut {
        assert!(matches!(log.read(*old), Err(Error::StalePointer(_))));
        assert!(
            log.mark_dead(*old).is_err(),
            "cut record {old:?} marked dead"
        );
    }
}
