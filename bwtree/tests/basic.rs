//! Point operations, iteration and reopen on small trees with tiny nodes, so splits, merges
//! and root changes happen within a few hundred keys.

use bwtree::{Config, Db};

fn tiny(dir: &std::path::Path) -> Config {
    Config::new()
        .path(dir)
        .node_max_entries(4)
        .merge_below_entries(2)
        .consolidation_threshold(3)
        .flush_every_ms(None)
        .checkpoint_every_ms(None)
        .io_buffer_size_bytes(64 << 10)
        .segment_size_bytes(64 << 10)
}

fn key(i: u32) -> [u8; 4] {
    i.to_be_bytes()
}

#[test]
fn insert_get_remove_with_splits_and_merges() {
    let dir = tempfile::tempdir().unwrap();
    let db: Db = tiny(dir.path()).open().unwrap();
    for i in 0..500u32 {
        assert_eq!(db.insert(key(i), key(i * 3)).unwrap(), None);
    }
    assert!(db.stats().splits > 50, "{:?}", db.stats());
    for i in 0..500u32 {
        assert_eq!(db.get(key(i)).unwrap().unwrap(), key(i * 3));
    }
    assert_eq!(db.len().unwrap(), 500);
    for i in (0..500u32).filter(|i| i % 3 != 0) {
        assert_eq!(db.remove(key(i)).unwrap().unwrap(), key(i * 3));
    }
    assert!(db.stats().merges > 10, "{:?}", db.stats());
    for i in 0..500u32 {
        assert_eq!(db.get(key(i)).unwrap().is_some(), i % 3 == 0, "key {i}");
    }
    let keys: Vec<u32> = db
        .iter()
        .map(|r| u32::from_be_bytes(r.unwrap().0[..].try_into().unwrap()))
        .collect();
    let want: Vec<u32> = (0..500).filter(|i| i % 3 == 0).collect();
    assert_eq!(keys, want);
    let back: Vec<u32> = db
        .iter()
        .rev()
        .map(|r| u32::from_be_bytes(r.unwrap().0[..].try_into().unwrap()))
        .collect();
    assert_eq!(back, want.iter().rev().copied().collect::<Vec<_>>());
    for i in 0..500u32 {
        db.remove(key(i)).unwrap();
    }
    assert!(db.is_empty().unwrap());
    assert!(db.stats().root_shrinks > 0, "{:?}", db.stats());
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = tiny(dir.path()).open().unwrap();
        for i in 0..300u32 {
            db.insert(key(i), vec![i as u8; (i % 50) as usize]).unwrap();
        }
        let t = db.open_tree("other").unwrap();
        t.insert("x", "y").unwrap();
        db.flush().unwrap();
    }
    let db = tiny(dir.path()).open().unwrap();
    for i in 0..300u32 {
        assert_eq!(
            db.get(key(i)).unwrap().unwrap(),
            vec![i as u8; (i % 50) as usize]
        );
    }
    assert_eq!(
        db.open_tree("other").unwrap().get("x").unwrap().unwrap(),
        *b"y"
    );
    assert!(db.open_tree("third").unwrap().is_empty().unwrap());
}

#[test]
fn ranges_and_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let db = tiny(dir.path()).open().unwrap();
    for i in (0..200u32).map(|i| i * 2) {
        db.insert(key(i), b"v").unwrap();
    }
    let r: Vec<_> = db.range(key(10)..key(20)).map(|r| r.unwrap().0).collect();
    assert_eq!(r.len(), 5);
    assert_eq!(r[0], key(10));
    let r: Vec<_> = db
        .range(key(11)..=key(20))
        .rev()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(
        r,
        [key(20), key(18), key(16), key(14), key(12)].map(|k| bwtree::Value::from(&k))
    );
    assert_eq!(db.get_lt(key(11)).unwrap().unwrap().0, key(10));
    assert_eq!(db.get_gt(key(11)).unwrap().unwrap().0, key(12));
    assert_eq!(db.get_gt(key(10)).unwrap().unwrap().0, key(12));
    assert_eq!(db.first().unwrap().unwrap().0, key(0));
    assert_eq!(db.last().unwrap().unwrap().0, key(398));
    assert!(db.get_lt(key(0)).unwrap().is_none());
    let mut it = db.range(key(100)..key(110));
    assert_eq!(it.next().unwrap().unwrap().0, key(100));
    assert_eq!(it.next_back().unwrap().unwrap().0, key(108));
    let mid: Vec<_> = it.map(|r| r.unwrap().0).collect();
    assert_eq!(
        mid,
        [key(102), key(104), key(106)].map(|k| bwtree::Value::from(&k))
    );
}
