//! Pointers are input: `Log::read` must be memory-safe and answer `StalePointer` for any
//! pointer that does not name a completed record, whatever the bytes say, and must never read
//! buffer bytes a holder may still be writing.

mod common;

use common::*;
use logstore::io::SimRng;
use logstore::io::SimStorage;
use logstore::{DiskPtr, Error, Log};

/// A pointer with the given fields (and `like`'s salt and blob id), through the only public
/// way to build one.
fn forged(like: DiskPtr, lsn: u64, offset: u64, len: u32) -> Result<DiskPtr, Error> {
    let mut b = like.to_bytes();
    b[0..8].copy_from_slice(&lsn.to_le_bytes());
    b[8..16].copy_from_slice(&offset.to_le_bytes());
    b[16..20].copy_from_slice(&len.to_le_bytes());
    DiskPtr::from_bytes(&b)
}

/// `p` moved by `delta` bytes (same segment slot, same incarnation) with length `len`.
fn shifted(p: DiskPtr, delta: i64, len: u32) -> Result<DiskPtr, Error> {
    let lsn = p.lsn().0.checked_add_signed(delta).unwrap();
    let offset = p.file_offset().checked_add_signed(delta).unwrap();
    forged(p, lsn, offset, len)
}

fn open() -> (SimStorage, Log) {
    let sim = SimStorage::new();
    let (log, _) = open_sim(&sim, &small_config());
    (sim, log)
}

/// Before: the read copied the reservation's bytes while its holder was writing them (a data
/// race from safe code) and answered from whatever it saw. Now it waits for the buffer's
/// hand-off, which the holder's `complete` brings about, and returns the completed record.
#[test]
fn read_into_a_reservation_being_filled_waits_for_the_hand_off() {
    let (_sim, log) = open();
    let (_, earlier) = log.append(b"earlier record").unwrap();
    let body = b"filled while a reader waits";
    let mut r = log.reserve(body.len()).unwrap();
    let lsn = r.lsn().unwrap();
    // The reservation directly follows `earlier` in the same buffer and slot.
    let delta = (lsn.0 - earlier.lsn().0) as i64;
    let ptr = shifted(earlier, delta, (24 + body.len()) as u32).unwrap();
    std::thread::scope(|s| {
        let reader = s.spawn(|| log.read(ptr));
        // Wait (without a clock) until the reader is parked on the buffer.
        while log.stats().buffered_read_waits == 0 {
            assert!(
                !reader.is_finished(),
                "read returned while the record was being filled"
            );
            std::thread::yield_now();
        }
        r.body_mut().copy_from_slice(body);
        let (got_lsn, got_ptr) = r.complete().unwrap();
        assert_eq!((got_lsn, got_ptr), (lsn, ptr));
        assert_eq!(reader.join().unwrap().unwrap(), body);
    });
}

#[test]
fn pointers_past_the_reserved_head_are_stale_without_waiting() {
    let (_sim, log) = open();
    let (_, p) = log.append(b"the only record").unwrap();
    for delta in [p.record_len() as i64, 100, 1000] {
        let ahead = shifted(p, delta, 40).unwrap();
        assert!(
            matches!(log.read(ahead), Err(Error::StalePointer(_))),
            "{ahead:?}"
        );
    }
    assert_eq!(log.read(p).unwrap(), b"the only record");
}

/// Pointers into the middle of records, straddling two records, or with the wrong length,
/// both while the buffer is filling and after it was written.
#[test]
fn misaligned_pointers_are_stale() {
    let (_sim, log) = open();
    let ptrs: Vec<DiskPtr> = (0..5u64)
        .map(|i| log.append(&body(i, 50)).unwrap().1)
        .collect();
    for round in 0..2 {
        for p in &ptrs {
            for (delta, len) in [(1, 74), (8, 74), (0, 73), (0, 75), (37, 74), (0, 148)] {
                let bad = shifted(*p, delta, len).unwrap();
                assert!(
                    matches!(log.read(bad), Err(Error::StalePointer(_))),
                    "round {round}: {bad:?} read"
                );
            }
            assert_eq!(log.read(*p).unwrap().len(), 50);
        }
        log.flush().unwrap();
    }
}

