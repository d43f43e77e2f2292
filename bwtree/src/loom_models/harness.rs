//! What every model shares: a tiny database on simulated storage, keys, and the checks run
//! once the model's threads have joined.

use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
use std::sync::Arc;

use crossbeam_epoch::{self as epoch, Guard};
use logstore::io::SimStorage;

use crate::core::pid_of;
use crate::node::{Node, RawPid};
use crate::search::materialize;
use crate::{Config, Db, Tree, Value};

/// The tree's shape knobs for one model.
#[derive(Clone, Copy, Debug)]
pub(super) struct Shape {
    pub(super) node_max_entries: usize,
    pub(super) merge_below_entries: usize,
    pub(super) consolidation_threshold: usize,
}

impl Default for Shape {
    fn default() -> Shape {
        Shape {
            node_max_entries: 2,
            merge_below_entries: 1,
            consolidation_threshold: 64,
        }
    }
}

/// A fresh database on in-memory storage: no background threads (the page cache and the log
/// start none under loom), no timed flushes or checkpoints, small log buffers.
pub(super) fn open_tiny(shape: Shape) -> Db {
    Config::new()
        .path("/loom/db")
        .node_max_entries(shape.node_max_entries)
        .merge_below_entries(shape.merge_below_entries)
        .consolidation_threshold(shape.consolidation_threshold)
        .io_buffer_size_bytes(16 << 10)
        .segment_size_bytes(32 << 10)
        .flush_every_ms(None)
        .checkpoint_every_ms(None)
        .open_on_storage(Arc::new(SimStorage::new()))
        .expect("a fresh database on simulated storage opens")
}

/// The `i`th key: one byte, so keys sort by `i`.
pub(super) fn key(i: u8) -> [u8; 1] {
    [b'a' + i]
}

/// The keys `ids` in order.
pub(super) fn keys(ids: &[u8]) -> Vec<Value> {
    ids.iter().map(|&i| Value::copy_from(&key(i))).collect()
}

/// A full scan's keys, checked strictly increasing (ordered, no duplicates).
pub(super) fn scan_keys(tree: &Tree) -> Vec<Value> {
    let got: Vec<Value> = tree
        .iter()
        .map(|r| r.expect("a scan of a healthy tree succeeds").0)
        .collect();
    assert_strictly_increasing(&got, "a scan");
    got
}

pub(super) fn assert_strictly_increasing(keys: &[Value], what: &str) {
    for w in keys.windows(2) {
        assert!(
            w[0] < w[1],
            "{what} is out of order or repeats a key: {keys:?}"
        );
    }
}

/// Checks the whole tree once the model's threads have joined, level by level from the root:
/// every node is well formed and not merged away; along each level, each node starts where its
/// left sibling ends (low fence = the left one's high fence), the first at the empty key and
/// the last unbounded; every index entry's child starts at its separator, one level down.
/// Returns each leaf's keys, leaves left to right.
pub(super) fn check_structure(tree: &Tree) -> Vec<Vec<Value>> {
    let guard = epoch::pin();
    let mut leftmost = tree.root.get();
    loop {
        let level = walk_level(tree, leftmost, &guard);
        let first = level.first().expect("a level has a node");
        if first.is_leaf() {
            let leaves: Vec<Vec<Value>> = level.into_iter().map(|n| n.keys).collect();
            assert_strictly_increasing(&leaves.concat(), "the leaf level");
            return leaves;
        }
        for node in &level {
            for (sep, &kid) in node.keys.iter().zip(&node.kids) {
                let child = node_at(tree, kid, &guard);
                assert_eq!(&child.low, sep, "a child starts at its separator");
                assert_eq!(child.level + 1, node.level, "a child is one level down");
            }
        }
        leftmost = first.kids[0];
    }
}

/// The nodes of one level, left to right from `leftmost`, with the fence checks.
fn walk_level(tree: &Tree, leftmost: RawPid, guard: &Guard) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut next = Some(leftmost);
    let mut low = Value::default();
    while let Some(pid) = next {
        assert!(
            nodes.len() < 64,
            "a level of a tiny tree has more than 64 nodes"
        );
        let node = node_at(tree, pid, guard);
        node.check();
        assert_eq!(
            node.removed, None,
            "a merged-away node {pid} is still linked"
        );
        assert_eq!(
            node.low, low,
            "node {pid} does not start where its left sibling ends"
        );
        if let Some(first) = node.keys.first() {
            assert!(
                *first >= node.low,
                "node {pid} holds a key below its low fence"
            );
        }
        assert_eq!(
            node.high.is_some(),
            node.right.is_some(),
            "node {pid}: a high fence goes with a right sibling"
        );
        if let Some(prev) = nodes.last() {
            assert_eq!(
                prev.level, node.level,
                "a right sibling is on the same level"
            );
        }
        next = node.right;
        low = node.high.clone().unwrap_or_default();
        nodes.push(node);
    }
    assert_eq!(
        nodes.last().and_then(|n| n.high.clone()),
        None,
        "a level ends unbounded"
    );
    nodes
}

fn node_at(tree: &Tree, pid: RawPid, guard: &Guard) -> Node {
    let pid = pid_of(pid).expect("a linked page id is valid");
    let view = tree
        .core
        .read(pid, guard)
        .expect("reading a resident page succeeds")
        .unwrap_or_else(|| panic!("linked page {pid} was freed"));
    materialize(&view).expect("a linked page is a tree node")
}

/// Most branch points of one execution. Opening and populating the database is itself a few
/// thousand modelled operations (single-threaded: they add no interleavings), so loom's
/// default of 1 000 is too low; an execution past this bound fails the model (it is how loom
/// reports a spin that never yields).
const MAX_BRANCHES: usize = 20_000;

/// The preemption bound of these models, whatever `LOOM_MAX_PREEMPTIONS` says (CI exports 2
/// for the other crates' models). One execution of a whole tree is thousands of modelled
/// operations: at bound 0 a model takes seconds (loom still explores which stores each load
/// may see and every switch at a yield), at bound 1 minutes, at bound 2 far longer (numbers in
/// docs/VERIFICATION.md). Bound 0 is a smoke run; the planted bugs need bound 1, so run
/// `BWTREE_LOOM_PREEMPTIONS=1` after touching a protocol.
const DEFAULT_PREEMPTIONS: usize = 0;

/// `loom::model` with the bounds above; prints how many executions it explored and how long
/// they took.
pub(super) fn model(f: impl Fn() + Sync + Send + 'static) {
    let bound = std::env::var("BWTREE_LOOM_PREEMPTIONS")
        .ok()
        .map(|v| v.parse().expect("BWTREE_LOOM_PREEMPTIONS is a number"))
        .unwrap_or(DEFAULT_PREEMPTIONS);
    // std on purpose: counts executions across the model, outside what loom explores.
    let executions = Arc::new(StdAtomicUsize::new(0));
    let counted = executions.clone();
    let started = std::time::Instant::now();
    let mut builder = loom::model::Builder::new();
    builder.max_branches = MAX_BRANCHES;
    builder.preemption_bound = Some(bound);
    builder.check(move || {
        counted.fetch_add(1, StdOrdering::Relaxed);
        f();
    });
    eprintln!(
        "preemption bound {bound}: {} executions in {:.1} s",
        executions.load(StdOrdering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}
