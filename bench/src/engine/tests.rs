//! Every built engine against the same small script: the adapters agree on what the suite's
//! operations mean. With `--no-default-features` (the README's test command) only the engines
//! of this workspace are built and checked.

use super::*;

fn check(name: &str) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = OpenOptions {
        dir: dir.path().join(name),
        cache_capacity_bytes: 8 << 20,
        max_data_bytes: 64 << 20,
        background_threads: 2,
    };
    let engine = open(name, &options).expect("open");
    let keys: Vec<[u8; 4]> = (0u32..100).map(|i| (i * 2).to_be_bytes()).collect();
    let ops: Vec<Op<'_>> = keys.iter().map(|k| Op::Insert(k, b"value")).collect();
    engine.write(&ops, Durability::None).expect("batch");
    engine
        .insert(b"\xff", b"last", Durability::Durable)
        .expect("insert");
    engine
        .remove(&keys[0], Durability::Durable)
        .expect("remove");
    engine.flush().expect("flush");
    assert_eq!(engine.len().expect("len"), 100, "{name}: len");
    let mut reader = engine.reader().expect("reader");
    assert_eq!(reader.get(&keys[1]).expect("get"), Some(5), "{name}: get");
    assert_eq!(reader.get(&keys[0]).expect("get"), None, "{name}: removed");
    assert_eq!(reader.get(b"\xff").expect("get"), Some(4), "{name}: insert");
    // Between keys 2 and 4: starts at 4.
    assert_eq!(
        reader.scan(&3u32.to_be_bytes(), 10).expect("scan"),
        10,
        "{name}: scan"
    );
    // 194, 196, 198 and the one-byte key 0xff.
    assert_eq!(
        reader.scan(&keys[97], 10).expect("scan"),
        4,
        "{name}: scan to the end"
    );
    drop(reader);
    assert!(
        dir_size_bytes(&options.dir).expect("size") > 0,
        "{name}: size"
    );
}

#[test]
fn every_built_engine_agrees() {
    for name in available() {
        check(name);
    }
}

/// Several threads writing disjoint keys at once, in groups and single durable inserts (the
/// concurrent bulk load of the `kv` suite): no write is lost, none deadlocks. Stores with a
/// single writer (redb, LMDB) serialize the threads' transactions; that is their behaviour.
fn check_concurrent_writers(name: &str) {
    const THREADS: u32 = 4;
    const GROUPS: u32 = 5;
    const GROUP: u32 = 40;
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = OpenOptions {
        dir: dir.path().join(name),
        cache_capacity_bytes: 8 << 20,
        max_data_bytes: 64 << 20,
        background_threads: 2,
    };
    let engine = open(name, &options).expect("open");
    let engine = &*engine;
    // Thread t owns the keys whose first byte is t; the last byte tells its single inserts.
    let key = |t: u32, i: u32| [t as u8, (i >> 8) as u8, i as u8];
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for g in 0..GROUPS {
                    let keys: Vec<[u8; 3]> =
                        (g * GROUP..(g + 1) * GROUP).map(|i| key(t, i)).collect();
                    let ops: Vec<Op<'_>> = keys.iter().map(|k| Op::Insert(k, b"group")).collect();
                    engine.write(&ops, Durability::None).expect("group");
                    let single = key(t, 0xf000 + g);
                    engine
                        .insert(&single, b"one", Durability::Durable)
                        .expect("durable insert");
                }
            });
        }
    });
    engine.flush().expect("flush");
    let per_thread = GROUPS * (GROUP + 1);
    assert_eq!(
        engine.len().expect("len"),
        u64::from(THREADS * per_thread),
        "{name}: len after concurrent writers"
    );
    let mut reader = engine.reader().expect("reader");
    for t in 0..THREADS {
        for i in 0..GROUPS * GROUP {
            let got = reader.get(&key(t, i)).expect("get");
            assert_eq!(got, Some(5), "{name}: thread {t}, key {i}");
        }
        for g in 0..GROUPS {
            let got = reader.get(&key(t, 0xf000 + g)).expect("get");
            assert_eq!(got, Some(3), "{name}: thread {t}, single {g}");
        }
        // Every thread's keys are contiguous: a range from its first key stays inside them.
        assert_eq!(
            reader.scan(&key(t, 0), 10).expect("scan"),
            10,
            "{name}: scan of thread {t}"
        );
    }
}

#[test]
fn every_built_engine_takes_concurrent_writers() {
    for name in available() {
        check_concurrent_writers(name);
    }
}

#[test]
fn unknown_engine_is_a_clear_error() {
    let options = OpenOptions {
        dir: PathBuf::from("/nonexistent"),
        cache_capacity_bytes: 1,
        max_data_bytes: 1,
        background_threads: 1,
    };
    let err = open("nosuch", &options).err().expect("error");
    assert!(err.to_string().contains("not built"), "{err}");
}