/// Geometry a pointer of this log cannot have: inside the segment header, across the segment
/// end, longer than a buffer, past the end of the file.
#[test]
fn pointers_outside_the_geometry_are_stale() {
    let (_sim, log) = open();
    let (_, p) = log.append(b"x").unwrap();
    log.flush().unwrap();
    let seg = log.config().segment_size_bytes;
    let buf = log.config().io_buffer_size_bytes as u32;
    let cases = [
        forged(p, 0, 0, 30),
        forged(p, 8, 8, 30),
        forged(p, seg - 20, seg - 20, 30),
        forged(p, 100, 100, buf),
        forged(p, 1 << 40, 1 << 40, 30),
        forged(p, seg + 64, 64, 30),
    ];
    for p in cases {
        let p = p.unwrap();
        assert!(
            matches!(log.read(p), Err(Error::StalePointer(_))),
            "{p:?} read"
        );
    }
}

/// Before: `from_bytes` accepted this and `read` computed `lsn + len` unchecked (an overflow
/// panic in debug builds).
#[test]
fn overflowing_pointer_does_not_decode() {
    let (_sim, log) = open();
    let (_, p) = log.append(b"x").unwrap();
    assert!(matches!(
        forged(p, u64::MAX - 10, u64::MAX - 10, 100),
        Err(Error::StalePointer(_))
    ));
}

/// A pointer of the right place and length but another incarnation's salt.
#[test]
fn pointer_with_another_salt_is_stale() {
    let (_sim, log) = open();
    let (_, p) = log.append(b"salted").unwrap();
    for round in 0..2 {
        let mut b = p.to_bytes();
        b[20] ^= 1;
        let other = DiskPtr::from_bytes(&b).unwrap();
        assert!(
            matches!(log.read(other), Err(Error::StalePointer(_))),
            "round {round}"
        );
        assert_eq!(log.read(p).unwrap(), b"salted");
        log.flush().unwrap();
    }
}

/// Writers keep filling buffers while a reader throws forged pointers at LSNs around the
/// head. Every answer is either the record that really starts there or `StalePointer`; run
/// under ThreadSanitizer (`sanitizers.sh`) this also checks that no read touches bytes a
/// holder is writing (the old read path copied them under the status lock only).
#[test]
fn forged_pointers_near_the_head_race_with_nobody() {
    let seed = seed("POINTER_SEED");
    let (_sim, log) = open();
    let seg = log.config().segment_size_bytes;
    let deadline = stress_deadline();
    // LSN -> (body, pointer) of every completed record.
    let written = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let done = std::sync::atomic::AtomicUsize::new(0);
    let (mut reads, mut hits) = (0u64, Vec::new());
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (log, written, done) = (&log, &written, &done);
            s.spawn(move || {
                let mut rng = SimRng::new(seed ^ (t + 1));
                for i in 0..1500u64 {
                    if past(deadline) {
                        break;
                    }
                    let b = body(t << 32 | i, rng.below(120) as usize);
                    let (lsn, p) = log.append(&b).unwrap();
                    written.lock().unwrap().insert(lsn.0, (b, p));
                    if rng.below(50) == 0 {
                        log.flush().unwrap();
                    }
                }
                done.fetch_add(1, std::sync::atomic::Ordering::Release);
            });
        }
        let mut rng = SimRng::new(seed);
        while done.load(std::sync::atomic::Ordering::Acquire) < 2 {
            let newest = written.lock().unwrap().last_key_value().map(|(_, v)| v.1);
            let Some(known) = newest else {
                std::thread::yield_now();
                continue;
            };
            // Somewhere between the newest completed record and a little past the head, in
            // the same segment (so the forged offset is consistent with the LSN).
            // A third are the real pointer (a just-completed record, usually in the buffer
            // being filled).
            let (step, len) = match rng.below(3) {
                0 => (0, known.record_len()),
                _ => (rng.below(400) as i64, 24 + rng.below(120) as u32),
            };
            let target = known.lsn().0 + step as u64;
            if target / seg != known.lsn().0 / seg {
                continue;
            }
            let Ok(p) = shifted(known, step, len) else {
                continue;
            };
            reads += 1;
            match log.read(p) {
                // Checked once the writers are done: a writer learns of its record's
                // completion (and records it here) after the reader may already see it.
                Ok(got) => hits.push((p, got)),
                Err(Error::StalePointer(_)) => {}
                Err(e) => panic!("{p:?}: {e}"),
            }
        }
    });
    let written = written.into_inner().unwrap();
    for (p, got) in &hits {
        let real = written.get(&p.lsn().0).map(|(b, _)| b);
        assert_eq!(real, Some(got), "{p:?} read bytes no record at its LSN has");
    }
    eprintln!("{reads} forged reads, {} named a real record", hits.len());
    assert!(reads > 0, "the reader never ran");
}
