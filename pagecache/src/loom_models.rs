//! Loom models of the slot protocol: the functions of `chain.rs` and `node::retire` racing on
//! one page, with fake disk pointers instead of a log (the log's I/O threads cannot run under
//! loom; its reserve/complete/abort brackets each CAS and changes nothing about the slot).
//!
//! Run: `RUSTFLAGS="--cfg loom --cfg crossbeam_loom --cfg crossbeam_sanitize"
//! LOOM_MAX_PREEMPTIONS=2 cargo test --release -p pagecache --lib loom_models`. crossbeam-epoch
//! is modelled (its `loom` feature plus `--cfg crossbeam_loom`); `crossbeam_sanitize` makes its
//! bags tiny so retired chains are really dropped inside the models.
//!
//! Every node body is a [`Tracked`] value registered in a [`Shadow`]: a body dropped twice
//! panics, a pinned reader asserts that the bodies of the view it holds are not dropped, a
//! losing page-in copy must be dropped at once, and each model ends by dropping the resident
//! chain. Retired chains are dropped by the epoch, which under loom drains fully only when the
//! execution tears its collector down (a finished loom thread's epoch participant keeps the
//! global epoch from advancing; seen with crossbeam-epoch 0.9.21 / loom 0.7.2), so "no leak,
//! no double free" is checked over all executions of a model: bodies made == bodies dropped
//! and chains retired == retired chains dropped ([`Totals`]).
//! The shadow keeps its truth in std atomics (loom runs one modelled thread at a time, so they
//! see the true order, and they survive the execution's teardown). Loom explores only orders
//! of accesses it can see, so every drop during an execution also stores to a loom atomic and
//! every liveness check loads it first: without that, loom treats "free the chain" and "read
//! the chain" as independent and never tries the free between a reader's pin and its check.

// std atomics on purpose: see the module comment.
use std::sync::atomic::{
    AtomicBool as StdAtomicBool, AtomicU8 as StdAtomicU8, AtomicUsize as StdAtomicUsize,
    Ordering as StdOrdering,
};
use std::sync::Arc as StdArc;

use crossbeam_epoch::{self as epoch, Guard};
use logstore::DiskPtr;
use loom::sync::atomic::AtomicU8;
use loom::sync::Arc;
use loom::thread;
use radix::{Pid, PidAllocator, RadixTable, Slot, SlotState, SlotWord};

use crate::chain;
use crate::group::GroupState;
use crate::inner::view_of;
use crate::location::Location;
use crate::model::PageModel;
use crate::node::{self, Node};
use crate::sync::Ordering;
use crate::view::{Fragment, PageView};

const UNUSED: u8 = 0;
const LIVE: u8 = 1;
const DROPPED: u8 = 2;
const BODIES: usize = 8;

/// Counts over every execution of one model (each model has its own static).
#[derive(Debug)]
struct Totals {
    made: StdAtomicUsize,
    dropped: StdAtomicUsize,
    retired: StdAtomicUsize,
    chains_dropped: StdAtomicUsize,
}

impl Totals {
    const fn new() -> Totals {
        Totals {
            made: StdAtomicUsize::new(0),
            dropped: StdAtomicUsize::new(0),
            retired: StdAtomicUsize::new(0),
            chains_dropped: StdAtomicUsize::new(0),
        }
    }

    /// After `loom::model` returned: every execution's collector was torn down, so every body
    /// made was dropped and every retired chain was dropped, exactly once.
    fn assert_balanced(&self) {
        let get = |c: &StdAtomicUsize| c.load(StdOrdering::Relaxed);
        assert!(get(&self.retired) > 0, "the model never retired a chain");
        assert_eq!(
            get(&self.made),
            get(&self.dropped),
            "bodies leaked: {self:?}"
        );
        assert_eq!(
            get(&self.retired),
            get(&self.chains_dropped),
            "retired chains leaked: {self:?}"
        );
    }
}

/// What one execution checks its bodies against.
#[derive(Debug)]
struct Shadow {
    bodies: [StdAtomicU8; BODIES],
    /// Loom-visible mirror of drops while the execution runs (see the module comment).
    visible: [AtomicU8; BODIES],
    /// Cleared when the model body returns; the teardown's drops skip `visible`.
    in_model: StdAtomicBool,
    totals: &'static Totals,
}

