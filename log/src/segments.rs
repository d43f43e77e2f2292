//! The segment table: which slot of the data file holds which LSN range, in which state, with
//! how many live bytes; slot allocation with geometric file growth; and the reuse rule.
//!
//! States: `Free` (no valid data) -> `Active` (buffers are being installed in it) -> `Sealed`
//! (the next segment was started) -> `Draining` (sealed, no live bytes, no buffer in flight; its
//! emptiness becomes durable once the durable LSN passes `drain_lsn`) -> `Free` again through an
//! epoch-deferred closure, so no reader pinned before can still be reading it. A segment is also
//! reused only once its whole LSN range is below the reuse horizon (the LSN the upper layer
//! promises to recover from at least): otherwise a recovery from an older LSN would meet a gap.
//!
//! All of this sits behind one mutex: it changes once per segment and per `mark_dead`.

use std::collections::BTreeMap;

use crate::types::{DiskPtr, Lsn, SegmentId};

/// The state of a segment slot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SegmentState {
    /// No valid data; may be allocated.
    Free,
    /// Receiving records.
    Active,
    /// Full; holds live records.
    Sealed,
    /// Full, no live records; waiting for durability and the epoch before it is freed.
    Draining,
}

/// What [`Log::segment_stats`](crate::Log::segment_stats) reports per slot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SegmentStats {
    /// The slot.
    pub id: SegmentId,
    /// Its state.
    pub state: SegmentState,
    /// The first LSN of the range it holds (None when free).
    pub lsn: Option<Lsn>,
    /// Bytes of completed records not yet marked dead.
    pub live_bytes: i64,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    state: SegmentState,
    lsn: Option<u64>,
    /// Signed: a record may be marked dead before its buffer's bytes were counted in.
    live: i64,
    /// Installed buffers of this segment not yet written out.
    in_flight: u32,
    drain_lsn: u64,
    /// A deferred free is scheduled (Draining only).
    deferred: bool,
}

impl Slot {
    const FREE: Slot = Slot {
        state: SegmentState::Free,
        lsn: None,
        live: 0,
        in_flight: 0,
        drain_lsn: 0,
        deferred: false,
    };
}

/// The table. See the module comment.
#[derive(Debug)]
pub(crate) struct SegmentTable {
    segment_size: u64,
    slots: Vec<Slot>,
    by_lsn: BTreeMap<u64, SegmentId>,
    reuse_horizon: u64,
}

/// The largest single growth step of the data file.
const MAX_GROWTH_BYTES: u64 = 1 << 30;

impl SegmentTable {
    pub(crate) fn new(segment_size: u64, slots: u64, reuse_horizon: Lsn) -> Self {
        SegmentTable {
            segment_size,
            slots: vec![Slot::FREE; slots as usize],
            by_lsn: BTreeMap::new(),
            reuse_horizon: reuse_horizon.0,
        }
    }

    /// Recovery: slot `id` holds the range starting at `lsn` with `live` bytes.
    pub(crate) fn restore(&mut self, id: SegmentId, lsn: u64, state: SegmentState, live: i64) {
        let slot = &mut self.slots[id.0 as usize];
        assert_eq!(
            slot.state,
            SegmentState::Free,
            "segment {id:?} restored twice"
        );
        *slot = Slot {
            state,
            lsn: Some(lsn),
            live,
            ..Slot::FREE
        };
        let prev = self.by_lsn.insert(lsn, id);
        assert!(prev.is_none(), "two segments restored at LSN {lsn}");
    }

    /// Picks a free slot for the range starting at `lsn` and marks it Active. Returns the slot
    /// and, if the file must grow first, its new length in bytes.
    pub(crate) fn allocate(&mut self, lsn: u64) -> (SegmentId, Option<u64>) {
        assert_eq!(lsn % self.segment_size, 0, "segment LSN {lsn} not aligned");
        let mut grow = None;
        let idx = match self
            .slots
            .iter()
            .position(|s| s.state == SegmentState::Free)
        {
            Some(i) => i,
            None => {
                let old = self.slots.len() as u64;
                let old_bytes = old * self.segment_size;
                let step = old_bytes.clamp(self.segment_size, MAX_GROWTH_BYTES);
                let new = old + (step / self.segment_size).max(1);
                self.slots.resize(new as usize, Slot::FREE);
                grow = Some(new * self.segment_size);
                old as usize
            }
        };
        let id = SegmentId(idx as u64);
        self.slots[idx] = Slot {
            state: SegmentState::Active,
            lsn: Some(lsn),
            ..Slot::FREE
        };
        let prev = self.by_lsn.insert(lsn, id);
        assert!(prev.is_none(), "LSN {lsn} allocated twice");
        (id, grow)
    }

