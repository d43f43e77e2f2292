//! SimStorage semantics: what survives a crash, namespace durability, determinism, capacity,
//! fault injection at every site, and a proptest of random writes, syncs and crashes.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{CrashMode, SimStorage, SECTOR_SIZE};
use crate::io::fault::{Fault, FaultPlan, FaultRule, Site};
use crate::io::{Storage, StorageFile};

/// A simulator with `/db` durably created.
pub(super) fn sim_with_db() -> (SimStorage, PathBuf) {
    let sim = SimStorage::new();
    let db = PathBuf::from("/db");
    sim.create_dir_all(&db).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    (sim, db)
}

/// Creates `name` in `dir` and makes its entry durable.
pub(super) fn durable_file(sim: &SimStorage, dir: &Path, name: &str) -> Arc<dyn StorageFile> {
    let f = sim.open_file(&dir.join(name), true).unwrap();
    sim.sync_dir(dir).unwrap();
    f
}

pub(super) fn reopen(sim: &SimStorage, path: &Path) -> Arc<dyn StorageFile> {
    sim.open_file(path, false).unwrap()
}

pub(super) fn contents(f: &dyn StorageFile) -> Vec<u8> {
    let mut buf = vec![0; f.len().unwrap() as usize];
    f.read_exact_at(&mut buf, 0).unwrap();
    buf
}

#[test]
fn unsynced_write_lost_synced_write_kept() {
    let (sim, db) = sim_with_db();
    let f = durable_file(&sim, &db, "log");
    f.write_all_at(b"synced", 0).unwrap();
    f.sync_data().unwrap();
    f.write_all_at(b"UNSYNCED", 6).unwrap();
    assert_eq!(
        contents(&*f),
        b"syncedUNSYNCED",
        "reads see the volatile image"
    );
    sim.crash(1, CrashMode::DROP_UNSYNCED);
    let f2 = reopen(&sim, &db.join("log"));
    assert_eq!(contents(&*f2), b"synced");
}

#[test]
fn old_handles_fail_after_crash() {
    let (sim, db) = sim_with_db();
    let f = durable_file(&sim, &db, "log");
    sim.crash(0, CrashMode::DROP_UNSYNCED);
    let err = f.write_at(b"x", 0).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    assert!(f.sync_data().is_err() && f.len().is_err());
    reopen(&sim, &db.join("log")).write_all_at(b"x", 0).unwrap();
}

#[test]
fn torn_writes_keep_whole_sectors_only() {
    let sector = SECTOR_SIZE as usize;
    let mut saw_mixed = false;
    for seed in 0..64 {
        let (sim, db) = sim_with_db();
        let f = durable_file(&sim, &db, "seg");
        f.write_all_at(&vec![0xAA; 8 * sector], 0).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(&vec![0xBB; 8 * sector], 0).unwrap();
        sim.crash(seed, CrashMode::TORN);
        let after = contents(&*reopen(&sim, &db.join("seg")));
        assert_eq!(after.len(), 8 * sector);
        for chunk in after.chunks(sector) {
            assert!(
                chunk.iter().all(|&b| b == chunk[0]),
                "seed {seed}: sector split"
            );
        }
        let new = after.chunks(sector).filter(|c| c[0] == 0xBB).count();
        saw_mixed |= new > 0 && new < 8;
    }
    assert!(saw_mixed, "no seed in 0..64 tore the write");
}

#[test]
fn creation_lost_without_dir_sync() {
    let (sim, db) = sim_with_db();
    let f = sim.open_file(&db.join("new"), true).unwrap();
    f.write_all_at(b"data", 0).unwrap();
    f.sync_all().unwrap(); // Syncing the file does not make its name durable.
    assert!(sim.durable_contents(&db.join("new")).is_none());
    sim.crash(3, CrashMode::DROP_UNSYNCED);
    assert!(!sim.exists(&db.join("new")).unwrap());
}

#[test]
fn rename_durable_only_after_sync_dir() {
    let (sim, db) = sim_with_db();
    let (tmp, fin) = (db.join("ckpt.tmp"), db.join("ckpt"));
    let f = durable_file(&sim, &db, "ckpt.tmp");
    f.write_all_at(b"v1", 0).unwrap();
    f.sync_all().unwrap();
    sim.rename(&tmp, &fin).unwrap();
    let before = sim.snapshot();
    before.crash(9, CrashMode::DROP_UNSYNCED);
    assert!(before.exists(&tmp).unwrap() && !before.exists(&fin).unwrap());
    sim.sync_dir(&db).unwrap();
    sim.crash(9, CrashMode::DROP_UNSYNCED);
    assert!(!sim.exists(&tmp).unwrap());
    assert_eq!(contents(&*reopen(&sim, &fin)), b"v1");
}