impl Shadow {
    fn new(totals: &'static Totals) -> StdArc<Shadow> {
        StdArc::new(Shadow {
            bodies: Default::default(),
            visible: std::array::from_fn(|_| AtomicU8::new(UNUSED)),
            in_model: StdAtomicBool::new(true),
            totals,
        })
    }

    /// A new body `id` (each id is made once per execution) holding `val`.
    fn make(self: &StdArc<Self>, id: usize, val: u64) -> Tracked {
        let was = self.bodies[id].swap(LIVE, StdOrdering::Relaxed);
        assert_eq!(was, UNUSED, "body {id} made twice");
        self.totals.made.fetch_add(1, StdOrdering::Relaxed);
        Tracked {
            id,
            val,
            shadow: Some(StdArc::clone(self)),
        }
    }

    fn assert_live(&self, id: usize) {
        // Relaxed: only a scheduling point for loom; the std state below is the truth.
        let _ = self.visible[id].load(Ordering::Relaxed);
        let state = self.bodies[id].load(StdOrdering::Relaxed);
        assert_eq!(
            state, LIVE,
            "body {id} was dropped while a pinned reader holds it"
        );
    }
}

/// A node body: a value plus its identity in the shadow.
#[derive(Debug)]
struct Tracked {
    id: usize,
    val: u64,
    shadow: Option<StdArc<Shadow>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(shadow) = &self.shadow {
            let was = shadow.bodies[self.id].swap(DROPPED, StdOrdering::Relaxed);
            assert_eq!(was, LIVE, "body {} dropped twice", self.id);
            shadow.totals.dropped.fetch_add(1, StdOrdering::Relaxed);
            if shadow.in_model.load(StdOrdering::Relaxed) {
                // Relaxed: only makes the drop visible to loom (see the module comment).
                shadow.visible[self.id].store(DROPPED, Ordering::Relaxed);
            }
        }
    }
}

impl bincode::Encode for Tracked {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.val.encode(e)
    }
}

impl<C> bincode::Decode<C> for Tracked {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(Tracked {
            id: usize::MAX,
            val: u64::decode(d)?,
            shadow: None,
        })
    }
}

/// The page model of the models: a page's value is the sum of its bodies' values.
struct Sum;

impl PageModel for Sum {
    type Base = Tracked;
    type Delta = Tracked;

    fn base_heap_bytes(_: &Tracked) -> usize {
        0
    }

    fn delta_heap_bytes(_: &Tracked) -> usize {
        0
    }

    fn consolidate(base: &Tracked, deltas: &[&Tracked]) -> Tracked {
        Tracked {
            id: usize::MAX,
            val: base.val + deltas.iter().map(|d| d.val).sum::<u64>(),
            shadow: None,
        }
    }
}

type View<'g> = PageView<'g, Sum>;

/// A fake pointer to the fragment record of body `id`.
fn disk(id: usize) -> DiskPtr {
    let at = (id as u64 + 1) * 4096;
    let mut b = [0u8; DiskPtr::ENCODED_LEN];
    b[0..8].copy_from_slice(&at.to_le_bytes()); // LSN, agreeing with the offset
    b[8..16].copy_from_slice(&at.to_le_bytes());
    b[16..20].copy_from_slice(&64u32.to_le_bytes());
    DiskPtr::from_bytes(&b).expect("a well-formed pointer")
}

fn location_word(ptr: &DiskPtr) -> u64 {
    Location::of(ptr)
        .expect("model offsets are small")
        .to_word()
}

fn pid(raw: u64) -> Pid {
    Pid::new(raw).expect("model ids are small")
}

/// The chain the slot holds, if it is in memory.
fn load_view<'g>(slot: &Slot, pid: Pid, guard: &'g Guard) -> Option<View<'g>> {
    let word = slot.load();
    matches!(word.state(), SlotState::InMemory(_)).then(|| view_of(pid, word, guard))
}

fn value(view: &View<'_>) -> u64 {
    view.iter()
        .map(|f| match f {
            Fragment::Base(b) | Fragment::Delta(b) => b.val,
        })
        .sum()
}

