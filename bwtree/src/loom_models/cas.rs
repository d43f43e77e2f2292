//! Compare-and-swap counters: two threads each increment one counter by a read and a CAS
//! loop, on a leaf whose chain is at the consolidation threshold (so the CAS writes race
//! consolidations too). The final value must count every successful CAS.

use loom::thread;

use super::harness::{key, model, open_tiny, Shape};
use crate::Db;

/// Increments the counter at `key(0)` once; returns how many CASes failed first.
fn increment(db: &Db) -> u32 {
    let mut current = db.get(key(0)).unwrap().expect("the counter exists");
    let mut failed = 0;
    loop {
        let next = (decode(&current) + 1).to_be_bytes();
        match db
            .compare_and_swap(key(0), Some(&current), Some(next))
            .unwrap()
        {
            Ok(()) => return failed,
            Err(e) => {
                failed += 1;
                current = e.current.expect("nobody removes the counter");
            }
        }
    }
}

fn decode(v: &[u8]) -> u64 {
    u64::from_be_bytes(v.try_into().expect("the counter is 8 bytes"))
}

#[test]
fn loom_cas_increments_from_two_threads_are_all_counted() {
    model(|| {
        let db = open_tiny(Shape {
            node_max_entries: 8,
            merge_below_entries: 1,
            consolidation_threshold: 2,
        });
        db.insert(key(0), 0u64.to_be_bytes()).unwrap();
        db.insert(key(1), [1]).unwrap();
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let db = db.clone();
                thread::spawn(move || increment(&db))
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let value = db.get(key(0)).unwrap().expect("the counter exists");
        assert_eq!(decode(&value), 2, "an increment was lost or doubled");
    });
}
