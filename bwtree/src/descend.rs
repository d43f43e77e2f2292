//! Finding the leaf for a key: a B-link descent from the root with range checks.
//!
//! Arriving at a node, the probe is checked against the node's fences: past the high fence,
//! follow the right sibling (a split whose index entry is not posted yet: post it on the way);
//! below the low fence, or at a freed or removed node, restart from the root (after helping a
//! removal finish). A reader never fails because helping cannot write (a full disk): it skips
//! posting the index entry, and reads past a half-done removal (`Tree::detour_removed`). Restarts are bounded ([`MAX_RESTARTS`]) and back off; a descent that keeps
//! restarting over the same unchanged pages reports a damaged tree (see [`crate::stuck`]).

use crossbeam_epoch::Guard;
use radix::Pid;

use crate::core::{backoff, pid_of, MAX_RESTARTS};
use crate::error::{Error, Result};
use crate::search::{header, route, Header, Probe, View};
use crate::smo::Detour;
use crate::stats::Counters;
use crate::stuck::{StuckDetector, Trace, Why, TRACE_AFTER};
use crate::tree::Tree;

/// Most right-sibling hops in one descent before restarting (a long chain of unposted splits
/// is possible, an endless one is a bug or a stale pid).
const MAX_HOPS: u32 = 1 << 16;

/// Structure changes one descent makes in place before it restarts from the root instead.
const MAX_MAINTAIN_PER_DESCENT: u32 = 4;

/// The leaf a descent arrived at, with the index nodes it passed (root first; only a
/// [`Mode::Write`] descent records them, a read needs none).
pub(crate) struct Leaf<'g> {
    pub(crate) pid: Pid,
    pub(crate) view: View<'g>,
    pub(crate) header: Header<'g>,
    pub(crate) path: Vec<Pid>,
}

/// What a descent does besides finding the leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Only read (still helps finish half-done splits and merges it runs into).
    Read,
    /// About to write: also consolidates, splits and merges the index nodes on the way.
    Write,
}

/// A descent that must start over, and why (for counters and debugging).
pub(crate) enum Step<'g> {
    Arrived(Leaf<'g>),
    Restart(Why),
}

impl Tree {
    /// The leaf covering `probe`.
    pub(crate) fn descend<'g>(
        &self,
        probe: Probe<'_>,
        mode: Mode,
        guard: &'g Guard,
    ) -> Result<Leaf<'g>> {
        self.descend_within(probe, mode, MAX_RESTARTS, guard)
    }

    /// As [`Tree::descend`], restarting at most `restarts` times ([`Error::Contention`] then).
    pub(crate) fn descend_within<'g>(
        &self,
        probe: Probe<'_>,
        mode: Mode,
        restarts: u32,
        guard: &'g Guard,
    ) -> Result<Leaf<'g>> {
        let mut stuck = StuckDetector::default();
        for attempt in 0..restarts {
            if attempt > 0 {
                Counters::bump(&self.core.counters.restarts);
                backoff(attempt);
            }
            let mut trace = (attempt >= TRACE_AFTER).then(Trace::default);
            match self.try_descend(probe, mode, trace.as_mut(), guard)? {
                Step::Arrived(leaf) => return Ok(leaf),
                Step::Restart(why) => stuck.restarted(trace, why)?,
            }
        }
        Err(Error::Contention("a descent to a leaf"))
    }

    /// One descent from the root; records the pages it reads in `trace` if given.
    fn try_descend<'g>(
        &self,
        probe: Probe<'_>,
        mode: Mode,
        mut trace: Option<&mut Trace<'g>>,
        guard: &'g Guard,
    ) -> Result<Step<'g>> {
        let mut path: Vec<Pid> = Vec::new();
        // The index node this descent came from (the last of `path` in a write).
        let mut parent: Option<Pid> = None;
        let mut pid = self.root;
        // The level the next node must have (None at the root, whose level changes).
        let mut level: Option<u8> = None;
        let mut via_parent = false;
        let mut maintained = 0;
        for _ in 0..MAX_HOPS {
            let Some(view) = self.core.read(pid, guard)? else {
                if let Some(t) = trace.as_deref_mut() {
                    t.free(pid);
                }
                return Ok(Step::Restart(Why::Structure("a free page id")));
            };
            if let Some(t) = trace.as_deref_mut() {
                t.page(view);
            }
            let Some(h) = header(&view) else {
                return Ok(Step::Restart(Why::Structure(
                    "a page that is not a tree node",
                )));
            };
            if level.is_some_and(|l| l != h.level) {
                // A stale pid, reused at another level.
                return Ok(Step::Restart(Why::Structure("a node at the wrong level")));
            }
            if let Some(parent) = h.removed {
                match self.help_removed(pid, parent, guard) {
                    Ok(()) => return Ok(Step::Restart(Why::Race)),
                    // Helping writes; a reader must not fail because the database cannot
                    // write (a full disk): it reads past the half-done removal instead.
                    Err(e) if mode == Mode::Read && cannot_write(&e) => {
                        match self.detour_removed(pid, parent, guard)? {
                            Detour::ReadThrough => {} // on to the range checks, as any node
                            Detour::Absorbed(left) => {
                                pid = left;
                                level = Some(h.level);
                                via_parent = false;
                                continue;
                            }
                            Detour::Restart => return Ok(Step::Restart(Why::Race)),
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            if probe.before(h.low) {
                return Ok(Step::Restart(Why::Structure(
                    "a key below the node's low fence",
                )));
            }
            if probe.past(h.high.map(|v| &**v)) {
                let Some(right) = h.right else {
                    return Ok(Step::Restart(Why::Structure(
                        "a high fence without a right sibling",
                    )));
                };
                if via_parent {
                    if let Some(parent) = parent {
                        match self.post_index_entry(parent, pid, &h, guard) {
                            // Posting the index entry of a half-done split only shortens later
                            // descents; moving right is correct without it. A reader must not
                            // fail because the database cannot write (a full disk, a
                            // poisoned log): it moves right.
                            Err(e) if mode == Mode::Read && cannot_write(&e) => {}
                            r => r?,
                        }
                    }
                }
                pid = pid_of(right)?;
                via_parent = false;
                continue;
            }
            if mode == Mode::Write && self.maintain(pid, &view, &h, &path, guard)? {
                // Re-read this node, not the whole path: after a consolidation or split it
                // still covers the lower part of its old range (the range checks above move
                // right if needed), and a removed node sends us back to the root. A node that
                // keeps needing work (a lost race, a staged head) restarts with backoff.
                maintained += 1;
                if maintained > MAX_MAINTAIN_PER_DESCENT {
                    return Ok(Step::Restart(Why::Race));
                }
                continue;
            }
            if h.level == 0 {
                return Ok(Step::Arrived(Leaf {
                    pid,
                    view,
                    header: h,
                    path,
                }));
            }
            if mode == Mode::Write {
                path.push(pid);
            }
            parent = Some(pid);
            pid = pid_of(route(&view, probe))?;
            level = Some(h.level - 1);
            via_parent = true;
        }
        Ok(Step::Restart(Why::Structure(
            "an endless chain of right siblings",
        )))
    }
}

/// Whether `e` says the database cannot write now (a full disk, a poisoned log), which a
/// reader that only tried to help a structure change along does not report.
fn cannot_write(e: &Error) -> bool {
    matches!(e, Error::Poisoned(_) | Error::Io { .. })
}