fn ids(view: &View<'_>) -> Vec<usize> {
    view.nodes()
        .map(|n| match &n.body {
            node::Body::Base(b) | node::Body::Delta(b) => b.id,
        })
        .collect()
}

/// Publishes a completed lone base into a free slot (as `allocate` does).
fn install_base(slot: &Slot, shadow: &StdArc<Shadow>, id: usize, val: u64) {
    let node = Node::<Sum>::base(shadow.make(id, val), disk(id), 1);
    node.mark_completed();
    slot.try_replace(SlotWord::FREE, SlotWord::in_memory(Box::into_raw(node)))
        .expect("the slot is free");
}

/// Retires the chain of `view`, which the caller's CAS just removed from its slot.
fn retire_view(shadow: &StdArc<Shadow>, view: &View<'_>, guard: &Guard) {
    let totals = shadow.totals;
    totals.retired.fetch_add(1, StdOrdering::Relaxed);
    // SAFETY: the caller's CAS removed this chain from its slot, so nobody else retires it, and
    // every chain in these models was published from `Box::into_raw`.
    unsafe {
        node::retire(view.head_raw(), guard, move || {
            totals.chains_dropped.fetch_add(1, StdOrdering::Relaxed);
        });
    }
}

/// After every thread joined: drops the resident chain (the epoch drops the retired ones, see
/// the module comment).
fn finish(slot: &Slot, shadow: &Shadow) {
    let word = slot.load();
    if let Some(head) = word.as_ptr::<Node<Sum>>() {
        slot.try_replace(word, SlotWord::FREE)
            .expect("no thread is left");
        // SAFETY: all threads joined and the slot no longer holds the chain: it is ours alone.
        drop(unsafe { Box::from_raw(head) });
    }
    shadow.in_model.store(false, StdOrdering::Relaxed);
}

/// A pinned prepender's attempt: one delta worth 1 (body `id`) on what it finds resident.
/// Its view stays intact while it is pinned, whoever wins; a loser gets its own delta back.
fn prepend_once(slot: &Slot, p: Pid, shadow: &StdArc<Shadow>, id: usize) -> bool {
    let guard = epoch::pin();
    let Some(view) = load_view(slot, p, &guard) else {
        return false;
    };
    let held = ids(&view);
    let won = match chain::try_install_delta(slot, &view, shadow.make(id, 1), disk(id), &guard) {
        Ok(mine) => {
            mine.head.mark_completed();
            true
        }
        Err(back) => {
            assert_eq!(back.id, id, "a loser gets its own delta back");
            false
        }
    };
    for id in held {
        shadow.assert_live(id);
    }
    won
}

/// Evicts `view` if it is a lone completed base; retires its chain on success.
fn evict_if_lone(slot: &Slot, view: &View<'_>, shadow: &StdArc<Shadow>, guard: &Guard) -> bool {
    if view.len() > 1 || !view.head.is_completed() {
        return false;
    }
    let word = location_word(&view.head.disk());
    if !chain::try_evict(slot, view, word) {
        return false;
    }
    retire_view(shadow, view, guard);
    true
}

