//! Merge + concurrent read: one thread's removal leaves a leaf small, so it merges the leaf
//! into its left sibling (intent on the parent, `Remove` on the leaf, `Merge` on the left
//! sibling, `TermDelete` on the parent, free) while the other thread reads a key that moves
//! from the merged leaf to its sibling and scans the tree.

use loom::thread;

use super::harness::{assert_strictly_increasing, check_structure, key, keys, open_tiny};
use super::harness::{model, scan_keys, Shape};

#[test]
fn loom_merge_races_a_get_and_a_scan() {
    model(|| {
        let db = open_tiny(Shape {
            node_max_entries: 4,
            merge_below_entries: 2,
            consolidation_threshold: 64,
        });
        // The root leaf [0..=4] grows into [0, 1, 2] | [3, 4] at the insert of 5; removing 5
        // leaves the right leaf at 2 entries, one above the merge threshold.
        for i in 0..=5 {
            db.insert(key(i), [i]).unwrap();
        }
        db.remove(key(5)).unwrap();
        let before = db.stats();
        assert_eq!((before.root_splits, before.merges), (1, 0));
        assert_eq!(check_structure(&db), [keys(&[0, 1, 2]), keys(&[3, 4])]);

        let remover = {
            let db = db.clone();
            thread::spawn(move || assert_eq!(db.remove(key(4)).unwrap().as_deref(), Some(&[4][..])))
        };
        let reader = {
            let db = db.clone();
            thread::spawn(move || {
                assert_eq!(db.get(key(3)).unwrap().as_deref(), Some(&[3][..]));
                let got = scan_keys(&db);
                let without_4: Vec<_> = got.iter().filter(|k| **k != key(4)).cloned().collect();
                assert_eq!(without_4, keys(&[0, 1, 2, 3]), "a scan lost a present key");
                assert_strictly_increasing(&got, "the reader's scan");
            })
        };
        remover.join().unwrap();
        reader.join().unwrap();

        assert_eq!(
            db.stats().merges,
            1,
            "the small leaf merged into its left sibling"
        );
        let expected = keys(&[0, 1, 2, 3]);
        assert_eq!(check_structure(&db).concat(), expected);
        assert_eq!(scan_keys(&db), expected);
    });
}
