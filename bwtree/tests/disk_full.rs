//! A full disk (`SimStorage`'s capacity limit: a persistent ENOSPC until space is freed).
//!
//! What the engine does, asserted here (see docs/VERIFICATION.md, "Disk full"):
//! - the write that meets the full disk fails with `Error::Io` (ENOSPC) or, when the log's
//!   writer thread met it first, `Error::Poisoned` naming it; every later write and flush
//!   fails with `Error::Poisoned`, no panic;
//! - reads keep working: every get and scan returns the data of the last completed write;
//! - freeing space does not revive the open database (the log stays poisoned: a failed write
//!   or sync may have lost data it had accepted, so it never retries); reopening does: the
//!   reopened database holds every acknowledged write (and a prefix of the rest), takes
//!   writes again, and a power loss after that loses nothing acknowledged.

mod common;

use std::collections::BTreeMap;

use bwtree::{Db, Error, Tree};
use common::workload::{dump, open, Model, TREES};
use logstore::io::{CrashMode, SimRng, SimStorage};

/// The first failure's kind: ENOSPC directly, or the poison it caused on another thread.
fn is_disk_full(e: &Error) -> bool {
    match e {
        Error::Io { source, .. } => source.kind() == std::io::ErrorKind::StorageFull,
        Error::Poisoned(cause) => cause.contains("No space left on device"),
        _ => false,
    }
}

/// The inserts issued, in order, and how many of them a successful flush acknowledged.
#[derive(Default)]
struct Writes {
    done: Vec<(usize, Vec<u8>, Vec<u8>)>,
    acked: usize,
}

impl Writes {
    /// Panics unless `got` is the state after a prefix of the writes holding every
    /// acknowledged one.
    fn assert_prefix(&self, got: &Model) {
        let mut state: Model = vec![BTreeMap::new(); TREES];
        for (i, (t, k, v)) in self.done.iter().enumerate() {
            if i >= self.acked && state == *got {
                return;
            }
            state[*t].insert(k.clone(), v.clone());
        }
        assert!(
            state == *got,
            "the reopened state is no prefix of the writes holding the {} acknowledged",
            self.acked
        );
    }
}

/// Inserts (flushing every 16) until the disk is full. Returns the writes and the failure;
/// `model` ends as the state after the last completed write.
fn fill(db: &Db, trees: &[Tree], model: &mut Model, rng: &mut SimRng) -> (Writes, Error) {
    let mut writes = Writes::default();
    for i in 0u64.. {
        let t = (i % TREES as u64) as usize;
        let key = rng.below(4000).to_be_bytes().to_vec();
        let value = vec![i as u8; 20 + rng.below(200) as usize];
        if let Err(e) = trees[t].insert(&key, &value) {
            // Its effect is uncertain: it may be in the recovered state, last.
            writes.done.push((t, key, value));
            return (writes, e);
        }
        model[t].insert(key.clone(), value.clone());
        writes.done.push((t, key, value));
        if i % 16 == 15 {
            if let Err(e) = db.flush() {
                return (writes, e);
            }
            writes.acked = writes.done.len();
        }
    }
    unreachable!()
}

/// The keys where two models differ (for failure messages: whole models are too long).
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

/// Every get and a full scan of each tree must show `model`, or `model` with the failed write
/// applied (a write that fails may have taken effect in memory before its log write failed).
fn reads_match(trees: &[Tree], model: &Model, writes: &Writes) {
    let mut with_failed = model.clone();
    let (t, k, v) = writes.done.last().expect("a write failed");
    with_failed[*t].insert(k.clone(), v.clone());
    let state = dump(trees).expect("scans on a full disk");
    assert!(
        state == *model || state == with_failed,
        "scans on a full disk differ at {:?}",
        diff(&state, model)
    );
    for (t, map) in state.iter().enumerate() {
        for (k, v) in map {
            let got = trees[t].get(k).expect("get on a full disk");
            assert_eq!(got.as_deref(), Some(&v[..]), "get {k:?} on a full disk");
        }
    }
}

fn assert_poisoned(r: bwtree::Result<()>, what: &str) {
    match r {
        Err(Error::Poisoned(cause)) => assert!(!cause.contains("panicked"), "{cause}"),
        other => panic!("{what} on a poisoned database: {other:?}"),
    }
}

/// One database filled to a full disk; returns the keys written and the page-ins the reads
/// on the full disk needed.
fn one_disk_full(seed: u64, room_bytes: u64) -> (usize, u64) {
    let mut rng = SimRng::new(seed);
    let sim = SimStorage::new();
    let (db, trees) = open(&sim).expect("open");
    let mut model: Model = vec![BTreeMap::new(); TREES];
    sim.set_capacity(Some(sim.used_bytes() + room_bytes));
    let (writes, first) = fill(&db, &trees, &mut model, &mut rng);
    assert!(
        is_disk_full(&first),
        "the first failure names the full disk: {first:?}"
    );
    let keys: usize = model.iter().map(BTreeMap::len).sum();

    assert_poisoned(trees[0].insert(b"more", b"data").map(drop), "insert");
    assert_poisoned(db.flush(), "flush");
    let page_ins = db.stats().cache.page_ins;
    reads_match(&trees, &model, &writes);
    let page_ins = db.stats().cache.page_ins - page_ins;

    sim.set_capacity(None);
    assert_poisoned(
        trees[1].insert(b"more", b"data").map(drop),
        "insert after freeing space",
    );
    reads_match(&trees, &model, &writes);

    drop((db, trees));
    let (db, trees) = open(&sim).expect("reopen after freeing space");
    writes.assert_prefix(&dump(&trees).expect("scan after reopen"));
    trees[0]
        .insert(b"after", b"reopen")
        .expect("write after reopen");
    db.flush().expect("flush after reopen");
    let expected = dump(&trees).expect("scan");
    drop((db, trees));
    sim.crash(seed, CrashMode::CHAOS);
    let (_db, trees) = open(&sim).expect("open after power loss");
    assert_eq!(dump(&trees).expect("scan"), expected, "after power loss");
    (keys, page_ins)
}

#[test]
fn a_full_disk_fails_writes_keeps_reads_and_recovers_on_reopen() {
    let seed = logstore::io::seed_from_env("BWTREE_DISK_FULL_SEED");
    let (mut keys, mut page_ins) = (Vec::new(), 0);
    for i in 0..24u64 {
        // From two segments of room to two dozen.
        let room = (32 << 10) * (1 + i % 12);
        let (k, p) = one_disk_full(seed.wrapping_add(i), room);
        keys.push(k);
        page_ins += p;
    }
    println!("disk full after {keys:?} keys; {page_ins} page-ins served on full disks");
    assert!(page_ins > 0, "no read on a full disk needed the log");
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
    sim.set_capacity(Some(sim.used_bytes() + (64 << 10)));
    let (writes, first) = fill(&db, &trees, &mut model, &mut rng);
    assert!(is_disk_full(&first), "{first:?}");
    drop((db, trees));
    let outcome = match open(&sim) {
        Ok((_db, trees)) => {
            dump(&trees).expect("reads on a database reopened on a full disk");
            "opened".to_string()
        }
        Err(e) => {
            assert!(is_disk_full(&e), "reopen on a full disk: {e:?}");
            format!("refused: {e}")
        }
    };
    sim.set_capacity(None);
    let (_db, trees) = open(&sim).expect("reopen after freeing space");
    writes.assert_prefix(&dump(&trees).expect("scan"));
    println!("reopen on a full disk: {outcome}");
}
