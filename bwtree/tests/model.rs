//! Model test: random sequences of every public call (on the default tree and two named
//! trees), interleaved with flush, clean reopen and crash-reopen, against `BTreeMap`s. Tiny
//! nodes (split past 4 entries, merge below 2), a 16 KiB cache and 64 KiB segments make
//! splits, merges, root changes, eviction and cleaning constant. Crashes run on the log's
//! simulated storage, so unsynced writes are really lost: the recovered state must equal the
//! model after some prefix of the writes since the last flush.
//!
//! Seeded and shrinkable: `BWTREE_MODEL_SEED=<n>` reproduces a run, `PROPTEST_CASES` scales
//! it (default 2000, about 30 s).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bwtree::{Config, Db, Tree, Value};
use logstore::io::{CrashMode, SimStorage};
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, RngSeed, TestRunner};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;
/// One map per tree (0: default).
type Model = Vec<Map>;
const TREES: usize = 3;

#[derive(Debug, Clone)]
enum Act {
    Insert(usize, Vec<u8>, Vec<u8>),
    Remove(usize, Vec<u8>),
    Cas(usize, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>),
    /// Append a byte to the value (or create it), or remove it when `drop` is set.
    Update(usize, Vec<u8>, u8, bool),
    Get(usize, Vec<u8>),
    Neighbours(usize, Vec<u8>),
    Range(usize, Vec<u8>, Vec<u8>, bool),
    Prefix(usize, Vec<u8>),
    Ends(usize),
    Len(usize),
    /// Inserts of `n` consecutive keys from a start (volume: splits, eviction, cleaning).
    Fill(usize, u8, u8, u8),
    /// Removes of `n` consecutive keys (merges, root shrink).
    Clear(usize, u8, u8),
    /// An atomic batch (`None`: remove).
    Batch(usize, Vec<(Vec<u8>, Option<Vec<u8>>)>),
    Flush,
    Restart,
    Crash(u64, u8, bool),
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(0u8..6, 0..4)
}

fn val() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..8),
        1 => proptest::collection::vec(any::<u8>(), 30..80),
    ]
}

fn act() -> impl Strategy<Value = Act> {
    let t = 0..TREES;
    prop_oneof![
        12 => (t.clone(), key(), val()).prop_map(|(t, k, v)| Act::Insert(t, k, v)),
        5 => (t.clone(), key()).prop_map(|(t, k)| Act::Remove(t, k)),
        3 => (t.clone(), key(), proptest::option::of(val()), proptest::option::of(val()))
            .prop_map(|(t, k, o, n)| Act::Cas(t, k, o, n)),
        3 => (t.clone(), key(), any::<u8>(), any::<bool>()).prop_map(|(t, k, b, d)| Act::Update(t, k, b, d)),
        4 => (t.clone(), key()).prop_map(|(t, k)| Act::Get(t, k)),
        2 => (t.clone(), key()).prop_map(|(t, k)| Act::Neighbours(t, k)),
        3 => (t.clone(), key(), key(), any::<bool>()).prop_map(|(t, a, b, r)| Act::Range(t, a, b, r)),
        1 => (t.clone(), proptest::collection::vec(0u8..6, 0..2)).prop_map(|(t, p)| Act::Prefix(t, p)),
        1 => t.clone().prop_map(Act::Ends),
        1 => t.clone().prop_map(Act::Len),
        2 => (t.clone(), any::<u8>(), 1u8..60, any::<u8>()).prop_map(|(t, s, n, v)| Act::Fill(t, s, n, v)),
        2 => (t.clone(), any::<u8>(), 1u8..60).prop_map(|(t, s, n)| Act::Clear(t, s, n)),
        3 => (t.clone(), proptest::collection::vec((key(), proptest::option::of(val())), 0..12))
            .prop_map(|(t, ops)| Act::Batch(t, ops)),
        2 => Just(Act::Flush),
        1 => Just(Act::Restart),
        2 => (any::<u64>(), 0u8..4, any::<bool>()).prop_map(|(s, m, p)| Act::Crash(s, m, p)),
    ]
}

