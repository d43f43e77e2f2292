//! Exhaustive tail tests: cut the data file at every byte offset of its last segment, and flip
//! every byte of that segment; recovery must stop cleanly (no panic, no error) with a prefix
//! of the written records that keeps every record lying wholly before the damage.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use logstore::io::SimRng;
use logstore::io::{SimStorage, Storage};
use logstore::{Config, DiskPtr, Log, Lsn, DATA_FILE};

fn cfg() -> Config {
    Config {
        segment_size_bytes: 4096,
        io_buffer_size_bytes: 1024,
        ..Config::small("/db")
    }
}

/// Writes records until the fourth segment is mostly full; returns the data file and the
/// records (body, pointer) in LSN order.
fn build() -> (Vec<u8>, Vec<(Vec<u8>, DiskPtr)>) {
    let sim = SimStorage::new();
    let cfg = cfg();
    let (log, _) = open_sim(&sim, &cfg);
    let mut recs = Vec::new();
    let mut i = 0u64;
    loop {
        let b = body(i, (i * 53 % 200) as usize);
        let (_, ptr) = log.append(&b).unwrap();
        recs.push((b, ptr));
        i += 1;
        let seg_pos = ptr.file_offset() % cfg.segment_size_bytes;
        if recs.len() > 40 && ptr.lsn().0 >= 3 * cfg.segment_size_bytes && seg_pos > 3000 {
            break;
        }
    }
    log.flush().unwrap();
    drop(log);
    let file = sim
        .volatile_contents(&Path::new("/db").join(DATA_FILE))
        .unwrap();
    (file, recs)
}

fn sim_with(bytes: &[u8]) -> SimStorage {
    let sim = SimStorage::new();
    sim.create_dir_all(Path::new("/db/blobs")).unwrap();
    let f = sim
        .open_file(&Path::new("/db").join(DATA_FILE), true)
        .unwrap();
    f.write_all_at(bytes, 0).unwrap();
    f.sync_all().unwrap();
    sim.sync_dir(Path::new("/db")).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    sim
}

fn recover(sim: &SimStorage) -> Vec<Vec<u8>> {
    let (_log, recs) =
        Log::open(cfg(), Arc::new(sim.clone()), Lsn(0)).expect("recovery must not fail");
    bodies(&recs)
}

fn check_prefix(got: &[Vec<u8>], recs: &[(Vec<u8>, DiskPtr)], at_least: usize, what: &str) {
    let completed: Vec<&[u8]> = recs.iter().map(|(b, _)| b.as_slice()).collect();
    if let Some(why) = prefix_violation(got, &completed, at_least) {
        panic!("{what}: {why}");
    }
}

/// Records ending at or before `offset` (all segments before the damaged one are intact).
fn intact_before(recs: &[(Vec<u8>, DiskPtr)], offset: u64) -> usize {
    recs.iter()
        .take_while(|(_, p)| p.file_offset() + u64::from(p.record_len()) <= offset)
        .count()
}

/// The file offset of the last segment, and the index of the first record in it.
fn last_segment(recs: &[(Vec<u8>, DiskPtr)]) -> (u64, usize) {
    let seg = cfg().segment_size_bytes;
    let start = recs.last().unwrap().1.file_offset() / seg * seg;
    let first_in_last = recs
        .iter()
        .position(|(_, p)| p.file_offset() >= start)
        .unwrap();
    (start, first_in_last)
}

#[test]
fn cut_at_every_offset_of_the_last_segment() {
    let (file, recs) = build();
    // Records must be in file order within the last segment for `intact_before`.
    let (start, first_in_last) = last_segment(&recs);
    let seg = cfg().segment_size_bytes;
    for cut in start..=(start + seg).min(file.len() as u64) {
        let sim = sim_with(&file[..cut as usize]);
        let got = recover(&sim);
        let intact = if cut < start + 32 {
            first_in_last
        } else {
            intact_before(&recs, cut)
        };
        check_prefix(&got, &recs, intact, &format!("cut at {cut}"));
        // What was cut is gone; nothing beyond it may come back.
        assert_eq!(
            got.len(),
            intact,
            "cut at {cut}: exactly the intact records"
        );
    }
}

#[test]
fn flip_every_byte_of_the_last_segment() {
    let (file, recs) = build();
    let (start, first_in_last) = last_segment(&recs);
    let end = file.len().min((start + cfg().segment_size_bytes) as usize);
    for at in start as usize..end {
        let mut bytes = file.clone();
        bytes[at] ^= 0x5A;
        let sim = sim_with(&bytes);
        let got = recover(&sim);
        let intact = if (at as u64) < start + 32 {
            first_in_last
        } else {
            intact_before(&recs, at as u64)
        };
        check_prefix(&got, &recs, intact, &format!("flip at {at}"));
        // Recovering again (after the first recovery destroyed the tail) gives the same.
        if at % 64 == 0 {
            assert_eq!(recover(&sim), got, "flip at {at}: second recovery differs");
        }
    }
}

#[test]
fn zeroed_and_garbage_tails() {
    let (file, recs) = build();
    let start = last_segment(&recs).0 as usize;
    let mut zeroed = file.clone();
    zeroed[start + 32..].fill(0);
    let first_in_last = recs
        .iter()
        .position(|(_, p)| p.file_offset() >= start as u64)
        .unwrap();
    assert_eq!(recover(&sim_with(&zeroed)).len(), first_in_last);
    // Garbage with plausible-looking lengths must never size an allocation or panic.
    let mut garbage = file.clone();
    let mut rng = SimRng::new(42);
    for b in &mut garbage[start + 32..] {
        *b = rng.next_u64() as u8;
    }
    check_prefix(
        &recover(&sim_with(&garbage)),
        &recs,
        first_in_last,
        "garbage tail",
    );
    let mut huge = file;
    huge[start + 32 + 8..start + 32 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    check_prefix(
        &recover(&sim_with(&huge)),
        &recs,
        first_in_last,
        "huge length",
    );
}
