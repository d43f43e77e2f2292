//! Space and memory bounds, measured on the real file system.
//!
//! - Space amplification: overwrite a working set 20 times (whole-page replacements and delta
//!   updates mixed) with the default page-cache configuration, cleaning and checkpointing as
//!   the background thread would, then settle (clean and checkpoint until passes find nothing
//!   to do). Both the segments the log holds and `log.dat`'s length over the live bytes must
//!   be at most 1.5.
//! - Memory: with a working set of 10x the cache budget, `resident_bytes` stays within the
//!   budget plus one page's chain after every operation, and the heap bytes the process really
//!   holds for resident pages (a counting allocator) stay near it.
//!
//! The numbers are printed (`--nocapture`). `SPACE_PAGES` scales the space test and
//! `SPACE_CHUNK` sets how many pages are written between clean + checkpoint (default: an
//! eighth of the working set); the
//! `#[ignore]`d `_default_geometry` variant runs with the log's real 8 MiB segments.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use common::*;
use pagecache::{Config, PageCache};
use radix::Pid;

/// Counts the bytes currently allocated by the whole process.
struct Counting;

static ALLOCATED: AtomicI64 = AtomicI64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The allocator count is process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A reproducible value for entry `k` of page `seed`.
fn mix(z: u64) -> u64 {
    logstore::io::SimRng::new(z).next_u64()
}