/// (a) One page, a lone completed base worth 0. A second thread prepends a delta worth 1; the
/// main thread, pinned throughout, replaces what it read with a base worth (its value + 10)
/// and then evicts the page if it is a lone completed base. Exactly the winners' effects are
/// visible at the end, losers get their own delta/base back, neither thread's view is dropped
/// while it is pinned, and every chain that left the slot is dropped exactly once.
#[test]
fn prepend_replace_and_evict_race_on_one_page() {
    static TOTALS: Totals = Totals::new();
    loom::model(|| {
        let shadow = Shadow::new(&TOTALS);
        let table = Arc::new(RadixTable::new());
        let p = pid(0);
        install_base(table.slot(p), &shadow, 0, 0);

        let prepender = {
            let (table, shadow) = (Arc::clone(&table), StdArc::clone(&shadow));
            thread::spawn(move || prepend_once(table.get(p).expect("installed"), p, &shadow, 1))
        };

        let slot = table.get(p).expect("installed");
        let (mut replaced, mut evicted) = (false, None);
        let guard = epoch::pin();
        if let Some(view) = load_view(slot, p, &guard) {
            let held = ids(&view);
            let before = value(&view);
            let base = shadow.make(2, before + 10);
            let current = match chain::try_replace_chain(slot, &view, base, disk(2), &guard) {
                Ok(mine) => {
                    mine.head.mark_completed();
                    retire_view(&shadow, &view, &guard);
                    replaced = true;
                    Some(mine)
                }
                Err(back) => {
                    assert_eq!(back.id, 2, "a loser gets its own base back");
                    load_view(slot, p, &guard)
                }
            };
            if let Some(current) = current {
                if evict_if_lone(slot, &current, &shadow, &guard) {
                    evicted = Some((location_word(&current.head.disk()), value(&current)));
                }
            }
            for id in held {
                shadow.assert_live(id);
            }
            assert_eq!(
                value(&view),
                before,
                "a published chain changed under a reader"
            );
        }
        drop(guard);

        let prepended = prepender.join().unwrap();
        let expected = u64::from(prepended) + 10 * u64::from(replaced);
        let guard = epoch::pin();
        let now = match slot.load().state() {
            SlotState::InMemory(_) => value(&load_view(slot, p, &guard).unwrap()),
            SlotState::OnDisk(word) => {
                let (evicted_word, val) = evicted.expect("only the main thread evicts");
                assert_eq!(word, evicted_word);
                val
            }
            other => panic!("the page vanished: {other:?}"),
        };
        drop(guard);
        assert_eq!(
            now, expected,
            "prepend won: {prepended}, replace won: {replaced}, evicted: {evicted:?}"
        );
        finish(slot, &shadow);
    });
    TOTALS.assert_balanced();
}

static PAGE_INS_RACED: StdAtomicUsize = StdAtomicUsize::new(0);

/// (b) One evicted page (value 0 at `disk(0)`). A second thread pages it in (copy 3) and
/// prepends a delta worth 1; the main thread pages it in (copy 4) and evicts the page if it is
/// a lone completed base. At most one copy is resident per eviction (the slot word comes back
/// to the same location, so a later page-in may win again), a losing copy is dropped
/// unpublished at once, views stay intact while pinned, and nothing leaks or is freed twice.
#[test]
fn page_in_races_eviction_and_prepend() {
    static TOTALS: Totals = Totals::new();
    PAGE_INS_RACED.store(0, StdOrdering::Relaxed);
    loom::model(|| {
        let shadow = Shadow::new(&TOTALS);
        let table = Arc::new(RadixTable::new());
        let p = pid(0);
        let on_disk = SlotWord::on_disk(location_word(&disk(0)));
        table
            .slot(p)
            .try_replace(SlotWord::FREE, on_disk)
            .expect("a fresh slot is free");
        let installs = StdArc::new(StdAtomicUsize::new(0));

        let first = {
            let (table, shadow, installs) = (
                Arc::clone(&table),
                StdArc::clone(&shadow),
                StdArc::clone(&installs),
            );
            thread::spawn(move || {
                let slot = table.get(p).expect("installed");
                let guard = epoch::pin();
                let view = try_page_in_once(slot, p, on_disk, &shadow, 3, &installs, &guard)?;
                let held = ids(&view);
                let delta = shadow.make(5, 1);
                let won = match chain::try_install_delta(slot, &view, delta, disk(5), &guard) {
                    Ok(mine) => {
                        mine.head.mark_completed();
                        true
                    }
                    Err(back) => {
                        assert_eq!(back.id, 5, "a loser gets its own delta back");
                        false
                    }
                };
                for id in held {
                    shadow.assert_live(id);
                }
                Some(won)
            })
        };

        let slot = table.get(p).expect("installed");
        let mut evictions = 0;
        let guard = epoch::pin();
        if let Some(view) = try_page_in_once(slot, p, on_disk, &shadow, 4, &installs, &guard) {
            let held = ids(&view);
            if evict_if_lone(slot, &view, &shadow, &guard) {
                let now = slot.load();
                assert!(
                    now == on_disk || now.as_ptr::<Node<Sum>>().is_some(),
                    "a copy is evicted to its own location: {now:?}"
                );
                evictions += 1;
            }
            for id in held {
                shadow.assert_live(id);
            }
        }
        drop(guard);

        let prepended = first.join().unwrap() == Some(true);
        let installs = installs.load(StdOrdering::Relaxed);
        assert!(
            installs <= 1 + evictions,
            "{installs} copies installed over {evictions} evictions"
        );
        if installs == 2 {
            PAGE_INS_RACED.fetch_add(1, StdOrdering::Relaxed);
        }
        let guard = epoch::pin();
        match slot.load().state() {
            SlotState::InMemory(_) => {
                let view = load_view(slot, p, &guard).unwrap();
                assert_eq!(value(&view), u64::from(prepended));
            }
            SlotState::OnDisk(_) => {
                assert_eq!(slot.load(), on_disk);
                assert!(!prepended, "an evicted page lost a prepended delta");
            }
            other => panic!("the page vanished: {other:?}"),
        }
        drop(guard);
        finish(slot, &shadow);
    });
    TOTALS.assert_balanced();
    assert!(
        PAGE_INS_RACED.load(StdOrdering::Relaxed) > 0,
        "the model never paged in twice around an eviction"
    );
}

