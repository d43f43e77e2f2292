//! Telling a damaged tree from a race: a descent that restarts keeps restarting only while
//! other threads change the pages it reads, unless the tree itself is inconsistent (a damaged
//! or crafted file whose records still pass their checksums).
//!
//! Rule: after [`TRACE_AFTER`] restarts, a descent records every page it reads (the view, or
//! that the pid was free). Under one pinned guard two equal views mean the page did not change
//! in between ([`pagecache::PageView::shows_same_chain`]), and a descent's decisions depend
//! only on the pages it reads. So when [`STUCK_AFTER`] descents in a row read exactly the same
//! unchanged pages and restart for the same structural reason (one no other thread's
//! progress can clear without changing one of those pages: a free pid under its parent, a
//! page that is not a node, a level or low fence that contradicts the parent, an endless
//! right chain), no retry can ever arrive: the tree is damaged. Restarts that wait for
//! someone else (a removed node whose merge is blocked by an uncommitted batch, maintenance
//! that lost a race) are never counted; they stay bounded by `MAX_RESTARTS`.

use radix::Pid;

use crate::error::Error;
use crate::search::View;

/// Restarts before a descent starts recording what it reads.
pub(crate) const TRACE_AFTER: u32 = 32;

/// Identical structural restarts in a row that prove a damaged tree.
pub(crate) const STUCK_AFTER: u32 = 8;

/// Why a descent starts over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Why {
    /// Waiting for, or racing with, another thread.
    Race,
    /// The pages read contradict each other; permanent unless one of them changes.
    Structure(&'static str),
}

/// One page a descent read.
#[derive(Clone, Copy)]
enum Seen<'g> {
    Page(View<'g>),
    Free(Pid),
}

impl Seen<'_> {
    fn same_as(&self, other: &Seen<'_>) -> bool {
        match (self, other) {
            (Seen::Page(a), Seen::Page(b)) => a.shows_same_chain(b),
            (Seen::Free(a), Seen::Free(b)) => a == b,
            _ => false,
        }
    }
}

/// The pages one descent read, in order.
#[derive(Default)]
pub(crate) struct Trace<'g> {
    seen: Vec<Seen<'g>>,
}

impl<'g> Trace<'g> {
    pub(crate) fn page(&mut self, view: View<'g>) {
        self.seen.push(Seen::Page(view));
    }

    pub(crate) fn free(&mut self, pid: Pid) {
        self.seen.push(Seen::Free(pid));
    }

    fn same_as(&self, other: &Trace<'_>) -> bool {
        self.seen.len() == other.seen.len()
            && self.seen.iter().zip(&other.seen).all(|(a, b)| a.same_as(b))
    }

    fn last_pid(&self) -> Option<Pid> {
        self.seen.last().map(|s| match s {
            Seen::Page(v) => v.pid(),
            Seen::Free(pid) => *pid,
        })
    }
}

/// Counts identical structural restarts of one `descend_within` (one pinned guard).
#[derive(Default)]
pub(crate) struct StuckDetector<'g> {
    previous: Option<(Trace<'g>, Why)>,
    repeats: u32,
}

impl<'g> StuckDetector<'g> {
    /// Records a restart; `Err(Corruption)` once the same structural restart has repeated
    /// [`STUCK_AFTER`] times over unchanged pages.
    pub(crate) fn restarted(&mut self, trace: Option<Trace<'g>>, why: Why) -> Result<(), Error> {
        let (Some(trace), Why::Structure(what)) = (trace, why) else {
            self.previous = None;
            self.repeats = 0;
            return Ok(());
        };
        let same = self
            .previous
            .as_ref()
            .is_some_and(|(t, w)| *w == why && t.same_as(&trace));
        self.repeats = if same { self.repeats + 1 } else { 0 };
        if self.repeats >= STUCK_AFTER {
            let at = trace
                .last_pid()
                .map_or_else(|| "the tree".to_owned(), |p| format!("page {}", p.get()));
            return Err(Error::Corruption {
                what: format!(
                    "inconsistent tree structure ({what}), unchanged over {} descents",
                    STUCK_AFTER + 1
                ),
                at,
            });
        }
        self.previous = Some((trace, why));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crossbeam_epoch as epoch;

    use crate::error::Error;
    use crate::node::Page;
    use crate::search::{materialize, Probe};
    use crate::{Config, Db};

    fn small_tree() -> Db {
        let db = Config::new()
            .temporary(true)
            .node_max_entries(4)
            .flush_every_ms(None)
            .checkpoint_every_ms(None)
            .open()
            .unwrap();
        for i in 0u32..64 {
            db.insert(i.to_be_bytes(), b"v").unwrap();
        }
        db
    }

    /// Replaces the leaf holding `key` by a copy whose low fence lies above `key`: every
    /// descent for `key` now arrives below the leaf's range, forever.
    fn damage_low_fence_of_leaf_of(db: &Db, key: &[u8]) {
        let guard = epoch::pin();
        let probe = Probe::At(key);
        let leaf = db
            .descend(probe, crate::descend::Mode::Read, &guard)
            .unwrap();
        let mut node = materialize(&leaf.view).unwrap();
        node.low = crate::Value::from(&[0xff; 8][..]);
        node.high = None;
        node.right = None;
        let replaced = db
            .core
            .try_replace(Page::Node(node), &leaf.view, &guard)
            .unwrap();
        assert!(replaced.is_some(), "nothing else writes this tree");
    }

    #[test]
    fn a_descent_over_an_inconsistent_tree_reports_corruption_instead_of_spinning() {
        let db = small_tree();
        let key = 20u32.to_be_bytes();
        damage_low_fence_of_leaf_of(&db, &key);
        let started = std::time::Instant::now();
        match db.get(key) {
            Err(Error::Corruption { what, at }) => {
                assert!(what.contains("low fence"), "{what}");
                assert!(at.starts_with("page "), "{at}");
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        // Bounded by the rule, not by `MAX_RESTARTS` (which takes a minute of back-off).
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let restarts = db.stats().restarts;
        assert!(
            restarts < u64::from(super::TRACE_AFTER + 2 * super::STUCK_AFTER),
            "{restarts} restarts"
        );
    }

    #[test]
    fn descents_that_only_race_are_never_called_corruption() {
        let db = small_tree();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for round in 0u32..200 {
                    for i in 0u32..64 {
                        let k = i.to_be_bytes();
                        if (i + round) % 3 == 0 {
                            db.remove(k).unwrap();
                        } else {
                            db.insert(k, round.to_be_bytes()).unwrap();
                        }
                    }
                }
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            });
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for i in 0u32..64 {
                    db.get(i.to_be_bytes()).unwrap();
                }
            }
        });
    }
}
