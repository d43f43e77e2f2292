//! Merging a node into its left sibling (see the module comment of `smo`). Every step is
//! idempotent and checks whether it already happened, so any number of helpers can run the
//! same merge at once.

use crossbeam_epoch::Guard;
use radix::Pid;

use crate::core::{pid_of, MAX_RESTARTS};
use crate::error::{Error, Result};
use crate::node::{Delta, MergeIntent, Node};
use crate::search::{header, materialize, View};
use crate::stats::Counters;
use crate::tree::Tree;

/// Most right-sibling hops when looking for the node left of the one being merged.
const MAX_WALK: usize = 1 << 16;

/// Where a reader that met a removed node goes on ([`Tree::detour_removed`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Detour {
    /// Read the removed node itself: its frozen contents are still its range's.
    ReadThrough,
    /// Go on at this node, which has absorbed the removed one.
    Absorbed(Pid),
    /// Start over from the root: the removal finished, or the pages changed meanwhile.
    Restart,
}

/// How one step of a merge went.
enum Step {
    Done,
    /// The pages changed: re-read and try again.
    Retry,
    /// A page it needs is staged by an uncommitted batch (perhaps the caller's own): give up
    /// for now; whoever meets the merge next finishes it.
    Blocked,
}

/// The node a merging child goes into, as one read of it shows it.
enum Left<'g> {
    /// It still ends where the child begins, with the child as its right sibling: the
    /// `Merge` delta is not installed yet.
    Unmerged(View<'g>),
    /// This node covers the child's range: the `Merge` delta is installed.
    Absorbed(Pid),
    /// The pages changed under the walk: re-read.
    Changed,
}

impl Step {
    fn retry_unless(done: bool) -> Step {
        if done {
            Step::Done
        } else {
            Step::Retry
        }
    }
}

impl Tree {
    /// Starts merging `child` into its left sibling under `parent`: posts the intent, then
    /// runs the merge. Returns false (nothing done) if the parent is busy with another merge,
    /// `child` is its first child, or anything changed meanwhile.
    pub(crate) fn try_start_merge(&self, parent: Pid, child: Pid, guard: &Guard) -> Result<bool> {
        let Some(pview) = self.core.read(parent, guard)? else {
            return Ok(false);
        };
        let Some(ph) = header(&pview) else {
            return Ok(false);
        };
        if ph.level == 0 || ph.removed.is_some() || ph.intent.is_some() {
            return Ok(false);
        }
        let Some(pnode) = materialize(&pview) else {
            return Ok(false);
        };
        let Some(i) = pnode.kids.iter().position(|&k| k == child.get()) else {
            return Ok(false);
        };
        if i == 0 {
            return Ok(false); // a leftmost child stays: its left sibling has another parent
        }
        let intent = MergeIntent {
            sep: pnode.keys[i].clone(),
            child: child.get(),
        };
        if self
            .core
            .try_prepend(Delta::Intent(intent), &pview, guard)?
            .is_none()
        {
            return Ok(false);
        }
        self.help_merge(parent, child.get(), guard)?;
        Ok(true)
    }

    /// A descent met `pid` marked removed with `parent`: finish whatever removes it.
    pub(crate) fn help_removed(&self, pid: Pid, parent: u64, guard: &Guard) -> Result<()> {
        Counters::bump(&self.core.counters.helps);
        let parent = pid_of(parent)?;
        if parent == self.root {
            if let Some(rview) = self.core.read(parent, guard)? {
                if materialize(&rview).is_some_and(|r| r.kids == [pid.get()]) {
                    return self.finish_root_shrink(pid, guard);
                }
            }
        }
        self.help_merge(parent, pid.get(), guard)
    }

