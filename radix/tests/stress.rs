//! Multi-threaded stress of the table and allocator together, as the page cache will use them:
//! threads allocate ids, claim their slots, CAS them, free them (epoch-deferred) and meanwhile
//! read other threads' slots under a guard. Seeded; the seed is printed and read from
//! `RADIX_STRESS_SEED`, the duration from `RADIX_STRESS_MS` (default 2000, 200 under Miri).
//!
//! Invariants checked:
//! - an id is never handed out twice while live (its slot must be `Free` when claimed, and a
//!   per-id owner flag must be clear);
//! - a reader pinned across two loads of a slot never sees the id pass to a new owner: the
//!   second load is the same allocation's word (possibly updated by its owner) or `Free`;
//! - accounting: fresh = live + pending + stacked at the end; no id is lost.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_epoch as epoch;
use radix::{Pid, PidAllocator, RadixTable, SlotState, SlotWord};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const THREADS: u64 = 4;
const MAX_LIVE_PER_THREAD: usize = 64;

/// A slot payload: which allocation (unique ticket) owns the page, and a version its owner bumps.
fn word(ticket: u64, version: u64) -> SlotWord {
    SlotWord::on_disk(ticket << 8 | (version & 0xff))
}

fn ticket_of(w: SlotWord) -> Option<u64> {
    match w.state() {
        SlotState::OnDisk(payload) => Some(payload >> 8),
        SlotState::Free => None,
        other => panic!("unexpected slot state {other:?}"),
    }
}

struct Shared {
    table: RadixTable,
    alloc: PidAllocator,
    owned: Vec<AtomicBool>,
    tickets: AtomicU64,
    max_id: u64,
}

fn settings() -> (u64, Duration) {
    let seed = std::env::var("RADIX_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    let default_ms = if cfg!(miri) { 200 } else { 2000 };
    let ms = std::env::var("RADIX_STRESS_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_ms);
    println!("radix stress: seed {seed} (RADIX_STRESS_SEED={seed} reproduces each thread's choice of operations (not the interleaving)), {ms} ms");
    (seed, Duration::from_millis(ms))
}

fn claim(shared: &Shared, live: &mut Vec<(Pid, u64, u64)>) {
    let pid = shared.alloc.allocate();
    assert!(
        pid.get() < shared.max_id,
        "{pid} beyond the ids this test can track"
    );
    let was_owned = shared.owned[pid.get() as usize].swap(true, Ordering::AcqRel);
    assert!(!was_owned, "{pid} handed out twice while live");
    let ticket = shared.tickets.fetch_add(1, Ordering::Relaxed);
    let slot = shared.table.slot(pid);
    if let Err(found) = slot.try_replace(SlotWord::FREE, word(ticket, 0)) {
        panic!("{pid} handed out with a non-free slot {found:?}");
    }
    live.push((pid, ticket, 0));
}

fn release(shared: &Shared, live: &mut Vec<(Pid, u64, u64)>, index: usize) {
    let (pid, ticket, version) = live.swap_remove(index);
    let guard = epoch::pin();
    shared
        .table
        .slot(pid)
        .try_replace(word(ticket, version), SlotWord::FREE)
        .unwrap();
    shared.owned[pid.get() as usize].store(false, Ordering::Release);
    shared.alloc.free(pid, &guard);
    drop(guard);
    if cfg!(miri) {
        // Interpreted runs are short: drive reclamation so recycled ids actually occur.
        epoch::pin().flush();
    }
}

fn bump(shared: &Shared, entry: &mut (Pid, u64, u64)) {
    let (pid, ticket, version) = *entry;
    let slot = shared.table.slot(pid);
    slot.try_replace(word(ticket, version), word(ticket, version + 1))
        .unwrap_or_else(|found| panic!("{pid}: owner's CAS lost to {found:?}"));
    entry.2 = version + 1;
}

fn observe(shared: &Shared, rng: &mut SmallRng) {
    let issued = shared.alloc.stats().fresh.max(1);
    let pid = Pid::new(rng.random_range(0..issued)).unwrap();
    let guard = epoch::pin();
    let Some(slot) = shared.table.get(pid) else {
        return;
    };
    let first = ticket_of(slot.load());
    for _ in 0..rng.random_range(0..64) {
        std::hint::spin_loop();
    }
    let second = ticket_of(slot.load());
    if let (Some(a), Some(b)) = (first, second) {
        assert_eq!(
            a, b,
            "{pid} passed to a new owner while a reader pinned before was reading"
        );
    }
    drop(guard);
}

fn worker(shared: &Shared, seed: u64, deadline: Instant) -> Vec<(Pid, u64, u64)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut live = Vec::new();
    // Under Miri the clock is virtual and slow to advance: bound by operations instead.
    for step in 0u32.. {
        let done = if cfg!(miri) {
            step >= 80
        } else {
            Instant::now() >= deadline
        };
        if done {
            break;
        }
        match rng.random_range(0..10) {
            0..=2 if live.len() < MAX_LIVE_PER_THREAD => claim(shared, &mut live),
            3..=4 if !live.is_empty() => {
                let index = rng.random_range(0..live.len());
                release(shared, &mut live, index);
            }
            5..=6 if !live.is_empty() => {
                let index = rng.random_range(0..live.len());
                bump(shared, &mut live[index]);
            }
            _ => observe(shared, &mut rng),
        }
    }
    live
}

#[test]
fn allocate_free_cas_and_read_under_contention() {
    let (seed, duration) = settings();
    let max_id = 1 << 16;
    let shared = Shared {
        table: RadixTable::new(),
        alloc: PidAllocator::new(),
        owned: (0..max_id).map(|_| AtomicBool::new(false)).collect(),
        tickets: AtomicU64::new(0),
        max_id,
    };
    let deadline = Instant::now() + duration;
    let live: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let shared = &shared;
                s.spawn(move || worker(shared, seed.wrapping_add(t), deadline))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    for &(pid, ticket, version) in &live {
        assert_eq!(shared.table.get(pid).unwrap().load(), word(ticket, version));
    }
    let stats = shared.alloc.stats();
    println!(
        "radix stress: {stats:?}, {} tickets, table {:?}",
        shared.tickets.load(Ordering::Relaxed),
        shared.table.stats()
    );
    assert_eq!(
        stats.fresh,
        live.len() as u64 + stats.pending_deferred + stats.stacked + stats.restored,
        "ids lost"
    );
    // Identity, not just counts: drain the deferred pushes (every worker has exited, so the
    // epoch can advance) and check each issued id is exactly once live or free.
    let drain_deadline = Instant::now() + Duration::from_secs(30);
    while shared.alloc.stats().pending_deferred > 0 {
        assert!(Instant::now() < drain_deadline, "deferred pushes never ran");
        epoch::pin().flush();
    }
    let free = shared.alloc.free_ids();
    let mut ids: Vec<u64> = live
        .iter()
        .map(|(pid, _, _)| pid.get())
        .chain(free.stacked.iter().map(|pid| pid.get()))
        .chain(free.restored.iter().flat_map(|range| range.clone()))
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..stats.fresh).collect::<Vec<_>>(),
        "ids lost or duplicated"
    );
    assert!(
        stats.recycled > 0,
        "the run never recycled an id: nothing was tested"
    );
}