fn page(entries: u64, seed: u64) -> Map {
    (0..entries).map(|k| (k, mix(seed ^ k << 32))).collect()
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Space {
    file_bytes: u64,
    live_bytes: u64,
    used_segment_bytes: u64,
    peak_file_bytes: u64,
}

/// The log's geometry for a run: the pagecache knobs are always the defaults.
#[derive(Clone, Copy)]
struct Geometry {
    segment_size_bytes: u64,
    io_buffer_size_bytes: u64,
}

/// `logstore::Config::new`'s: 8 MiB segments, 1 MiB buffers.
const DEFAULT_GEOMETRY: Geometry = Geometry {
    segment_size_bytes: 8 << 20,
    io_buffer_size_bytes: 1 << 20,
};

/// The default geometry scaled down 64x (the same segment / buffer ratio), so that the
/// working set of a debug-build test spans about 17 segments: the ratio depends on how many
/// segments the live data fills (the active segment and one draining are whole segments on
/// top of it), and with 8 MiB segments that takes a 100+ MiB working set.
const SCALED_GEOMETRY: Geometry = Geometry {
    segment_size_bytes: 128 << 10,
    io_buffer_size_bytes: 16 << 10,
};

/// Overwrites `pages` pages of `entries` entries `rounds` times; cleans and checkpoints after
/// every `chunk` pages written (what the background thread does over time); settles.
fn overwrite(geometry: Geometry, pages: u64, entries: u64, rounds: u64, chunk: u64) -> Space {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::new(dir.path());
    cfg.checkpoint_every_ms = None;
    cfg.clean_every_ms = None;
    cfg.log.segment_size_bytes = geometry.segment_size_bytes;
    cfg.log.io_buffer_size_bytes = geometry.io_buffer_size_bytes;
    let data = dir.path().join(logstore::DATA_FILE);
    let file_len = || std::fs::metadata(&data).map_or(0, |m| m.len());
    let cache: Cache = PageCache::open(cfg).unwrap();
    let mut peak = 0;
    let mut pids: Vec<Pid> = Vec::new();
    {
        let guard = crossbeam_epoch::pin();
        for i in 0..pages {
            pids.push(cache.allocate(page(entries, i), &guard).unwrap());
        }
    }
    let maintain = |peak: &mut u64| {
        cache.clean().unwrap();
        cache.checkpoint().unwrap();
        *peak = (*peak).max(file_len());
    };
    for round in 1..=rounds {
        for (i, &pid) in pids.iter().enumerate() {
            let guard = crossbeam_epoch::pin();
            let view = cache.read(pid, &guard).unwrap().expect("page");
            if round % 2 == 0 {
                // A whole new page.
                let base = page(entries, mix(round) ^ i as u64);
                assert!(cache.replace(base, &view, &guard).unwrap().is_ok());
            } else {
                // Delta updates to a quarter of the keys (consolidated past the fragment cap).
                drop(guard);
                for k in (0..entries).step_by(4) {
                    update(&cache, pid, Op::Set(k, mix(round ^ k ^ (i as u64) << 20)));
                }
            }
            if (i as u64 + 1) % chunk == 0 {
                maintain(&mut peak);
            }
        }
        maintain(&mut peak);
    }
    // Settle as the background thread would: clean and checkpoint until three passes in a
    // row find nothing to do. Two checkpoints pass between a pass that empties a segment and
    // the next, so the emptied segment is free (below the older checkpoint) and the next pass
    // can move the end of the file into it.
    let (mut passes, mut quiet) = (0, 0);
    while quiet < 3 && passes < 100 {
        let r = cache.clean().unwrap();
        cache.checkpoint().unwrap();
        cache.checkpoint().unwrap();
        passes += 1;
        quiet = if r.victims == 0 { quiet + 1 } else { 0 };
    }
    cache.flush().unwrap();
    let stats = cache.log().segment_stats();
    let live_bytes: u64 = stats.iter().map(|s| s.live_bytes.max(0) as u64).sum();
    let used = stats
        .iter()
        .filter(|s| s.state != logstore::SegmentState::Free)
        .count() as u64;
    let layout: String = stats
        .iter()
        .map(|s| match s.state {
            logstore::SegmentState::Free => '.',
            logstore::SegmentState::Active => 'A',
            logstore::SegmentState::Sealed => 'S',
            _ => 'D',
        })
        .collect();
    eprintln!("segment slots: {layout}");
    let space = Space {
        file_bytes: file_len(),
        live_bytes,
        used_segment_bytes: used * geometry.segment_size_bytes,
        peak_file_bytes: peak.max(file_len()),
    };
    eprintln!(
        "{pages} pages x {entries} entries, {rounds} overwrites: {passes} settling passes, \
         cache {:?}, log {:?}",
        cache.stats(),
        cache.log().stats()
    );
    cache.close().unwrap();
    space
}

fn measure(geometry: Geometry, pages: u64, entries: u64) -> Space {
    let _one = serial();
    let t = std::time::Instant::now();
    // Eight clean + checkpoint rounds per overwrite of the working set (a checkpoint walks
    // the whole table: more often would measure the checkpoint, not the space).
    let chunk = env_u64("SPACE_CHUNK", (pages / 8).max(1));
    let s = overwrite(geometry, pages, entries, 20, chunk);
    eprintln!(
        "space amplification ({} KiB segments): log.dat {} B / live {} B = {:.3}x; segments \
         in use {} B = {:.3}x; peak log.dat during the run {} B = {:.3}x ({:.1?})",
        geometry.segment_size_bytes >> 10,
        s.file_bytes,
        s.live_bytes,
        s.file_bytes as f64 / s.live_bytes as f64,
        s.used_segment_bytes,
        s.used_segment_bytes as f64 / s.live_bytes as f64,
        s.peak_file_bytes,
        s.peak_file_bytes as f64 / s.live_bytes as f64,
        t.elapsed(),
    );
    assert!(s.live_bytes > 0);
    s
}

/// Both what cleaning controls (the segments the log holds: sealed, active, draining) and
/// what the user sees (`log.dat`'s length) over the live bytes.
fn assert_within_1_5(s: &Space) {
    let segments = s.used_segment_bytes as f64 / s.live_bytes as f64;
    assert!(
        segments <= 1.5,
        "segments in use / live = {segments:.3} after cleaning settled"
    );
    let file = s.file_bytes as f64 / s.live_bytes as f64;
    assert!(
        file <= 1.5,
        "log.dat / live = {file:.3} after cleaning settled"
    );
}

/// Used to fail at 1.9-2.4x: the log grew `log.dat` by doubling and truncated it only when
/// half of it was a free tail, and a sealed segment at the end pinned the file at its peak.
/// Now the file grows by an eighth, any free tail of a growth step is truncated, and a quiet
/// cleaner moves the segments at the end of the file into the free slots below.
#[test]
fn space_amplification_after_overwrites_is_at_most_1_5() {
    let pages = env_u64("SPACE_PAGES", 2048);
    assert_within_1_5(&measure(SCALED_GEOMETRY, pages, 64));
}

/// The measurement with the log's real default geometry (8 MiB segments): about 140 MiB of
/// live data. Run it in release (about 3 minutes):
/// `cargo test --release -p pagecache --test space -- --ignored --nocapture`.
/// Measured: `log.dat` 1.25x, segments in use 1.19x, peak during the run 2.27x.
#[test]
#[ignore = "a measurement: 3 minutes in release; run with --ignored --nocapture"]
fn space_amplification_after_overwrites_is_at_most_1_5_default_geometry() {
    let pages = env_u64("SPACE_PAGES", 131_072);
    assert_within_1_5(&measure(DEFAULT_GEOMETRY, pages, 64));
}

#[test]
fn resident_bytes_stay_within_the_budget() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let cap: usize = 64 << 10;
    let cfg = Config {
        cache_capacity_bytes: cap,
        ..Config::small(dir.path())
    };
    let fragment_cap = cfg.fragment_cap;
    let cache: Cache = PageCache::open(cfg).unwrap();
    let entries = 48;
    // Resident bytes the budget may be exceeded by: the page being installed when the evictor
    // runs, at its longest chain (a base plus fragment_cap deltas before consolidation).
    let mut slack = 0usize;
    let mut max_resident = 0u64;
    let mut working_set = 0usize;
    let mut pids = Vec::new();
    let mut watch = |cache: &Cache, slack: usize| {
        let r = cache.stats().resident_bytes;
        max_resident = max_resident.max(r);
        assert!(
            r <= (cap + slack) as u64,
            "resident {r} B > budget {cap} B + slack {slack} B"
        );
    };
    while working_set < 10 * cap {
        let guard = crossbeam_epoch::pin();
        let pid = cache
            .allocate(page(entries, pids.len() as u64), &guard)
            .unwrap();
        let view = cache.read(pid, &guard).unwrap().expect("page");
        working_set += view.heap_bytes();
        slack = slack.max(view.heap_bytes());
        drop(guard);
        pids.push(pid);
        watch(&cache, slack);
    }
    // Everything evicted: what remains allocated is the cache without pages.
    let evict_all = |cache: &Cache| {
        let guard = crossbeam_epoch::pin();
        for &pid in &pids {
            let view = cache.read(pid, &guard).unwrap().expect("page");
            assert!(cache.evict(&view, &guard).unwrap());
        }
    };
    evict_all(&cache);
    settle_epoch(|| cache.stats().garbage_bytes == 0);
    assert_eq!(cache.stats().resident_bytes, 0, "accounting leak");
    let empty_heap = ALLOCATED.load(Ordering::Relaxed);
    // Touch everything twice: reads (page-ins) and delta updates.
    for pass in 0..2u64 {
        for (i, &pid) in pids.iter().enumerate() {
            for k in 0..u64::from(fragment_cap) {
                update(&cache, pid, Op::Set(k + pass, i as u64));
                let guard = crossbeam_epoch::pin();
                let view = cache.read(pid, &guard).unwrap().expect("page");
                slack = slack.max(view.heap_bytes());
                drop(guard);
                watch(&cache, slack);
            }
            assert!(contents(&cache, pid).is_some());
            watch(&cache, slack);
        }
    }
    settle_epoch(|| cache.stats().garbage_bytes == 0);
    let stats = cache.stats();
    let touched_heap = ALLOCATED.load(Ordering::Relaxed);
    let real = touched_heap - empty_heap;
    eprintln!(
        "memory: {} pages, working set {working_set} B = {:.1}x the {cap} B budget; resident \
         now {} B, max {max_resident} B (budget + {} B; slack allowed: one page chain = \
         {slack} B); garbage {} B; process heap held for pages {real} B; {} evictions, {} \
         page-ins",
        pids.len(),
        working_set as f64 / cap as f64,
        stats.resident_bytes,
        max_resident.saturating_sub(cap as u64),
        stats.garbage_bytes,
        stats.evictions,
        stats.page_ins,
    );
    assert!(stats.evictions > 0 && stats.page_ins > 0, "{stats:?}");
    // The model's heap estimate (24 B per entry) is close to a BTreeMap's real footprint, so
    // the real bytes held for resident pages must be of the order of the accounted ones.
    assert!(
        real <= 2 * (cap + slack) as i64,
        "process holds {real} B for pages, budget {cap} B"
    );
    evict_all(&cache);
    assert_eq!(cache.stats().resident_bytes, 0, "accounting leak");
    cache.close().unwrap();
}
