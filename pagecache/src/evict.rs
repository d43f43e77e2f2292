//! Eviction under the byte budget: CLOCK with a small saturating heat per page.
//!
//! A read adds one heat (up to [`MAX_HEAT`](crate::node::MAX_HEAT)); the hand takes one away
//! per pass and evicts a page it finds cold. A page read once by a large scan is evicted after
//! one pass, while a page read repeatedly survives three: a scan does not flush the hot set.
//!
//! Eviction turns the slot into one `OnDisk` word naming a single base fragment. A page with
//! deltas is first consolidated (one base record written), so an evicted page costs exactly
//! its slot and is read back with one log read. Only a fragment whose record is complete is
//! evicted to (page-ins read it by position).

use crossbeam_epoch::Guard;
use radix::{Pid, SlotState};

use crate::chain;
use crate::error::Result;
use crate::inner::{view_of, Inner};
use crate::location::Location;
use crate::model::PageModel;
use crate::stats::add;
use crate::sync::Ordering;
use crate::view::PageView;

impl<M: PageModel> Inner<M> {
    fn over_budget(&self) -> bool {
        // Relaxed: a budget check; being a little late is harmless.
        self.counters.resident_bytes.load(Ordering::Relaxed) > self.cfg.cache_capacity_bytes as u64
    }

    /// Evicts cold pages while resident bytes exceed the budget. One thread at a time; others
    /// skip (the budget is soft by the pages in flight). Never evicts `keep`, the page the
    /// caller just installed and returns a view of: evicting it would hand back a view that is
    /// already stale, so a single thread's next CAS on it would fail (and a read would have
    /// paid a log read for nothing).
    pub(crate) fn maybe_evict(&self, keep: Pid, guard: &Guard) -> Result<()> {
        if !self.over_budget() {
            return Ok(());
        }
        let Ok(_one_evictor) = self.evicting.try_lock() else {
            return Ok(());
        };
        let pages = self.pids.next_fresh();
        // The hand visits installed slots only (`advance_hand`), so a pass costs the slots the
        // table holds, not the high-water mark: after reopening with a mark near `Pid::MAX`
        // and a few pages, a bound of `pages` visits would be a hang when nothing is evictable.
        let slots = pages.min(self.table.stats().slots_installed);
        // Each page needs at most MAX_HEAT + 1 visits to become evictable.
        let max_steps = slots.saturating_mul(u64::from(crate::node::MAX_HEAT) + 2);
        let mut steps = 0;
        while self.over_budget() && steps < max_steps {
            let Some(pid) = self.advance_hand(pages) else {
                break;
            };
            steps += 1;
            if pid != keep {
                self.clock_step(pid, guard)?;
            }
        }
        Ok(())
    }

    /// Moves the hand to the next installed slot below `pages` (wrapping once to 0) and
    /// returns its pid; `None` if no slot below `pages` is installed. Called only by the one
    /// evictor holding `evicting`.
    fn advance_hand(&self, pages: u64) -> Option<Pid> {
        // Relaxed: the hand only spreads the work; any value is a valid position, and the one
        // evictor at a time (the `evicting` lock) is the only writer.
        let from = self.clock_hand.load(Ordering::Relaxed) % pages.max(1);
        let (pid, _) = self
            .table
            .present(from..pages)
            .next()
            .or_else(|| self.table.present(0..from).next())?;
        // Relaxed: as above.
        self.clock_hand.store(pid.get() + 1, Ordering::Relaxed);
        Some(pid)
    }

    /// One hand position: cool the page, or evict it if already cold.
    fn clock_step(&self, pid: Pid, guard: &Guard) -> Result<()> {
        let Some(slot) = self.table.get(pid) else {
            return Ok(());
        };
        let word = slot.load();
        if !matches!(word.state(), SlotState::InMemory(_)) {
            return Ok(());
        }
        let view = view_of::<M>(pid, word, guard);
        // Relaxed: heat is a hint.
        let heat = view.head.heat.load(Ordering::Relaxed);
        if heat > 0 {
            view.head.heat.store(heat - 1, Ordering::Relaxed);
            return Ok(());
        }
        self.evict(&view, guard).map(drop)
    }

    /// Evicts the page if it is still in the state `view`; returns whether it did.
    pub(crate) fn evict(&self, view: &PageView<'_, M>, guard: &Guard) -> Result<bool> {
        if view.head_is_staged() {
            // Only its group may change the page now; the hand comes back later.
            return Ok(false);
        }
        let mut view = *view;
        if view.len() > 1 {
            let base = view.consolidate();
            match self.replace(base, &view, guard)? {
                Ok(v) => view = v,
                Err(_) => return Ok(false),
            }
        }
        if !view.head.is_completed() {
            return Ok(false);
        }
        let loc = Location::of(&view.head.disk())?;
        if !chain::try_evict(self.slot(view.pid), &view, loc.to_word()) {
            add(&self.counters.cas_failures, 1);
            return Ok(false);
        }
        add(&self.counters.evictions, 1);
        self.retire_chain(&view, guard);
        Ok(true)
    }
}
