//! A tiny page model for tests: a page is a sorted map u64 -> u64; deltas set or delete keys.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use logstore::io::SimStorage;
use pagecache::{Config, PageCache, PageModel};

pub mod steps;

#[derive(Debug)]
pub struct MapModel;

#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum Op {
    Set(u64, u64),
    Del(u64),
}

pub type Map = BTreeMap<u64, u64>;

impl PageModel for MapModel {
    type Base = Map;
    type Delta = Op;

    fn base_heap_bytes(base: &Map) -> usize {
        // A B-tree node per ~11 entries; close enough for budget tests.
        base.len() * 3 * size_of::<u64>()
    }

    fn delta_heap_bytes(_: &Op) -> usize {
        0
    }

    fn consolidate(base: &Map, deltas: &[&Op]) -> Map {
        let mut m = base.clone();
        for d in deltas {
            match d {
                Op::Set(k, v) => {
                    m.insert(*k, *v);
                }
                Op::Del(k) => {
                    m.remove(k);
                }
            }
        }
        m
    }
}

pub type Cache = PageCache<MapModel>;

pub fn open_sim(sim: &SimStorage, cfg: &Config) -> Cache {
    PageCache::open_with_storage(cfg.clone(), Arc::new(sim.clone())).expect("open")
}

pub fn small_config() -> Config {
    Config::small("/db")
}

/// The page's contents as the cache shows them.
pub fn contents(cache: &Cache, pid: radix::Pid) -> Option<Map> {
    let guard = crossbeam_epoch::pin();
    cache.read(pid, &guard).unwrap().map(|v| v.consolidate())
}

/// Applies `op` to the page, retrying lost races.
pub fn update(cache: &Cache, pid: radix::Pid, mut op: Op) {
    let guard = crossbeam_epoch::pin();
    loop {
        let view = cache.read(pid, &guard).unwrap().expect("page exists");
        match cache.prepend(op, &view, &guard).unwrap() {
            Ok(_) => return,
            Err(back) => op = back,
        }
    }
}

/// The first of the environment variables `names` that is set, as a count (`default` if none).
///
/// # Panics
/// If a set variable is not a number (a typo must not silently run the default).
pub fn env_count(names: &[&str], default: u64) -> u64 {
    for name in names {
        if let Ok(v) = std::env::var(name) {
            return v
                .parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a count"));
        }
    }
    default
}

/// Runs epoch collection until `settled()` holds, for at most about two seconds: retired
/// chains are freed only once every thread pinned when they were retired (the log's threads
/// too) has moved on, which takes longer under a sanitizer.
pub fn settle_epoch(settled: impl Fn() -> bool) {
    for _ in 0..2000 {
        if settled() {
            return;
        }
        crossbeam_epoch::pin().flush();
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