/// One page-in attempt as `Inner::read` makes it: if the slot holds `on_disk`, read a copy
/// (body `copy`) and try to install it; otherwise use what is resident.
fn try_page_in_once<'g>(
    slot: &Slot,
    p: Pid,
    on_disk: SlotWord,
    shadow: &StdArc<Shadow>,
    copy: usize,
    installs: &StdAtomicUsize,
    guard: &'g Guard,
) -> Option<View<'g>> {
    let word = slot.load();
    if word != on_disk {
        return load_view(slot, p, guard);
    }
    let base = shadow.make(copy, 0);
    match chain::try_page_in::<Sum>(slot, p, word, base, disk(0), guard) {
        Some(view) => {
            installs.fetch_add(1, StdOrdering::Relaxed);
            Some(view)
        }
        None => {
            let state = shadow.bodies[copy].load(StdOrdering::Relaxed);
            assert_eq!(
                state, DROPPED,
                "a losing copy is dropped unpublished at once"
            );
            None
        }
    }
}

static REUSES_SEEN: StdAtomicUsize = StdAtomicUsize::new(0);

/// (c) A page (base 7 + delta 1) is freed while the main thread reads it; the freer then
/// allocates until it gets the id back and installs a new page there. The pinned reader's view
/// stays intact until it unpins, and its second load never shows the id's next page.
#[test]
fn free_waits_for_a_pinned_reader() {
    static TOTALS: Totals = Totals::new();
    REUSES_SEEN.store(0, StdOrdering::Relaxed);
    loom::model(|| {
        let shadow = Shadow::new(&TOTALS);
        let table = Arc::new(RadixTable::new());
        let alloc = Arc::new(PidAllocator::new());
        let p = alloc.allocate();
        let slot = table.slot(p);
        install_base(slot, &shadow, 0, 7);
        {
            let guard = epoch::pin();
            let view = load_view(slot, p, &guard).unwrap();
            let delta = shadow.make(1, 1);
            let mine = chain::try_install_delta(slot, &view, delta, disk(1), &guard).unwrap();
            mine.head.mark_completed();
        }

        let freer = {
            let (table, alloc, shadow) = (
                Arc::clone(&table),
                Arc::clone(&alloc),
                StdArc::clone(&shadow),
            );
            thread::spawn(move || {
                let slot = table.get(p).expect("installed");
                {
                    let guard = epoch::pin();
                    let view = load_view(slot, p, &guard).expect("nobody else frees");
                    assert!(chain::try_free(slot, &view), "nobody else changes the page");
                    retire_view(&shadow, &view, &guard);
                    alloc.free(p, &guard);
                }
                for _ in 0..3 {
                    epoch::pin().flush();
                    if alloc.allocate() == p {
                        install_base(slot, &shadow, 2, 100);
                        REUSES_SEEN.fetch_add(1, StdOrdering::Relaxed);
                        return;
                    }
                }
            })
        };

        let guard = epoch::pin();
        if let Some(view) = load_view(slot, p, &guard) {
            let held = ids(&view);
            if held.contains(&2) {
                // Pinned after the free and the reuse: the new page.
                assert_eq!(value(&view), 100);
            } else {
                assert_eq!(held, [1, 0]);
                let again = slot.load();
                assert!(
                    again == view.word || again.is_free(),
                    "id reused while a reader pinned before the free holds it: {again:?}"
                );
                for id in held {
                    shadow.assert_live(id);
                }
                assert_eq!(value(&view), 8);
            }
        }
        drop(guard);
        freer.join().unwrap();
        finish(slot, &shadow);
    });
    TOTALS.assert_balanced();
    assert!(
        REUSES_SEEN.load(StdOrdering::Relaxed) > 0,
        "the model never exercised reuse"
    );
}

