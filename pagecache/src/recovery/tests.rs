//! Recovery from a checkpoint or log record that is valid (CRC and all) but claims a page-id
//! high-water mark or a page id near `Pid::MAX`.
//!
//! Found by reading, not by a crash report: recovery used to list every free id below
//! `next_fresh` and push each onto the allocator's stack, and the checkpoint, cleaning, eviction
//! and teardown walks probed every id below it, so such a file made open run out of memory or
//! loop for hours. Now the free ids are ranges between the live pids and the walks skip absent
//! parts of the radix table: opening costs what is on disk. These tests open such databases,
//! bound the time and the allocator's and table's memory, and check the database still works
//! (reads, writes, a checkpoint, cleaning, eviction, close and reopen).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_epoch as epoch;
use logstore::io::SimStorage;
use radix::Pid;

use crate::checkpoint;
use crate::fragment::Kind;
use crate::{Config, PageCache, PageModel};

struct Kv;

impl PageModel for Kv {
    type Base = BTreeMap<u64, u64>;
    type Delta = (u64, u64);

    fn base_heap_bytes(_: &Self::Base) -> usize {
        64
    }

    fn delta_heap_bytes(_: &Self::Delta) -> usize {
        16
    }

    fn consolidate(base: &Self::Base, deltas: &[&Self::Delta]) -> Self::Base {
        let mut m = base.clone();
        // Deltas come newest first; apply oldest first.
        m.extend(deltas.iter().rev().map(|d| **d));
        m
    }
}

type Cache = PageCache<Kv>;

/// The whole id space: a high-water mark past the largest id.
const TOP: u64 = Pid::MAX.get() + 1;

/// Far more than an open of a few pages needs, far less than walking 2^42 ids.
const OPEN_BUDGET: Duration = Duration::from_secs(2);

fn dir() -> &'static Path {
    Path::new("/db")
}

/// Small segments and a tiny cache budget, so every write also runs the eviction hand.
fn config() -> Config {
    let mut cfg = Config::small(dir());
    cfg.cache_capacity_bytes = 256;
    cfg
}

fn open(sim: &SimStorage) -> Cache {
    PageCache::open_with_storage(config(), Arc::new(sim.clone())).expect("open")
}

/// Opens within [`OPEN_BUDGET`]; the allocator must hold the free ids as a few ranges.
fn open_in_budget(sim: &SimStorage, what: &str) -> Cache {
    let start = Instant::now();
    let cache = open(sim);
    let took = start.elapsed();
    assert!(took < OPEN_BUDGET, "{what}: open took {took:?}");
    let free = cache.inner.pids.free_ids();
    assert!(
        free.restored.len() <= 8,
        "{what}: free ids kept as {} ranges",
        free.restored.len()
    );
    // A handful of leaves (plus mids), not a table spanning the id space.
    let table = cache.inner.table.stats();
    assert!(table.levels_installed <= 8, "{what}: {table:?}");
    cache
}

fn contents(cache: &Cache, pid: Pid) -> Option<BTreeMap<u64, u64>> {
    let guard = epoch::pin();
    cache.read(pid, &guard).unwrap().map(|v| v.consolidate())
}

fn put(cache: &Cache, pid: Pid, key: u64, value: u64) {
    let guard = epoch::pin();
    let view = cache.read(pid, &guard).unwrap().expect("page exists");
    cache
        .prepend((key, value), &view, &guard)
        .unwrap()
        .expect("no concurrent writer");
}

fn page(pairs: &[(u64, u64)]) -> BTreeMap<u64, u64> {
    pairs.iter().copied().collect()
}

/// Three pages with a delta each, closed cleanly (so a checkpoint names them all).
fn three_pages(sim: &SimStorage) -> Vec<Pid> {
    let cache = open(sim);
    let guard = epoch::pin();
    let pids: Vec<Pid> = (0..3)
        .map(|i| cache.allocate(page(&[(i, i)]), &guard).unwrap())
        .collect();
    drop(guard);
    for &pid in &pids {
        put(&cache, pid, 100, pid.get());
    }
    cache.close().unwrap();
    pids
}