    /// Where a reader goes on from `pid`, marked removed by `parent`, when it could not help
    /// finish the removal (a full disk: helping writes). Reads nothing but pages, writes
    /// nothing.
    ///
    /// Invariant (a removed node's contents stay current until its range is taken over):
    /// a node marked removed (`Remove`, step 2 of a merge or the first step of a root shrink)
    /// never changes again: a CAS on a view older than the mark fails, and every writer that
    /// arrives later sees the mark and writes elsewhere. Its contents are frozen at the mark.
    /// Until another node takes its range over (the left sibling, by the `Merge` delta; or
    /// the root, replaced by the node's contents), no other node covers any key of that
    /// range, so nothing was written to the range since the freeze: the frozen contents are
    /// the range's current ones, and the reader reads through the removed node. Once the left
    /// sibling has absorbed it, writes to the range may land in the left sibling (a descent
    /// that routed through a parent view older than the removed node's index entry arrives
    /// there and finds the key in range), so the frozen contents may be stale: the reader
    /// goes on at the left sibling.
    ///
    /// Why the decision holds when it is made: the parent (still holding the intent for this
    /// child) and then the left sibling are read after the removed node was, and the left
    /// sibling still ends at the separator with this child as its right sibling. So at that
    /// read the take-over had not happened and the frozen contents were current: the read
    /// linearizes there. The reader is pinned from before it read the removed node, so the
    /// child's pid has not been freed and reused meanwhile (a right link naming it means it).
    /// Reading through a removed index node routes to its children as usual: none of them can
    /// be merged away while their parent is frozen (a merge needs an intent on the parent),
    /// and a change to them after the take-over is met by the usual checks (a freed page
    /// restarts, a removed one detours again, a split moves right).
    pub(crate) fn detour_removed(&self, pid: Pid, parent: u64, guard: &Guard) -> Result<Detour> {
        let parent = pid_of(parent)?;
        let Some(pview) = self.core.read(parent, guard)? else {
            return Ok(Detour::Restart);
        };
        let Some(pnode) = materialize(&pview) else {
            return Ok(Detour::Restart);
        };
        if let Some(intent) = pnode.intent.as_ref().filter(|i| i.child == pid.get()) {
            return Ok(match self.left_of(&pnode, intent, guard)? {
                Left::Unmerged(_) => Detour::ReadThrough,
                Left::Absorbed(left) => Detour::Absorbed(left),
                Left::Changed => Detour::Restart,
            });
        }
        if parent == self.root && pnode.kids == [pid.get()] {
            // A root shrink that has not replaced the root yet: the root routes every key to
            // the removed child, which covers everything.
            return Ok(Detour::ReadThrough);
        }
        Ok(Detour::Restart) // finished: the parent no longer routes to it
    }

    /// Runs (or finishes) the merge of `child` announced by an intent on `parent`. Returns
    /// once the intent is gone.
    pub(crate) fn help_merge(&self, parent: Pid, child: u64, guard: &Guard) -> Result<()> {
        for attempt in 0..MAX_RESTARTS {
            crate::core::backoff(attempt);
            let Some(pview) = self.core.read(parent, guard)? else {
                return Ok(());
            };
            let Some(pnode) = materialize(&pview) else {
                return Ok(());
            };
            let Some(intent) = pnode.intent.clone().filter(|i| i.child == child) else {
                return Ok(()); // finished (or never announced here)
            };
            if attempt == 20_000 && std::env::var("BWTREE_DEBUG_MERGE").is_ok() {
                self.dump_merge(parent, &pnode, &intent, guard);
            }
            match self.mark_removed(parent, &intent, guard)? {
                Step::Done => {}
                Step::Retry => continue,
                Step::Blocked => return Ok(()),
            }
            match self.merge_into_left(&pnode, &intent, guard)? {
                Step::Done => {}
                Step::Retry => continue,
                Step::Blocked => return Ok(()),
            }
            if self.delete_term(&pview, &pnode, &intent, guard)? {
                Counters::bump(&self.core.counters.merges);
                return self.core.free_unreachable(child, guard);
            }
        }
        Err(Error::Contention("merging a node"))
    }

    fn dump_merge(&self, parent: Pid, pnode: &Node, intent: &MergeIntent, guard: &Guard) {
        eprintln!("STUCK merge parent {parent:?} {pnode:?} intent {intent:?}");
        let show = |raw: u64| {
            if let Ok(Some(v)) = self.core.read(pid_of(raw).unwrap(), guard) {
                eprintln!(
                    "  page {raw} staged={} header {:?}",
                    v.head_is_staged(),
                    header(&v)
                );
                for f in v.iter() {
                    eprintln!("    {f:?}");
                }
            } else {
                eprintln!("  page {raw} gone");
            }
        };
        show(intent.child);
        for k in &pnode.kids {
            show(*k);
        }
    }

