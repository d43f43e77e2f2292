//! An open that fails part-way through recovery frees the chains it had already read back.
//!
//! Found by the `open_dir` fuzz target (LeakSanitizer): recovery installs each multi-fragment
//! page's chain into the new mapping table as it reads it; when a later page failed to read,
//! the error returned and the table was dropped, but the table never frees what its slots
//! point to, so every chain read so far leaked.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering::SeqCst};
use std::sync::Arc;

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};
use logstore::io::{SimStorage, Storage};
use pagecache::{Config, PageCache, PageModel};

/// Page bases alive right now (created by the test or decoded by recovery).
static LIVE_BASES: AtomicI64 = AtomicI64::new(0);

#[derive(Debug)]
struct Counted(u64);

impl Counted {
    fn new(v: u64) -> Self {
        LIVE_BASES.fetch_add(1, SeqCst);
        Counted(v)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        LIVE_BASES.fetch_sub(1, SeqCst);
    }
}

impl Encode for Counted {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.0.encode(e)
    }
}

impl<C> Decode<C> for Counted {
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(Counted::new(u64::decode(d)?))
    }
}

#[derive(Debug)]
struct CountedModel;

impl PageModel for CountedModel {
    type Base = Counted;
    type Delta = u64;

    fn base_heap_bytes(_: &Counted) -> usize {
        0
    }

    fn delta_heap_bytes(_: &u64) -> usize {
        0
    }

    fn consolidate(base: &Counted, deltas: &[&u64]) -> Counted {
        Counted::new(base.0 + deltas.iter().copied().sum::<u64>())
    }
}

const PAGES: u64 = 20;

/// Pages of three fragments each (base + two deltas), a checkpoint naming them, and the first
/// record of the log (page 0's base, before the checkpoint's LSN, so never rescanned) damaged.
fn database_with_one_unreadable_page(sim: &SimStorage) {
    let cfg = Config::small("/db");
    let cache = PageCache::<CountedModel>::open_with_storage(cfg, Arc::new(sim.clone())).unwrap();
    let guard = crossbeam_epoch::pin();
    let pids: Vec<_> = (0..PAGES)
        .map(|i| cache.allocate(Counted::new(i), &guard).unwrap())
        .collect();
    for &pid in &pids {
        for d in 1..=2 {
            let view = cache.read(pid, &guard).unwrap().expect("page exists");
            cache.prepend(d, &view, &guard).unwrap().expect("no race");
        }
    }
    drop(guard);
    cache.flush().unwrap();
    cache.checkpoint().unwrap();
    drop(cache);
    let log = sim
        .open_file(&Path::new("/db").join(logstore::DATA_FILE), false)
        .unwrap();
    // Segment header (32 B), record header (24 B), then the fragment: flip a payload byte.
    let at = 32 + 24 + 20;
    let mut byte = [0u8; 1];
    log.read_exact_at(&mut byte, at).unwrap();
    log.write_all_at(&[byte[0] ^ 0x55], at).unwrap();
    log.sync_all().unwrap();
}

/// Live bases once the epoch collector has run what dropped caches deferred.
fn settled_live_bases() -> i64 {
    common::settle_epoch(|| LIVE_BASES.load(SeqCst) == 0);
    LIVE_BASES.load(SeqCst)
}

#[test]
fn a_failed_recovery_frees_the_chains_it_read() {
    let sim = SimStorage::new();
    database_with_one_unreadable_page(&sim);
    // Pages are read back in hash order: over a few opens, some read other pages before the
    // damaged one.
    assert_eq!(settled_live_bases(), 0, "the writing cache freed its pages");
    for attempt in 0..5 {
        let opened = PageCache::<CountedModel>::open_with_storage(
            Config::small("/db"),
            Arc::new(sim.clone()),
        );
        assert!(
            opened.is_err(),
            "attempt {attempt}: opened over a damaged page"
        );
        let leaked = settled_live_bases();
        assert_eq!(leaked, 0, "attempt {attempt}: {leaked} page bases leaked");
    }
}
