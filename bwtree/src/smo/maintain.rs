//! Deciding which structure change a node needs, on a writer's way down.

use crossbeam_epoch::Guard;
use radix::Pid;

use crate::descend::Leaf;
use crate::error::Result;
use crate::node::{Node, Page};
use crate::search::{materialize, Header, View};
use crate::smo::split::split_point;
use crate::stats::Counters;
use crate::tree::Tree;
use crate::value::Value;

impl Tree {
    /// Consolidates, splits or merges the node if it needs it. Returns whether the tree
    /// changed (the caller restarts its descent).
    pub(crate) fn maintain<'g>(
        &self,
        pid: Pid,
        view: &View<'g>,
        h: &Header<'g>,
        path: &[Pid],
        guard: &'g Guard,
    ) -> Result<bool> {
        let k = &self.core.knobs;
        let may_be_large = h.max_len() > k.node_max_entries || h.payload_bytes > k.node_max_bytes;
        let root_may_shrink = pid == self.root && h.level > 0 && h.max_len() <= 1;
        if h.chain_len < k.consolidation_threshold
            && !may_be_large
            && !root_may_shrink
            && h.intent.is_none()
        {
            return Ok(false);
        }
        let Some(node) = materialize(view) else {
            return Ok(false);
        };
        if let Some(intent) = &node.intent {
            // Finish the merge before anything else changes this node.
            self.help_merge(pid, intent.child, guard)?;
            return Ok(true);
        }
        if self.too_large(&node) {
            self.split(pid, view, node, path, guard)?;
            return Ok(true);
        }
        if root_may_shrink && node.kids.len() == 1 {
            return self.try_shrink_root(&node, guard);
        }
        if h.chain_len >= k.consolidation_threshold {
            self.consolidate(view, node, guard)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// After a removal left the leaf at the end of `path` small: merge it into its left
    /// sibling, then its parent likewise if that became small, up the path.
    pub(crate) fn merge_if_small(&self, leaf: Pid, path: &[Pid], guard: &Guard) -> Result<()> {
        let mut child = leaf;
        for depth in (0..path.len()).rev() {
            let Some(view) = self.core.read(child, guard)? else {
                return Ok(());
            };
            let Some(h) = crate::search::header(&view) else {
                return Ok(());
            };
            if h.max_len() >= self.core.knobs.merge_below_entries || h.removed.is_some() {
                return Ok(());
            }
            let exact = materialize(&view).map_or(usize::MAX, |n| n.len());
            if exact >= self.core.knobs.merge_below_entries {
                return Ok(());
            }
            if !self.try_start_merge(path[depth], child, guard)? {
                return Ok(());
            }
            child = path[depth];
            if child == self.root {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Makes room in `leaf` for `key` with `incoming` more bytes: consolidate (dropping
    /// superseded versions), or split so the key lands in a node with room (alone, if its
    /// neighbour is as large as it is).
    pub(crate) fn make_room(
        &self,
        leaf: &Leaf<'_>,
        key: &Value,
        incoming: usize,
        guard: &Guard,
    ) -> Result<()> {
        let Some(node) = materialize(&leaf.view) else {
            return Ok(());
        };
        let replaced = node
            .keys
            .binary_search(key)
            .map_or(0, |i| key.len() + node.vals[i].len());
        if node.payload_bytes().saturating_sub(replaced) + incoming
            <= self.core.knobs.node_hard_max_bytes
        {
            return self.consolidate(&leaf.view, node, guard);
        }
        let sep = if node.len() >= 2 {
            node.keys[split_point(&node)].clone()
        } else {
            // One entry, as large as the newcomer: split between the two keys.
            let only = node
                .keys
                .first()
                .expect("a leaf over its byte limit holds an entry");
            assert_ne!(only, key, "a lone entry is replaced, not split");
            only.max(key).clone()
        };
        self.split_at(leaf.pid, &leaf.view, node, sep, &leaf.path, guard)
    }

    /// Whether a consolidated node must split.
    pub(crate) fn too_large(&self, node: &Node) -> bool {
        let k = &self.core.knobs;
        node.len() >= 2
            && (node.len() > k.node_max_entries || node.payload_bytes() > k.node_max_bytes)
    }

    /// Installs `node` (the consolidation of `view`) if the page did not change meanwhile;
    /// otherwise discards it.
    pub(crate) fn consolidate<'g>(
        &self,
        view: &View<'g>,
        node: Node,
        guard: &'g Guard,
    ) -> Result<()> {
        let c = &self.core.counters;
        if self
            .core
            .try_replace(Page::Node(node), view, guard)?
            .is_some()
        {
            Counters::bump(&c.consolidations);
        } else {
            Counters::bump(&c.consolidation_failures);
        }
        Ok(())
    }
}
