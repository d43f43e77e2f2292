//! The segment table: which slot of the data file holds which LSN range, in which state, with
//! how many live bytes; slot allocation with geometric file growth (by an eighth) and
//! truncation of a free tail; and the reuse rule.
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

use crate::format::{RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
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

#[derive(Clone, Debug)]
struct Slot {
    state: SegmentState,
    lsn: Option<u64>,
    /// Low 32 bits of the incarnation's salt (what its records and pointers carry).
    salt: u32,
    /// No record of this incarnation ends above this LSN: the segment's end, or for the
    /// segment recovery stopped in, where it stopped (the rest is padding; pointers past it
    /// name records of the cut tail).
    records_end: u64,
    /// Signed: a record may be marked dead before its buffer's bytes were counted in.
    live: i64,
    /// Installed buffers of this segment not yet written out.
    in_flight: u32,
    drain_lsn: u64,
    /// A deferred free is scheduled (Draining only).
    deferred: bool,
    /// Records of this incarnation marked dead since open, one bit per possible record start
    /// (in-segment offset / `RECORD_HEADER_LEN`: records are at least a header long, so two
    /// never share a bit). Allocated on the first `mark_dead` in the slot: about 0.5% of the
    /// segment size.
    dead: Vec<u64>,
}

impl Slot {
    const FREE: Slot = Slot {
        state: SegmentState::Free,
        lsn: None,
        salt: 0,
        records_end: 0,
        live: 0,
        in_flight: 0,
        drain_lsn: 0,
        deferred: false,
        dead: Vec::new(),
    };
}

/// The most slots a data file may have: bounds the table (tens of bytes per slot) whatever
/// the file length says. `segment_size_bytes * MAX_SLOTS` is the largest log: 16 GiB with the
/// smallest (4 KiB) segments, 32 TiB with the default 8 MiB ones.
pub(crate) const MAX_SLOTS: u64 = 1 << 22;

/// The table. See the module comment.
#[derive(Debug)]
pub(crate) struct SegmentTable {
    segment_size: u64,
    /// `MAX_SLOTS`, lowered by tests.
    max_slots: u64,
    slots: Vec<Slot>,
    by_lsn: BTreeMap<u64, SegmentId>,
    reuse_horizon: u64,
}

/// The largest single growth step of the data file.
const MAX_GROWTH_BYTES: u64 = 1 << 30;

/// The file grows by `1 / GROWTH_DIVISOR` of its length (at least one slot, at most
/// [`MAX_GROWTH_BYTES`]): geometric, so growing to `n` bytes costs `O(log n)` `set_len` +
/// `fdatasync` rounds, but the slack it leaves is at most 12.5% (doubling left up to 2x, and
/// the file kept the peak of the writes between two checkpoints).
const GROWTH_DIVISOR: u64 = 8;

impl SegmentTable {
    /// A table of `slots` free slots (at most [`MAX_SLOTS`], checked by the caller).
    pub(crate) fn new(segment_size: u64, slots: u64, reuse_horizon: Lsn) -> Self {
        assert!(slots <= MAX_SLOTS, "{slots} slots exceed MAX_SLOTS");
        SegmentTable {
            segment_size,
            max_slots: MAX_SLOTS,
            slots: vec![Slot::FREE; slots as usize],
            by_lsn: BTreeMap::new(),
            reuse_horizon: reuse_horizon.0,
        }
    }

    /// Recovery: slot `id` holds the range starting at `lsn` (incarnation `salt`) with `live`
    /// bytes in records that end at or below `records_end`.
    pub(crate) fn restore(
        &mut self,
        id: SegmentId,
        lsn: u64,
        salt: u32,
        records_end: u64,
        state: SegmentState,
        live: i64,
    ) {
        let slot = &mut self.slots[id.0 as usize];
        assert_eq!(
            slot.state,
            SegmentState::Free,
            "segment {id:?} restored twice"
        );
        assert!(
            (lsn..=lsn + self.segment_size).contains(&records_end),
            "records end {records_end} outside segment {lsn}"
        );
        *slot = Slot {
            state,
            lsn: Some(lsn),
            salt,
            records_end,
            live,
            ..Slot::FREE
        };
        let prev = self.by_lsn.insert(lsn, id);
        assert!(prev.is_none(), "two segments restored at LSN {lsn}");
    }

    /// Picks a free slot for the range starting at `lsn` (incarnation `salt`) and marks it
    /// Active. Returns the slot and, if the file must grow first, its new length in bytes; an
    /// error if every slot is in use and the file already has [`MAX_SLOTS`].
    pub(crate) fn allocate(
        &mut self,
        lsn: u64,
        salt: u32,
    ) -> Result<(SegmentId, Option<u64>), String> {
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
                if old >= self.max_slots {
                    return Err(format!(
                        "every one of the {old} segment slots of {} bytes is in use and the \
                         data file may not grow further; free space (mark_dead, \
                         set_reuse_horizon) or use a larger segment_size_bytes",
                        self.segment_size
                    ));
                }
                let new = (old + self.growth_step(old)).min(self.max_slots);
                self.slots.resize(new as usize, Slot::FREE);
                grow = Some(new * self.segment_size);
                old as usize
            }
        };
        let id = SegmentId(idx as u64);
        self.slots[idx] = Slot {
            state: SegmentState::Active,
            lsn: Some(lsn),
            salt,
            records_end: lsn + self.segment_size,
            ..Slot::FREE
        };
        let prev = self.by_lsn.insert(lsn, id);
        assert!(prev.is_none(), "LSN {lsn} allocated twice");
        Ok((id, grow))
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

    /// The record at `ptr` is no longer needed by the upper layer. An error (and no change) if
    /// `ptr` cannot name a record of the slot's current incarnation, if it was marked dead
    /// before (since open), or if the slot's live bytes would go negative with nothing in
    /// flight (a record marked dead in an earlier run, after `reset_live` counted it out).
    pub(crate) fn mark_dead(&mut self, ptr: &DiskPtr, reserve_head: u64) -> Result<(), String> {
        let seg = self.segment_size;
        let id = ptr.segment(seg);
        let in_seg = ptr.lsn.0 % seg;
        let seg_lsn = ptr.lsn.0 - in_seg;
        if ptr.offset % seg != in_seg || in_seg < SEGMENT_HEADER_LEN as u64 {
            return Err(format!("{ptr:?} is not a record position of this log"));
        }
        let slot = self
            .slots
            .get_mut(id.0 as usize)
            .ok_or_else(|| format!("{ptr:?} is beyond the data file"))?;
        if slot.lsn != Some(seg_lsn) || slot.state == SegmentState::Free {
            return Err(format!("{ptr:?}: segment {id:?} now holds {:?}", slot.lsn));
        }
        if slot.salt != ptr.salt {
            return Err(format!(
                "{ptr:?}: segment {id:?} holds another incarnation of its LSNs (tail cut by \
                 recovery)"
            ));
        }
        if ptr.lsn.0.saturating_add(u64::from(ptr.len)) > slot.records_end {
            return Err(format!(
                "{ptr:?}: past the records of segment {id:?} (tail cut by recovery)"
            ));
        }
        let bit = (in_seg / RECORD_HEADER_LEN as u64) as usize;
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if slot.dead.get(word).is_some_and(|w| w & mask != 0) {
            return Err(format!("{ptr:?} was already marked dead"));
        }
        let len = i64::from(ptr.len);
        if slot.in_flight == 0 && slot.live < len {
            return Err(format!(
                "{ptr:?}: segment {id:?} has only {} live bytes (marked dead twice?)",
                slot.live
            ));
        }
        if slot.dead.is_empty() {
            let bits = seg as usize / RECORD_HEADER_LEN + 1;
            slot.dead = vec![0; bits.div_ceil(64)];
        }
        slot.dead[word] |= mask;
        slot.live -= len;
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
                Some(s)
                    if resettable(s)
                        && s.lsn == Some(seg_lsn)
                        && s.salt == ptr.salt
                        && ptr.lsn.0.saturating_add(u64::from(ptr.len)) <= s.records_end =>
                {
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

    /// Slots the file grows by when it has `slots` and none is free (see [`GROWTH_DIVISOR`]).
    fn growth_step(&self, slots: u64) -> u64 {
        let max = (MAX_GROWTH_BYTES / self.segment_size).max(1);
        (slots / GROWTH_DIVISOR).clamp(1, max)
    }

    /// If the free slots at the end of the file are at least one growth step of what stays,
    /// the length to truncate it to (the last used slot's end). The hysteresis keeps a file
    /// that just grew from shrinking back at once: growth leaves at most a step minus one
    /// free slot behind the slot it allocated.
    pub(crate) fn shrink_target(&mut self) -> Option<u64> {
        let used = self
            .slots
            .iter()
            .rposition(|s| s.state != SegmentState::Free)
            .map_or(0, |i| i + 1);
        let free_tail = self.slots.len() - used;
        if used >= 1 && free_tail as u64 >= self.growth_step(used as u64) {
            self.slots.truncate(used);
            return Some(used as u64 * self.segment_size);
        }
        None
    }

    /// The LSN and salt of the segment slot `id` holds now, unless it is free (or beyond the
    /// file).
    pub(crate) fn segment_lsn(&self, id: SegmentId) -> Option<(u64, u32)> {
        let slot = self.slots.get(usize::try_from(id.0).ok()?)?;
        if slot.state == SegmentState::Free {
            return None;
        }
        slot.lsn.map(|lsn| (lsn, slot.salt))
    }

    pub(crate) fn reuse_horizon(&self) -> u64 {
        self.reuse_horizon
    }

    /// Raises the horizon to `lsn` (never lowers it); returns whether it moved.
    pub(crate) fn set_reuse_horizon(&mut self, lsn: Lsn) -> bool {
        let moved = lsn.0 > self.reuse_horizon;
        self.reuse_horizon = self.reuse_horizon.max(lsn.0);
        moved
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
    fn growth_is_by_an_eighth_then_reuses_free_slots() {
        let mut t = SegmentTable::new(4096, 0, Lsn(u64::MAX));
        for i in 0..16u64 {
            let (id, grow) = t.allocate(i * 4096, 7).unwrap();
            assert_eq!(id, SegmentId(i));
            assert_eq!(
                grow,
                Some((i + 1) * 4096),
                "one slot at a time below 16 slots"
            );
        }
        assert_eq!(t.allocate(16 * 4096, 7).unwrap().1, Some(18 * 4096));
        assert_eq!(t.allocate(17 * 4096, 7).unwrap(), (SegmentId(17), None));
        assert_eq!(t.allocate(18 * 4096, 7).unwrap().1, Some(20 * 4096));
        let mut big = SegmentTable::new(1 << 20, 16 << 10, Lsn(u64::MAX));
        for slot in &mut big.slots {
            slot.state = SegmentState::Sealed;
        }
        let grown = big.allocate(0, 1).unwrap().1.unwrap();
        assert_eq!(grown, (16 << 30) + (1 << 30), "steps are capped at 1 GiB");
    }

    #[test]
    fn drain_then_reclaim_then_reuse() {
        let mut t = SegmentTable::new(4096, 0, Lsn(u64::MAX));
        let (a, _) = t.allocate(0, 7).unwrap();
        t.buffer_installed(a);
        t.buffer_written(a, 100, 50);
        t.seal(a, 200);
        assert_eq!(t.stats()[0].state, SegmentState::Sealed);
        let ptr = DiskPtr {
            lsn: Lsn(32),
            offset: 32,
            len: 100,
            salt: 7,
            blob: 0,
        };
        t.mark_dead(&ptr, 300).unwrap();
        assert_eq!(t.stats()[0].state, SegmentState::Draining);
        assert!(t.take_reclaimable(299).is_empty(), "drain not durable yet");
        assert_eq!(t.take_reclaimable(300), vec![a]);
        assert!(t.take_reclaimable(300).is_empty(), "returned once");
        t.free(a);
        assert_eq!(t.allocate(8192, 7).unwrap(), (a, None));
        assert!(
            t.mark_dead(&ptr, 400).is_err(),
            "pointer into a reused segment is stale"
        );
    }

    #[test]
    fn free_tail_is_truncated_once_it_is_a_growth_step() {
        let mut t2 = SegmentTable::new(4096, 8, Lsn(u64::MAX));
        t2.restore(SegmentId(0), 0, 1, 4096, SegmentState::Sealed, 10);
        t2.restore(SegmentId(1), 4096, 1, 8192, SegmentState::Active, 0);
        assert_eq!(
            t2.shrink_target(),
            Some(2 * 4096),
            "6 of 8 slots free at the end"
        );
        assert_eq!(t2.stats().len(), 2);
        assert_eq!(t2.shrink_target(), None);
        let mut t3 = SegmentTable::new(4096, 8, Lsn(u64::MAX));
        t3.restore(SegmentId(6), 0, 1, 4096, SegmentState::Active, 0);
        assert_eq!(
            t3.shrink_target(),
            Some(7 * 4096),
            "one free slot at the end"
        );
        let mut t4 = SegmentTable::new(4096, 36, Lsn(u64::MAX));
        t4.restore(SegmentId(33), 0, 1, 4096, SegmentState::Active, 0);
        assert_eq!(
            t4.shrink_target(),
            None,
            "2 free slots behind 34 used: less than a growth step (4)"
        );
        t4.slots.push(Slot::FREE);
        t4.slots.push(Slot::FREE);
        assert_eq!(t4.shrink_target(), Some(34 * 4096), "4 free: one step");
    }

    #[test]
    fn growth_stops_at_the_slot_cap_with_an_error() {
        let mut t = SegmentTable::new(4096, 0, Lsn(u64::MAX));
        t.max_slots = 3;
        assert_eq!(t.allocate(0, 1).unwrap(), (SegmentId(0), Some(4096)));
        assert_eq!(t.allocate(4096, 1).unwrap(), (SegmentId(1), Some(8192)));
        assert_eq!(
            t.allocate(8192, 1).unwrap(),
            (SegmentId(2), Some(3 * 4096)),
            "growth clamped to the cap"
        );
        let err = t.allocate(3 * 4096, 1).unwrap_err();
        assert!(err.contains("may not grow"), "{err}");
        assert_eq!(t.stats().len(), 3);
    }

    /// `mark_dead` twice used to trip an assertion (a panic on caller input) once the buffer
    /// was written, and to go unnoticed while it was in flight.
    #[test]
    fn second_mark_dead_of_a_record_is_an_error() {
        let mut t = SegmentTable::new(4096, 0, Lsn(u64::MAX));
        let (a, _) = t.allocate(0, 7).unwrap();
        t.buffer_installed(a);
        let rec = |lsn: u64, len: u32| DiskPtr {
            lsn: Lsn(lsn),
            offset: lsn,
            len,
            salt: 7,
            blob: 0,
        };
        let (p, q) = (rec(32, 100), rec(132, 50));
        t.mark_dead(&p, 0).unwrap();
        let in_flight = t.mark_dead(&p, 0).unwrap_err();
        assert!(in_flight.contains("already marked dead"), "{in_flight}");
        t.buffer_written(a, 150, 0);
        assert_eq!(t.stats()[0].live_bytes, 50);
        let written = t.mark_dead(&p, 0).unwrap_err();
        assert!(written.contains("already marked dead"), "{written}");
        assert_eq!(
            t.stats()[0].live_bytes,
            50,
            "a refused mark changes nothing"
        );
        t.mark_dead(&q, 0).unwrap();
        assert!(t.mark_dead(&q, 0).is_err());
        assert_eq!(t.stats()[0].live_bytes, 0);
        // Records a header apart have distinct bits: adjacent minimal records.
        let (b, _) = t.allocate(4096, 8).unwrap();
        t.buffer_installed(b);
        t.buffer_written(b, 48, 0);
        for lsn in [4096 + 32, 4096 + 56] {
            let mut r = rec(lsn, 24);
            r.offset = 4096 + lsn % 4096;
            r.salt = 8;
            t.mark_dead(&r, 0).unwrap();
        }
    }

    /// A record marked dead before a restart is not in the live set `reset_live` gets; marking
    /// it dead again must not drive the count negative.
    #[test]
    fn mark_dead_below_zero_live_is_an_error() {
        let mut t = SegmentTable::new(4096, 1, Lsn(u64::MAX));
        t.restore(SegmentId(0), 0, 3, 4096, SegmentState::Sealed, 4064);
        let live = DiskPtr {
            lsn: Lsn(32),
            offset: 32,
            len: 100,
            salt: 3,
            blob: 0,
        };
        let dead_before_restart = DiskPtr {
            lsn: Lsn(132),
            offset: 132,
            ..live
        };
        assert_eq!(t.reset_live([live], 0), 1);
        t.mark_dead(&live, 0).unwrap();
        assert_eq!(t.stats()[0].state, SegmentState::Draining);
        let err = t.mark_dead(&dead_before_restart, 0).unwrap_err();
        assert!(err.contains("only 0 live bytes"), "{err}");
    }

    #[test]
    fn horizon_blocks_reuse() {
        let mut t = SegmentTable::new(4096, 0, Lsn(0));
        let (a, _) = t.allocate(0, 7).unwrap();
        t.seal(a, 10);
        assert!(t.take_reclaimable(u64::MAX).is_empty());
        t.set_reuse_horizon(Lsn(4096));
        assert_eq!(t.take_reclaimable(u64::MAX), vec![a]);
    }
}
