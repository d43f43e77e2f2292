//! `--verify`: the stress workload with a model the checker can trust under concurrency.
//!
//! Each thread owns a contiguous slice of the key space: only it writes there, so its own
//! `BTreeMap` is exactly what the database must hold in that slice, whatever the other threads
//! do. Reads (gets and scans) go anywhere: inside the owner's slice they must match the model
//! exactly, elsewhere they are checked for order and value shape. Compare-and-swaps on owned
//! keys must succeed when they expect the model's value and fail when they expect another.
//! Every second each thread walks its whole slice against its model; at the end the parent
//! checks every slice after a flush and again after a clean close and reopen.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::Rng;

use super::{check_value, key, Counters};
use crate::engine::Result;

/// How often an owner walks its whole slice.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// One thread's slice of the keys and its model of them.
#[derive(Debug)]
pub struct Owner {
    thread: u64,
    lo: u64,
    hi: u64,
    model: BTreeMap<u64, u64>,
    last_check: Instant,
}

fn decode(v: &[u8]) -> Result<u64> {
    check_value(v)?;
    Ok(u64::from_le_bytes(v.try_into()?))
}

fn key_number(k: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(k.try_into()?))
}

impl Owner {
    pub fn new(thread: u64, threads: u64, keys: u64) -> Owner {
        let per = keys.div_ceil(threads).max(1);
        Owner {
            thread,
            lo: thread * per,
            hi: ((thread + 1) * per).min(keys),
            model: BTreeMap::new(),
            last_check: Instant::now(),
        }
    }

    fn mismatch(&self, k: u64, expected: Option<u64>, found: Option<u64>, what: &str) -> String {
        format!(
            "verify: thread {} key {k}: expected {expected:?}, found {found:?} ({what})",
            self.thread
        )
    }

    fn expect(&self, k: u64, found: Option<u64>, what: &str) -> Result<()> {
        let expected = self.model.get(&k).copied();
        if expected == found {
            return Ok(());
        }
        Err(self.mismatch(k, expected, found, what).into())
    }

    fn own_key(&self, rng: &mut SmallRng) -> u64 {
        rng.random_range(self.lo..self.hi.max(self.lo + 1))
    }

    /// One operation: the stress mix, writes confined to the owned slice.
    pub fn op(
        &mut self,
        db: &bwtree::Db,
        rng: &mut SmallRng,
        keys: u64,
        c: &Counters,
    ) -> Result<()> {
        match rng.random_range(0..100u32) {
            0..20 => self.get(db, self.own_key(rng))?,
            20..40 => {
                if let Some(v) = db.get(key(rng.random_range(0..keys)))? {
                    check_value(&v)?;
                }
            }
            40..60 => {
                let (k, v) = (self.own_key(rng), rng.random::<u64>());
                let old = db.insert(key(k), v.to_le_bytes())?;
                self.expect(
                    k,
                    old.as_deref().map(decode).transpose()?,
                    "insert's old value",
                )?;
                self.model.insert(k, v);
            }
            60..70 => {
                let k = self.own_key(rng);
                let old = db.remove(key(k))?;
                self.expect(
                    k,
                    old.as_deref().map(decode).transpose()?,
                    "remove's old value",
                )?;
                self.model.remove(&k);
            }
            70..85 => self.cas(db, rng, c)?,
            85..93 => self.scan_own(db, self.own_key(rng), 10)?,
            _ => scan_any(db, key(rng.random_range(0..keys)))?,
        }
        c.ops.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.last_check.elapsed() >= CHECK_EVERY {
            self.check(db)?;
            c.verifies
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    fn get(&self, db: &bwtree::Db, k: u64) -> Result<()> {
        let found = db.get(key(k))?.as_deref().map(decode).transpose()?;
        self.expect(k, found, "get")
    }

    /// A counter increment expecting the model's value (must win: nobody else writes here),
    /// or, one time in eight, expecting another value (must lose).
    fn cas(&mut self, db: &bwtree::Db, rng: &mut SmallRng, c: &Counters) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let k = self.own_key(rng);
        let current = self.model.get(&k).copied();
        let next = current.map_or(0, |v| v.wrapping_add(1));
        let wrong = rng.random_range(0..8) == 0;
        let expected = if wrong { Some(next) } else { current };
        let answer = db.compare_and_swap(
            key(k),
            expected.map(u64::to_le_bytes),
            Some(next.to_le_bytes()),
        )?;
        match (answer, wrong) {
            (Ok(()), false) => {
                self.model.insert(k, next);
                c.cas_won.fetch_add(1, Relaxed);
            }
            (Err(e), true) => {
                let found = e.current.as_deref().map(decode).transpose()?;
                self.expect(k, found, "a failed compare-and-swap's current value")?;
                c.cas_lost.fetch_add(1, Relaxed);
            }
            (Ok(()), true) => {
                return Err(self
                    .mismatch(k, current, expected, "a CAS expecting this swapped")
                    .into())
            }
            (Err(e), false) => {
                let found = e.current.as_deref().map(decode).transpose()?;
                return Err(self
                    .mismatch(k, current, found, "a CAS expecting the model lost")
                    .into());
            }
        }
        Ok(())
    }

    /// Up to `limit` pairs from `from` to the slice's end must be exactly the model's.
    fn scan_own(&self, db: &bwtree::Db, from: u64, limit: usize) -> Result<()> {
        let mut expected = self.model.range(from..self.hi).take(limit);
        for pair in db.range(key(from)..key(self.hi)).take(limit) {
            let (k, v) = pair?;
            let (k, v) = (key_number(&k)?, decode(&v)?);
            match expected.next() {
                Some((&ek, _)) if ek < k => {
                    return Err(self
                        .mismatch(ek, self.model.get(&ek).copied(), None, "scan")
                        .into())
                }
                Some((&ek, &ev)) if ek == k && ev == v => {}
                _ => {
                    return Err(self
                        .mismatch(k, self.model.get(&k).copied(), Some(v), "scan")
                        .into())
                }
            }
        }
        if let Some((&ek, &ev)) = expected.next() {
            return Err(self.mismatch(ek, Some(ev), None, "scan ended early").into());
        }
        Ok(())
    }

    /// Walks the whole slice against the model, then gets a few keys one by one.
    pub fn check(&mut self, db: &bwtree::Db) -> Result<()> {
        self.scan_own(db, self.lo, usize::MAX)?;
        for k in (self.lo..self.hi).step_by(((self.hi - self.lo) / 32).max(1) as usize) {
            self.get(db, k)?;
        }
        self.last_check = Instant::now();
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.model.len()
    }
}

/// A scan across slices: keys strictly increasing, values of this workload's shape.
fn scan_any(db: &bwtree::Db, from: [u8; 8]) -> Result<()> {
    let mut last: Option<bwtree::Value> = None;
    for pair in db.range(from..).take(10) {
        let (k, v) = pair?;
        check_value(&v)?;
        if last.as_ref().is_some_and(|l| *l >= k) {
            return Err("verify: a scan returned keys out of order or twice".into());
        }
        last = Some(k);
    }
    Ok(())
}

/// Every slice against its model, and the database's length against theirs.
pub fn check_all(db: &bwtree::Db, owners: &mut [Owner], when: &str) -> Result<()> {
    for owner in owners.iter_mut() {
        owner.check(db).map_err(|e| format!("{e} ({when})"))?;
    }
    let expected: usize = owners.iter().map(Owner::len).sum();
    let found = db.len()?;
    if found != expected {
        return Err(format!(
            "verify: {found} keys in the database, {expected} in the models ({when})"
        )
        .into());
    }
    Ok(())
}
