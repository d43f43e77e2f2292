//! Merges on a full disk: a merge whose final free meets the full disk is complete and
//! leaves the page on the orphan list until a later write frees it.

use logstore::io::SimStorage;

use super::*;
use crate::core::hooks::{self, Point};
use crate::smo::full_disk::{assert_reads, db_with_keys, fill_disk, root_node};

const KEYS: u32 = 40;

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
