//! A full disk (`SimStorage`'s capacity limit: a persistent ENOSPC until space is freed) is
//! a recoverable condition of the open database.
//!
//! Asserted here (see docs/VERIFICATION.md, "Disk full"), over many seeds and amounts of room:
//! - a write that meets the full disk fails with a typed `Error::Io` whose
//!   `is_storage_full()` is true (never `Poisoned`, never a panic), and changed nothing: every
//!   get and scan afterwards shows exactly the writes that succeeded; `flush` on the full disk
//!   fails the same way (or succeeds, if what it needs fits), promptly;
//! - reads keep working throughout, including pages evicted to records that are still only in
//!   a stalled log buffer;
//! - once space is freed, writes and `flush` succeed again on the same open database, and
//!   every page whose free met the full disk (an unpublished split half) has been freed;
//! - after that, a power loss (`CrashMode::CHAOS`) recovers a prefix of the successful writes
//!   holding every acknowledged one, and a clean close and reopen recovers all of them;
//! - the background thread's full-disk checkpoint error clears once a checkpoint succeeds.
//!
//! `BWTREE_DISK_FULL_SEED=<n>` reproduces; `BWTREE_DISK_FULL_RUNS=<n>` scales (default 64).

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use bwtree::{Db, Error, Tree};
use common::env_count;
use common::workload::{dump, open, Model, TREES};
use logstore::io::{CrashMode, SimRng, SimStorage};

fn assert_full(e: &Error, what: &str) {
    assert!(
        e.is_storage_full(),
        "{what}: expected a typed full-disk error, got {e:?} ({e})"
    );
}

/// The inserts that succeeded, in order, and how many of them a successful flush
/// acknowledged.
#[derive(Default)]
struct Writes {
    done: Vec<(usize, Vec<u8>, Vec<u8>)>,
    acked: usize,
}

impl Writes {
    /// Panics unless `got` is the state after a prefix of the successful writes holding every
    /// acknowledged one.
    fn assert_prefix(&self, got: &Model, what: &str) {
        let mut state: Model = vec![BTreeMap::new(); TREES];
        for (i, (t, k, v)) in self.done.iter().enumerate() {
            if i >= self.acked && state == *got {
                return;
            }
            state[*t].insert(k.clone(), v.clone());
        }
        assert!(
            state == *got,
            "{what}: the recovered state is no prefix of the {} writes holding the {} \
             acknowledged (differs at {:?})",
            self.done.len(),
            self.acked,
            diff(&state, got)
        );
    }
}

/// The keys where two models differ (whole models are too long for a message).
fn diff(a: &Model, b: &Model) -> Vec<(usize, Vec<u8>)> {
    let mut out = Vec::new();
    for t in 0..TREES {
        let keys: std::collections::BTreeSet<_> = a[t].keys().chain(b[t].keys()).collect();
        out.extend(
            keys.into_iter()
                .filter(|k| a[t].get(*k) != b[t].get(*k))
                .map(|k| (t, k.clone())),
        );
    }
    out
}

/// One insert; on success the model and the write list follow it. Returns the error of a
/// failed insert (which must have changed nothing: checked by the callers' reads).
fn insert(
    trees: &[Tree],
    model: &mut Model,
    writes: &mut Writes,
    rng: &mut SimRng,
    i: u64,
) -> Option<Error> {
    let t = (i % TREES as u64) as usize;
    let key = rng.below(4000).to_be_bytes().to_vec();
    let value = vec![i as u8; 20 + rng.below(200) as usize];
    match trees[t].insert(&key, &value) {
        Ok(_) => {
            model[t].insert(key.clone(), value.clone());
            writes.done.push((t, key, value));
            None
        }
        Err(e) => Some(e),
    }
}

fn flush(db: &Db, writes: &mut Writes) -> Result<(), Error> {
    db.flush()?;
    writes.acked = writes.done.len();
    Ok(())
}

/// Every get and a full scan of each tree show exactly `model`.
fn reads_match(trees: &[Tree], model: &Model, what: &str) {
    let state = dump(trees).unwrap_or_else(|e| panic!("{what}: scan failed: {e}"));
    assert!(
        state == *model,
        "{what}: scans differ from the successful writes at {:?}",
        diff(&state, model)
    );
    for (t, map) in model.iter().enumerate() {
        for (k, v) in map {
            let got = trees[t]
                .get(k)
                .unwrap_or_else(|e| panic!("{what}: get failed: {e}"));
            assert_eq!(got.as_deref(), Some(&v[..]), "{what}: get {k:?}");
        }
    }
}

