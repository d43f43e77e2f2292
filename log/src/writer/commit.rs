//! Group commit: durability waiters sync the data file themselves, one sync at a time, and the
//! one about to sync waits briefly for the committers it expects to join.
//!
//! Protocol (all under the `stable` lock; the `fdatasync` itself runs without it):
//! 1. A thread in [`wait_durable`] whose target is not durable registers its target in
//!    `GroupCommit::pending` (a sync removes the targets it covers) and raises
//!    `sync_requested` to it.
//! 2. If its target is not written yet and handed-off buffers are queued, it takes the queue and
//!    writes those buffers itself (the I/O writer thread would do the same; whoever takes the
//!    queue under the lock owns those buffers). That takes the writer thread's wake-up off the
//!    commit's critical path.
//! 3. Once its target is written and no sync is in flight, it becomes the **leader**: it
//!    *gathers* (below), notes `written_end`, drops the lock, `fdatasync`s, then sets `durable`
//!    to the noted `written_end`, wakes everyone, and runs a reclaim round (drains that just
//!    became durable). Writes continue meanwhile (the I/O thread
//!    and other waiters keep writing buffers), so the next sync starts with whatever was
//!    written during this one: syncs are pipelined behind writes, never serialised with them.
//! 4. Gathering (`commit_delay`/`commit_siblings` in PostgreSQL terms, but self-tuning): the
//!    leader waits until at least `expected` uncovered waiters are present and every requested
//!    target is written, or until a deadline of `min(Config::group_commit_wait_us, recent sync time)`.
//!    `expected` is the most waiters seen at once; a gathering that times out lowers it to the
//!    waiters present then. A lone committer therefore never waits (`expected` stays 1), and
//!    N committers that commit in lockstep are collected into one sync instead of each paying
//!    for one after the other. The deadline keeps a wrong guess cheaper than a second sync.
//!
//! 5. A full disk (`stall.rs`): if the target lies past a stalled buffer, the waiter retries
//!    the stalled buffers below it itself, and returns the full-disk error (an `Error::Io`, not
//!    `Poisoned`) once the write of one of those failed after it started waiting. It never
//!    waits for free space.
//!
//! Correctness does not depend on gathering: `durable` only ever becomes a `written_end` noted
//! before a successful sync started, exactly as when the I/O thread synced.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{reclaim, write_taken, PoisonOnUnwind};
use crate::error::{Error, Result};
use crate::shared::{lock, wait, Shared, Stable};
use crate::stats::bump;
use crate::sync::MutexGuard;

/// Group-commit bookkeeping: a field of [`Stable`], so behind the `stable` lock.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    /// A waiter leads the next sync (gathering, or in `fdatasync`). At most one sync is in
    /// flight: the others wait for it, and the next covers everything written meanwhile.
    leading: bool,
    /// The leader is gathering: an arrival wakes it (otherwise only writes do).
    gathering: bool,
    /// Targets of the threads in `wait_durable` whose target is not durable yet (target ->
    /// how many). A sync removes the ones it covers when it publishes `durable`, so a waiter
    /// that is covered but not yet scheduled no longer counts as someone to sync for.
    pending: BTreeMap<u64, usize>,
    /// The sum of `pending`'s counts.
    waiting: usize,
    /// How many waiters a sync should cover: the most seen waiting at once, lowered to the
    /// number present when a gathering times out.
    expected: usize,
    /// Smoothed duration of recent syncs (7/8 old + 1/8 new); zero before the first. Bounds
    /// the gathering wait: waiting longer than a sync costs more than a second sync.
    sync_time: Duration,
}

/// Waits until every LSN below `target` is durable, writing queued buffers and leading syncs
/// as described in the module comment.
pub(crate) fn wait_durable(sh: &Shared, target: u64) -> Result<()> {
    let mut st = lock(&sh.stable);
    if let Some(r) = settled(&st, target) {
        return r;
    }
    st.commit.arrive(target);
    if st.commit.gathering {
        sh.stable_cv.notify_all();
    }
    let (mut st, r) = wait_loop(sh, st, target);
    let durable = st.durable;
    st.commit.leave(target, durable);
    r
}

impl GroupCommit {
    fn arrive(&mut self, target: u64) {
        *self.pending.entry(target).or_insert(0) += 1;
        self.waiting += 1;
        self.expected = self.expected.max(self.waiting);
    }

    /// A waiter for `target` returns. If `target` is durable, the sync that made it so already
    /// removed it (durable only grows, and nobody registers a durable target).
    fn leave(&mut self, target: u64, durable: u64) {
        if target <= durable {
            return;
        }
        let n = self
            .pending
            .get_mut(&target)
            .expect("a waiter's target is pending");
        *n -= 1;
        if *n == 0 {
            self.pending.remove(&target);
        }
        self.waiting -= 1;
    }

    /// `durable` became `durable`: the waiters at or below it are covered.
    fn covered_up_to(&mut self, durable: u64) {
        let still = self.pending.split_off(&durable.saturating_add(1));
        let covered = std::mem::replace(&mut self.pending, still);
        self.waiting -= covered.values().sum::<usize>();
    }
}

