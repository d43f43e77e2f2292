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

/// How one step of a merge went.
enum Step {
    Done,
    /// The pages changed: re-read and try again.
    Retry,
    /// A page it needs is staged by an uncommitted batch (perhaps the caller's own): give up
    /// for now; whoever meets the merge next finishes it.
    Blocked,
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
        let i = pnode
            .keys
            .binary_search(&intent.sep)
            .expect("a parent holds the separator of the child it is merging");
        assert!(i > 0, "the merged child is not the parent's first");
        let mut at = pid_of(pnode.kids[i - 1])?;
        for _ in 0..MAX_WALK {
            let Some(view) = self.core.read(at, guard)? else {
                return Ok(Step::Retry);
            };
            let Some(h) = header(&view) else {
                return Ok(Step::Retry);
            };
            let high = h.high.map(|v| &**v);
            if h.right == Some(intent.child) && high == Some(&*intent.sep) {
                if view.head_is_staged() {
                    return Ok(Step::Blocked);
                }
                let merged = self.install_merge(&view, intent, guard)?;
                return Ok(Step::retry_unless(merged));
            }
            if h.low < &intent.sep && high.is_none_or(|hi| hi > &*intent.sep) {
                return Ok(Step::Done); // it already covers the child's range
            }
            match h.right {
                Some(r) if high.is_some_and(|hi| hi < &*intent.sep) => at = pid_of(r)?,
                _ => return Ok(Step::Retry),
            }
        }
        Ok(Step::Retry)
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
