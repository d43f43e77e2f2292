//! Growing and shrinking the tree at its root, whose pid never changes.

use crossbeam_epoch::Guard;
use radix::Pid;

use crate::core::pid_of;
use crate::error::Result;
use crate::node::{Delta, Node, Page};
use crate::search::{header, materialize, View};
use crate::stats::Counters;
use crate::tree::Tree;
use crate::value::Value;

impl Tree {
    /// Moves the root's contents into two new children and makes the root an index node over
    /// them, in one CAS. On losing the race the children are freed.
    pub(crate) fn grow_root<'g>(
        &self,
        view: &View<'g>,
        node: Node,
        sep: Value,
        guard: &'g Guard,
    ) -> Result<()> {
        assert!(node.intent.is_none(), "merges finish before the root grows");
        let right = node.upper_from(&sep);
        let right_pid = self.core.allocate(Page::Node(right), guard)?;
        let left = node.lower_until(&sep, right_pid.get());
        let level = left.level + 1;
        let low = left.low.clone();
        let left_pid = match self.core.allocate(Page::Node(left), guard) {
            Ok(p) => p,
            Err(e) => {
                // Nothing links the right child: free it (on a full disk, through the orphan
                // list) and report why the root did not grow.
                let _ = self.core.free_unreachable(right_pid.get(), guard);
                return Err(e);
            }
        };
        let root = Node {
            level,
            keys: vec![low.clone(), sep],
            kids: vec![left_pid.get(), right_pid.get()],
            low,
            ..Node::default()
        };
        let replaced = match self.core.try_replace(Page::Node(root), view, guard) {
            Ok(r) => r,
            Err(e) => {
                // As in `split_at`: on a full disk nothing links the children; free them
                // (their frees go to the orphan list while the disk stays full).
                if e.is_storage_full() {
                    let _ = self.core.free_unreachable(left_pid.get(), guard);
                    let _ = self.core.free_unreachable(right_pid.get(), guard);
                }
                return Err(e);
            }
        };
        if replaced.is_some() {
            Counters::bump(&self.core.counters.splits);
            Counters::bump(&self.core.counters.root_splits);
            return Ok(());
        }
        self.core.free_unreachable(left_pid.get(), guard)?;
        self.core.free_unreachable(right_pid.get(), guard)
    }

    /// The root (consolidated as `node`) is an index node with one child: mark the
    /// child removed, then pull its contents up. Returns whether the tree changed.
    pub(crate) fn try_shrink_root(&self, node: &Node, guard: &Guard) -> Result<bool> {
        let child = pid_of(node.kids[0])?;
        let Some(cview) = self.core.read(child, guard)? else {
            return Ok(false);
        };
        if cview.head_is_staged() {
            return Ok(false);
        }
        let Some(ch) = header(&cview) else {
            return Ok(false);
        };
        if ch.high.is_some() || ch.removed.is_some() || ch.intent.is_some() {
            return Ok(false);
        }
        let remove = Delta::Remove {
            parent: self.root.get(),
        };
        if self.core.try_prepend(remove, &cview, guard)?.is_none() {
            return Ok(false);
        }
        self.finish_root_shrink(child, guard)?;
        Ok(true)
    }

    /// Second half of a root shrink (also run by helpers): replace the root, whose only child
    /// is the removed `child`, by the child's contents; the winner frees the child.
    pub(crate) fn finish_root_shrink(&self, child: Pid, guard: &Guard) -> Result<()> {
        for _ in 0..crate::core::MAX_RESTARTS {
            let Some(rview) = self.core.read(self.root, guard)? else {
                return Ok(());
            };
            let Some(root) = materialize(&rview) else {
                return Ok(());
            };
            if root.kids != [child.get()] {
                return Ok(()); // done already
            }
            let Some(cview) = self.core.read(child, guard)? else {
                return Ok(());
            };
            let Some(mut pulled) = materialize(&cview) else {
                return Ok(());
            };
            assert!(
                pulled.removed.is_some(),
                "only a removed child is pulled up"
            );
            pulled.removed = None;
            if self
                .core
                .try_replace(Page::Node(pulled), &rview, guard)?
                .is_some()
            {
                Counters::bump(&self.core.counters.root_shrinks);
                return self.core.free_unreachable(child.get(), guard);
            }
        }
        Err(crate::error::Error::Contention("shrinking the root"))
    }
}