fn mode(m: u8) -> CrashMode {
    match m {
        0 => CrashMode::DROP_UNSYNCED,
        1 => CrashMode::RANDOM_WRITES,
        2 => CrashMode::TORN,
        _ => CrashMode::CHAOS,
    }
}

fn config() -> Config {
    Config::new()
        .path("/db")
        .node_max_entries(4)
        .merge_below_entries(2)
        .consolidation_threshold(3)
        .cache_capacity_bytes(16 << 10)
        .flush_every_ms(None)
        .checkpoint_every_ms(None)
        .io_buffer_size_bytes(64 << 10)
        .segment_size_bytes(64 << 10)
        .debug_delay(true)
}

static WRITES: AtomicU64 = AtomicU64::new(0);
static CRASHES: AtomicU64 = AtomicU64::new(0);
static SPLITS: AtomicU64 = AtomicU64::new(0);
static MERGES: AtomicU64 = AtomicU64::new(0);
static BATCHES: AtomicU64 = AtomicU64::new(0);

struct Run {
    sim: SimStorage,
    db: Option<Db>,
    trees: Vec<Tree>,
    model: Model,
    /// Model states since the last durable point (`[0]`: durable).
    history: Vec<Model>,
}

fn fill_key(start: u8, i: u8) -> Vec<u8> {
    vec![start.wrapping_add(i) % 6, i % 6, 1]
}

fn items(it: impl Iterator<Item = bwtree::Result<(Value, Value)>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.map(|r| {
        let (k, v) = r.expect("iteration");
        (k.to_vec(), v.to_vec())
    })
    .collect()
}

fn bounds(a: &[u8], b: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (Bound::Included(lo.to_vec()), Bound::Excluded(hi.to_vec()))
}

impl Run {
    fn open(sim: &SimStorage) -> (Db, Vec<Tree>) {
        let db = config()
            .open_on_storage(Arc::new(sim.clone()))
            .expect("open");
        let mut trees = vec![(*db).clone()];
        for name in ["one", "two"] {
            trees.push(db.open_tree(name).expect("open tree"));
        }
        (db, trees)
    }

    fn wrote(&mut self) {
        WRITES.fetch_add(1, Ordering::Relaxed);
        self.history.push(self.model.clone());
    }

    fn dump(trees: &[Tree]) -> Model {
        trees
            .iter()
            .map(|t| items(t.iter()).into_iter().collect())
            .collect()
    }

    fn tally(&self) {
        if let Some(db) = &self.db {
            let s = db.stats();
            SPLITS.fetch_add(s.splits, Ordering::Relaxed);
            MERGES.fetch_add(s.merges, Ordering::Relaxed);
        }
    }

