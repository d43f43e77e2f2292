//! Loom models of the radix table and the page-id allocator.
//!
//! Run (see the README): `RUSTFLAGS="--cfg loom --cfg crossbeam_loom --cfg crossbeam_sanitize"
//! LOOM_MAX_PREEMPTIONS=2 cargo test --release -p radix --lib loom_models`. crossbeam-epoch is
//! itself modelled (its `loom` feature plus `--cfg crossbeam_loom`); `crossbeam_sanitize` makes
//! its bags tiny so deferred closures really run inside the models. Under loom the table's levels
//! have 4 entries, so ids 0..64 exist.

// std atomics on purpose: this counter spans loom executions (loom's would reset per run).
use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};

use crossbeam_epoch as epoch;
use loom::sync::atomic::AtomicBool;
use loom::sync::Arc;
use loom::thread;

use crate::sync::Ordering;
use crate::{Pid, PidAllocator, RadixTable, SlotWord};

fn pid(raw: u64) -> Pid {
    Pid::new(raw).expect("model ids are small")
}

/// Two threads install the same mid and leaf levels while a third reads: one installation wins
/// per level (Drop asserts the count of winners; a loser that leaks its level is caught by the
/// leak-checked Miri run in sanitizers.sh, not here), both writes land in
/// the same leaf, and the reader sees either nothing or a consistent word.
#[test]
fn racing_level_installs_agree() {
    loom::model(|| {
        let table = Arc::new(RadixTable::new());
        let writers: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|raw| {
                let table = Arc::clone(&table);
                thread::spawn(move || {
                    let slot = table.slot(pid(raw));
                    slot.try_replace(SlotWord::FREE, SlotWord::on_disk(raw))
                        .unwrap();
                })
            })
            .collect();
        if let Some(slot) = table.get(pid(1)) {
            let seen = slot.load();
            assert!(
                seen == SlotWord::FREE || seen == SlotWord::on_disk(1),
                "{seen:?}"
            );
        }
        for writer in writers {
            writer.join().unwrap();
        }
        assert_eq!(table.get(pid(1)).unwrap().load(), SlotWord::on_disk(1));
        assert_eq!(table.get(pid(2)).unwrap().load(), SlotWord::on_disk(2));
        let stats = table.stats();
        assert_eq!(
            stats.levels_installed, 2,
            "one mid and one leaf, whoever won"
        );
        assert!(stats.install_races_lost <= 2);
    });
}

/// Three CASes race on one slot: FREE->A, FREE->B and A->C. The outcome must match a serial
/// order: exactly one of the first two wins, and A->C succeeds only if A was installed first.
#[test]
fn concurrent_cas_on_one_slot_is_linearizable() {
    loom::model(|| {
        let table = Arc::new(RadixTable::new());
        let _ = table.slot(pid(0));
        let (a, b, c) = (
            SlotWord::on_disk(10),
            SlotWord::on_disk(20),
            SlotWord::on_disk(30),
        );
        let spawn_cas = |from: SlotWord, to: SlotWord| {
            let table = Arc::clone(&table);
            thread::spawn(move || table.get(pid(0)).unwrap().try_replace(from, to))
        };
        let install_a = spawn_cas(SlotWord::FREE, a);
        let install_b = spawn_cas(SlotWord::FREE, b);
        let a_to_c = table.get(pid(0)).unwrap().try_replace(a, c);
        let (ra, rb) = (install_a.join().unwrap(), install_b.join().unwrap());
        let last = table.get(pid(0)).unwrap().load();
        assert!(
            ra.is_ok() != rb.is_ok(),
            "exactly one install wins: {ra:?} {rb:?}"
        );
        if rb.is_ok() {
            assert_eq!(ra, Err(b), "A's CAS must report B, the word that beat it");
            assert!(
                a_to_c == Err(b) || a_to_c == Err(SlotWord::FREE),
                "A was never installed, so A->C must fail: {a_to_c:?}"
            );
            assert_eq!(last, b);
        } else if a_to_c.is_ok() {
            assert_eq!(last, c);
            assert!(matches!(rb, Err(w) if w == a || w == c), "{rb:?}");
        } else {
            assert_eq!(
                a_to_c,
                Err(SlotWord::FREE),
                "A->C may fail only before A landed"
            );
            assert_eq!(last, a);
        }
    });
}