/// What one run saw.
#[derive(Default, Debug)]
struct Seen {
    writes_before_full: usize,
    failed_writes: u64,
    failed_flushes: u64,
    page_ins_while_full: u64,
    orphans_while_full: u64,
}

/// One database filled to a full disk, checked while full, revived by freeing space, then
/// checked after a power loss and after a clean reopen.
fn one_disk_full(seed: u64, room_bytes: u64) -> Seen {
    let mut rng = SimRng::new(seed);
    let sim = SimStorage::new();
    let (db, trees) = open(&sim).expect("open");
    let mut model: Model = vec![BTreeMap::new(); TREES];
    let mut writes = Writes::default();
    let mut seen = Seen::default();
    sim.set_capacity(Some(sim.used_bytes() + room_bytes));

    // Fill until a write or a flush meets the full disk.
    let mut i = 0u64;
    loop {
        assert!(i < 200_000, "seed {seed}: the disk never filled");
        if let Some(e) = insert(&trees, &mut model, &mut writes, &mut rng, i) {
            assert_full(&e, "the first failed insert");
            seen.failed_writes += 1;
            break;
        }
        i += 1;
        if i % 16 == 0 {
            if let Err(e) = flush(&db, &mut writes) {
                assert_full(&e, "the first failed flush");
                seen.failed_flushes += 1;
                break;
            }
        }
    }
    seen.writes_before_full = writes.done.len();
    reads_match(&trees, &model, "right after the disk filled");

    // Still full: more writes and flushes fail typed and promptly (or succeed, if what they
    // need still fits), and nothing that failed shows up in reads.
    let page_ins = db.stats().cache.page_ins;
    for _ in 0..40 {
        i += 1;
        if let Some(e) = insert(&trees, &mut model, &mut writes, &mut rng, i) {
            assert_full(&e, "an insert on the full disk");
            seen.failed_writes += 1;
        }
        if i % 8 == 0 {
            if let Err(e) = flush(&db, &mut writes) {
                assert_full(&e, "a flush on the full disk");
                seen.failed_flushes += 1;
            }
        }
    }
    reads_match(&trees, &model, "on the full disk");
    seen.page_ins_while_full = db.stats().cache.page_ins - page_ins;
    seen.orphans_while_full = db.stats().orphaned_pages;

    // Free space: the same open database writes and flushes again.
    sim.set_capacity(None);
    flush(&db, &mut writes).expect("flush after freeing space");
    for _ in 0..rng.below(60) {
        i += 1;
        if let Some(e) = insert(&trees, &mut model, &mut writes, &mut rng, i) {
            panic!("seed {seed}: insert after freeing space: {e}");
        }
    }
    flush(&db, &mut writes).expect("second flush after freeing space");
    reads_match(&trees, &model, "after freeing space");
    assert_eq!(
        db.stats().orphaned_pages,
        0,
        "seed {seed}: pages unlinked on the full disk were not freed once space was back"
    );
    // Some unacknowledged writes, then power loss while the database is open.
    for _ in 0..rng.below(20) {
        i += 1;
        if let Some(e) = insert(&trees, &mut model, &mut writes, &mut rng, i) {
            panic!("seed {seed}: insert after freeing space: {e}");
        }
    }
    let image = sim.snapshot();
    image.crash(seed, CrashMode::CHAOS);
    {
        let (_db, crashed) = open(&image).expect("open after power loss");
        let got = dump(&crashed).expect("scan after power loss");
        writes.assert_prefix(&got, &format!("seed {seed}, after power loss"));
    }
    // A clean close keeps everything, and the reopened database takes writes.
    drop((db, trees));
    let (db, trees) = open(&sim).expect("reopen");
    reads_match(&trees, &model, "after a clean reopen");
    trees[0]
        .insert(b"after", b"reopen")
        .expect("write after reopen");
    db.flush().expect("flush after reopen");
    seen
}

