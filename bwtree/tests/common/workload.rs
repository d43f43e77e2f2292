//! The writes and checked reads the fault tests issue against two trees, with the `BTreeMap`
//! model each write must match, and the error classification every failure must pass.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bwtree::{Batch, Config, Db, Error, Tree};
use logstore::io::{SimRng, SimStorage};

pub type Map = BTreeMap<Vec<u8>, Vec<u8>>;
/// One map per tree: `[0]` the default tree, `[1]` the tree named "one".
pub type Model = Vec<Map>;
pub const TREES: usize = 2;

/// Tiny nodes, a 16 KiB cache and 16 KiB segments and buffers: splits, merges, eviction,
/// page-in, segment rotation and file growth happen every few steps. No background threads:
/// flush, checkpoint and cleaning run when the workload says, so a seed replays exactly.
pub fn config() -> Config {
    Config::new()
        .path("/db")
        .node_max_entries(4)
        .merge_below_entries(2)
        .consolidation_threshold(3)
        .cache_capacity_bytes(16 << 10)
        .flush_every_ms(None)
        .checkpoint_every_ms(None)
        .clean_every_ms(None)
        .io_buffer_size_bytes(16 << 10)
        .segment_size_bytes(16 << 10)
}

/// Opens the database on `sim` and the two trees the workload uses.
pub fn open(sim: &SimStorage) -> bwtree::Result<(Db, Vec<Tree>)> {
    let db = config().open_on_storage(Arc::new(sim.clone()))?;
    let one = db.open_tree("one")?;
    let trees = vec![(*db).clone(), one];
    Ok((db, trees))
}

/// Every entry of every tree.
pub fn dump(trees: &[Tree]) -> bwtree::Result<Model> {
    trees
        .iter()
        .map(|t| {
            t.iter()
                .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
                .collect::<bwtree::Result<Map>>()
        })
        .collect()
}

/// The kind of a failure, for the tally. Anything but a clear operating error fails the
/// test: a panic, a poison caused by a panicking thread, contention on one thread.
pub fn kind(e: &Error) -> &'static str {
    assert!(!e.to_string().is_empty(), "an error without a message");
    match e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => "io ENOSPC",
        Error::Io { .. } => "io",
        Error::Poisoned(cause) => {
            assert!(!cause.contains("panicked"), "poisoned by a panic: {cause}");
            "poisoned"
        }
        // Bit flips in reads: a record's CRC or its header's LSN no longer matches.
        Error::Corruption { .. } => "corruption",
        other => panic!("unexpected error kind from an I/O fault: {other:?} ({other})"),
    }
}

/// One write, replayable against the model.
#[derive(Debug, Clone)]
pub enum Write {
    Insert(usize, Vec<u8>, Vec<u8>),
    Remove(usize, Vec<u8>),
    Cas(usize, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>),
    /// `update_and_fetch` appending a byte to the value (creating it if absent).
    Append(usize, Vec<u8>, u8),
    /// An atomic batch (`None`: remove).
    Batch(usize, Vec<(Vec<u8>, Option<Vec<u8>>)>),
}

fn key(rng: &mut SimRng) -> Vec<u8> {
    let len = 1 + rng.below(3) as usize;
    (0..len).map(|_| b'a' + rng.below(8) as u8).collect()
}

fn value(rng: &mut SimRng) -> Vec<u8> {
    let len = match rng.below(10) {
        0 => 200 + rng.below(1200),
        1..=3 => 30 + rng.below(60),
        _ => rng.below(10),
    };
    let byte = rng.below(256) as u8;
    vec![byte; len as usize]
}

fn maybe_value(rng: &mut SimRng) -> Option<Vec<u8>> {
    (rng.below(3) != 0).then(|| value(rng))
}

impl Write {
    /// A random write; `model` lets a compare-and-swap sometimes expect the right value.
    pub fn random(rng: &mut SimRng, model: &Model) -> Write {
        let t = rng.below(TREES as u64) as usize;
        match rng.below(20) {
            0..=9 => Write::Insert(t, key(rng), value(rng)),
            10..=13 => Write::Remove(t, key(rng)),
            14 | 15 => {
                let k = key(rng);
                let old = match rng.below(2) {
                    0 => model[t].get(&k).cloned(),
                    _ => maybe_value(rng),
                };
                Write::Cas(t, k, old, maybe_value(rng))
            }
            16 | 17 => Write::Append(t, key(rng), rng.below(256) as u8),
            _ => {
                let n = rng.below(10);
                Write::Batch(t, (0..n).map(|_| (key(rng), maybe_value(rng))).collect())
            }
        }
    }