    /// The segment before the one just started is full.
    pub(crate) fn seal(&mut self, id: SegmentId, reserve_head: u64) {
        let slot = &mut self.slots[id.0 as usize];
        assert_eq!(
            slot.state,
            SegmentState::Active,
            "sealing segment {id:?} not active"
        );
        slot.state = SegmentState::Sealed;
        self.maybe_drain(id, reserve_head);
    }

    pub(crate) fn buffer_installed(&mut self, id: SegmentId) {
        let slot = &mut self.slots[id.0 as usize];
        assert_eq!(
            slot.state,
            SegmentState::Active,
            "buffer installed in inactive {id:?}"
        );
        slot.in_flight += 1;
    }

    pub(crate) fn buffer_written(&mut self, id: SegmentId, live: u64, reserve_head: u64) {
        let slot = &mut self.slots[id.0 as usize];
        assert!(
            slot.in_flight > 0,
            "buffer written for segment {id:?} with none in flight"
        );
        slot.in_flight -= 1;
        slot.live += live as i64;
        self.maybe_drain(id, reserve_head);
    }

    /// The record at `ptr` is no longer needed by the upper layer.
    pub(crate) fn mark_dead(&mut self, ptr: &DiskPtr, reserve_head: u64) -> Result<(), String> {
        let id = ptr.segment(self.segment_size);
        let seg_lsn = ptr.lsn.0 - ptr.lsn.0 % self.segment_size;
        let slot = self
            .slots
            .get_mut(id.0 as usize)
            .ok_or_else(|| format!("{ptr:?} is beyond the data file"))?;
        if slot.lsn != Some(seg_lsn) || slot.state == SegmentState::Free {
            return Err(format!("{ptr:?}: segment {id:?} now holds {:?}", slot.lsn));
        }
        slot.live -= i64::from(ptr.len);
        if slot.in_flight == 0 {
            assert!(
                slot.live >= 0,
                "segment {id:?} live bytes negative: double mark_dead?"
            );
        }
        self.maybe_drain(id, reserve_head);
        Ok(())
    }

    /// Replaces the live-byte counts of the active slot and of every sealed slot with no buffer
    /// in flight by the sum of `live` pointers in it (after recovery the upper layer knows the
    /// whole live set; the log only guessed "fully live" for segments below the recovery
    /// start). Pointers into other slots or into slots that moved on are ignored. Returns how
    /// many were counted.
    pub(crate) fn reset_live(
        &mut self,
        live: impl IntoIterator<Item = DiskPtr>,
        reserve_head: u64,
    ) -> usize {
        // The active (tail) slot too: its records from before the open are all in `live` or
        // dead, and the buffer open since holds nothing yet (callers reset before writing),
        // while its bytes written later are counted as they are written. Without it, records
        // of the tail that precede the recovery start were never counted, so marking them dead
        // drove its count below the truth and the segment could drain with live records.
        let resettable = |s: &Slot| match s.state {
            SegmentState::Sealed => s.in_flight == 0,
            SegmentState::Active => true,
            _ => false,
        };
        let mut counts = vec![0i64; self.slots.len()];
        let mut counted = 0;
        for ptr in live {
            let id = ptr.segment(self.segment_size);
            let seg_lsn = ptr.lsn.0 - ptr.lsn.0 % self.segment_size;
            match self.slots.get(id.0 as usize) {
                Some(s) if resettable(s) && s.lsn == Some(seg_lsn) => {
                    counts[id.0 as usize] += i64::from(ptr.len);
                    counted += 1;
                }
                _ => {}
            }
        }
        for (i, count) in counts.into_iter().enumerate() {
            if resettable(&self.slots[i]) {
                self.slots[i].live = count;
                self.maybe_drain(SegmentId(i as u64), reserve_head);
            }
        }
        counted
    }

    fn maybe_drain(&mut self, id: SegmentId, reserve_head: u64) {
        let slot = &mut self.slots[id.0 as usize];
        if slot.state == SegmentState::Sealed && slot.live == 0 && slot.in_flight == 0 {
            slot.state = SegmentState::Draining;
            slot.drain_lsn = reserve_head;
        }
    }

