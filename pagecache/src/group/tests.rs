//! Unit tests of the group protocol's insides: the shared state, and a crash in the middle of a
//! commit (after the flip, before the record is complete), through a hook `commit` calls there.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use crossbeam_epoch as epoch;
use logstore::io::{CrashMode, SimStorage};
use logstore::DiskPtr;

use super::GroupState;
use crate::{Config, PageCache, PageModel};

thread_local! {
    static MID_COMMIT: RefCell<Option<Box<dyn FnOnce()>>> = const { RefCell::new(None) };
}

/// Called by `Group::commit` between the flip and completing the record.
pub(super) fn mid_commit() {
    if let Some(hook) = MID_COMMIT.with(|h| h.borrow_mut().take()) {
        hook();
    }
}

struct Kv;

impl PageModel for Kv {
    type Base = BTreeMap<u64, u64>;
    type Delta = (u64, u64);

    fn base_heap_bytes(_: &Self::Base) -> usize {
        0
    }

    fn delta_heap_bytes(_: &Self::Delta) -> usize {
        0
    }

    fn consolidate(base: &Self::Base, deltas: &[&Self::Delta]) -> Self::Base {
        let mut m = base.clone();
        m.extend(deltas.iter().map(|d| **d));
        m
    }
}

fn fake_ptr(at: u64) -> DiskPtr {
    let mut b = [0u8; DiskPtr::ENCODED_LEN];
    b[0..8].copy_from_slice(&at.to_le_bytes());
    b[8..16].copy_from_slice(&at.to_le_bytes());
    b[16..20].copy_from_slice(&64u32.to_le_bytes());
    DiskPtr::from_bytes(&b).unwrap()
}

#[test]
fn the_record_dies_with_its_last_fragment() {
    let state = GroupState::staged();
    assert!(!state.is_committed());
    state.publish(fake_ptr(4096), 3);
    assert!(state.is_committed());
    assert_eq!(state.disk(), fake_ptr(4096));
    assert_eq!(state.release_fragment(), None);
    assert_eq!(state.release_fragment(), None);
    assert_eq!(state.live(), 1);
    assert_eq!(state.release_fragment(), Some(fake_ptr(4096)));
    let recovered = GroupState::recovered(fake_ptr(8192));
    recovered.add_live();
    assert!(recovered.is_committed());
    assert_eq!(recovered.release_fragment(), Some(fake_ptr(8192)));
}

#[test]
#[should_panic(expected = "uncommitted")]
fn an_uncommitted_group_has_no_record() {
    let state = GroupState::staged();
    state.abort();
    let _ = state.disk();
}

#[test]
#[should_panic(expected = "changes once")]
fn the_outcome_changes_once() {
    let state = GroupState::staged();
    state.publish(fake_ptr(4096), 1);
    state.abort();
}

/// Power loss while the committer holds the filled reservation: the group is visible in memory
/// but its record is nowhere on disk, so recovery has none of it; once completed and flushed,
/// all of it.
#[test]
fn a_crash_in_the_middle_of_a_commit_keeps_none_of_the_group() {
    let sim = SimStorage::new();
    let cfg = Config::small("/db");
    let cache =
        Arc::new(PageCache::<Kv>::open_with_storage(cfg.clone(), Arc::new(sim.clone())).unwrap());
    let guard = epoch::pin();
    let pids: Vec<_> = (0..3u64)
        .map(|i| cache.allocate(BTreeMap::from([(i, i)]), &guard).unwrap())
        .collect();
    cache.flush().unwrap();
    let mid = Arc::new(std::sync::Mutex::new(None));
    {
        let (sim, cache, mid, pids) = (
            sim.clone(),
            Arc::clone(&cache),
            Arc::clone(&mid),
            pids.clone(),
        );
        let hook = move || {
            // Visible to a reader already (the flip happened)...
            let guard = epoch::pin();
            for &p in &pids {
                let view = cache.read(p, &guard).unwrap().unwrap();
                assert!(!view.head_is_staged());
                assert_eq!(view.consolidate().get(&9), Some(&9));
            }
            // ...but not on disk.
            let crashed = sim.snapshot();
            crashed.crash(7, CrashMode::CHAOS);
            *mid.lock().unwrap() = Some(crashed);
        };
        MID_COMMIT.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
    }
    let mut group = cache.begin_group(&guard);
    for &p in &pids {
        let view = cache.read(p, &guard).unwrap().unwrap();
        group.stage((9, 9), &view).unwrap().unwrap();
    }
    group.commit().unwrap();
    drop(guard);
    cache.flush().unwrap();
    let after = sim.snapshot();
    after.crash(8, CrashMode::CHAOS);
    let mid = mid.lock().unwrap().take().expect("the hook ran");
    for (disk, want) in [(mid, None), (after, Some(&9))] {
        let again = PageCache::<Kv>::open_with_storage(cfg.clone(), Arc::new(disk)).unwrap();
        let guard = epoch::pin();
        for (i, &p) in pids.iter().enumerate() {
            let page = again.read(p, &guard).unwrap().unwrap().consolidate();
            assert_eq!(page.get(&(i as u64)), Some(&(i as u64)));
            assert_eq!(page.get(&9), want, "page {i}");
        }
    }
}
