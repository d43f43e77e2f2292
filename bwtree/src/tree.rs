//! [`Tree`]: one ordered keyspace. Point reads and writes; iteration lives in `iter.rs`,
//! batches in `batch.rs`, structure changes in `smo/`.
//!
//! A write descends to the leaf covering its key, reads the key's current value through the
//! leaf's delta chain, and CASes one record delta onto the leaf. Losing the CAS means the leaf
//! changed (another write, a split, a merge): re-descend and retry. Each key's history is
//! therefore the sequence of successful CASes on the leaves that held it, which makes
//! `insert`, `remove`, `compare_and_swap` and `update_and_fetch` linearizable per key.

use std::fmt;
use std::sync::Arc;

use crossbeam_epoch as epoch;
use radix::Pid;

use crate::core::{backoff, Core, MAX_RESTARTS};
use crate::descend::Mode;
use crate::error::{CompareAndSwapError, Error, Result};
use crate::node::Delta;
use crate::search::{leaf_get, Probe};
use crate::stats::Stats;
use crate::value::Value;

/// Largest key accepted (bytes) with the default I/O buffer size.
pub const MAX_KEY_BYTES: usize = 1 << 20;
/// Largest value accepted (bytes) with the default I/O buffer size.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// One ordered keyspace of a database. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Tree {
    pub(crate) core: Arc<Core>,
    pub(crate) root: Pid,
    pub(crate) name: Value,
}

/// What a read-modify-write decides for the key's current value.
pub(crate) enum Change<R> {
    /// Write this (`None`: remove), then return `R`.
    Write(Option<Value>, R),
    /// Leave the key alone and return `R`.
    Keep(R),
}

