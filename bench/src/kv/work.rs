//! The operations the `kv` phases time: write groups, removals, gets and range reads, each
//! checked, on one thread or split over several. Progress goes to a shared bar in steps of
//! [`TICK`], so the bar stays off the measured path.

use indicatif::ProgressBar;

use crate::engine::{Durability, Engine, Op, Result};
use crate::keys::{Dataset, Key};

/// Progress is reported every this many operations.
pub const TICK: usize = 1024;

pub fn check(ok: bool, what: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(what().into())
    }
}

/// Runs `work` on `threads` near-equal consecutive parts of `items`, each on a thread of its own
/// (one part, one thread when `threads` is 1), and returns the first error.
pub fn on_threads<T, F>(items: &[T], threads: usize, work: F) -> Result<()>
where
    T: Sync,
    F: Fn(&[T]) -> Result<()> + Sync,
{
    let share = items.len().div_ceil(threads.max(1)).max(1);
    let work = &work;
    std::thread::scope(|s| {
        let workers: Vec<_> = items
            .chunks(share)
            .map(|part| s.spawn(move || work(part)))
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("worker thread panicked"))
    })
}

/// Inserts `keys` with their values in write groups of `group` operations. Several threads may
/// share `bar`: each adds what it did.
pub fn write_all(
    engine: &dyn Engine,
    data: &Dataset,
    keys: &[Key],
    group: usize,
    durability: Durability,
    bar: &ProgressBar,
) -> Result<()> {
    let mut ops = Vec::with_capacity(group);
    let (mut done, mut shown) = (0, 0);
    let step = TICK.min(keys.len() / 100).max(1);
    for chunk in keys.chunks(group) {
        ops.clear();
        ops.extend(chunk.iter().map(|k| Op::Insert(k, data.value(k))));
        engine.write(&ops, durability)?;
        done += chunk.len();
        if done - shown >= step {
            bar.inc((done - shown) as u64);
            shown = done;
        }
    }
    bar.inc((done - shown) as u64);
    Ok(())
}

/// Removes `keys` in groups of 1000 without sync.
pub fn remove_all(engine: &dyn Engine, keys: &[Key], bar: &ProgressBar) -> Result<()> {
    for chunk in keys.chunks(1000) {
        let ops: Vec<Op<'_>> = chunk.iter().map(|k| Op::Remove(k)).collect();
        engine.write(&ops, Durability::None)?;
        bar.inc(chunk.len() as u64);
    }
    Ok(())
}

/// Reads `keys[i]` for every `i` of `order`, split across `threads` threads, each with its own
/// reader; every value must be present with its full length.
pub fn read_all(
    engine: &dyn Engine,
    data: &Dataset,
    keys: &[Key],
    order: &[u32],
    threads: usize,
    bar: &ProgressBar,
) -> Result<()> {
    on_threads(order, threads, |part| {
        let mut reader = engine.reader()?;
        for (i, &index) in part.iter().enumerate() {
            let key = &keys[index as usize];
            let len = reader.get(key)?;
            check(len == Some(data.value(key).len()), || {
                format!("get of a loaded key returned {len:?}")
            })?;
            if i % TICK == TICK - 1 {
                bar.inc(TICK as u64);
            }
        }
        Ok(())
    })
}

/// Range reads from `keys[i]` for every `i` of `starts`, split across `threads` threads, each
/// with its own reader; every range must find what `ranges` says the store holds.
pub fn scan_all(
    engine: &dyn Engine,
    keys: &[Key],
    starts: &[u32],
    ranges: &RangeCheck,
    threads: usize,
    bar: &ProgressBar,
) -> Result<()> {
    on_threads(starts, threads, |part| {
        let mut reader = engine.reader()?;
        for (i, &index) in part.iter().enumerate() {
            let start = &keys[index as usize];
            let found = reader.scan(start, ranges.len)?;
            let expected = ranges.expected(start);
            check(found == expected, || {
                format!(
                    "a range read of {} found {found} pairs, expected {expected}",
                    ranges.len
                )
            })?;
            if i % TICK == TICK - 1 {
                bar.inc(TICK as u64);
            }
        }
        Ok(())
    })
}

/// How many pairs a range read of `len` pairs from a stored key must find: `len`, except from
/// one of the store's last `len - 1` keys, where the range runs off the end. Kept as the store's
/// `len` largest keys, so the check costs one key comparison for almost every range.
#[derive(Debug)]
pub struct RangeCheck {
    len: usize,
    /// The largest `len` keys of the store (all of them if it holds fewer), ascending.
    tail: Vec<Key>,
}

impl RangeCheck {
    /// For a store holding exactly `stored` (distinct keys), ranges of `len` pairs.
    pub fn new(stored: &[Key], len: usize) -> Self {
        let mut tail: Vec<Key> = Vec::with_capacity(len + 1);
        for key in stored {
            if tail.len() == len && tail.first().is_none_or(|least| key <= least) {
                continue;
            }
            let at = tail.partition_point(|t| t < key);
            tail.insert(at, *key);
            if tail.len() > len {
                tail.remove(0);
            }
        }
        assert!(tail.len() <= len, "the tail holds at most one range");
        debug_assert!(tail.windows(2).all(|w| w[0] < w[1]), "tail keys ascend");
        Self { len, tail }
    }

