//! Taking a checkpoint while the cache runs (fuzzy, no pause).
//!
//! 1. Flush the log and read the durable LSN `C`. Every record below `C` was completed, so
//!    its slot CAS happened before this read: the walk below sees its effect.
//! 2. Walk every page id below the allocator's high-water mark whose radix leaf is installed
//!    (`RadixTable::present`: absent id ranges are skipped, so the walk costs what the table
//!    holds, not the mark) and copy each live page's fragment locations (re-pinning every few
//!    thousand slots so reclamation is not held up).
//!    A page whose head is staged by an uncommitted group is copied as if the group were
//!    absent (its view starts below); `group/mod.rs` explains why that is right on both sides
//!    of `C`.
//! 3. Flush again: every fragment the walk saw is durable before the checkpoint names it.
//! 4. Write the file (tmp, fsync, rename, directory fsync) and raise the log's reuse horizon
//!    to the oldest checkpoint kept, so segments a fallback recovery would replay stay.
//!
//! Recovery loads the table and replays records from `C`. A record the walk already saw is
//! replayed again harmlessly: every fragment record sets its page to the state right after it
//! (see `fragment.rs`), and records are replayed in LSN order, which per page is CAS order.

use crossbeam_epoch as epoch;
use radix::{Pid, SlotState};

use crate::checkpoint::{self, Checkpoint};
use crate::error::Result;
use crate::inner::{locations_oldest_first, view_of, Inner};
use crate::location::Location;
use crate::model::PageModel;
use crate::stats::add;

/// Slots visited per epoch pin during the walk.
const PAGES_PER_PIN: usize = 4096;

impl<M: PageModel> Inner<M> {
    /// Writes a checkpoint (see the module comment).
    pub(crate) fn checkpoint(&self) -> Result<()> {
        let _one = self.checkpointing.lock().unwrap_or_else(|p| p.into_inner());
        self.log.flush()?;
        let lsn = self.log.durable_lsn();
        let next_fresh = self.pids.next_fresh();
        let pages = self.page_table(next_fresh)?;
        self.log.flush()?;
        let ckpt = Checkpoint {
            lsn,
            next_fresh,
            pages,
        };
        let horizon = checkpoint::write(self.storage.as_ref(), &self.cfg.path, &ckpt)?;
        self.log.set_reuse_horizon(horizon);
        add(&self.counters.checkpoints, 1);
        Ok(())
    }

    /// Every live page below `next_fresh` with its fragments, oldest first.
    fn page_table(&self, next_fresh: u64) -> Result<Vec<(Pid, Vec<Location>)>> {
        let mut pages = Vec::new();
        let mut slots = self.table.present(0..next_fresh).peekable();
        while slots.peek().is_some() {
            let guard = epoch::pin();
            for (pid, slot) in slots.by_ref().take(PAGES_PER_PIN) {
                let word = slot.load();
                match word.state() {
                    SlotState::Free => {}
                    SlotState::OnDisk(w) => {
                        let loc = Location::in_slot(w);
                        pages.push((pid, vec![loc]));
                    }
                    SlotState::InMemory(_) => {
                        let view = view_of::<M>(pid, word, &guard);
                        pages.push((pid, locations_oldest_first(&view)?));
                    }
                    SlotState::Reserved(_) => panic!("page cache slots are never Reserved"),
                }
            }
        }
        Ok(pages)
    }
}