/// Two pages, each a lone completed base worth 0 (bodies 0 and 1).
fn two_pages(shadow: &StdArc<Shadow>) -> Arc<RadixTable> {
    let table = Arc::new(RadixTable::new());
    install_base(table.slot(pid(0)), shadow, 0, 0);
    install_base(table.slot(pid(1)), shadow, 1, 0);
    table
}

/// Stages a delta worth 10 (body `id`) on page `p` for `group`, re-reading once if a prepend
/// got there first (the main thread prepends at most once). Returns the staged view and the
/// word the page held below it.
fn stage_on<'g>(
    slot: &Slot,
    p: Pid,
    group: &StdArc<GroupState>,
    delta: Tracked,
    guard: &'g Guard,
) -> (View<'g>, SlotWord) {
    let mut delta = delta;
    loop {
        let view = load_view(slot, p, guard).expect("resident");
        match chain::try_stage(slot, &view, delta, group, guard) {
            Ok(staged) => {
                assert!(staged.head_is_staged(), "a staged delta is invisible");
                assert_eq!(value(&staged), value(&view));
                return (staged, view.word);
            }
            Err(back) => delta = back,
        }
    }
}

/// The main thread of the group models: reads page 0 then page 1 and checks all-or-nothing
/// (values are 10 per group delta plus 1 per prepend, and only page 0 gets the prepend), reads
/// the record pointer of every visible group node, then tries one prepend (body 4, worth 1) on
/// page 0 with the view it read: refused if that view hid a staged head. Returns whether the
/// prepend won.
fn read_both_then_prepend(table: &RadixTable, shadow: &StdArc<Shadow>, record: DiskPtr) -> bool {
    let guard = epoch::pin();
    let (a, b) = (table.get(pid(0)).unwrap(), table.get(pid(1)).unwrap());
    let va = load_view(a, pid(0), &guard).expect("resident");
    let vb = load_view(b, pid(1), &guard).expect("resident");
    let (seen_a, seen_b) = (value(&va) >= 10, value(&vb) >= 10);
    assert!(
        !seen_a || seen_b,
        "page 0 shows the group and page 1, read after it, does not"
    );
    for n in va.nodes().chain(vb.nodes()) {
        if n.group().is_some() {
            assert_eq!(n.disk(), record, "a visible group node has its record");
        }
    }
    let held = ids(&va);
    let won = match chain::try_install_delta(a, &va, shadow.make(4, 1), disk(4), &guard) {
        Ok(mine) => {
            assert!(!va.head_is_staged(), "a prepend built on a staged head");
            mine.head.mark_completed();
            true
        }
        Err(back) => {
            assert_eq!(back.id, 4, "a loser gets its own delta back");
            false
        }
    };
    for id in held.into_iter().chain(ids(&vb)) {
        shadow.assert_live(id);
    }
    won
}

/// After every thread joined: drops both pages' resident chains.
fn finish_both(table: &RadixTable, shadow: &Shadow) {
    let a = table.get(pid(0)).unwrap();
    let b = table.get(pid(1)).unwrap();
    for slot in [a, b] {
        let word = slot.load();
        let head = word.as_ptr::<Node<Sum>>().expect("resident");
        slot.try_replace(word, SlotWord::FREE)
            .expect("no thread is left");
        // SAFETY: all threads joined and the slot no longer holds the chain: it is ours alone.
        drop(unsafe { Box::from_raw(head) });
    }
    shadow.in_model.store(false, StdOrdering::Relaxed);
}