/// One thread allocates, frees (deferred push) and allocates again while the calling thread
/// allocates once; ids in `live` are held throughout. Per-id owner flags check that no id is
/// handed out while live, and the two threads' final ids differ.
fn churn_races_one_allocate(alloc: &Arc<PidAllocator>, live: &[u64]) {
    let owners: Arc<Vec<AtomicBool>> = Arc::new((0..8).map(|_| AtomicBool::new(false)).collect());
    for &id in live {
        owners[id as usize].store(true, Ordering::Relaxed);
    }
    let claim = |owners: &[AtomicBool], id: Pid| {
        let was_owned = owners[id.get() as usize].swap(true, Ordering::AcqRel);
        assert!(!was_owned, "{id:?} handed out while live");
    };
    let churn = {
        let (alloc, owners) = (Arc::clone(alloc), Arc::clone(&owners));
        thread::spawn(move || {
            let first = alloc.allocate();
            claim(&owners, first);
            owners[first.get() as usize].store(false, Ordering::Release);
            alloc.free(first, &epoch::pin());
            epoch::pin().flush();
            let second = alloc.allocate();
            claim(&owners, second);
            second
        })
    };
    let mine = alloc.allocate();
    claim(&owners, mine);
    let theirs = churn.join().unwrap();
    assert_ne!(mine, theirs);
}

/// Allocate/free/allocate on one thread races allocate on another, with the stack preloaded:
/// no id is handed out twice while live (per-id owner flags), and no id is lost:
/// fresh = live + pending + stacked once both threads are done.
#[test]
fn allocator_push_pop_races_lose_and_duplicate_nothing() {
    loom::model(|| {
        let alloc = Arc::new(PidAllocator::with_stacked(2, &[pid(0), pid(1)]));
        churn_races_one_allocate(&alloc, &[]);
        let stats = alloc.stats();
        let live = 2;
        assert_eq!(
            stats.fresh,
            live + stats.pending_deferred + stats.stacked + stats.restored,
            "{stats:?}"
        );
    });
}

/// The restored-ranges path: the allocator resumes with ids 0 and 2 free around the live id 1
/// (so the ranges are {0} and {2}, behind the mutex and the `has_restored` flag). One thread
/// allocates, frees (deferred push) and allocates again while the other allocates: no id is
/// handed out twice while live, the live id 1 never, the flag comes down only once the ranges
/// are empty, and fresh = live + pending + stacked + restored at the end.
#[test]
fn restored_ranges_racing_the_stack_hand_out_each_id_once() {
    loom::model(|| {
        let alloc = Arc::new(PidAllocator::from_live(3, [pid(1)]));
        churn_races_one_allocate(&alloc, &[1]);
        let stats = alloc.stats();
        let live = 3;
        assert_eq!(
            stats.fresh,
            live + stats.pending_deferred + stats.stacked + stats.restored,
            "{stats:?}"
        );
        assert_eq!(
            alloc.has_restored(),
            stats.restored > 0,
            "the flag must be down exactly when the ranges are empty: {stats:?}"
        );
    });
}

/// Two threads drain the restored ranges concurrently and run past them into fresh ids: each
/// id once, the ranges taken lowest first, fresh ids continuing at the restored mark.
#[test]
fn two_threads_drain_the_restored_ranges_then_continue_fresh() {
    loom::model(|| {
        let alloc = Arc::new(PidAllocator::from_live(4, [pid(1)]));
        let other = {
            let alloc = Arc::clone(&alloc);
            thread::spawn(move || [alloc.allocate().get(), alloc.allocate().get()])
        };
        let mut got = vec![alloc.allocate().get(), alloc.allocate().get()];
        got.extend(other.join().unwrap());
        got.sort_unstable();
        assert_eq!(got, vec![0, 2, 3, 4]);
        let stats = alloc.stats();
        assert_eq!((stats.fresh, stats.recycled, stats.restored), (5, 3, 0));
    });
}

static REUSES_SEEN: StdAtomicUsize = StdAtomicUsize::new(0);

/// The epoch invariant: a reader pinned before an id is freed never sees the id's slot hold a
/// page installed by the id's next owner. The freer frees the page and immediately tries to
/// allocate until it gets the id back, installing a new page when it does.
#[test]
fn a_freed_id_is_not_reused_while_a_reader_pinned_before_the_free_is_pinned() {
    REUSES_SEEN.store(0, StdOrdering::Relaxed);
    loom::model(|| {
        let table = Arc::new(RadixTable::new());
        let alloc = Arc::new(PidAllocator::new());
        let (old_page, new_page) = (SlotWord::on_disk(1), SlotWord::on_disk(2));
        let victim = alloc.allocate();
        table
            .slot(victim)
            .try_replace(SlotWord::FREE, old_page)
            .unwrap();

        let freer = {
            let (table, alloc) = (Arc::clone(&table), Arc::clone(&alloc));
            thread::spawn(move || {
                table
                    .slot(victim)
                    .try_replace(old_page, SlotWord::FREE)
                    .unwrap();
                alloc.free(victim, &epoch::pin());
                for _ in 0..3 {
                    epoch::pin().flush();
                    let id = alloc.allocate();
                    if id == victim {
                        table
                            .slot(id)
                            .try_replace(SlotWord::FREE, new_page)
                            .unwrap();
                        REUSES_SEEN.fetch_add(1, StdOrdering::Relaxed);
                        return;
                    }
                }
            })
        };
        let guard = epoch::pin();
        let first = table.slot(victim).load();
        let second = table.slot(victim).load();
        if first == old_page {
            assert_ne!(
                second, new_page,
                "id reused while a reader pinned before the free held it"
            );
        }
        drop(guard);
        freer.join().unwrap();
    });
    assert!(
        REUSES_SEEN.load(StdOrdering::Relaxed) > 0,
        "the model never exercised reuse"
    );
}

