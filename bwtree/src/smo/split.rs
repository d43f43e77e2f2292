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
        let after = match self.core.try_prepend(split, view, guard) {
            Ok(Some(after)) => after,
            Ok(None) => return self.core.free_unreachable(right_pid.get(), guard),
            Err(e) => {
                // On a full disk the split delta was not installed (the page cache fails
                // before publishing), so the right half is unlinked: free it (its free meets
                // the full disk too, so it goes to the orphan list and is freed after a later
                // successful write). Any other error leaves it alone: the delta may be
                // installed.
                if e.is_storage_full() {
                    let _ = self.core.free_unreachable(right_pid.get(), guard);
                }
                return Err(e);
            }
        };
        Counters::bump(&self.core.counters.splits);
        if let (Some(&parent), Some(h)) = (path.last(), header(&after)) {
            match self.post_index_entry(parent, pid, &h, guard) {
                // The split is done; the index entry only shortens descents, and the next
                // descent that moves right posts it (on a full disk, once space is freed).
                Err(e) if e.is_storage_full() => {}
                r => r?,
            }
        }
        Ok(())
    }

    /// Posts the index entry for `child`'s split (its high fence and right sibling, as `h`
    /// shows them) into `parent`, unless `parent` no longer routes that key to `child`
    /// (already posted, or the tree changed: a later descent will see what is missing).
    ///
    /// Invariant (no entry for a freed page): the child is re-read *after* the parent's view
    /// that the CAS is made on, and must still end at `sep` with `right` as its sibling. `h`
    /// alone is not enough: between reading it and reading the parent, another thread may
    /// post the same entry, merge `right` back into `child`, delete the entry and free
    /// `right`; the parent then routes `sep` to `child` again, and posting from `h` would
    /// link a free pid for good. With the re-read, `right` is still `child`'s sibling after
    /// the parent was read, so it has not been merged away (that rewrites `child`'s fence
    /// first), and a merge after the read must change the parent (its intent and term
    /// delete), which makes the CAS on the read view fail.
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
        if !self.still_split_at(child, sep, right, guard)? {
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

    /// Whether `child`, read now, is a live node ending at `sep` with `right` as its sibling.
    fn still_split_at(&self, child: Pid, sep: &[u8], right: u64, guard: &Guard) -> Result<bool> {
        let Some(view) = self.core.read(child, guard)? else {
            return Ok(false);
        };
        Ok(header(&view).is_some_and(|h| {
            h.removed.is_none() && h.right == Some(right) && h.high.is_some_and(|hi| **hi == *sep)
        }))
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
    use crate::descend::Mode;
    use crate::{Config, Db};

    fn two_level_tree() -> Db {
        let db = Config::new()
            .temporary(true)
            .node_max_entries(8)
            .flush_every_ms(None)
            .checkpoint_every_ms(None)
            .open()
            .unwrap();
        for i in 0u32..40 {
            db.insert(i.to_be_bytes(), b"v").unwrap();
        }
        db
    }

    /// The interleaving that linked a free pid into a parent (found by the concurrent
    /// owners-and-scanners test): a thread reads a split child's header, then, before it
    /// posts the index entry, another thread posts it, merges the right half back and frees
    /// it. Posting from the stale header must now do nothing.
    #[test]
    fn a_stale_split_header_never_posts_an_entry_for_a_merged_away_page() {
        let db = two_level_tree();
        let key = 20u32.to_be_bytes();
        let guard = crossbeam_epoch::pin();
        let leaf = db.descend(Probe::At(&key), Mode::Write, &guard).unwrap();
        let parent = *leaf.path.last().expect("the leaf has a parent");
        let node = materialize(&leaf.view).unwrap();
        let sep = node.keys[split_point(&node)].clone();
        // Split without a path: the entry is left for a later descent to post.
        db.split_at(leaf.pid, &leaf.view, node, sep.clone(), &[], &guard)
            .unwrap();
        let split = db.core.read(leaf.pid, &guard).unwrap().unwrap();
        let stale = header(&split).unwrap();
        let right = pid_of(stale.right.unwrap()).unwrap();
        assert_eq!(stale.high.map(|v| &**v), Some(&*sep));

        // Another thread posts the entry, then merges the right half away again.
        db.post_index_entry(parent, leaf.pid, &stale, &guard)
            .unwrap();
        let pview = db.core.read(parent, &guard).unwrap().unwrap();
        assert_eq!(route(&pview, Probe::At(&sep)), right.get(), "entry posted");
        assert!(db.try_start_merge(parent, right, &guard).unwrap());
        let pview = db.core.read(parent, &guard).unwrap().unwrap();
        assert_eq!(
            route(&pview, Probe::At(&sep)),
            leaf.pid.get(),
            "entry deleted"
        );

        // The first thread now posts from the header it read before all that.
        db.post_index_entry(parent, leaf.pid, &stale, &guard)
            .unwrap();
        let pview = db.core.read(parent, &guard).unwrap().unwrap();
        assert_eq!(
            route(&pview, Probe::At(&sep)),
            leaf.pid.get(),
            "the parent routes to the merged-away page {right:?} again"
        );
        drop(guard);
        for i in 0u32..40 {
            assert!(db.get(i.to_be_bytes()).unwrap().is_some(), "key {i}");
        }
    }

    /// A split whose delta meets a full disk fails and changes nothing; the right half it
    /// allocated is unlinked, and its free (which meets the full disk too) waits on the
    /// orphan list until a later write succeeds.
    #[test]
    fn a_split_that_meets_a_full_disk_lists_its_right_half_and_frees_it_after_the_next_write() {
        use crate::core::hooks::{self, Point};
        use crate::smo::full_disk::{assert_reads, db_with_keys, fill_disk};
        let sim = logstore::io::SimStorage::new();
        let db = db_with_keys(&sim, 40);
        let key = 20u32.to_be_bytes();
        let guard = crossbeam_epoch::pin();
        let leaf = db.descend(Probe::At(&key), Mode::Write, &guard).unwrap();
        let node = materialize(&leaf.view).unwrap();
        let before = format!("{:?}", header(&leaf.view).unwrap());
        let (sim2, core) = (sim.clone(), db.core.clone());
        // The disk fills between allocating the right half and the split's CAS.
        hooks::at(Point::Prepend, 0, move || fill_disk(&sim2, &core));
        let err = db
            .split(leaf.pid, &leaf.view, node, &leaf.path, &guard)
            .unwrap_err();
        assert!(err.is_storage_full(), "{err}");
        let after = db.core.read(leaf.pid, &guard).unwrap().unwrap();
        assert_eq!(format!("{:?}", header(&after).unwrap()), before);
        drop(guard);
        assert_eq!(db.stats().orphaned_pages, 1);
        assert_reads(&db, 40, &[], "full disk, split failed");

        sim.set_capacity(None);
        db.flush().unwrap();
        assert_eq!(db.stats().orphaned_pages, 0, "a flush frees the orphans");
        assert_reads(&db, 40, &[], "after the orphan was freed");
    }

    /// A root growth whose second allocation meets a full disk frees the first child through
    /// the orphan list.
    #[test]
    fn a_root_growth_that_meets_a_full_disk_lists_the_child_it_allocated() {
        use crate::core::hooks::{self, Point};
        use crate::smo::full_disk::{assert_reads, db_with_keys, fill_disk};
        let sim = logstore::io::SimStorage::new();
        let db = db_with_keys(&sim, 5);
        let guard = crossbeam_epoch::pin();
        let view = db.core.read(db.root, &guard).unwrap().unwrap();
        let node = materialize(&view).unwrap();
        assert_eq!(node.level, 0, "the root is still a leaf");
        let (sim2, core) = (sim.clone(), db.core.clone());
        hooks::at(Point::Allocate, 1, move || fill_disk(&sim2, &core));
        let err = db.split(db.root, &view, node, &[], &guard).unwrap_err();
        assert!(err.is_storage_full(), "{err}");
        drop(guard);
        assert_eq!(db.stats().root_splits, 0);
        assert_eq!(db.stats().orphaned_pages, 1);
        assert_reads(&db, 5, &[], "full disk, root growth failed");

        sim.set_capacity(None);
        db.insert(b"after", b"space").unwrap();
        assert_eq!(db.stats().orphaned_pages, 0);
        db.remove(b"after").unwrap();
        assert_reads(&db, 5, &[], "after the orphan was freed");
    }

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