/// Writes, checkpoints, cleans and closes `cache`, then reopens: every page is still there.
fn exercise(sim: &SimStorage, cache: Cache, pages: &[(Pid, BTreeMap<u64, u64>)], what: &str) {
    for (pid, want) in pages {
        assert_eq!(contents(&cache, *pid).as_ref(), Some(want), "{what}: {pid}");
    }
    let guard = epoch::pin();
    let fresh = cache.allocate(page(&[(7, 7)]), &guard).unwrap();
    drop(guard);
    assert!(
        fresh.get() < 8,
        "{what}: a new page takes the lowest free id, got {fresh}"
    );
    put(&cache, fresh, 8, 8);
    // A page staged by an open group cannot be evicted, so the next write leaves the cache over
    // its budget and the eviction hand runs its whole bounded pass: that bound must be the
    // slots the table holds, not the mark (which would be ~2^44 steps).
    let guard = epoch::pin();
    let mut group = cache.begin_group(&guard);
    let view = cache.read(fresh, &guard).unwrap().unwrap();
    let staged = group
        .stage((9, 9), &view)
        .unwrap()
        .expect("nobody else writes");
    assert!(
        !cache.evict(&staged, &guard).unwrap(),
        "a staged page stays resident"
    );
    let start = Instant::now();
    let extra = cache.allocate(page(&[(5, 5)]), &guard).unwrap();
    assert!(
        start.elapsed() < OPEN_BUDGET,
        "{what}: eviction took {:?}",
        start.elapsed()
    );
    group.abort().unwrap();
    let view = cache.read(extra, &guard).unwrap().unwrap();
    cache
        .free(&view, &guard)
        .unwrap()
        .expect("nobody else writes");
    drop(guard);
    cache.checkpoint().unwrap();
    cache.clean().unwrap();
    let mark = cache.inner.pids.next_fresh();
    let start = Instant::now();
    cache.close().unwrap();
    assert!(
        start.elapsed() < OPEN_BUDGET,
        "{what}: close took {:?}",
        start.elapsed()
    );

    let again = open_in_budget(sim, what);
    assert_eq!(
        again.inner.pids.next_fresh(),
        mark,
        "{what}: the mark survives"
    );
    for (pid, want) in pages {
        assert_eq!(contents(&again, *pid).as_ref(), Some(want), "{what}: {pid}");
    }
    assert_eq!(
        contents(&again, fresh),
        Some(page(&[(7, 7), (8, 8)])),
        "{what}"
    );
    again.close().unwrap();
}

#[test]
fn a_checkpoint_claiming_next_fresh_at_the_top_opens_fast_and_works() {
    let sim = SimStorage::new();
    let pids = three_pages(&sim);
    // Rewrite the newest checkpoint (same LSN: replaced atomically) with the largest mark the
    // decoder accepts; `write` encodes it, so its CRC is valid.
    let mut ckpt = checkpoint::load(&sim, dir()).unwrap().unwrap().checkpoint;
    assert_eq!(ckpt.pages.len(), 3);
    ckpt.next_fresh = TOP;
    checkpoint::write(&sim, dir(), &ckpt).unwrap();

    let cache = open_in_budget(&sim, "checkpoint mark");
    assert_eq!(cache.inner.pids.next_fresh(), TOP);
    assert_eq!(cache.inner.pids.stats().restored, TOP - 3);
    let pages: Vec<_> = pids
        .iter()
        .map(|&p| (p, page(&[(p.get(), p.get()), (100, p.get())])))
        .collect();
    exercise(&sim, cache, &pages, "checkpoint mark");
}

#[test]
fn log_records_naming_pids_at_the_top_open_fast_and_work() {
    let sim = SimStorage::new();
    let pids = three_pages(&sim);
    let cache = open(&sim);
    // Records for the two largest ids, written as the cache writes any fragment (so their
    // CRCs are valid): a base for Pid::MAX - 1, a free for Pid::MAX. They are after the
    // checkpoint the open just wrote, so recovery replays them.
    let high = Pid::new(Pid::MAX.get() - 1).unwrap();
    let base = page(&[(42, 42)]);
    let (r, _) = cache
        .inner
        .write_fragment(Kind::Base, high, &[], Some(&base))
        .unwrap();
    r.complete().unwrap();
    let (r, _) = cache
        .inner
        .write_fragment::<()>(Kind::Free, Pid::MAX, &[], None)
        .unwrap();
    r.complete().unwrap();
    cache.flush().unwrap();
    // A crash now: the next open replays the records (no closing checkpoint names the state).
    let crashed = sim.snapshot();
    drop(cache);

    let cache = open_in_budget(&crashed, "log pids");
    assert_eq!(cache.inner.pids.next_fresh(), TOP);
    assert_eq!(cache.inner.pids.stats().restored, TOP - 4);
    let mut pages: Vec<_> = pids
        .iter()
        .map(|&p| (p, page(&[(p.get(), p.get()), (100, p.get())])))
        .collect();
    pages.push((high, base));
    assert_eq!(contents(&cache, Pid::MAX), None, "freed by its record");
    exercise(&crashed, cache, &pages, "log pids");
}
