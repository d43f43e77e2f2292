//! Round trips through the public API: append, read (from buffers and disk), abort, blobs,
//! segment switches, reopen.

mod common;

use std::sync::Arc;

use common::*;
use logstore::io::{FileStorage, SimStorage};
use logstore::{Config, Error, Log, Lsn, MAX_RECORD_BYTES};

#[test]
fn append_read_flush_reopen() {
    let sim = SimStorage::new();
    let cfg = small_config();
    let mut expect = Vec::new();
    {
        let (log, recs) = open_sim(&sim, &cfg);
        assert!(recs.is_empty());
        let mut ptrs = Vec::new();
        for i in 0..200u64 {
            let b = body(i, (i % 97) as usize);
            let (lsn, ptr) = log.append(&b).unwrap();
            assert_eq!(ptr.lsn(), lsn);
            // Readable at once, whether still buffered or written.
            assert_eq!(log.read(ptr).unwrap(), b);
            ptrs.push((ptr, b.clone()));
            expect.push(b);
        }
        log.flush().unwrap();
        for (ptr, b) in &ptrs {
            assert_eq!(&log.read(*ptr).unwrap(), b);
        }
        assert!(log.durable_lsn() > ptrs.last().unwrap().0.lsn());
    }
    let (log, recs) = open_sim(&sim, &cfg);
    assert_eq!(bodies(&recs), expect);
    for w in recs.windows(2) {
        assert!(w[0].lsn < w[1].lsn);
    }
    for r in &recs {
        assert_eq!(log.read(r.ptr).unwrap(), r.body);
    }
    // Appends continue after the recovered records.
    let (lsn, _) = log.append(b"more").unwrap();
    assert!(lsn > recs.last().unwrap().lsn);
}

#[test]
fn aborted_records_are_skipped() {
    let sim = SimStorage::new();
    let cfg = small_config();
    let mut expect = Vec::new();
    {
        let (log, _) = open_sim(&sim, &cfg);
        for i in 0..100u64 {
            let b = body(i, 10 + (i % 50) as usize);
            let mut r = log.reserve(b.len()).unwrap();
            r.body_mut().copy_from_slice(&b);
            match i % 3 {
                0 => r.abort(),
                1 => drop(r),
                _ => {
                    r.complete().unwrap();
                    expect.push(b);
                }
            }
        }
        log.flush().unwrap();
        let stats = log.stats();
        assert_eq!(stats.records_completed, expect.len() as u64);
        assert_eq!(stats.records_aborted, 100 - expect.len() as u64);
        assert!(stats.syncs >= 1 && stats.buffers_written >= 1 && stats.bytes_written > 0);
    }
    let (_log, recs) = open_sim(&sim, &cfg);
    assert_eq!(bodies(&recs), expect);
}

#[test]
fn oversized_records_use_blobs() {
    let sim = SimStorage::new();
    let cfg = small_config();
    let big = body(7, cfg.io_buffer_size_bytes as usize * 3);
    let ptr;
    {
        let (log, _) = open_sim(&sim, &cfg);
        log.append(b"before").unwrap();
        let (_, p) = log.append(&big).unwrap();
        ptr = p;
        assert!(ptr.blob_id().is_some());
        assert_eq!(log.read(ptr).unwrap(), big);
        log.append(b"after").unwrap();
        log.flush().unwrap();
        assert!(matches!(
            log.reserve(MAX_RECORD_BYTES as usize + 1),
            Err(Error::RecordTooLarge { .. })
        ));
    }
    let (log, recs) = open_sim(&sim, &cfg);
    assert_eq!(
        bodies(&recs),
        vec![b"before".to_vec(), big.clone(), b"after".to_vec()]
    );
    assert_eq!(log.read(ptr).unwrap(), big);
}