#[test]
fn removal_durable_only_after_sync_dir() {
    let (sim, db) = sim_with_db();
    durable_file(&sim, &db, "old");
    sim.remove_file(&db.join("old")).unwrap();
    assert!(!sim.exists(&db.join("old")).unwrap());
    let undone = sim.snapshot();
    undone.crash(0, CrashMode::DROP_UNSYNCED);
    assert!(undone.exists(&db.join("old")).unwrap());
    sim.sync_dir(&db).unwrap();
    sim.crash(0, CrashMode::DROP_UNSYNCED);
    assert!(!sim.exists(&db.join("old")).unwrap());
}

/// A workload with every kind of unsynced change, for determinism checks.
fn messy_workload() -> SimStorage {
    let (sim, db) = sim_with_db();
    let f = durable_file(&sim, &db, "a");
    f.write_all_at(&[1; 3000], 0).unwrap();
    f.sync_data().unwrap();
    for i in 0..20u8 {
        f.write_all_at(&[i + 2; 700], u64::from(i) * 301).unwrap();
    }
    f.set_len(2500).unwrap();
    sim.open_file(&db.join("b"), true)
        .unwrap()
        .write_all_at(b"bbb", 0)
        .unwrap();
    sim.rename(&db.join("a"), &db.join("c")).unwrap();
    sim
}

fn disk_state(sim: &SimStorage) -> Vec<(PathBuf, Vec<u8>)> {
    let files = sim.files();
    files
        .into_iter()
        .map(|p| (p.clone(), sim.volatile_contents(&p).unwrap()))
        .collect()
}

#[test]
fn same_seed_same_crash() {
    let sim = messy_workload();
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..16 {
        let (a, b) = (sim.snapshot(), sim.snapshot());
        a.crash(seed, CrashMode::CHAOS);
        b.crash(seed, CrashMode::CHAOS);
        assert_eq!(
            disk_state(&a),
            disk_state(&b),
            "seed {seed} is not deterministic"
        );
        outcomes.insert(disk_state(&a));
    }
    assert!(outcomes.len() > 4, "seeds should give different outcomes");
    // Recovering twice from the same durable state gives the same state.
    let once = sim.snapshot();
    once.crash(5, CrashMode::CHAOS);
    let twice = once.snapshot();
    twice.crash(6, CrashMode::CHAOS);
    assert_eq!(
        disk_state(&once),
        disk_state(&twice),
        "nothing unsynced after a crash"
    );
}

#[test]
fn enospc_then_success_after_raising_capacity() {
    let (sim, db) = sim_with_db();
    sim.set_capacity(Some(1000));
    let f = durable_file(&sim, &db, "log");
    assert_eq!(
        f.write_at(&[7; 1500], 0).unwrap(),
        1000,
        "short write up to the limit"
    );
    let err = f.write_all_at(&[7; 10], 1000).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    f.write_all_at(&[8; 100], 0).unwrap(); // Overwrites need no space.
    assert_eq!(
        f.set_len(2000).unwrap_err().raw_os_error(),
        Some(libc::ENOSPC)
    );
    sim.set_capacity(Some(4000));
    f.write_all_at(&[9; 10], 1000).unwrap();
    // Removing a file frees its space.
    sim.set_capacity(Some(1010));
    assert!(f.write_all_at(&[1], 1010).is_err());
    sim.remove_file(&db.join("log")).unwrap();
    let g = sim.open_file(&db.join("g"), true).unwrap();
    g.write_all_at(&[1; 1010], 0).unwrap();
    assert_eq!(sim.used_bytes(), 1010);
}

/// Runs the one call at `site` on a fresh disk whose plan fails the first call there.
fn call_with_fault(site: Site, fault: Fault) -> (SimStorage, io::Result<()>) {
    let (sim, db) = sim_with_db();
    let f = durable_file(&sim, &db, "f");
    f.write_all_at(b"0123456789", 0).unwrap();
    let path = db.join("f");
    sim.set_fault_plan(Some(FaultPlan::new(1).rule(FaultRule::nth(site, 1, fault))));
    let result = match site {
        Site::Open => sim.open_file(&path, false).map(drop),
        Site::Create => sim.open_file(&db.join("new"), true).map(drop),
        Site::CreateDir => sim.create_dir_all(&db.join("sub")),
        Site::ReadDir => sim.read_dir(&db).map(drop),
        Site::Rename => sim.rename(&path, &db.join("g")),
        Site::Remove => sim.remove_file(&path),
        Site::SyncDir => sim.sync_dir(&db),
        Site::Read => f.read_exact_at(&mut [0; 4], 0),
        Site::Write => f.write_at(b"abc", 0).map(drop),
        Site::SetLen => f.set_len(4),
        Site::SyncData => f.sync_data(),
        Site::SyncAll => f.sync_all(),
    };
    (sim, result)
}

#[test]
fn every_site_fails_when_scheduled() {
    for site in Site::ALL {
        let (sim, result) = call_with_fault(site, Fault::Eio);
        let err = result.expect_err(&format!("{site:?} did not fail"));
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "{site:?}");
        assert_eq!(sim.fault_counts().at(site), 1, "{site:?}");
        assert_eq!(sim.fault_counts().total(), 1, "{site:?}");
    }
    for site in [
        Site::Create,
        Site::CreateDir,
        Site::Rename,
        Site::Write,
        Site::SetLen,
        Site::SyncData,
        Site::SyncAll,
        Site::SyncDir,
    ] {
        let err = call_with_fault(site, Fault::Enospc).1.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{site:?}");
    }
}