    /// Draining segments whose emptiness is durable and below the reuse horizon: the caller
    /// schedules their `free` behind the epoch. Each is returned once.
    pub(crate) fn take_reclaimable(&mut self, durable: u64) -> Vec<SegmentId> {
        let mut out = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(lsn) = slot.lsn else { continue };
            if slot.state == SegmentState::Draining
                && !slot.deferred
                && slot.drain_lsn <= durable
                && lsn + self.segment_size <= self.reuse_horizon
            {
                slot.deferred = true;
                out.push(SegmentId(i as u64));
            }
        }
        out
    }

    /// Epoch-deferred: no reader can still hold a pointer into `id`.
    pub(crate) fn free(&mut self, id: SegmentId) {
        let slot = &mut self.slots[id.0 as usize];
        assert!(
            slot.state == SegmentState::Draining && slot.deferred,
            "freeing {id:?}: {slot:?}"
        );
        if let Some(lsn) = slot.lsn {
            self.by_lsn.remove(&lsn);
        }
        *slot = Slot::FREE;
    }

    /// If at least half the file is free slots at its end, the length to truncate it to.
    pub(crate) fn shrink_target(&mut self) -> Option<u64> {
        let used = self
            .slots
            .iter()
            .rposition(|s| s.state != SegmentState::Free)
            .map_or(0, |i| i + 1);
        if used >= 1 && used <= self.slots.len() / 2 {
            self.slots.truncate(used);
            return Some(used as u64 * self.segment_size);
        }
        None
    }

    /// The LSN of the segment slot `id` holds now, unless it is free (or beyond the file).
    pub(crate) fn segment_lsn(&self, id: SegmentId) -> Option<u64> {
        let slot = self.slots.get(usize::try_from(id.0).ok()?)?;
        (slot.state != SegmentState::Free)
            .then_some(slot.lsn)
            .flatten()
    }

    pub(crate) fn reuse_horizon(&self) -> u64 {
        self.reuse_horizon
    }

    pub(crate) fn set_reuse_horizon(&mut self, lsn: Lsn) {
        self.reuse_horizon = self.reuse_horizon.max(lsn.0);
    }

    pub(crate) fn stats(&self) -> Vec<SegmentStats> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| SegmentStats {
                id: SegmentId(i as u64),
                state: s.state,
                lsn: s.lsn.map(Lsn),
                live_bytes: s.live,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_geometric_then_reuses_free_slots() {
        let mut t = SegmentTable::new(4096, 0, Lsn(u64::MAX));
        assert_eq!(t.allocate(0), (SegmentId(0), Some(4096)));
        assert_eq!(t.allocate(4096), (SegmentId(1), Some(8192)));
        assert_eq!(t.allocate(8192), (SegmentId(2), Some(16384)));
        assert_eq!(t.allocate(3 * 4096), (SegmentId(3), None));
        assert_eq!(t.allocate(4 * 4096).1, Some(32768));
    }

    #[test]
    fn drain_then_reclaim_then_reuse() {
        let mut t = SegmentTable::new(4096, 0, Lsn(u64::MAX));
        let (a, _) = t.allocate(0);
        t.buffer_installed(a);
        t.buffer_written(a, 100, 50);
        t.seal(a, 200);
        assert_eq!(t.stats()[0].state, SegmentState::Sealed);
        let ptr = DiskPtr {
            lsn: Lsn(32),
            offset: 32,
            len: 100,
            blob: 0,
        };
        t.mark_dead(&ptr, 300).unwrap();
        assert_eq!(t.stats()[0].state, SegmentState::Draining);
        assert!(t.take_reclaimable(299).is_empty(), "drain not durable yet");
        assert_eq!(t.take_reclaimable(300), vec![a]);
        assert!(t.take_reclaimable(300).is_empty(), "returned once");
        t.free(a);
        assert_eq!(t.allocate(8192), (a, None));
        assert!(
            t.mark_dead(&ptr, 400).is_err(),
            "pointer into a reused segment is stale"
        );
    }

    #[test]
    fn free_tail_is_truncated_only_when_at_least_half_the_file() {
        let mut t2 = SegmentTable::new(4096, 8, Lsn(u64::MAX));
        t2.restore(SegmentId(0), 0, SegmentState::Sealed, 10);
        t2.restore(SegmentId(1), 4096, SegmentState::Active, 0);
        assert_eq!(
            t2.shrink_target(),
            Some(2 * 4096),
            "6 of 8 slots free at the end"
        );
        assert_eq!(t2.stats().len(), 2);
        assert_eq!(t2.shrink_target(), None);
        let mut t3 = SegmentTable::new(4096, 8, Lsn(u64::MAX));
        t3.restore(SegmentId(4), 0, SegmentState::Active, 0);
        assert_eq!(
            t3.shrink_target(),
            None,
            "only 3 of 8 free at the end: keep"
        );
    }

    #[test]
    fn horizon_blocks_reuse() {
        let mut t = SegmentTable::new(4096, 0, Lsn(0));
        let (a, _) = t.allocate(0);
        t.seal(a, 10);
        assert!(t.take_reclaimable(u64::MAX).is_empty());
        t.set_reuse_horizon(Lsn(4096));
        assert_eq!(t.take_reclaimable(u64::MAX), vec![a]);
    }
}
