//! Splitting a node and posting the index entry (see the module comment of `smo`).

use crossbeam_epoch::Guard;
use radix::Pid;

use crate::core::pid_of;
use crate::error::Result;
use crate::node::{Delta, Node, Page};
use crate::search::{header, materialize, route, Header, Probe, View};
use crate::stats::Counters;
use crate::tree::Tree;
use crate::value::Value;

impl Tree {
    /// Splits `pid` (whose consolidation, as `view` shows it, is `node`). The root grows
    /// instead. Losing a race is not an error: the caller re-reads and decides again.
    pub(crate) fn split<'g>(
        &self,
        pid: Pid,
        view: &View<'g>,
        node: Node,
        path: &[Pid],
        guard: &'g Guard,
    ) -> Result<()> {
        let sep = node.keys[split_point(&node)].clone();
        self.split_at(pid, view, node, sep, path, guard)
    }

    /// Splits `pid` at `sep` (strictly inside its range; a separator of an index node).
    pub(crate) fn split_at<'g>(
        &self,
        pid: Pid,
        view: &View<'g>,
        node: Node,
        sep: Value,
        path: &[Pid],
        guard: &'g Guard,
    ) -> Result<()> {
        if pid == self.root {
            return self.grow_root(view, node, sep, guard);
        }
        let right = node.upper_from(&sep);
        let right_pid = self.core.allocate(Page::Node(right), guard)?;
        let split = Delta::Split {
            sep,
            right: right_pid.get(),
        };
        let Some(after) = self.core.try_prepend(split, view, guard)? else {
            return self.core.free_unreachable(right_pid.get(), guard);
        };
        Counters::bump(&self.core.counters.splits);
        if let (Some(&parent), Some(h)) = (path.last(), header(&after)) {
            self.post_index_entry(parent, pid, &h, guard)?;
        }
        Ok(())
    }

    /// Posts the index entry for `child`'s split (its high fence and right sibling, as `h`
    /// shows them) into `parent`, unless `parent` no longer routes that key to `child`
    /// (already posted, or the tree changed: a later descent will see what is missing).
    pub(crate) fn post_index_entry(
        &self,
        parent: Pid,
        child: Pid,
        h: &Header<'_>,
        guard: &Guard,
    ) -> Result<()> {
        let (Some(sep), Some(right)) = (h.high, h.right) else {
            return Ok(());
        };
        let Some(pview) = self.core.read(parent, guard)? else {
            return Ok(());
        };
        let Some(ph) = header(&pview) else {
            return Ok(());
        };
        let probe = Probe::At(sep);
        if ph.level != h.level + 1
            || ph.removed.is_some()
            || !probe.within(ph.low, ph.high.map(|v| &**v))
        {
            return Ok(());
        }
        if route(&pview, probe) != child.get() {
            return Ok(());
        }
        let Some(pnode) = materialize(&pview) else {
            return Ok(());
        };
        let next = pnode
            .keys
            .get(pnode.keys.partition_point(|k| k <= sep))
            .cloned()
            .or_else(|| pnode.high.clone());
        let entry = Delta::IndexEntry {
            sep: sep.clone(),
            next,
            child: right,
        };
        if self.core.try_prepend(entry, &pview, guard)?.is_some() {
            Counters::bump(&self.core.counters.index_entries_posted);
        }
        // Validate the right sibling's pid now rather than when a descent follows it.
        pid_of(right)?;
        Ok(())
    }
}

/// Where to split a node with at least two entries: the entry at which the key and value
/// bytes before it reach half (so a few huge values do not end up together), kept strictly
/// inside the node.
pub(crate) fn split_point(node: &Node) -> usize {
    let n = node.len();
    assert!(n >= 2, "only a node with two or more entries splits");
    let size = |i: usize| node.keys[i].len() + node.vals.get(i).map_or(8, |v| v.len()) + 8;
    let total: usize = (0..n).map(size).sum();
    let mut acc = 0;
    for i in 0..n {
        acc += size(i);
        if acc * 2 >= total {
            return (i + 1).clamp(1, n - 1);
        }
    }
    n / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(sizes: &[usize]) -> Node {
        Node {
            keys: (0..sizes.len())
                .map(|i| Value::from(vec![i as u8]))
                .collect(),
            vals: sizes.iter().map(|&s| Value::from(vec![0; s])).collect(),
            ..Node::default()
        }
    }

    #[test]
    fn split_point_balances_bytes_and_stays_inside() {
        assert_eq!(split_point(&leaf(&[1, 1, 1, 1])), 2);
        assert_eq!(split_point(&leaf(&[1000, 1, 1, 1])), 1);
        assert_eq!(split_point(&leaf(&[1, 1, 1, 1000])), 3);
        assert_eq!(split_point(&leaf(&[5, 5])), 1);
    }
}
