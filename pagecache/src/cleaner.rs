//! Segment cleaning: relocate the live pages of the least-utilised sealed segments until the
//! sealed bytes are at most `target_space_amplification` times the live bytes.
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
use logstore::SegmentState;
use radix::{Pid, SlotState};

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

impl<M: PageModel> Inner<M> {
    /// One cleaning pass (see the module comment).
    pub(crate) fn clean(&self) -> Result<CleanReport> {
        let Ok(_one) = self.cleaning.try_lock() else {
            return Ok(CleanReport::default());
        };
        let victims = self.pick_victims();
        let mut report = CleanReport {
            victims: victims.len(),
            ..CleanReport::default()
        };
        if victims.is_empty() {
            return Ok(report);
        }
        let seg = self.log.config().segment_size_bytes;
        let in_victim = |offset: u64| victims.contains(&(offset / seg));
        for raw in 0..self.pids.next_fresh() {
            if report.bytes_relocated >= self.cfg.clean_pass_max_bytes {
                break;
            }
            let Some(pid) = Pid::new(raw) else { continue };
            let Some(slot) = self.table.get(pid) else {
                continue;
            };
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
    /// the target.
    fn pick_victims(&self) -> HashSet<u64> {
        let seg = self.log.config().segment_size_bytes as f64;
        let mut sealed: Vec<(u64, f64)> = self
            .log
            .segment_stats()
            .into_iter()
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
}
