//! Locating records by `(file offset, length)`: `Reservation::disk_ptr`, `Log::pointer_at`
//! and `Log::read_at`.

mod common;

use common::*;
use logstore::io::SimStorage;
use logstore::Error;

#[test]
fn reservation_pointer_matches_completion_and_reads_back_by_position() {
    let sim = SimStorage::new();
    let cfg = small_config();
    let (log, _) = open_sim(&sim, &cfg);
    let mut placed = Vec::new();
    for i in 0..300u64 {
        let b = body(i, (i % 61) as usize + 1);
        let mut r = log.reserve(b.len()).unwrap();
        let early = r.disk_ptr().expect("inline records know their place");
        r.body_mut().copy_from_slice(&b);
        let (_, ptr) = r.complete().unwrap();
        assert_eq!(early, ptr);
        placed.push((ptr, b));
    }
    log.flush().unwrap();
    for (ptr, b) in &placed {
        let (found, got) = log.read_at(ptr.file_offset(), ptr.record_len()).unwrap();
        assert_eq!(&found, ptr);
        assert_eq!(&got, b);
    }
}

#[test]
fn oversized_reservations_have_no_early_pointer() {
    let sim = SimStorage::new();
    let cfg = small_config();
    let (log, _) = open_sim(&sim, &cfg);
    let r = log.reserve(cfg.max_inline_body() as usize + 1).unwrap();
    assert_eq!(r.disk_ptr(), None);
}

#[test]
fn positions_in_free_slots_or_between_records_are_errors() {
    let sim = SimStorage::new();
    let cfg = small_config();
    let (log, _) = open_sim(&sim, &cfg);
    let (_, ptr) = log.append(&body(1, 40)).unwrap();
    let (_, next) = log.append(&body(2, 40)).unwrap();
    log.flush().unwrap();
    let far = 1000 * cfg.segment_size_bytes;
    assert!(matches!(
        log.pointer_at(far, 64),
        Err(Error::StalePointer(_))
    ));
    // One byte into the record: no record header carries that LSN.
    assert!(log
        .read_at(ptr.file_offset() + 1, ptr.record_len())
        .is_err());
    // Wrong length.
    assert!(log
        .read_at(next.file_offset(), next.record_len() + 8)
        .is_err());
}