/// (d) A group stages a delta worth 10 on each of two pages and commits (record pointer, then
/// the Release flip); the main thread reads page 0 then page 1 and must see the group on both
/// or on neither as far as order allows (page 1 is read later, so "page 0 yes, page 1 no" is
/// the violation), finds the record pointer on every visible group node, and races a prepend
/// on page 0 that must be refused while its view hides the staged head. At the end both pages
/// hold the group, and page 0 the prepend if it won.
#[test]
fn group_commit_is_all_or_nothing_against_a_reader_and_a_prepend() {
    static TOTALS: Totals = Totals::new();
    loom::model(|| {
        let shadow = Shadow::new(&TOTALS);
        let table = two_pages(&shadow);
        let record = disk(7);
        let committer = {
            let (table, shadow) = (Arc::clone(&table), StdArc::clone(&shadow));
            thread::spawn(move || {
                let guard = epoch::pin();
                let group = StdArc::new(GroupState::staged());
                for (raw, id) in [(0, 2), (1, 3)] {
                    let slot = table.get(pid(raw)).unwrap();
                    stage_on(slot, pid(raw), &group, shadow.make(id, 10), &guard);
                }
                group.publish(record, 2);
            })
        };
        let prepended = read_both_then_prepend(&table, &shadow, record);
        committer.join().unwrap();
        let guard = epoch::pin();
        let a = load_view(table.get(pid(0)).unwrap(), pid(0), &guard).unwrap();
        let b = load_view(table.get(pid(1)).unwrap(), pid(1), &guard).unwrap();
        assert_eq!(value(&a), 10 + u64::from(prepended));
        assert_eq!(value(&b), 10);
        drop(guard);
        finish_both(&table, &shadow);
        // Nothing left a slot for good, so nothing was retired; count one so the totals check
        // applies (every body made is dropped by `finish_both`).
        TOTALS.retired.fetch_add(1, StdOrdering::Relaxed);
        TOTALS.chains_dropped.fetch_add(1, StdOrdering::Relaxed);
    });
    TOTALS.assert_balanced();
}

/// (e) As (d), but the group aborts: each page goes back to the word below its staged delta,
/// and the staged nodes are retired one by one while the main thread may still hold them. The
/// reader never sees the group, the prepend is refused only while its view hid the staged head,
/// and every staged body is dropped exactly once (after the reader unpinned).
#[test]
fn group_abort_restores_both_pages_and_frees_staged_nodes_once() {
    static TOTALS: Totals = Totals::new();
    loom::model(|| {
        let shadow = Shadow::new(&TOTALS);
        let table = two_pages(&shadow);
        let aborter = {
            let (table, shadow) = (Arc::clone(&table), StdArc::clone(&shadow));
            thread::spawn(move || {
                let guard = epoch::pin();
                let group = StdArc::new(GroupState::staged());
                let mut staged = Vec::new();
                for (raw, id) in [(0, 2), (1, 3)] {
                    let slot = table.get(pid(raw)).unwrap();
                    let (view, below) =
                        stage_on(slot, pid(raw), &group, shadow.make(id, 10), &guard);
                    staged.push((slot, view, below));
                }
                group.abort();
                for (slot, view, below) in staged {
                    chain::unstage(slot, view.word, below);
                    let totals = shadow.totals;
                    totals.retired.fetch_add(1, StdOrdering::Relaxed);
                    // SAFETY: `unstage` took this node out of its slot and put the chain below
                    // it back; it is retired once, and was published from `Box::into_raw`.
                    unsafe {
                        node::retire_detached(view.head_raw(), &guard, move || {
                            totals.chains_dropped.fetch_add(1, StdOrdering::Relaxed);
                        });
                    }
                }
            })
        };
        let prepended = read_both_then_prepend(&table, &shadow, disk(7));
        aborter.join().unwrap();
        let guard = epoch::pin();
        let a = load_view(table.get(pid(0)).unwrap(), pid(0), &guard).unwrap();
        let b = load_view(table.get(pid(1)).unwrap(), pid(1), &guard).unwrap();
        assert!(!a.head_is_staged() && !b.head_is_staged());
        assert_eq!(value(&a), u64::from(prepended));
        assert_eq!(value(&b), 0);
        drop(guard);
        finish_both(&table, &shadow);
    });
    TOTALS.assert_balanced();
}
