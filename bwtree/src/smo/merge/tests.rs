//! Merges on a full disk: a reader that meets a half-done merge it cannot help finish still
//! reads the right data, and a merge whose final free meets the full disk is complete and
//! leaves the page on the orphan list until a later write frees it.

use logstore::io::SimStorage;

use super::*;
use crate::core::hooks::{self, Point};
use crate::node::RawPid;
use crate::search::base_node;
use crate::smo::full_disk::{assert_reads, db_with_keys, fill_disk, root_node};
use crate::value::Value;
use crate::Db;

const KEYS: u32 = 40;

/// Posts the intent to merge the root's third child into its second, and marks that child
/// removed: steps 1 and 2 of a merge, as a merger that stopped there leaves them.
fn start_merge(db: &Db) -> (MergeIntent, Pid) {
    let root = root_node(db);
    assert!(root.kids.len() >= 3, "the tree has two levels: {root:?}");
    let intent = MergeIntent {
        sep: root.keys[2].clone(),
        child: root.kids[2],
    };
    let guard = crossbeam_epoch::pin();
    let rview = db.core.read(db.root, &guard).unwrap().unwrap();
    db.core
        .try_prepend(Delta::Intent(intent.clone()), &rview, &guard)
        .unwrap()
        .expect("intent posted");
    assert!(matches!(
        db.mark_removed(db.root, &intent, &guard).unwrap(),
        Step::Done
    ));
    let left = pid_of(root.kids[1]).unwrap();
    (intent, left)
}

/// Keys of the child being merged.
fn keys_of(db: &Db, child: RawPid) -> Vec<u32> {
    let guard = crossbeam_epoch::pin();
    let view = db
        .core
        .read(pid_of(child).unwrap(), &guard)
        .unwrap()
        .unwrap();
    let node = materialize(&view).unwrap();
    assert!(!node.keys.is_empty());
    node.keys
        .iter()
        .map(|k| u32::from_be_bytes(k[..].try_into().unwrap()))
        .collect()
}

#[test]
fn a_reader_meeting_a_removed_node_on_a_full_disk_reads_through_it() {
    let sim = SimStorage::new();
    let db = db_with_keys(&sim, KEYS);
    let (intent, _) = start_merge(&db);
    let child = pid_of(intent.child).unwrap();
    fill_disk(&sim, &db.core);

    // Helping would write (the Merge delta), which the full disk refuses: the reader reads
    // the frozen child, whose contents are still its range's.
    let guard = crossbeam_epoch::pin();
    assert_eq!(
        db.detour_removed(child, db.root.get(), &guard).unwrap(),
        Detour::ReadThrough
    );
    drop(guard);
    assert_reads(&db, KEYS, &[], "full disk, child removed");
    assert!(db
        .insert(0u32.to_be_bytes(), b"x")
        .is_err_and(|e| e.is_storage_full()));

    // Space back: the next write through the child finishes the merge.
    sim.set_capacity(None);
    let merges = db.stats().merges;
    let k = keys_of(&db, intent.child)[0];
    db.insert(k.to_be_bytes(), b"new").unwrap();
    assert_eq!(db.stats().merges, merges + 1);
    assert_reads(&db, KEYS, &[(k, b"new".to_vec())], "after the merge");
}

#[test]
fn a_reader_meeting_a_removed_node_its_left_sibling_absorbed_reads_the_left_sibling() {
    let sim = SimStorage::new();
    let db = db_with_keys(&sim, KEYS);
    let (intent, left) = start_merge(&db);
    let child = pid_of(intent.child).unwrap();
    let guard = crossbeam_epoch::pin();
    let pnode = root_node(&db);
    assert!(matches!(
        db.merge_into_left(&pnode, &intent, &guard).unwrap(),
        Step::Done
    ));
    // A write into the child's range now lands in the left sibling when its descent routed
    // through a parent view older than the child's index entry (it arrives at the left
    // sibling, which covers the key). The frozen child does not show it.
    let k = keys_of(&db, intent.child)[0];
    let key = Value::copy_from(&k.to_be_bytes());
    let lview = db.core.read(left, &guard).unwrap().unwrap();
    let pos = base_node(&lview)
        .unwrap()
        .keys
        .partition_point(|x| *x < key) as u32;
    let put = Delta::Put {
        key,
        val: Value::copy_from(b"newer"),
        pos,
    };
    db.core
        .try_prepend(put, &lview, &guard)
        .unwrap()
        .expect("write into the left sibling");
    drop(guard);
    fill_disk(&sim, &db.core);

    let guard = crossbeam_epoch::pin();
    assert_eq!(
        db.detour_removed(child, db.root.get(), &guard).unwrap(),
        Detour::Absorbed(left)
    );
    drop(guard);
    let changed = [(k, b"newer".to_vec())];
    assert_reads(&db, KEYS, &changed, "full disk, child absorbed");

    sim.set_capacity(None);
    db.insert(k.to_be_bytes(), b"newest").unwrap();
    let changed = [(k, b"newest".to_vec())];
    assert_reads(&db, KEYS, &changed, "after the merge");
}

#[test]
fn a_merge_whose_free_meets_a_full_disk_completes_and_frees_the_page_after_the_next_write() {
    let sim = SimStorage::new();
    let db = db_with_keys(&sim, KEYS);
    let root = root_node(&db);
    let child = pid_of(root.kids[2]).unwrap();
    let (sim2, core) = (sim.clone(), db.core.clone());
    // The disk fills between the TermDelete (the merge is complete) and the free.
    hooks::at(Point::Free, 0, move || fill_disk(&sim2, &core));
    let guard = crossbeam_epoch::pin();
    assert!(db.try_start_merge(db.root, child, &guard).unwrap());
    drop(guard);
    assert_eq!(db.stats().merges, 1);
    assert_eq!(db.stats().orphaned_pages, 1);
    let guard = crossbeam_epoch::pin();
    assert!(
        db.core.read(child, &guard).unwrap().is_some(),
        "the orphan is still allocated (its free was not logged)"
    );
    drop(guard);
    assert_reads(&db, KEYS, &[], "full disk, merge done, free pending");
    // Still full: a failed write frees nothing, the orphan stays listed.
    assert!(db.insert(b"k", b"v").is_err_and(|e| e.is_storage_full()));
    assert!(db.flush().is_err_and(|e| e.is_storage_full()));
    assert_eq!(db.stats().orphaned_pages, 1);

    sim.set_capacity(None);
    db.insert(b"after", b"space").unwrap();
    assert_eq!(db.stats().orphaned_pages, 0);
    let guard = crossbeam_epoch::pin();
    assert!(
        db.core.read(child, &guard).unwrap().is_none(),
        "the orphan was freed"
    );
    drop(guard);
    db.remove(b"after").unwrap();
    assert_reads(&db, KEYS, &[], "after the orphan was freed");
}
