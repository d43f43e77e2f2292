//! Model test: random allocate / prepend Set-Del / replace / free / evict / atomic group /
//! checkpoint / clean / flush / restart / crash sequences on the simulated storage with `Config::small` (16 KiB
//! cache, 8 KiB segments), so eviction, page-in, consolidation, cleaning and segment reuse
//! happen all the time, checked against a plain `BTreeMap<pid, Map>`.
//!
//! - After every mutation the touched page reads back as the model says.
//! - After a clean restart (`close` + reopen) every page equals the model exactly (and no
//!   other page exists).
//! - After a crash the recovered pages equal the model after some prefix of the mutations
//!   that contains every mutation before the last successful `flush`/`checkpoint`/open, and a
//!   second power loss right after recovery changes nothing.
//! - Resident-byte accounting returns to 0 once every page is evicted.
//!
//! Crashes come in two flavours: power loss on an independent copy of the disk taken at that
//! instant (`SimStorage::snapshot`; the old cache is then dropped onto the old disk: nothing it
//! does afterwards reaches the crashed image, as when the process dies), and power loss in
//! place followed by dropping the cache on the same disk (its I/O fails with `EBADF`; whatever
//! the drop still manages to do must not damage the recovered state).
//!
//! Seeded and shrinkable: `PAGECACHE_MODEL_SEED=<n>` reproduces a run, `PROPTEST_CASES` scales
//! it (default 64).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use logstore::io::{CrashMode, SimStorage};
use pagecache::PageCacheStats;
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, RngSeed, TestRunner};
use radix::Pid;

/// raw pid -> contents.
type Model = BTreeMap<u64, Map>;

const KEYS: u64 = 48;

#[derive(Debug, Clone)]
enum Act {
    Alloc(Vec<(u64, u64)>),
    Set(usize, u64, u64),
    Del(usize, u64),
    /// Replace the page by its own consolidation.
    Consolidate(usize),
    /// Replace the page by a new base.
    ReplaceWith(usize, Vec<(u64, u64)>),
    Free(usize),
    Evict(usize),
    /// `n` Sets over successive pages starting at the index (volume for cleaning/eviction).
    Burst(usize, u8, u64),
    Checkpoint,
    Clean,
    Flush,
    Restart,
    /// seed, mode, in place (else on a snapshot).
    Crash(u64, u8, bool),
    /// Sets (`Some`) and Dels (`None`) on pages by index, staged as one atomic group, then:
    /// 0 commit, 1 abort, 2 drop, 3 checkpoint while staged and commit.
    Group(Vec<(usize, u64, Option<u64>)>, u8),
}

/// Groups committed over the whole suite (not vacuous).
static GROUPS_COMMITTED: AtomicU64 = AtomicU64::new(0);

fn base() -> impl Strategy<Value = Vec<(u64, u64)>> {
    proptest::collection::vec((0..KEYS, any::<u64>()), 0..32)
}

