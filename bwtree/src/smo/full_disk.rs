//! Test helpers for structure changes on a full disk: a small database on a simulated disk,
//! and a way to fill that disk so that every following log record fails with `ENOSPC`.

use std::sync::Arc;

use logstore::io::SimStorage;

use crate::core::Core;
use crate::node::Node;
use crate::search::materialize;
use crate::{Config, Db};

/// A database on `sim` with tiny nodes and no background work, holding keys `0..n` (as
/// big-endian `u32`) with the values [`value`] gives them.
pub(crate) fn db_with_keys(sim: &SimStorage, n: u32) -> Db {
    let db = Config::new()
        .path("/db")
        .node_max_entries(8)
        .flush_every_ms(None)
        .checkpoint_every_ms(None)
        .clean_every_ms(None)
        .io_buffer_size_bytes(16 << 10)
        .segment_size_bytes(16 << 10)
        .open_on_storage(Arc::new(sim.clone()))
        .unwrap();
    for i in 0..n {
        db.insert(i.to_be_bytes(), value(i)).unwrap();
    }
    db.flush().unwrap();
    db
}

pub(crate) fn value(i: u32) -> Vec<u8> {
    format!("value {i}").into_bytes()
}

/// The root of the default tree, consolidated.
pub(crate) fn root_node(db: &Db) -> Node {
    let guard = crossbeam_epoch::pin();
    let view = db.core.read(db.root, &guard).unwrap().unwrap();
    materialize(&view).unwrap()
}

/// Fills the disk: no file may grow, and the log's I/O buffers are filled with padding until
/// a reservation fails, so every later log record (even an empty one) fails with `ENOSPC`
/// until the capacity is lifted.
pub(crate) fn fill_disk(sim: &SimStorage, core: &Core) {
    sim.set_capacity(Some(sim.used_bytes()));
    for _ in 0..1_000_000 {
        match core.cache.log().reserve(0) {
            Ok(r) => r.abort(),
            Err(e) => {
                assert!(e.is_storage_full(), "filling the log: {e}");
                return;
            }
        }
    }
    panic!("the log never filled");
}

/// Every key `0..n` reads back with its value (or `changed`'s), by get and by scans both ways.
pub(crate) fn assert_reads(db: &Db, n: u32, changed: &[(u32, Vec<u8>)], what: &str) {
    let expected: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
        .map(|i| {
            let v = changed
                .iter()
                .find(|(k, _)| *k == i)
                .map_or_else(|| value(i), |(_, v)| v.clone());
            (i.to_be_bytes().to_vec(), v)
        })
        .collect();
    for (k, v) in &expected {
        let got = db
            .get(k)
            .unwrap_or_else(|e| panic!("{what}: get {k:?}: {e}"));
        assert_eq!(got.as_deref(), Some(&v[..]), "{what}: get {k:?}");
    }
    let scan = |rev: bool| -> Vec<(Vec<u8>, Vec<u8>)> {
        let it = db.iter();
        let items: Vec<_> = if rev {
            it.rev().collect()
        } else {
            it.collect()
        };
        let mut out: Vec<_> = items
            .into_iter()
            .map(|r| {
                let (k, v) = r.unwrap_or_else(|e| panic!("{what}: scan: {e}"));
                (k.to_vec(), v.to_vec())
            })
            .collect();
        if rev {
            out.reverse();
        }
        out
    };
    assert_eq!(scan(false), expected, "{what}: forward scan");
    assert_eq!(scan(true), expected, "{what}: reverse scan");
}