/// Push on one thread, pop on another: the Acquire/Release pairing on `head` must make the
/// pushed node's fields visible to a popper on another thread; every id pops exactly once.
#[test]
fn stack_push_and_pop_across_threads_hand_over_each_id_once() {
    loom::model(|| {
        let stack = Arc::new(crate::stack::PidStack::new());
        stack.push(pid(1), &epoch::pin());
        let pusher = {
            let stack = Arc::clone(&stack);
            thread::spawn(move || stack.push(pid(2), &epoch::pin()))
        };
        let mut got: Vec<u64> = stack.pop(&epoch::pin()).into_iter().map(Pid::get).collect();
        pusher.join().unwrap();
        while let Some(p) = stack.pop(&epoch::pin()) {
            got.push(p.get());
        }
        got.sort_unstable();
        assert_eq!(got, vec![1, 2]);
    });
}

/// The deferred push runs in-model on the freeing thread while another thread allocates, so
/// the recycled id crosses threads through the stack: it must arrive intact and exactly once.
#[test]
fn deferred_push_racing_allocate_delivers_the_id_once() {
    loom::model(|| {
        let alloc = Arc::new(PidAllocator::from_live(2, [pid(0), pid(1)]));
        let freer = {
            let alloc = Arc::clone(&alloc);
            thread::spawn(move || {
                alloc.free(pid(1), &epoch::pin());
                for _ in 0..3 {
                    epoch::pin().flush();
                }
            })
        };
        let mut got = vec![alloc.allocate().get(), alloc.allocate().get()];
        freer.join().unwrap();
        got.extend(alloc.free_ids().stacked.into_iter().map(Pid::get));
        let stats = alloc.stats();
        got.sort_unstable();
        let mut dedup = got.clone();
        dedup.dedup();
        assert_eq!(got, dedup, "an id was handed out or stacked twice");
        // ids 0 (never freed, "live" elsewhere) and 1 (freed): 1 is either handed out, stacked or pending.
        assert!(!got.contains(&0), "id 0 was never freed: {got:?}");
        assert!(
            got.contains(&1) || stats.pending_deferred == 1,
            "{got:?} {stats:?}"
        );
    });
}

/// A page published through a slot: the reader that loads the `InMemory` word must see the
/// page as initialised (Release in `try_replace` pairs with Acquire in `load`).
#[test]
fn a_page_published_through_a_slot_is_seen_initialised() {
    loom::model(|| {
        let table = Arc::new(RadixTable::new());
        let _ = table.slot(pid(0));
        let writer = {
            let table = Arc::clone(&table);
            thread::spawn(move || {
                let page = Box::into_raw(Box::new(loom::sync::atomic::AtomicU64::new(7)));
                table
                    .get(pid(0))
                    .unwrap()
                    .try_replace(SlotWord::FREE, SlotWord::in_memory(page))
                    .unwrap();
            })
        };
        if let Some(page) = table
            .get(pid(0))
            .unwrap()
            .load()
            .as_ptr::<loom::sync::atomic::AtomicU64>()
        {
            // SAFETY: the writer leaked the box and frees nothing; the main thread frees it below.
            assert_eq!(unsafe { &*page }.load(Ordering::Relaxed), 7);
        }
        writer.join().unwrap();
        let page = table
            .get(pid(0))
            .unwrap()
            .load()
            .as_ptr::<loom::sync::atomic::AtomicU64>()
            .unwrap();
        // SAFETY: leaked by the writer, reclaimed once here.
        drop(unsafe { Box::from_raw(page) });
    });
}

/// A pop racing a push never sees `len` below zero (the push counts before it publishes).
#[test]
fn stack_len_never_wraps() {
    loom::model(|| {
        let stack = Arc::new(crate::stack::PidStack::new());
        let pusher = {
            let stack = Arc::clone(&stack);
            thread::spawn(move || stack.push(pid(2), &epoch::pin()))
        };
        let _ = stack.pop(&epoch::pin());
        assert!(stack.len() <= 1, "len wrapped: {}", stack.len());
        pusher.join().unwrap();
    });
}