fn act() -> impl Strategy<Value = Act> {
    let idx = any::<usize>();
    prop_oneof![
        5 => base().prop_map(Act::Alloc),
        10 => (idx, 0..KEYS, any::<u64>()).prop_map(|(i, k, v)| Act::Set(i, k, v)),
        4 => (idx, 0..KEYS).prop_map(|(i, k)| Act::Del(i, k)),
        2 => idx.prop_map(Act::Consolidate),
        1 => (idx, base()).prop_map(|(i, b)| Act::ReplaceWith(i, b)),
        2 => idx.prop_map(Act::Free),
        2 => idx.prop_map(Act::Evict),
        3 => (idx, 1u8..64, any::<u64>()).prop_map(|(i, n, v)| Act::Burst(i, n, v)),
        1 => Just(Act::Checkpoint),
        2 => Just(Act::Clean),
        2 => Just(Act::Flush),
        1 => Just(Act::Restart),
        2 => (any::<u64>(), 0u8..4, any::<bool>()).prop_map(|(s, m, p)| Act::Crash(s, m, p)),
        3 => (
            proptest::collection::vec((idx, 0..KEYS, proptest::option::of(any::<u64>())), 1..6),
            0u8..4
        )
            .prop_map(|(ops, outcome)| Act::Group(ops, outcome)),
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

/// Totals over the whole suite, to show the run was not vacuous.
#[derive(Default)]
struct Totals {
    evictions: AtomicU64,
    page_ins: AtomicU64,
    bytes_relocated: AtomicU64,
    consolidations: AtomicU64,
    segments_freed: AtomicU64,
    crashes: AtomicU64,
    crash_prefix_lost: AtomicU64,
    restarts: AtomicU64,
    mutations: AtomicU64,
}

static TOTALS: Totals = Totals {
    evictions: AtomicU64::new(0),
    page_ins: AtomicU64::new(0),
    bytes_relocated: AtomicU64::new(0),
    consolidations: AtomicU64::new(0),
    segments_freed: AtomicU64::new(0),
    crashes: AtomicU64::new(0),
    crash_prefix_lost: AtomicU64::new(0),
    restarts: AtomicU64::new(0),
    mutations: AtomicU64::new(0),
};

fn tally(cache: &Cache) {
    let s: PageCacheStats = cache.stats();
    let add = |c: &AtomicU64, n: u64| c.fetch_add(n, Ordering::Relaxed);
    add(&TOTALS.evictions, s.evictions);
    add(&TOTALS.page_ins, s.page_ins);
    add(&TOTALS.bytes_relocated, s.bytes_relocated);
    add(&TOTALS.consolidations, s.consolidations);
    add(&TOTALS.segments_freed, cache.log().stats().segments_freed);
}

fn pid(raw: u64) -> Pid {
    Pid::new(raw).expect("small pid")
}

/// Every page below `bound` as the cache shows it.
fn dump(cache: &Cache, bound: u64) -> Model {
    (0..bound)
        .filter_map(|raw| contents(cache, pid(raw)).map(|m| (raw, m)))
        .collect()
}

/// The mutations since the last durable point: `states[0]` is the durable state, `states[i]`
/// the state after the i-th mutation since.
struct History {
    states: Vec<Model>,
}

impl History {
    fn durable(model: &Model) -> Self {
        History {
            states: vec![model.clone()],
        }
    }
    fn push(&mut self, model: &Model) {
        TOTALS.mutations.fetch_add(1, Ordering::Relaxed);
        self.states.push(model.clone());
    }
}

struct Run {
    sim: SimStorage,
    cfg: pagecache::Config,
    cache: Option<Cache>,
    model: Model,
    hist: History,
    /// One past the largest pid ever handed out (plus margin when dumping).
    bound: u64,
}

impl Run {
    fn cache(&self) -> &Cache {
        self.cache.as_ref().expect("open")
    }

    fn page(&self, i: usize) -> Option<u64> {
        let n = self.model.len();
        (n > 0).then(|| *self.model.keys().nth(i % n).expect("in range"))
    }

    fn check_page(&self, raw: u64, what: &str) -> Result<(), TestCaseError> {
        let got = contents(self.cache(), pid(raw));
        prop_assert_eq!(
            got.as_ref(),
            self.model.get(&raw),
            "page {} after {}",
            raw,
            what
        );
        Ok(())
    }

    fn mutated(&mut self, raw: u64, what: &str) -> Result<(), TestCaseError> {
        self.hist.push(&self.model);
        self.check_page(raw, what)
    }

    fn set(&mut self, raw: u64, op: Op) -> Result<(), TestCaseError> {
        let cache = self.cache.as_ref().expect("open");
        let guard = crossbeam_epoch::pin();
        let view = cache.read(pid(raw), &guard).unwrap().expect("page exists");
        let r = cache.prepend(op.clone(), &view, &guard).unwrap();
        prop_assert!(r.is_ok(), "single-threaded prepend lost a race");
        drop(guard);
        let m = self.model.get_mut(&raw).expect("page in model");
        *m = <MapModel as pagecache::PageModel>::consolidate(m, &[&op]);
        self.mutated(raw, "prepend")
    }

    /// Stages `ops` as one group (pages read back unchanged while staged), then ends it per
    /// `outcome` (see [`Act::Group`]). A commit is one mutation: crashes keep all or none.
    fn group(
        &mut self,
        ops: &[(usize, u64, Option<u64>)],
        outcome: u8,
    ) -> Result<(), TestCaseError> {
        if self.model.is_empty() {
            return Ok(());
        }
        let guard = crossbeam_epoch::pin();
        let mut group = self.cache().begin_group(&guard);
        let mut staged = Vec::new();
        for &(i, k, v) in ops {
            let raw = self.page(i).expect("nonempty model");
            let op = v.map_or(Op::Del(k), |v| Op::Set(k, v));
            let view = self
                .cache()
                .read(pid(raw), &guard)
                .unwrap()
                .expect("page exists");
            match group.stage(op.clone(), &view) {
                Ok(r) => prop_assert!(r.is_ok(), "single-threaded stage lost a race"),
                Err(pagecache::Error::FragmentTooLarge { .. }) => break,
                Err(e) => return Err(TestCaseError::fail(format!("stage: {e}"))),
            }
            staged.push((raw, op));
        }
        for (raw, _) in &staged {
            self.check_page(*raw, "staging (invisible)")?;
        }
        match outcome {
            1 => group.abort().unwrap(),
            2 => drop(group),
            _ => {
                if outcome == 3 {
                    self.cache().checkpoint().unwrap();
                    self.hist = History::durable(&self.model);
                }
                group.commit().unwrap();
                GROUPS_COMMITTED.fetch_add(1, Ordering::Relaxed);
                for (raw, op) in &staged {
                    let m = self.model.get_mut(raw).expect("page in model");
                    *m = <MapModel as pagecache::PageModel>::consolidate(m, &[op]);
                }
                self.hist.push(&self.model);
            }
        }
        drop(guard);
        for (raw, _) in &staged {
            self.check_page(*raw, "the group's end")?;
        }
        Ok(())
    }

    fn full_check(&self, what: &str) -> Result<(), TestCaseError> {
        let got = dump(self.cache(), self.bound + 8);
        prop_assert_eq!(&got, &self.model, "all pages after {}", what);
        Ok(())
    }

    fn reopen(&mut self) {
        self.cache = Some(open_sim(&self.sim, &self.cfg));
    }

    fn close(&mut self) -> Result<(), TestCaseError> {
        let cache = self.cache.take().expect("open");
        tally(&cache);
        prop_assert!(cache.background_error().is_none());
        cache
            .close()
            .map_err(|e| TestCaseError::fail(format!("close: {e}")))
    }

    fn step(&mut self, act: &Act) -> Result<(), TestCaseError> {
        match act {
            Act::Alloc(kv) => {
                let base: Map = kv.iter().copied().collect();
                let guard = crossbeam_epoch::pin();
                let p = self.cache().allocate(base.clone(), &guard).unwrap();
                drop(guard);
                prop_assert!(
                    !self.model.contains_key(&p.get()),
                    "allocate returned live page {}",
                    p.get()
                );
                self.model.insert(p.get(), base);
                self.bound = self.bound.max(p.get() + 1);
                self.mutated(p.get(), "allocate")?;
            }
            Act::Set(i, k, v) => {
                if let Some(raw) = self.page(*i) {
                    self.set(raw, Op::Set(*k, *v))?;
                }
            }
            Act::Del(i, k) => {
                if let Some(raw) = self.page(*i) {
                    self.set(raw, Op::Del(*k))?;
                }
            }
            Act::Burst(i, n, v) => {
                for j in 0..usize::from(*n) {
                    if let Some(raw) = self.page(i.wrapping_add(j)) {
                        let k = (v.wrapping_add(j as u64)) % KEYS;
                        self.set(raw, Op::Set(k, v.rotate_left(j as u32)))?;
                    }
                }
            }
            Act::Consolidate(i) | Act::ReplaceWith(i, _) => {
                if let Some(raw) = self.page(*i) {
                    let cache = self.cache.as_ref().expect("open");
                    let guard = crossbeam_epoch::pin();
                    let view = cache.read(pid(raw), &guard).unwrap().expect("page exists");
                    let new: Map = match act {
                        Act::ReplaceWith(_, kv) => kv.iter().copied().collect(),
                        _ => view.consolidate(),
                    };
                    let r = cache.replace(new.clone(), &view, &guard).unwrap();
                    prop_assert!(r.is_ok(), "single-threaded replace lost a race");
                    drop(guard);
                    self.model.insert(raw, new);
                    self.mutated(raw, "replace")?;
                }
            }
            Act::Free(i) => {
                if let Some(raw) = self.page(*i) {
                    let cache = self.cache.as_ref().expect("open");
                    let guard = crossbeam_epoch::pin();
                    let view = cache.read(pid(raw), &guard).unwrap().expect("page exists");
                    let r = cache.free(&view, &guard).unwrap();
                    prop_assert!(r.is_ok(), "single-threaded free lost a race");
                    drop(guard);
                    self.model.remove(&raw);
                    self.mutated(raw, "free")?;
                }
            }
            Act::Evict(i) => {
                if let Some(raw) = self.page(*i) {
                    let cache = self.cache();
                    let guard = crossbeam_epoch::pin();
                    let view = cache.read(pid(raw), &guard).unwrap().expect("page exists");
                    cache.evict(&view, &guard).unwrap();
                    drop(guard);
                    self.check_page(raw, "evict")?;
                }
            }
            Act::Checkpoint => {
                self.cache().checkpoint().unwrap();
                self.hist = History::durable(&self.model);
            }
            Act::Flush => {
                self.cache().flush().unwrap();
                self.hist = History::durable(&self.model);
            }
            Act::Clean => {
                self.cache().clean().unwrap();
            }
            Act::Restart => {
                TOTALS.restarts.fetch_add(1, Ordering::Relaxed);
                self.close()?;
                self.reopen();
                self.hist = History::durable(&self.model);
                self.full_check("restart")?;
            }
            Act::Group(ops, outcome) => self.group(ops, *outcome)?,
            Act::Crash(seed, m, in_place) => {
                TOTALS.crashes.fetch_add(1, Ordering::Relaxed);
                let cache = self.cache.take().expect("open");
                tally(&cache);
                if *in_place {
                    self.sim.crash(*seed, mode(*m));
                    drop(cache); // its I/O fails with EBADF: no panic, nothing damaged
                } else {
                    let crashed = self.sim.snapshot();
                    crashed.crash(*seed, mode(*m));
                    drop(cache); // onto the old disk, which we forget
                    self.sim = crashed;
                }
                let cache = PageCache::open_with_storage(
                    self.cfg.clone(),
                    std::sync::Arc::new(self.sim.clone()),
                )
                .map_err(|e| TestCaseError::fail(format!("recovery after crash: {e}")))?;
                let got = dump(&cache, self.bound + 8);
                // The newest matching prefix state (states can repeat).
                let Some(j) = self.hist.states.iter().rposition(|s| *s == got) else {
                    let durable = &self.hist.states[0];
                    let newest = self.hist.states.last().expect("nonempty");
                    return Err(TestCaseError::fail(format!(
                        "recovered state is no prefix state since the last durable point \
                         ({} candidates)\n got: {got:?}\n durable: {durable:?}\n newest: \
                         {newest:?}",
                        self.hist.states.len()
                    )));
                };
                if j + 1 < self.hist.states.len() {
                    TOTALS.crash_prefix_lost.fetch_add(1, Ordering::Relaxed);
                }
                tally(&cache);
                drop(cache);
                // Recovery made its result durable: another power loss changes nothing.
                self.sim.crash(seed.wrapping_add(1), mode(*m));
                self.reopen();
                let again = dump(self.cache(), self.bound + 8);
                prop_assert_eq!(&again, &got, "second recovery differs");
                self.model = got;
                self.hist = History::durable(&self.model);
            }
        }
        Ok(())
    }
}

use pagecache::PageCache;

fn run(acts: &[Act]) -> Result<(), TestCaseError> {
    let sim = SimStorage::new();
    let cfg = small_config();
    let mut r = Run {
        cache: Some(open_sim(&sim, &cfg)),
        sim,
        cfg,
        model: Model::new(),
        hist: History::durable(&Model::new()),
        bound: 0,
    };
    for act in acts {
        r.step(act)?;
    }
    r.full_check("the last operation")?;
    // Accounting: with every page evicted nothing is resident.
    {
        let cache = r.cache();
        let guard = crossbeam_epoch::pin();
        for &raw in r.model.keys() {
            let view = cache.read(pid(raw), &guard).unwrap().expect("page exists");
            prop_assert!(cache.evict(&view, &guard).unwrap(), "evict page {}", raw);
        }
        drop(guard);
        let s = cache.stats();
        prop_assert_eq!(
            s.resident_bytes,
            0,
            "resident bytes with every page evicted"
        );
    }
    r.close()?;
    r.reopen();
    r.full_check("the final restart")?;
    r.close()
}

#[test]
fn pagecache_matches_model_across_restarts_and_crashes() {
    let seed = logstore::io::seed_from_env("PAGECACHE_MODEL_SEED");
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let mut runner = TestRunner::new(PtConfig {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..PtConfig::default()
    });
    let acts = proptest::collection::vec(act(), 1..300);
    let started = std::time::Instant::now();
    if let Err(e) = runner.run(&acts, |acts| run(&acts)) {
        panic!("page cache model failed (PAGECACHE_MODEL_SEED={seed}): {e}");
    }
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let t = &TOTALS;
    eprintln!(
        "{cases} cases in {:.1?}: {} mutations, {} restarts, {} crashes ({} lost an unflushed \
         suffix), {} evictions, {} page-ins, {} consolidations, {} bytes relocated, {} segments freed",
        started.elapsed(),
        get(&t.mutations),
        get(&t.restarts),
        get(&t.crashes),
        get(&t.crash_prefix_lost),
        get(&t.evictions),
        get(&t.page_ins),
        get(&t.consolidations),
        get(&t.bytes_relocated),
        get(&t.segments_freed),
    );
    // Not vacuous: the small configuration made the cache evict, page in and clean.
    assert!(get(&t.evictions) > 0, "no eviction in the whole run");
    assert!(get(&t.page_ins) > 0, "no page-in in the whole run");
    assert!(get(&t.bytes_relocated) > 0, "no cleaning in the whole run");
    assert!(
        get(&t.segments_freed) > 0,
        "no segment reuse in the whole run"
    );
    assert!(get(&t.crashes) > 0, "no crash in the whole run");
    let groups = GROUPS_COMMITTED.load(Ordering::Relaxed);
    eprintln!("{groups} atomic groups committed");
    assert!(groups > 0, "no group committed in the whole run");
}