    /// Step 2: `Remove` onto the child (done if it is already removed).
    fn mark_removed(&self, parent: Pid, intent: &MergeIntent, guard: &Guard) -> Result<Step> {
        let child = pid_of(intent.child)?;
        let Some(cview) = self.core.read(child, guard)? else {
            return Ok(Step::Retry);
        };
        if cview.head_is_staged() {
            return Ok(Step::Blocked);
        }
        let Some(ch) = header(&cview) else {
            return Ok(Step::Retry);
        };
        if ch.removed.is_some() {
            return Ok(Step::Done);
        }
        if let Some(own) = ch.intent {
            // The child is an index node finishing a merge of its own: that comes first.
            let grandchild = own.child;
            self.help_merge(child, grandchild, guard)?;
            return Ok(Step::Retry);
        }
        let remove = Delta::Remove {
            parent: parent.get(),
        };
        Ok(Step::retry_unless(
            self.core.try_prepend(remove, &cview, guard)?.is_some(),
        ))
    }

    /// Step 3: `Merge` onto the node whose right sibling is the child.
    fn merge_into_left(&self, pnode: &Node, intent: &MergeIntent, guard: &Guard) -> Result<Step> {
        match self.left_of(pnode, intent, guard)? {
            Left::Unmerged(view) => {
                if view.head_is_staged() {
                    return Ok(Step::Blocked);
                }
                let merged = self.install_merge(&view, intent, guard)?;
                Ok(Step::retry_unless(merged))
            }
            Left::Absorbed(_) => Ok(Step::Done),
            Left::Changed => Ok(Step::Retry),
        }
    }

    /// Walks right from `pnode`'s child left of the intent's separator to the node the child
    /// is being merged into, and says whether it has absorbed the child yet.
    fn left_of<'g>(
        &self,
        pnode: &Node,
        intent: &MergeIntent,
        guard: &'g Guard,
    ) -> Result<Left<'g>> {
        let i = pnode
            .keys
            .binary_search(&intent.sep)
            .expect("a parent holds the separator of the child it is merging");
        assert!(i > 0, "the merged child is not the parent's first");
        let mut at = pid_of(pnode.kids[i - 1])?;
        for _ in 0..MAX_WALK {
            let Some(view) = self.core.read(at, guard)? else {
                return Ok(Left::Changed);
            };
            let Some(h) = header(&view) else {
                return Ok(Left::Changed);
            };
            let high = h.high.map(|v| &**v);
            if h.right == Some(intent.child) && high == Some(&*intent.sep) {
                return Ok(Left::Unmerged(view));
            }
            if h.low < &intent.sep && high.is_none_or(|hi| hi > &*intent.sep) {
                return Ok(Left::Absorbed(at)); // it already covers the child's range
            }
            match h.right {
                Some(r) if high.is_some_and(|hi| hi < &*intent.sep) => at = pid_of(r)?,
                _ => return Ok(Left::Changed),
            }
        }
        Ok(Left::Changed)
    }

    fn install_merge<'g>(
        &self,
        left: &View<'g>,
        intent: &MergeIntent,
        guard: &'g Guard,
    ) -> Result<bool> {
        let child = pid_of(intent.child)?;
        let Some(cview) = self.core.read(child, guard)? else {
            return Ok(false);
        };
        let Some(mut node) = materialize(&cview) else {
            return Ok(false);
        };
        assert!(node.removed.is_some(), "only a removed node is merged");
        node.removed = None;
        let merge = Delta::Merge {
            sep: intent.sep.clone(),
            node: Box::new(node),
        };
        Ok(self.core.try_prepend(merge, left, guard)?.is_some())
    }

    /// Step 4: `TermDelete` onto the parent. True if this thread's CAS won.
    fn delete_term(
        &self,
        pview: &View<'_>,
        pnode: &Node,
        intent: &MergeIntent,
        guard: &Guard,
    ) -> Result<bool> {
        let i = pnode
            .keys
            .binary_search(&intent.sep)
            .expect("a parent holds the separator of the child it is merging");
        let delete = Delta::TermDelete {
            sep: intent.sep.clone(),
            left_sep: pnode.keys[i - 1].clone(),
            next: pnode
                .keys
                .get(i + 1)
                .cloned()
                .or_else(|| pnode.high.clone()),
            left: pnode.kids[i - 1],
        };
        Ok(self.core.try_prepend(delete, pview, guard)?.is_some())
    }
}

#[cfg(test)]
mod tests;