/// `Some` once the wait is over: poisoned, or `target` durable.
fn settled(st: &Stable, target: u64) -> Option<Result<()>> {
    if let Some(cause) = &st.poison {
        return Some(Err(Error::Poisoned {
            cause: cause.clone(),
        }));
    }
    (st.durable >= target).then_some(Ok(()))
}

fn wait_loop<'a>(
    sh: &'a Shared,
    mut st: MutexGuard<'a, Stable>,
    target: u64,
) -> (MutexGuard<'a, Stable>, Result<()>) {
    // The failure clock when we came: a later stamp on a buffer below our target means a
    // write we need failed after we started waiting (`stall.rs`).
    let seen = st.stall.clock();
    loop {
        if let Some(r) = settled(&st, target) {
            return (st, r);
        }
        if st.sync_requested < target {
            st.sync_requested = target;
        }
        let blocked = st.written_end < target && st.stall.blocks(target);
        if blocked && st.stall.failed_below(target, seen) {
            // A buffer below the target cannot be written until space is freed: say so
            // rather than wait for it. (A failure of a stalled buffer past the target does
            // not count: that one is not ours to wait for.)
            let e = st.stall.error();
            return (st, Err(e));
        }
        if st.written_end < target && (!st.queue.is_empty() || blocked) {
            // Our target needs the stalled buffers below it: retry them now (once: a failure
            // stamps the buffer and ends the wait above), rather than after the writer's
            // backoff. Oldest first, so the prefix can advance as far as the disk allows.
            let mut batch = if blocked {
                st.stall.take_idle(target)
            } else {
                Vec::new()
            };
            batch.append(&mut st.queue);
            if !batch.is_empty() {
                drop(st);
                write_taken(sh, &batch, "committer writing buffers");
                st = lock(&sh.stable);
                continue;
            }
        }
        if st.written_end >= target && !st.commit.leading {
            st = lead_sync(sh, st);
            continue;
        }
        st = wait(&sh.stable_cv, st);
    }
}

/// Gathers, syncs once, publishes the new `durable`. Returns with the lock held again; a
/// failed sync has poisoned the log (the caller's loop reports it).
fn lead_sync<'a>(sh: &'a Shared, mut st: MutexGuard<'a, Stable>) -> MutexGuard<'a, Stable> {
    st.commit.leading = true;
    st = gather(sh, st);
    if st.poison.is_some() {
        st.commit.leading = false;
        return st;
    }
    let upto = st.written_end;
    drop(st);
    let started = Instant::now();
    let r = {
        let _poison_on_panic = PoisonOnUnwind::new(sh, "committer syncing the data file");
        sh.file.sync_data()
    };
    let took = started.elapsed();
    let synced = match r {
        Ok(()) => {
            bump(&sh.counters.syncs, 1);
            true
        }
        Err(e) => {
            // Never retried: the kernel may have dropped the dirty pages already.
            sh.fail("fdatasync data file", &sh.data_path, e);
            false
        }
    };
    let mut st = lock(&sh.stable);
    st.commit.leading = false;
    if synced {
        st.durable = st.durable.max(upto);
        let durable = st.durable;
        let c = &mut st.commit;
        c.covered_up_to(durable);
        c.sync_time = if c.sync_time.is_zero() {
            took
        } else {
            (c.sync_time * 7 + took) / 8
        };
    }
    // Covered waiters return, the next leader starts.
    sh.stable_cv.notify_all();
    drop(st);
    // `durable` moved, so drained segments and dead blobs may be reclaimable. Run the round
    // here rather than waking the I/O thread for it: a few microseconds after the waiters were
    // released, instead of a context switch per sync; and `flush` keeps driving reclamation.
    if synced {
        let _poison_on_panic = PoisonOnUnwind::new(sh, "committer reclaiming segments");
        reclaim(sh);
    }
    lock(&sh.stable)
}

/// Waits (bounded) until the expected number of waiters is present and every target they
/// asked for is written, so one sync covers them all.
fn gather<'a>(sh: &'a Shared, mut st: MutexGuard<'a, Stable>) -> MutexGuard<'a, Stable> {
    let ready = |st: &Stable| {
        st.poison.is_some()
            || (st.commit.waiting >= st.commit.expected && st.written_end >= st.sync_requested)
    };
    let max_wait = Duration::from_micros(sh.cfg.group_commit_wait_us).min(st.commit.sync_time);
    // Under loom a timed wait never times out (see `crate::sync`): no gathering there.
    if ready(&st) || max_wait.is_zero() || cfg!(loom) {
        return st;
    }
    let deadline = Instant::now() + max_wait;
    bump(&sh.counters.group_commit_gathers, 1);
    loop {
        let now = Instant::now();
        if now >= deadline {
            // Someone we expected did not come: expect only those present from now on.
            bump(&sh.counters.group_commit_timeouts, 1);
            st.commit.expected = st.commit.waiting;
            return st;
        }
        st.commit.gathering = true;
        st = sh
            .stable_cv
            .wait_timeout(st, deadline - now)
            .unwrap_or_else(|_| panic!("log mutex poisoned by an earlier panic"))
            .0;
        st.commit.gathering = false;
        if ready(&st) {
            return st;
        }
    }
}