#[test]
fn a_full_disk_fails_writes_keeps_reads_and_the_same_db_resumes_once_space_is_freed() {
    let seed = logstore::io::seed_from_env("BWTREE_DISK_FULL_SEED");
    let runs = env_count(&["BWTREE_DISK_FULL_RUNS"], 64);
    let started = Instant::now();
    let mut all = Vec::new();
    for i in 0..runs {
        // From two segments of room to two dozen.
        let room = (32 << 10) * (1 + i % 12);
        all.push(one_disk_full(seed.wrapping_add(i), room));
    }
    let keys: Vec<usize> = all.iter().map(|s| s.writes_before_full).collect();
    let failed_writes: u64 = all.iter().map(|s| s.failed_writes).sum();
    let failed_flushes: u64 = all.iter().map(|s| s.failed_flushes).sum();
    let page_ins: u64 = all.iter().map(|s| s.page_ins_while_full).sum();
    let orphans: u64 = all.iter().map(|s| s.orphans_while_full).sum();
    println!(
        "{runs} runs in {:?}: disk full after {keys:?} writes; {failed_writes} writes and \
         {failed_flushes} flushes failed typed; {page_ins} page-ins served on full disks; \
         {orphans} pages awaiting their free on full disks (all freed after)",
        started.elapsed()
    );
    assert!(page_ins > 0, "no read on a full disk needed the log");
    assert!(failed_writes > 0, "no write ever failed");
    assert!(
        keys.iter().max() > Some(&200),
        "the disks filled early: {keys:?}"
    );
}

/// Reopening while the disk is still full: open writes a checkpoint first, so it fails with a
/// typed error and damages nothing; once space is freed it opens with every acknowledged write.
#[test]
fn reopening_on_a_still_full_disk_fails_cleanly() {
    let seed = logstore::io::seed_from_env("BWTREE_DISK_FULL_SEED");
    let mut rng = SimRng::new(seed);
    let sim = SimStorage::new();
    let (db, trees) = open(&sim).expect("open");
    let mut model: Model = vec![BTreeMap::new(); TREES];
    let mut writes = Writes::default();
    sim.set_capacity(Some(sim.used_bytes() + (64 << 10)));
    for i in 0u64.. {
        if let Some(e) = insert(&trees, &mut model, &mut writes, &mut rng, i) {
            assert_full(&e, "insert");
            break;
        }
        if i % 16 == 15 && flush(&db, &mut writes).is_err() {
            break;
        }
    }
    drop((db, trees));
    let outcome = match open(&sim) {
        Ok((_db, trees)) => {
            dump(&trees).expect("reads on a database reopened on a full disk");
            "opened".to_string()
        }
        Err(e) => {
            assert_full(&e, "reopen on a full disk");
            format!("refused: {e}")
        }
    };
    sim.set_capacity(None);
    let (_db, trees) = open(&sim).expect("reopen after freeing space");
    writes.assert_prefix(&dump(&trees).expect("scan"), "reopen after freeing space");
    println!("reopen on a full disk: {outcome}");
}

/// The background thread's checkpoints fail on a full disk and say so in
/// `Db::background_error`; once space is freed and a checkpoint succeeds, the error is gone
/// (it reports the latest state, not the first failure ever).
#[test]
fn the_background_error_of_a_full_disk_clears_after_a_successful_checkpoint() {
    let sim = SimStorage::new();
    let db = common::workload::config()
        .checkpoint_every_ms(Some(5))
        .open_on_storage(std::sync::Arc::new(sim.clone()))
        .expect("open");
    for i in 0u32..50 {
        db.insert(i.to_be_bytes(), [7u8; 100]).expect("insert");
    }
    db.flush().expect("flush");
    let wait_for = |what: &str, done: &dyn Fn(&Option<String>) -> bool| {
        let started = Instant::now();
        loop {
            let e = db.background_error();
            if done(&e) {
                return e;
            }
            assert!(
                started.elapsed().as_secs() < 20,
                "{what}: still {e:?} after 20 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    assert_eq!(db.background_error(), None);
    sim.set_capacity(Some(sim.used_bytes()));
    let e = wait_for("a checkpoint on the full disk", &|e| e.is_some());
    println!("on the full disk: {e:?}");
    sim.set_capacity(None);
    wait_for("a checkpoint after freeing space", &|e| e.is_none());
    db.insert(b"after", b"space")
        .expect("insert after freeing space");
    db.flush().expect("flush after freeing space");
}