    fn step(&mut self, act: &Act) -> Result<(), TestCaseError> {
        match act {
            Act::Insert(t, k, v) => {
                let old = self.trees[*t].insert(k, v).unwrap();
                prop_assert_eq!(
                    old.map(|v| v.to_vec()),
                    self.model[*t].insert(k.clone(), v.clone())
                );
                self.wrote();
            }
            Act::Remove(t, k) => {
                let old = self.trees[*t].remove(k).unwrap();
                prop_assert_eq!(old.map(|v| v.to_vec()), self.model[*t].remove(k));
                self.wrote();
            }
            Act::Cas(t, k, o, n) => {
                let r = self.trees[*t]
                    .compare_and_swap(k, o.as_ref(), n.as_ref())
                    .unwrap();
                let cur = self.model[*t].get(k).cloned();
                if cur == *o {
                    prop_assert!(r.is_ok(), "cas should succeed: {:?}", r);
                    match n {
                        Some(n) => self.model[*t].insert(k.clone(), n.clone()),
                        None => self.model[*t].remove(k),
                    };
                    self.wrote();
                } else {
                    let e = r.expect_err("cas should fail");
                    prop_assert_eq!(e.current.map(|v| v.to_vec()), cur);
                }
            }
            Act::Update(t, k, b, d) => {
                let got = self.trees[*t]
                    .update_and_fetch(k, |cur| {
                        if *d {
                            return None;
                        }
                        let mut v = cur.map(<[u8]>::to_vec).unwrap_or_default();
                        v.push(*b);
                        Some(v)
                    })
                    .unwrap();
                let new = if *d {
                    self.model[*t].remove(k);
                    None
                } else {
                    let e = self.model[*t].entry(k.clone()).or_default();
                    e.push(*b);
                    Some(e.clone())
                };
                prop_assert_eq!(got.map(|v| v.to_vec()), new);
                self.wrote();
            }
            Act::Get(t, k) => {
                let got = self.trees[*t].get(k).unwrap().map(|v| v.to_vec());
                prop_assert_eq!(got.as_ref(), self.model[*t].get(k));
                prop_assert_eq!(self.trees[*t].contains_key(k).unwrap(), got.is_some());
            }
            Act::Neighbours(t, k) => {
                let m = &self.model[*t];
                let lt = m.range::<Vec<u8>, _>(..k.clone()).next_back();
                let gt = m
                    .range::<Vec<u8>, _>((Bound::Excluded(k.clone()), Bound::Unbounded))
                    .next();
                let pair = |p: Option<(Value, Value)>| p.map(|(a, b)| (a.to_vec(), b.to_vec()));
                prop_assert_eq!(
                    pair(self.trees[*t].get_lt(k).unwrap()),
                    lt.map(|(a, b)| (a.clone(), b.clone()))
                );
                prop_assert_eq!(
                    pair(self.trees[*t].get_gt(k).unwrap()),
                    gt.map(|(a, b)| (a.clone(), b.clone()))
                );
            }
            Act::Range(t, a, b, rev) => {
                let r = bounds(a, b);
                let want: Vec<_> = self.model[*t]
                    .range(r.clone())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let it = self.trees[*t].range(r);
                let got = if *rev {
                    let mut g = items(it.rev());
                    g.reverse();
                    g
                } else {
                    items(it)
                };
                prop_assert_eq!(got, want);
            }
            Act::Prefix(t, p) => {
                let want: Vec<_> = self.model[*t]
                    .iter()
                    .filter(|(k, _)| k.starts_with(p))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                prop_assert_eq!(items(self.trees[*t].scan_prefix(p)), want);
            }
            Act::Ends(t) => {
                let m = &self.model[*t];
                let pair = |p: Option<(Value, Value)>| p.map(|(a, b)| (a.to_vec(), b.to_vec()));
                prop_assert_eq!(
                    pair(self.trees[*t].first().unwrap()),
                    m.iter().next().map(|(a, b)| (a.clone(), b.clone()))
                );
                prop_assert_eq!(
                    pair(self.trees[*t].last().unwrap()),
                    m.iter().next_back().map(|(a, b)| (a.clone(), b.clone()))
                );
            }
            Act::Len(t) => {
                prop_assert_eq!(self.trees[*t].len().unwrap(), self.model[*t].len());
                prop_assert_eq!(
                    self.trees[*t].is_empty().unwrap(),
                    self.model[*t].is_empty()
                );
            }
            Act::Fill(t, s, n, v) => {
                for i in 0..*n {
                    let k = fill_key(*s, i);
                    let val = vec![*v; usize::from(i % 40)];
                    self.trees[*t].insert(&k, &val).unwrap();
                    self.model[*t].insert(k, val);
                    self.wrote();
                }
            }
            Act::Clear(t, s, n) => {
                for i in 0..*n {
                    let k = fill_key(*s, i);
                    let old = self.trees[*t].remove(&k).unwrap().map(|v| v.to_vec());
                    prop_assert_eq!(old, self.model[*t].remove(&k));
                    self.wrote();
                }
            }
            Act::Batch(t, ops) => {
                let mut b = bwtree::Batch::default();
                for (k, v) in ops {
                    match v {
                        Some(v) => {
                            b.insert(k, v);
                            self.model[*t].insert(k.clone(), v.clone());
                        }
                        None => {
                            b.remove(k);
                            self.model[*t].remove(k);
                        }
                    }
                }
                self.trees[*t].apply_batch(b).unwrap();
                BATCHES.fetch_add(1, Ordering::Relaxed);
                self.wrote(); // one write: all or nothing after a crash
            }
            Act::Flush => {
                self.db.as_ref().unwrap().flush().unwrap();
                self.history = vec![self.model.clone()];
            }
            Act::Restart => {
                self.tally();
                self.trees.clear();
                self.db = None;
                let (db, trees) = Run::open(&self.sim);
                self.db = Some(db);
                self.trees = trees;
                self.history = vec![self.model.clone()];
                prop_assert_eq!(Run::dump(&self.trees), self.model.clone(), "after restart");
            }
            Act::Crash(seed, m, in_place) => self.crash(*seed, *m, *in_place)?,
        }
        Ok(())
    }

