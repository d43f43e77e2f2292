//! Segment cleaning: relocate the live pages of the least-utilised sealed segments until the
//! sealed bytes are at most `target_space_amplification` times the live bytes, and of the
//! sealed segments at the end of the data file while the file is larger than that and the
//! free slots below can take them (so the log can truncate its tail).
//!
//! A page with a fragment in a victim segment is rewritten as one consolidated base through
//! the ordinary `replace` (CAS against the state we read): if the page changed meanwhile the
//! CAS fails and the page is retried on a later pass (a newer consolidation moved it already;
//! a newer delta did not, so a pass never counts a failed page as done). The old fragments are
//! marked dead, and the log reuses the emptied segment once that is durable, below the reuse
//! horizon and past the epoch. Only the current state is ever rewritten, so deleted or
//! superseded data cannot come back.
//!
//! Pages are found by walking the mapping table (no reverse index): resident chains carry
//! their fragments' pointers, evicted pages are one location. Evicted pages are read,
//! rewritten and evicted again, so cleaning does not pollute the cache.

use std::collections::HashSet;

use crossbeam_epoch as epoch;
use logstore::{SegmentState, SegmentStats};
use radix::SlotState;

use crate::error::Result;
use crate::inner::{view_of, Inner};
use crate::location::Location;
use crate::model::PageModel;
use crate::stats::add;

/// What one cleaning pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanReport {
    /// Segments chosen for cleaning.
    pub victims: usize,
    /// Pages rewritten.
    pub pages_relocated: u64,
    /// Bytes of page state rewritten.
    pub bytes_relocated: u64,
    /// Pages skipped because they changed during the pass.
    pub pages_changed: u64,
}

/// What cleaning passes remember between them.
#[derive(Debug, Default)]
pub(crate) struct CleanerState {
    /// Passes in a row that found no sparse segment (the workload has quieted).
    quiet_passes: u32,
}

/// Quiet passes in a row before cleaning moves the end of the file (see `pick_victims`).
const QUIET_PASSES_BEFORE_COMPACTION: u32 = 2;

impl<M: PageModel> Inner<M> {
    /// One cleaning pass (see the module comment).
    pub(crate) fn clean(&self) -> Result<CleanReport> {
        let Ok(mut state) = self.cleaning.try_lock() else {
            return Ok(CleanReport::default());
        };
        let victims = self.pick_victims(&mut state);
        let mut report = CleanReport {
            victims: victims.len(),
            ..CleanReport::default()
        };
        if victims.is_empty() {
            return Ok(report);
        }
        let seg = self.log.config().segment_size_bytes;
        let in_victim = |offset: u64| victims.contains(&(offset / seg));
        // Installed slots only: absent id ranges below the mark are skipped, not probed.
        for (pid, slot) in self.table.present(0..self.pids.next_fresh()) {
            if report.bytes_relocated >= self.cfg.clean_pass_max_bytes {
                break;
            }
            let guard = epoch::pin();
            let word = slot.load();
            let mut view = match word.state() {
                SlotState::OnDisk(w) => {
                    let loc = Location::in_slot(w);
                    if !in_victim(loc.file_offset()) {
                        continue;
                    }
                    match self.read(pid, &guard)? {
                        Some(v) => v,
                        None => continue,
                    }
                }
                SlotState::InMemory(_) => {
                    let v = view_of::<M>(pid, word, &guard);
                    if !v.nodes().any(|n| in_victim(n.disk().file_offset())) {
                        continue;
                    }
                    v
                }
                _ => continue,
            };
            let was_evicted = matches!(word.state(), SlotState::OnDisk(_));
            let base = view.consolidate();
            match self.replace(base, &view, &guard)? {
                Ok(v) => {
                    report.pages_relocated += 1;
                    report.bytes_relocated += u64::from(v.head.disk().record_len());
                    add(
                        &self.counters.bytes_relocated,
                        u64::from(v.head.disk().record_len()),
                    );
                    view = v;
                    if was_evicted {
                        self.evict(&view, &guard)?;
                    }
                }
                Err(_) => report.pages_changed += 1,
            }
        }
        Ok(report)
    }

    /// The least-utilised sealed segments whose cleaning brings sealed / live bytes down to
    /// the target; once the workload has quieted (no such segment for a few passes in a row),
    /// the sealed segments at the end of the file that fit below it.
    fn pick_victims(&self, state: &mut CleanerState) -> HashSet<u64> {
        let stats = self.log.segment_stats();
        let mut victims = self.sparse_victims(&stats);
        if !victims.is_empty() {
            state.quiet_passes = 0;
            return victims;
        }
        state.quiet_passes = state.quiet_passes.saturating_add(1);
        // Lowest priority: while overwrites keep making sparse segments, the holes are about
        // to be written into anyway, and moving the end of the file would only add writes.
        if state.quiet_passes >= QUIET_PASSES_BEFORE_COMPACTION {
            self.tail_victims(&stats, &mut victims);
        }
        victims
    }

    /// The least-utilised sealed segments whose cleaning brings sealed / live bytes down to
    /// the target.
    fn sparse_victims(&self, stats: &[SegmentStats]) -> HashSet<u64> {
        let seg = self.log.config().segment_size_bytes as f64;
        let mut sealed: Vec<(u64, f64)> = stats
            .iter()
            .filter(|s| s.state == SegmentState::Sealed)
            .map(|s| (s.id.0, s.live_bytes.max(0) as f64))
            .collect();
        sealed.sort_by(|a, b| a.1.total_cmp(&b.1));
        let live: f64 = sealed.iter().map(|s| s.1).sum();
        let mut total = sealed.len() as f64 * seg;
        let mut victims = HashSet::new();
        for (id, seg_live) in sealed {
            if total <= self.cfg.target_space_amplification * live.max(1.0) {
                break;
            }
            // Cleaning frees the segment; its live bytes move to the head.
            total -= seg - seg_live;
            victims.insert(id);
        }
        victims
    }

    /// Compaction: while the data file is larger than the target times the live bytes, adds
    /// the sealed segments nearest its end whose live bytes fit into the free slots below
    /// them (the rest of the segment being filled is the slack). The log fills the lowest
    /// free slot first, so their relocated pages land below, the end of the file drains, and
    /// the log truncates the free tail. Without this a sealed segment at the end pinned the
    /// file at its peak length however empty the slots below it were.
    fn tail_victims(&self, stats: &[SegmentStats], victims: &mut HashSet<u64>) {
        let seg = self.log.config().segment_size_bytes as f64;
        let live: f64 = stats.iter().map(|s| s.live_bytes.max(0) as f64).sum();
        let target = self.cfg.target_space_amplification * live.max(1.0);
        let live_of = |id: u64| stats[id as usize].live_bytes.max(0) as f64;
        let mut to_move: f64 = victims.iter().map(|&id| live_of(id)).sum();
        let mut free_below = stats
            .iter()
            .filter(|s| s.state == SegmentState::Free)
            .count() as f64;
        for (end, s) in stats.iter().enumerate().rev() {
            // Truncating the file just past this slot leaves `end + 1` slots.
            if (end + 1) as f64 * seg <= target {
                break;
            }
            match s.state {
                SegmentState::Free => free_below -= 1.0,
                SegmentState::Sealed if !victims.contains(&s.id.0) => {
                    let need = to_move + live_of(s.id.0);
                    if free_below * seg < need {
                        break;
                    }
                    to_move = need;
                    victims.insert(s.id.0);
                }
                // Active and draining slots leave by themselves; victims are counted.
                _ => {}
            }
        }
    }
}