#[test]
fn failed_calls_have_no_effect() {
    let (sim, _) = call_with_fault(Site::Rename, Fault::Eio);
    assert!(sim.exists(Path::new("/db/f")).unwrap() && !sim.exists(Path::new("/db/g")).unwrap());
    let (sim, _) = call_with_fault(Site::Create, Fault::Eio);
    assert!(!sim.exists(Path::new("/db/new")).unwrap());
    let (sim, _) = call_with_fault(Site::Write, Fault::Eio);
    assert_eq!(
        sim.volatile_contents(Path::new("/db/f")).unwrap(),
        b"0123456789"
    );
}

#[test]
fn short_and_torn_writes_write_a_prefix() {
    let (sim, db) = sim_with_db();
    let f = durable_file(&sim, &db, "f");
    let plan = FaultPlan::new(4)
        .rule(FaultRule::nth(Site::Write, 1, Fault::ShortWrite))
        .rule(FaultRule::nth(Site::Write, 2, Fault::TornWrite));
    sim.set_fault_plan(Some(plan));
    let n = f.write_at(&[1; 100], 0).unwrap();
    assert!((1..100).contains(&n), "short write wrote {n}");
    assert_eq!(f.len().unwrap(), n as u64);
    assert!(f.write_at(&[2; 100], 200).is_err());
    let len = f.len().unwrap();
    assert!(
        len == n as u64 || (201..300).contains(&len),
        "torn write left len {len}"
    );
    f.write_all_at(&[3; 10], 0).unwrap(); // The rules fired once each.
}

#[test]
fn bit_flip_corrupts_the_returned_bytes_only() {
    let (sim, _) = call_with_fault(Site::Read, Fault::BitFlip);
    let f = reopen(&sim, Path::new("/db/f"));
    sim.set_fault_plan(Some(FaultPlan::new(2).rule(FaultRule::nth(
        Site::Read,
        1,
        Fault::BitFlip,
    ))));
    let mut buf = [0u8; 10];
    f.read_exact_at(&mut buf, 0).unwrap();
    let flipped: u32 = buf
        .iter()
        .zip(b"0123456789")
        .map(|(a, b)| (a ^ b).count_ones())
        .sum();
    assert_eq!(flipped, 1);
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"0123456789");
}

#[test]
fn failed_sync_loses_unsynced_data_for_good() {
    for seed in 0..8 {
        let (sim, db) = sim_with_db();
        let f = durable_file(&sim, &db, "f");
        f.write_all_at(&[1; 2048], 0).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(&[2; 2048], 0).unwrap();
        sim.set_fault_plan(Some(FaultPlan::new(seed).rule(FaultRule::nth(
            Site::SyncData,
            1,
            Fault::Eio,
        ))));
        assert!(f.sync_data().is_err());
        // The retry "succeeds" but cannot bring the lost writes back.
        f.sync_data().unwrap();
        let now = contents(&*f);
        assert!(now.iter().all(|&b| b == 1 || b == 2));
        assert_eq!(sim.durable_contents(&db.join("f")).unwrap(), now);
        let unsynced = sim.trace().unsynced_at_end();
        assert_eq!(
            unsynced.failed_syncs.len(),
            1,
            "the trace remembers the failed sync"
        );
    }
}

#[test]
fn trace_checks_sync_discipline() {
    let (sim, db) = sim_with_db();
    let f = sim.open_file(&db.join("log"), true).unwrap();
    f.write_all_at(b"rec", 0).unwrap();
    let unsynced = sim.trace().unsynced_at_end();
    assert_eq!(unsynced.dirs, vec![db.clone()]);
    assert_eq!(unsynced.files.len(), 1);
    f.sync_data().unwrap();
    sim.sync_dir(&db).unwrap();
    sim.trace().assert_all_durable();
    assert!(!sim.has_unsynced_writes());
}

#[test]
fn a_directory_lock_is_exclusive_until_dropped_or_a_crash() {
    let (sim, db) = sim_with_db();
    let held = sim.lock_dir(&db).unwrap();
    let again = sim.lock_dir(&db).unwrap_err();
    assert_eq!(again.kind(), io::ErrorKind::WouldBlock);
    // A snapshot is another machine's copy of the disk: nobody holds its locks.
    drop(sim.snapshot().lock_dir(&db).unwrap());
    drop(held);
    let held = sim.lock_dir(&db).unwrap();
    // Power loss kills the holder: the lock is free, and the dead guard releases nothing.
    sim.crash(1, CrashMode::DROP_UNSYNCED);
    let after = sim.lock_dir(&db).unwrap();
    drop(held);
    assert_eq!(
        sim.lock_dir(&db).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    drop(after);
    assert_eq!(
        sim.lock_dir(Path::new("/missing")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}
