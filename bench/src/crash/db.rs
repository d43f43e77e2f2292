//! The torture's database: tiny nodes, segments and cache so that splits, merges, eviction,
//! page-in, checkpoints and cleaning happen all the time, and the calls that run a
//! [`workload::Op`](super::workload::Op) against it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::workload::{bump, Map, Op, Outcome, State, TREE_NAMES};
use crate::engine::Result;

/// The background intervals, drawn per child (the sizes stay fixed for a directory).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Timers {
    pub flush_every_ms: Option<u64>,
    pub checkpoint_every_ms: Option<u64>,
    pub clean_every_ms: Option<u64>,
    pub debug_delay: bool,
}

impl Timers {
    /// What the parent opens with to check the state: no background work at all.
    pub const QUIET: Timers = Timers {
        flush_every_ms: None,
        checkpoint_every_ms: None,
        clean_every_ms: None,
        debug_delay: false,
    };
}

pub fn config(dir: &Path, timers: Timers) -> bwtree::Config {
    bwtree::Config::new()
        .path(dir)
        .node_max_entries(6)
        .merge_below_entries(2)
        .consolidation_threshold(3)
        .io_buffer_size_bytes(16 << 10)
        .segment_size_bytes(64 << 10)
        .cache_capacity_bytes(32 << 10)
        .flush_every_ms(timers.flush_every_ms)
        .checkpoint_every_ms(timers.checkpoint_every_ms)
        .clean_every_ms(timers.clean_every_ms)
        .debug_delay(timers.debug_delay)
}

/// The trees of [`TREE_NAMES`], in order.
pub fn open_trees(db: &bwtree::Db) -> Result<Vec<bwtree::Tree>> {
    TREE_NAMES
        .iter()
        .map(|name| {
            Ok(if name.is_empty() {
                bwtree::Tree::clone(db)
            } else {
                db.open_tree(name)?
            })
        })
        .collect()
}

/// Every pair of every tree.
pub fn read_state(trees: &[bwtree::Tree]) -> Result<State> {
    let mut state = State::default();
    for (map, tree) in state.iter_mut().zip(trees) {
        *map = read_tree(tree)?;
    }
    Ok(state)
}

fn read_tree(tree: &bwtree::Tree) -> Result<Map> {
    let mut map = Map::new();
    for pair in tree.iter() {
        let (k, v) = pair?;
        map.insert(k.to_vec(), v.to_vec());
    }
    Ok(map)
}

/// Issues `op`; returns what the database answered.
pub fn execute(trees: &[bwtree::Tree], op: &Op) -> Result<Outcome> {
    let to_vec = |v: Option<bwtree::Value>| v.map(Vec::from);
    Ok(match op {
        Op::Insert(t, k, v) => Outcome::Previous(to_vec(trees[*t].insert(k, v)?)),
        Op::Remove(t, k) => Outcome::Previous(to_vec(trees[*t].remove(k)?)),
        Op::Batch(t, writes) => {
            let mut batch = bwtree::Batch::default();
            for (k, v) in writes {
                match v {
                    Some(v) => batch.insert(k, v),
                    None => batch.remove(k),
                }
            }
            trees[*t].apply_batch(batch)?;
            Outcome::Applied
        }
        Op::Cas(t, k, old, new) => Outcome::Swapped(
            trees[*t]
                .compare_and_swap(k, old.as_ref(), new.as_ref())?
                .is_ok(),
        ),
        Op::Update(t, k) => Outcome::Updated(to_vec(trees[*t].update_and_fetch(k, bump)?)),
    })
}
