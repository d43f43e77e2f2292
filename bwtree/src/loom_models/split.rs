//! Split + concurrent insert: both writers find the same over-full leaf, so each tries to
//! split it (one wins the `Split` CAS, the other frees its unpublished right half and
//! re-descends) and inserts, one key staying in the left half, one landing in the new right
//! half; the split's index entry is posted meanwhile.

use loom::thread;

use super::harness::{check_structure, key, keys, model, open_tiny, scan_keys, Shape};

#[test]
fn loom_split_races_an_insert_into_the_same_leaf() {
    model(|| {
        let db = open_tiny(Shape {
            node_max_entries: 2,
            merge_below_entries: 1,
            consolidation_threshold: 64,
        });
        // The root leaf [0, 2, 4] grows into [0, 2] | [4] at the insert of 6; 8 makes the
        // right leaf [4, 6, 8] over full: the next write to it splits it at 8.
        for i in [0, 2, 4, 6, 8] {
            db.insert(key(i), [i]).unwrap();
        }
        let before = db.stats();
        assert_eq!(check_structure(&db), [keys(&[0, 2]), keys(&[4, 6, 8])]);
        // The root's growth counts as a split too.
        assert_eq!((before.root_splits, before.splits), (1, 1));

        let left_half = {
            let db = db.clone();
            thread::spawn(move || db.insert(key(5), [5]).unwrap())
        };
        let right_half = {
            let db = db.clone();
            thread::spawn(move || db.insert(key(9), [9]).unwrap())
        };
        left_half.join().unwrap();
        right_half.join().unwrap();

        // The index entry may overfill the root, whose growth the next descent then counts
        // as a split too: count the others.
        let after = db.stats();
        let leaf_splits = (after.splits - after.root_splits) - (before.splits - before.root_splits);
        assert_eq!(leaf_splits, 1, "the over-full leaf split exactly once");
        let expected = keys(&[0, 2, 4, 5, 6, 8, 9]);
        assert_eq!(check_structure(&db).concat(), expected);
        assert_eq!(scan_keys(&db), expected);
        for i in [0, 2, 4, 5, 6, 8, 9] {
            assert_eq!(db.get(key(i)).unwrap().as_deref(), Some(&[i][..]));
        }
    });
}