#[test]
fn largest_inline_record_fits_and_fills_segments() {
    let sim = SimStorage::new();
    let cfg = small_config();
    let max = cfg.max_inline_body() as usize;
    let mut expect = Vec::new();
    {
        let (log, _) = open_sim(&sim, &cfg);
        for i in 0..40u64 {
            let len = if i % 2 == 0 {
                max
            } else {
                (i * 37 % 300) as usize
            };
            let b = body(i, len);
            let (_, p) = log.append(&b).unwrap();
            assert!(p.blob_id().is_none());
            expect.push(b);
        }
        log.flush().unwrap();
        let segs = log.segment_stats();
        assert!(segs.len() > 4, "several segments used: {segs:?}");
    }
    let (_log, recs) = open_sim(&sim, &cfg);
    assert_eq!(bodies(&recs), expect);
}

#[test]
fn real_files_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        flush_every_ms: Some(5),
        ..Config::small(dir.path().join("db"))
    };
    let storage = Arc::new(FileStorage::new());
    let mut expect = Vec::new();
    {
        let (log, _) = Log::open(cfg.clone(), storage.clone(), Lsn(0)).unwrap();
        for i in 0..300u64 {
            let b = body(i, (i * 13 % 3000) as usize);
            log.append(&b).unwrap();
            expect.push(b);
        }
        log.flush().unwrap();
    }
    let (_log, recs) = Log::open(cfg, storage, Lsn(0)).unwrap();
    assert_eq!(bodies(&recs), expect);
}

#[test]
fn recovery_from_a_later_lsn() {
    let sim = SimStorage::new();
    let cfg = small_config();
    let mut lsns = Vec::new();
    {
        let (log, _) = open_sim(&sim, &cfg);
        for i in 0..100u64 {
            lsns.push(log.append(&body(i, 100)).unwrap().0);
        }
        log.flush().unwrap();
    }
    let from = lsns[60];
    let (_log, recs) = Log::open(cfg, Arc::new(sim), from).unwrap();
    let got: Vec<Lsn> = recs.iter().map(|r| r.lsn).collect();
    assert_eq!(got, lsns[60..].to_vec());
}

#[test]
fn config_mismatch_is_an_error() {
    let sim = SimStorage::new();
    let cfg = small_config();
    {
        let (log, _) = open_sim(&sim, &cfg);
        log.append(b"x").unwrap();
        log.flush().unwrap();
    }
    let other = Config {
        segment_size_bytes: cfg.segment_size_bytes * 2,
        ..cfg
    };
    let err = Log::open(other, Arc::new(sim), Lsn(0)).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[test]
fn orphan_blobs_are_removed_by_a_full_recovery_only() {
    use logstore::io::Storage;
    use std::path::Path;
    let sim = SimStorage::new();
    let cfg = small_config();
    let big = body(1, 5000);
    let later;
    {
        let (log, _) = open_sim(&sim, &cfg);
        log.append(&big).unwrap();
        later = log.append(b"x").unwrap().0;
        log.flush().unwrap();
    }
    let orphan = Path::new("/db/blobs/00000000000000ff");
    let f = sim.open_file(orphan, true).unwrap();
    f.write_all_at(b"junk", 0).unwrap();
    f.sync_all().unwrap();
    sim.sync_dir(Path::new("/db/blobs")).unwrap();
    // Recovering from a later LSN cannot know every pointer: nothing is removed.
    drop(Log::open(cfg.clone(), Arc::new(sim.clone()), later).unwrap());
    assert!(sim.exists(orphan).unwrap());
    let (log, recs) = open_sim(&sim, &cfg);
    assert_eq!(recs[0].body, big);
    assert!(!sim.exists(orphan).unwrap(), "orphan blob removed");
    assert_eq!(log.read(recs[0].ptr).unwrap(), big, "referenced blob kept");
    // A new blob after that does not collide with anything.
    let (_, p) = log.append(&big).unwrap();
    assert_eq!(log.read(p).unwrap(), big);
}

#[test]
fn a_second_open_of_one_directory_is_locked_out_until_the_first_closes() {
    let sim = Arc::new(SimStorage::new());
    let cfg = Config::small("/db");
    let (first, _) = Log::open(cfg.clone(), sim.clone(), Lsn(0)).unwrap();
    match Log::open(cfg.clone(), sim.clone(), Lsn(0)) {
        Err(Error::Locked { path }) => assert_eq!(path, std::path::Path::new("/db")),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    Log::open(cfg, sim, Lsn(0)).unwrap();
}