    fn crash(&mut self, seed: u64, m: u8, in_place: bool) -> Result<(), TestCaseError> {
        CRASHES.fetch_add(1, Ordering::Relaxed);
        self.tally();
        let db = self.db.take();
        let trees = std::mem::take(&mut self.trees);
        if in_place {
            self.sim.crash(seed, mode(m));
            drop((db, trees)); // its I/O fails: no panic, nothing damaged
        } else {
            let crashed = self.sim.snapshot();
            crashed.crash(seed, mode(m));
            drop((db, trees));
            self.sim = crashed;
        }
        let (db, trees) = Run::open(&self.sim);
        let got = Run::dump(&trees);
        prop_assert!(
            self.history.contains(&got),
            "recovered state is no prefix of the writes since the last flush\n got: {:?}\n durable: {:?}\n newest: {:?}",
            got,
            self.history[0],
            self.history.last()
        );
        self.db = Some(db);
        self.trees = trees;
        self.model = got;
        self.history = vec![self.model.clone()];
        Ok(())
    }
}

fn run(acts: &[Act]) -> Result<(), TestCaseError> {
    let sim = SimStorage::new();
    let (db, trees) = Run::open(&sim);
    let mut r = Run {
        sim,
        db: Some(db),
        trees,
        model: vec![Map::new(); TREES],
        history: vec![vec![Map::new(); TREES]],
    };
    for act in acts {
        r.step(act)?;
    }
    prop_assert_eq!(Run::dump(&r.trees), r.model.clone(), "at the end");
    r.step(&Act::Restart)?;
    r.tally();
    Ok(())
}

#[test]
fn bwtree_matches_btreemap_across_restarts_and_crashes() {
    let seed = logstore::io::seed_from_env("BWTREE_MODEL_SEED");
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let mut runner = TestRunner::new(PtConfig {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..PtConfig::default()
    });
    let started = std::time::Instant::now();
    if let Err(e) = runner.run(&proptest::collection::vec(act(), 1..200), |acts| run(&acts)) {
        panic!("bwtree model failed (BWTREE_MODEL_SEED={seed}): {e}");
    }
    let [w, c, s, m, b] =
        [&WRITES, &CRASHES, &SPLITS, &MERGES, &BATCHES].map(|a| a.load(Ordering::Relaxed));
    println!(
        "{cases} cases (seed {seed}) in {:.1?}: {w} writes ({b} batches), {c} crashes, {s} splits, {m} merges",
        started.elapsed()
    );
    assert!(
        s > 0 && m > 0 && c > 0,
        "the run exercised splits, merges and crashes"
    );
}
