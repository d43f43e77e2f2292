//! Merge + concurrent write on a half-done split: a leaf's split is in place but its index
//! entry is not posted. A writer posts the entry, removes the only key of the new right half
//! and merges that half back into its left sibling (freeing its page), while a reader that
//! met the unposted split posts the same entry from the header it read. The reader's post
//! must not link the merged-away page into the parent again (the invariant on
//! `Tree::post_index_entry`).

use crossbeam_epoch as epoch;
use loom::thread;

use super::harness::{check_structure, key, keys, model, open_tiny, scan_keys, Shape};
use crate::descend::Mode;
use crate::search::{header, materialize, Probe};

#[test]
fn loom_merge_of_an_unposted_split_races_a_reader_posting_it() {
    model(|| {
        let db = open_tiny(Shape {
            node_max_entries: 4,
            merge_below_entries: 2,
            consolidation_threshold: 64,
        });
        // The root leaf [0..=4] grows into [0, 1, 2] | [3, 4] at the insert of 5.
        for i in 0..=5 {
            db.insert(key(i), [i]).unwrap();
        }
        assert_eq!(check_structure(&db), [keys(&[0, 1, 2]), keys(&[3, 4, 5])]);
        // Split [3, 4, 5] at 5 without posting the entry: [3, 4] -> [5], the root knows [3, 4].
        {
            let guard = epoch::pin();
            let leaf = db.descend(Probe::At(&key(5)), Mode::Read, &guard).unwrap();
            let node = materialize(&leaf.view).unwrap();
            let sep = crate::Value::copy_from(&key(5));
            db.split_at(leaf.pid, &leaf.view, node, sep, &[], &guard)
                .unwrap();
            let after = db.core.read(leaf.pid, &guard).unwrap().unwrap();
            assert!(header(&after).unwrap().right.is_some(), "split in place");
        }
        let before = db.stats();
        assert_eq!(before.merges, 0);

        let writer = {
            let db = db.clone();
            thread::spawn(move || assert_eq!(db.remove(key(5)).unwrap().as_deref(), Some(&[5][..])))
        };
        let reader = {
            let db = db.clone();
            thread::spawn(move || {
                let got = db.get(key(5)).unwrap();
                assert!(got.is_none() || got.as_deref() == Some(&[5][..]), "{got:?}");
                assert_eq!(db.get(key(4)).unwrap().as_deref(), Some(&[4][..]));
            })
        };
        writer.join().unwrap();
        reader.join().unwrap();

        assert_eq!(db.stats().merges, 1, "the emptied right half merged back");
        let expected = keys(&[0, 1, 2, 3, 4]);
        assert_eq!(check_structure(&db).concat(), expected);
        assert_eq!(scan_keys(&db), expected);
    });
}
