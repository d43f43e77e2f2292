//! [`Batch`] and [`Tree::apply_batch`]: several writes applied atomically.
//!
//! The batch's writes are grouped by the leaf covering them, in key order, and each group is
//! *staged* on its leaf as one `Batch` delta through a page-cache group
//! ([`pagecache::Group`]): staged deltas are invisible to readers and block other writers of
//! those leaves until the group commits, which logs all of them as one record and makes them
//! visible at one instant. So readers see all of a batch or none of it, and recovery replays
//! all of it or none of it. No global lock: batches on disjoint leaves proceed in parallel.
//!
//! Leaves are staged in key order and a staged leaf cannot split or merge, so two batches
//! waiting for each other's leaves cannot form a cycle. A batch that cannot make progress
//! (its descent needs a structure change blocked by its own staged leaves, or another batch
//! holds its next leaf) aborts, backs off and starts over, a bounded number of times.

use std::collections::BTreeMap;

use crossbeam_epoch::Guard;

use crate::base::BatchOps;
use crate::core::backoff;
use crate::descend::Mode;
use crate::error::{Error, Result};
use crate::node::Delta;
use crate::search::{materialize, Probe};
use crate::stats::Counters;
use crate::tree::Tree;
use crate::value::Value;

/// Restarts of one descent inside a batch before the batch starts over.
const DESCENT_RESTARTS: u32 = 64;
/// Times a batch starts over before reporting [`Error::Contention`].
const BATCH_ATTEMPTS: u32 = 100_000;

/// Writes to apply atomically with [`Tree::apply_batch`]. Later writes to a key replace
/// earlier ones.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    ops: BTreeMap<Value, Option<Value>>,
}

impl Batch {
    /// Sets `key` to `value`.
    pub fn insert<K: AsRef<[u8]>, V: AsRef<[u8]>>(&mut self, key: K, value: V) {
        self.ops.insert(
            Value::copy_from(key.as_ref()),
            Some(Value::copy_from(value.as_ref())),
        );
    }

    /// Removes `key`.
    pub fn remove<K: AsRef<[u8]>>(&mut self, key: K) {
        self.ops.insert(Value::copy_from(key.as_ref()), None);
    }

    /// The number of distinct keys written.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Whether staging got through every leaf.
enum Staging {
    Complete,
    StartOver,
}

type Op = (Value, Option<Value>);

impl Tree {
    /// Applies every write of `batch` atomically: readers see all of them or none, and after a
    /// crash all of them are recovered or none.
    pub fn apply_batch(&self, batch: Batch) -> Result<()> {
        let ops: Vec<Op> = batch.ops.into_iter().collect();
        for (k, v) in &ops {
            self.check_key(k)?;
            if let Some(v) = v {
                self.check_value(v)?;
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        for attempt in 0..BATCH_ATTEMPTS {
            backoff(attempt);
            let guard = crossbeam_epoch::pin();
            let mut group = self.core.cache.begin_group(&guard);
            match self.stage_all(&mut group, &ops, &guard) {
                Ok(Staging::Complete) => {
                    group.commit().map_err(|e| batch_error(e, &ops))?;
                    Counters::bump(&self.core.counters.batches);
                    self.core.after_write();
                    return Ok(());
                }
                Ok(Staging::StartOver) => {
                    group.abort()?;
                    drop(guard);
                    self.prepare_leaves(&ops)?;
                }
                Err(e) => {
                    group.abort()?;
                    return Err(e);
                }
            }
        }
        Err(Error::Contention("a batch"))
    }

    /// Descends to every leaf the batch writes, as a writer, with nothing staged: the
    /// structure changes those descents need (splits, merges, consolidations) are done now,
    /// when none of this batch's own staged leaves can block them. Without it, a batch whose
    /// later descent needs a change blocked by a leaf it staged earlier would meet the same
    /// block on every attempt (seen: a single-threaded batch retrying for minutes).
    fn prepare_leaves(&self, ops: &[Op]) -> Result<()> {
        let guard = crossbeam_epoch::pin();
        for (key, _) in ops {
            match self.descend_within(Probe::At(key), Mode::Write, DESCENT_RESTARTS, &guard) {
                Ok(_) | Err(Error::Contention(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn stage_all<'g>(
        &self,
        group: &mut pagecache::Group<'g, crate::consolidate::TreeModel>,
        ops: &[Op],
        guard: &'g Guard,
    ) -> Result<Staging> {
        let mut rest = ops;
        let mut tries = 0;
        while let Some((first, _)) = rest.first() {
            tries += 1;
            if tries > 4 * ops.len() + DESCENT_RESTARTS as usize {
                return Ok(Staging::StartOver);
            }
            let leaf =
                match self.descend_within(Probe::At(first), Mode::Write, DESCENT_RESTARTS, guard) {
                    Ok(leaf) => leaf,
                    Err(Error::Contention(_)) => return Ok(Staging::StartOver),
                    Err(e) => return Err(e),
                };
            if leaf.view.head_is_staged() {
                return Ok(Staging::StartOver); // another batch holds it
            }
            let n = match leaf.header.high {
                Some(high) => rest.partition_point(|(k, _)| k < high),
                None => rest.len(),
            };
            let mine = &rest[..n];
            let bytes: usize = mine
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()))
                .sum();
            if leaf.header.payload_bytes + bytes > self.core.knobs.node_hard_max_bytes {
                let node = materialize(&leaf.view).expect("a leaf is a tree node");
                if node.len() < 2
                    || node.payload_bytes() + bytes > self.core.knobs.node_hard_max_bytes * 2
                {
                    return Err(Error::Unsupported(format!(
                        "a batch writing {bytes} bytes under one leaf; apply it in smaller batches"
                    )));
                }
                self.split(leaf.pid, &leaf.view, node, &leaf.path, guard)?;
                continue;
            }
            let delta = Delta::Batch {
                ops: BatchOps::new(mine.to_vec()),
            };
            match group
                .stage(delta, &leaf.view)
                .map_err(|e| batch_error(e, ops))?
            {
                Ok(_) => rest = &rest[n..],
                Err(_) => continue, // the leaf changed: re-descend
            }
        }
        Ok(Staging::Complete)
    }
}

fn batch_error(e: pagecache::Error, ops: &[Op]) -> Error {
    match e {
        pagecache::Error::FragmentTooLarge { len, max } => Error::Unsupported(format!(
            "a batch of {} writes needs a {len}-byte log record, over the {max}-byte limit; \
             apply it in smaller batches",
            ops.len()
        )),
        other => other.into(),
    }
}
