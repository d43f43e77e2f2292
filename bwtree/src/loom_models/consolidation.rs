//! Consolidation vs prepend: the leaf's chain is at the consolidation threshold, so each
//! writer's descent consolidates it (a `replace` of the whole chain, expecting the chain it
//! read) and then prepends its write; one writer adds a key, the other overwrites one. A
//! consolidation that published over a delta it had not read would lose that write.

use loom::thread;

use super::harness::{check_structure, key, keys, model, open_tiny, scan_keys, Shape};

#[test]
fn loom_consolidation_races_a_prepend_on_the_same_leaf() {
    model(|| {
        let db = open_tiny(Shape {
            node_max_entries: 8,
            merge_below_entries: 1,
            consolidation_threshold: 2,
        });
        for i in 0..3 {
            db.insert(key(i), [i]).unwrap();
        }
        let before = db.stats();

        let adder = {
            let db = db.clone();
            thread::spawn(move || db.insert(key(5), [5]).unwrap())
        };
        let overwriter = {
            let db = db.clone();
            thread::spawn(move || db.insert(key(0), b"new").unwrap())
        };
        adder.join().unwrap();
        overwriter.join().unwrap();

        let after = db.stats();
        assert!(
            after.consolidations > before.consolidations,
            "nobody consolidated"
        );
        assert_eq!(
            db.get(key(0)).unwrap().as_deref(),
            Some(&b"new"[..]),
            "overwrite lost"
        );
        assert_eq!(
            db.get(key(5)).unwrap().as_deref(),
            Some(&[5][..]),
            "insert lost"
        );
        let expected = keys(&[0, 1, 2, 5]);
        assert_eq!(check_structure(&db).concat(), expected);
        assert_eq!(scan_keys(&db), expected);
    });
}