impl Tree {
    /// Sets `key` to `value`; returns the previous value.
    pub fn insert<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        key: K,
        value: V,
    ) -> Result<Option<Value>> {
        let value = Value::copy_from(self.check_value(value.as_ref())?);
        self.modify(key.as_ref(), |old| {
            Change::Write(Some(value.clone()), old.cloned())
        })
    }

    /// The value of `key`.
    pub fn get<K: AsRef<[u8]>>(&self, key: K) -> Result<Option<Value>> {
        let key = self.check_key(key.as_ref())?;
        let guard = epoch::pin();
        let leaf = self.descend(Probe::At(key), Mode::Read, &guard)?;
        Ok(leaf_get(&leaf.view, key).cloned())
    }

    /// Removes `key`; returns the value it had.
    pub fn remove<K: AsRef<[u8]>>(&self, key: K) -> Result<Option<Value>> {
        self.modify(key.as_ref(), |old| match old {
            Some(v) => Change::Write(None, Some(v.clone())),
            None => Change::Keep(None),
        })
    }

    /// Whether `key` is present.
    pub fn contains_key<K: AsRef<[u8]>>(&self, key: K) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Sets `key` to `new` (`None`: removes it) if it currently holds `old` (`None`: absent).
    pub fn compare_and_swap<K, OV, NV>(
        &self,
        key: K,
        old: Option<OV>,
        new: Option<NV>,
    ) -> Result<std::result::Result<(), CompareAndSwapError>>
    where
        K: AsRef<[u8]>,
        OV: AsRef<[u8]>,
        NV: AsRef<[u8]>,
    {
        let new = match new {
            Some(v) => Some(Value::copy_from(self.check_value(v.as_ref())?)),
            None => None,
        };
        let old = old.as_ref().map(|v| v.as_ref());
        self.modify(key.as_ref(), |cur| {
            if cur.map(|v| &**v) != old {
                return Change::Keep(Err(CompareAndSwapError {
                    current: cur.cloned(),
                    proposed: new.clone(),
                }));
            }
            if cur.is_none() && new.is_none() {
                return Change::Keep(Ok(()));
            }
            Change::Write(new.clone(), Ok(()))
        })
    }

    /// Replaces the value of `key` by `f(current)` (`None` in or out: absent) and returns the
    /// new value. `f` may run more than once when writers race.
    pub fn update_and_fetch<K, F>(&self, key: K, mut f: F) -> Result<Option<Value>>
    where
        K: AsRef<[u8]>,
        F: FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
    {
        let mut too_large = None;
        let max_value = self.core.knobs.max_part_bytes;
        let out = self.modify(key.as_ref(), |cur| {
            let new = f(cur.map(|v| &**v)).map(Value::from);
            if let Some(n) = &new {
                if n.len() > max_value {
                    too_large = Some(n.len());
                    return Change::Keep(None);
                }
            }
            if cur.is_none() && new.is_none() {
                return Change::Keep(None);
            }
            Change::Write(new.clone(), new)
        })?;
        match too_large {
            Some(len) => Err(self.value_too_large(len)),
            None => Ok(out),
        }
    }

    /// Replaces the value of `key` by `f(current)` and returns the previous value.
    pub fn fetch_and_update<K, F>(&self, key: K, mut f: F) -> Result<Option<Value>>
    where
        K: AsRef<[u8]>,
        F: FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
    {
        let mut prev = None;
        self.update_and_fetch(key, |cur| {
            prev = cur.map(Value::copy_from);
            f(cur)
        })?;
        Ok(prev)
    }

    /// The read-modify-write loop every point write goes through.
    pub(crate) fn modify<R>(
        &self,
        key: &[u8],
        mut decide: impl FnMut(Option<&Value>) -> Change<R>,
    ) -> Result<R> {
        let key_bytes = self.check_key(key)?;
        let key = Value::copy_from(key_bytes);
        for attempt in 0..MAX_RESTARTS {
            backoff(attempt);
            let guard = epoch::pin();
            let leaf = self.descend(Probe::At(key_bytes), Mode::Write, &guard)?;
            let current = leaf_get(&leaf.view, key_bytes);
            let (new, out) = match decide(current) {
                Change::Keep(out) => return Ok(out),
                Change::Write(new, out) => (new, out),
            };
            let incoming = key.len() + new.as_ref().map_or(0, |v| v.len());
            let replaced = current.map_or(0, |v| key.len() + v.len());
            if leaf.header.payload_bytes.saturating_sub(replaced) + incoming
                > self.core.knobs.node_hard_max_bytes
            {
                self.make_room(&leaf, &key, incoming, &guard)?;
                continue;
            }
            let base = crate::search::base_node(&leaf.view).expect("a leaf is a tree node");
            let pos = base.keys.partition_point(|k| *k < key) as u32;
            let removing = new.is_none();
            let delta = match new {
                Some(val) => Delta::Put {
                    key: key.clone(),
                    val,
                    pos,
                },
                None => Delta::Del {
                    key: key.clone(),
                    pos,
                },
            };
            if self.core.try_prepend(delta, &leaf.view, &guard)?.is_some() {
                if removing {
                    match self.merge_if_small(leaf.pid, &leaf.path, &guard) {
                        // The write is done (visible and logged): a full disk only postpones
                        // the merge, which a later removal retries. Reporting it would make
                        // the caller count a completed write as failed.
                        Err(e) if e.is_storage_full() => {}
                        r => r?,
                    }
                }
                self.core.after_write();
                return Ok(out);
            }
        }
        Err(Error::Contention("a write"))
    }

    /// Counters since the database was opened.
    pub fn stats(&self) -> Stats {
        self.core
            .counters
            .snapshot(self.core.cache.stats(), self.core.orphans.len())
    }

    /// This tree's name (empty for the default tree).
    pub fn name(&self) -> Value {
        self.name.clone()
    }
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tree")
            .field("name", &self.name)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Tree {
    pub(crate) fn check_key<'k>(&self, key: &'k [u8]) -> Result<&'k [u8]> {
        let max = self.core.knobs.max_part_bytes;
        if key.len() > max {
            return Err(Error::Unsupported(format!(
                "a key of {} bytes exceeds the {max}-byte limit",
                key.len()
            )));
        }
        Ok(key)
    }

    pub(crate) fn check_value<'v>(&self, value: &'v [u8]) -> Result<&'v [u8]> {
        if value.len() > self.core.knobs.max_part_bytes {
            return Err(self.value_too_large(value.len()));
        }
        Ok(value)
    }

    fn value_too_large(&self, len: usize) -> Error {
        Error::Unsupported(format!(
            "a value of {len} bytes exceeds the {}-byte limit",
            self.core.knobs.max_part_bytes
        ))
    }
}