    /// The pairs a range from the stored key `start` finds: the stored keys `>= start`, at most
    /// `len`.
    pub fn expected(&self, start: &Key) -> usize {
        // Keys below the tail's least have at least `len` keys from themselves on.
        let below = self.tail.iter().take_while(|t| *t < start).count();
        self.tail.len() - below
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::engine::Reader;

    /// A `BTreeMap` behind a lock that loses the first insert of every group of `lose_every`
    /// write groups (0: loses nothing): the checks must notice.
    #[derive(Default)]
    struct Map {
        pairs: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
        groups: Mutex<usize>,
        lose_every: usize,
    }

    impl Engine for Map {
        fn write(&self, ops: &[Op<'_>], _: Durability) -> Result<()> {
            let mut groups = self.groups.lock().expect("no panics");
            *groups += 1;
            let lose = self.lose_every != 0 && *groups % self.lose_every == 0;
            let mut pairs = self.pairs.lock().expect("no panics");
            for op in &ops[usize::from(lose)..] {
                match *op {
                    Op::Insert(k, v) => drop(pairs.insert(k.to_vec(), v.to_vec())),
                    Op::Remove(k) => drop(pairs.remove(k)),
                }
            }
            Ok(())
        }
        fn flush(&self) -> Result<()> {
            Ok(())
        }
        fn reader(&self) -> Result<Box<dyn Reader + '_>> {
            Ok(Box::new(self))
        }
        fn len(&self) -> Result<u64> {
            Ok(self.pairs.lock().expect("no panics").len() as u64)
        }
    }

    impl Reader for &Map {
        fn get(&mut self, key: &[u8]) -> Result<Option<usize>> {
            Ok(self.pairs.lock().expect("no panics").get(key).map(Vec::len))
        }
        fn scan(&mut self, start: &[u8], n: usize) -> Result<usize> {
            let pairs = self.pairs.lock().expect("no panics");
            Ok(pairs.range(start.to_vec()..).take(n).count())
        }
    }

    /// Loads `data` on 3 threads in groups of 100, then reads every key and ranges from the
    /// first 500, on 2 threads: what the concurrent phases do.
    fn load_and_check(map: &Map, data: &Dataset) -> Result<()> {
        let bar = ProgressBar::hidden();
        on_threads(data.keys(), 3, |part| {
            write_all(map, data, part, 100, Durability::None, &bar)
        })?;
        let order: Vec<u32> = (0..2000).collect();
        let ranges = RangeCheck::new(data.keys(), 10);
        scan_all(map, data.keys(), &order[..500], &ranges, 2, &bar)?;
        read_all(map, data, data.keys(), &order, 2, &bar)
    }

    #[test]
    fn concurrent_load_and_reads_pass_on_a_faithful_store() {
        let data = Dataset::generate(3, 2000);
        let map = Map::default();
        load_and_check(&map, &data).expect("a faithful store passes");
        assert_eq!(map.len().expect("len"), 2000);
    }

    #[test]
    fn a_lost_write_fails_the_checks() {
        let data = Dataset::generate(3, 2000);
        let map = Map {
            lose_every: 7,
            ..Map::default()
        };
        let err = load_and_check(&map, &data).expect_err("a lost write is caught");
        let err = err.to_string();
        assert!(
            err.contains("range read") || err.contains("returned None"),
            "{err}"
        );
    }

    fn key(n: u8) -> Key {
        let mut key = [0u8; 24];
        key[0] = n;
        key
    }

    #[test]
    fn range_check_counts_the_run_off_the_end() {
        // Keys 0, 2, .., 98 in a shuffled order.
        let stored: Vec<Key> = (0..50u8)
            .map(|i| key((u16::from(i) * 37 % 50 * 2) as u8))
            .collect();
        let ranges = RangeCheck::new(&stored, 10);
        assert_eq!(ranges.expected(&key(0)), 10);
        assert_eq!(ranges.expected(&key(80)), 10, "80..=98 is ten keys");
        assert_eq!(ranges.expected(&key(82)), 9);
        assert_eq!(ranges.expected(&key(98)), 1);
    }

    #[test]
    fn range_check_of_a_small_store() {
        let stored = [key(5), key(1), key(3)];
        let ranges = RangeCheck::new(&stored, 10);
        assert_eq!(ranges.expected(&key(1)), 3);
        assert_eq!(ranges.expected(&key(5)), 1);
    }

    #[test]
    fn on_threads_covers_every_item_once() {
        let items: Vec<u32> = (0..1001).collect();
        for threads in [1, 2, 3, 7] {
            let seen = std::sync::Mutex::new(Vec::new());
            on_threads(&items, threads, |part| {
                seen.lock().expect("no panics").extend_from_slice(part);
                Ok(())
            })
            .expect("no error");
            let mut seen = seen.into_inner().expect("no panics");
            seen.sort_unstable();
            assert_eq!(seen, items, "{threads} threads");
        }
    }

    #[test]
    fn on_threads_reports_an_error() {
        let items = [1, 2, 3, 4];
        let result = on_threads(&items, 2, |part| {
            check(!part.contains(&3), || "found 3".into())
        });
        assert_eq!(result.err().map(|e| e.to_string()), Some("found 3".into()));
    }
}