    /// What the write does to the model if it takes effect.
    pub fn apply(&self, m: &mut Model) {
        match self {
            Write::Insert(t, k, v) => drop(m[*t].insert(k.clone(), v.clone())),
            Write::Remove(t, k) => drop(m[*t].remove(k)),
            Write::Cas(t, k, old, new) => {
                if m[*t].get(k) == old.as_ref() {
                    set(&mut m[*t], k, new.as_ref());
                }
            }
            Write::Append(t, k, b) => m[*t].entry(k.clone()).or_default().push(*b),
            Write::Batch(t, ops) => {
                for (k, v) in ops {
                    set(&mut m[*t], k, v.as_ref());
                }
            }
        }
    }

    /// Issues the write; what it returns must agree with `model` (the state before it).
    pub fn issue(&self, trees: &[Tree], model: &Model) -> bwtree::Result<()> {
        let owned = |v: Option<bwtree::Value>| v.map(|v| v.to_vec());
        match self {
            Write::Insert(t, k, v) => {
                let old = owned(trees[*t].insert(k, v)?);
                assert_eq!(
                    old.as_ref(),
                    model[*t].get(k),
                    "insert returned a wrong value"
                );
            }
            Write::Remove(t, k) => {
                let old = owned(trees[*t].remove(k)?);
                assert_eq!(
                    old.as_ref(),
                    model[*t].get(k),
                    "remove returned a wrong value"
                );
            }
            Write::Cas(t, k, old, new) => {
                let r = trees[*t].compare_and_swap(k, old.as_ref(), new.as_ref())?;
                let current = model[*t].get(k);
                match r {
                    Ok(()) => assert_eq!(current, old.as_ref(), "cas succeeded wrongly"),
                    Err(e) => assert_eq!(owned(e.current).as_ref(), current, "cas failure"),
                }
            }
            Write::Append(t, k, b) => {
                let got = trees[*t].update_and_fetch(k, |cur| {
                    let mut v = cur.map(<[u8]>::to_vec).unwrap_or_default();
                    v.push(*b);
                    Some(v)
                })?;
                let mut want = model[*t].get(k).cloned().unwrap_or_default();
                want.push(*b);
                assert_eq!(
                    owned(got),
                    Some(want),
                    "update_and_fetch returned a wrong value"
                );
            }
            Write::Batch(t, ops) => {
                let mut batch = Batch::default();
                for (k, v) in ops {
                    match v {
                        Some(v) => batch.insert(k, v),
                        None => batch.remove(k),
                    }
                }
                trees[*t].apply_batch(batch)?;
            }
        }
        Ok(())
    }
}

fn set(m: &mut Map, k: &[u8], v: Option<&Vec<u8>>) {
    match v {
        Some(v) => drop(m.insert(k.to_vec(), v.clone())),
        None => drop(m.remove(k)),
    }
}

/// A checked read: a point lookup and a range scan (forward or backward) of one tree. A read
/// may fail (the error is returned); a read that succeeds must show the model.
pub fn check_reads(rng: &mut SimRng, trees: &[Tree], model: &Model) -> bwtree::Result<()> {
    let t = rng.below(TREES as u64) as usize;
    let k = key(rng);
    let got = trees[t].get(&k)?.map(|v| v.to_vec());
    assert_eq!(got.as_ref(), model[t].get(&k), "get {k:?} in tree {t}");
    let (a, b) = (key(rng), key(rng));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let bounds = (Bound::Included(lo), Bound::Excluded(hi));
    let want: Vec<_> = model[t].range(bounds.clone()).collect();
    let it = trees[t].range(bounds);
    let mut got = if rng.below(2) == 0 {
        it.collect::<bwtree::Result<Vec<_>>>()?
    } else {
        let mut v = it.rev().collect::<bwtree::Result<Vec<_>>>()?;
        v.reverse();
        v
    };
    let got: Vec<_> = got
        .drain(..)
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    let want: Vec<_> = want
        .into_iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(got, want, "range scan of tree {t}");
    Ok(())
}
