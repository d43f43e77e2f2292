//! The packed state word of one I/O buffer, as a typed [`Snapshot`] with pure transitions.
//!
//! ```text
//!  63         49 48 47          32 31                       0
//! +-------------+--+--------------+--------------------------+
//! | generation  |S |   writers    |   offset (bytes used)    |
//! +-------------+--+--------------+--------------------------+
//! ```
//! - `offset`: bytes of the buffer handed out so far (reservations are `[old, new)`).
//! - `writers`: reservations (plus a sealer's own slot) not yet completed or aborted.
//! - `S` (sealed): no more reservations; `offset` is frozen.
//! - `generation`: bumped every time the buffer is reinstalled for a new LSN range, so a CAS
//!   prepared against an earlier incarnation fails (ABA) even if offset and writers repeat.
//!
//! Who may change which field:
//! - any writer: `offset += len` and `writers += 1` together ([`Snapshot::try_reserve`]) while
//!   not sealed; `writers -= 1` once per reservation it holds ([`Snapshot::writer_done`]).
//! - the one sealer: sets `S` and `writers += 1` together ([`Snapshot::try_seal_join`]); it
//!   then writes the end-of-segment padding (if any) and drops its slot like any writer.
//! - the thread whose `writer_done` makes `S && writers == 0` (the last writer out) hands the
//!   buffer to the I/O writer; it is the only thread that ever sees that transition.
//! - the installer (the sealer of the previous buffer, with the buffer written out and free):
//!   stores a fresh word with `generation + 1` ([`Snapshot::fresh`]). Nothing else stores.
//!
//! A free (written-out, not yet reinstalled) buffer is sealed with zero writers, so nothing can
//! reserve in it, seal it, or hand it off again.

use crate::sync::{AtomicU64, Ordering};

const OFFSET_BITS: u32 = 32;
const WRITERS_SHIFT: u32 = 32;
const WRITERS_BITS: u32 = 16;
const SEALED_SHIFT: u32 = 48;
const GEN_SHIFT: u32 = 49;
const GEN_BITS: u32 = 15;

const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;
const WRITERS_MASK: u64 = ((1 << WRITERS_BITS) - 1) << WRITERS_SHIFT;
const WRITER_ONE: u64 = 1 << WRITERS_SHIFT;
const SEALED: u64 = 1 << SEALED_SHIFT;
const GEN_MASK: u64 = ((1 << GEN_BITS) - 1) << GEN_SHIFT;

/// Most concurrent holders of one buffer; a reserver finding it full waits for the count to
/// drop (it holds nothing, so it may).
pub(crate) const MAX_WRITERS: u64 = (1 << WRITERS_BITS) - 1;
/// Buffers are at most this large (offset field width).
pub(crate) const MAX_BUFFER_BYTES: u64 = OFFSET_MASK;

const _: () = assert!(WRITERS_SHIFT == OFFSET_BITS);
const _: () = assert!(SEALED_SHIFT == WRITERS_SHIFT + WRITERS_BITS);
const _: () = assert!(GEN_SHIFT == SEALED_SHIFT + 1);
const _: () = assert!(GEN_SHIFT + GEN_BITS == 64);
const _: () = assert!(OFFSET_MASK & WRITERS_MASK == 0 && WRITERS_MASK & SEALED == 0);
const _: () =
    assert!(SEALED & GEN_MASK == 0 && OFFSET_MASK | WRITERS_MASK | SEALED | GEN_MASK == u64::MAX);

/// One loaded value of a buffer's state word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(u64);

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.generation())
            .field("sealed", &self.is_sealed())
            .field("writers", &self.writers())
            .field("offset", &self.offset())
            .finish()
    }
}

/// Outcome of [`Snapshot::try_reserve`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[must_use]
pub(crate) enum Reserve {
    /// CAS to `next`; the reservation is `[offset, offset + len)`.
    Fits { next: Snapshot, offset: u32 },
    /// The buffer cannot hold `len` more bytes: seal it and move on.
    Full,
    /// Already sealed (or free): wait for the next buffer.
    Sealed,
    /// Writer count saturated: wait and retry.
    Busy,
}

impl Snapshot {
    /// An installed, empty buffer of generation `generation` whose first `offset` bytes are
    /// already used (a segment header).
    #[must_use]
    pub(crate) fn fresh(generation: u64, offset: u32) -> Snapshot {
        Snapshot(((generation << GEN_SHIFT) & GEN_MASK) | u64::from(offset))
    }

    /// A buffer that was never installed: sealed, no writers.
    #[must_use]
    pub(crate) fn free() -> Snapshot {
        Snapshot(SEALED)
    }

    pub(crate) fn offset(self) -> u32 {
        (self.0 & OFFSET_MASK) as u32
    }
    pub(crate) fn writers(self) -> u64 {
        (self.0 & WRITERS_MASK) >> WRITERS_SHIFT
    }
    pub(crate) fn is_sealed(self) -> bool {
        self.0 & SEALED != 0
    }
    pub(crate) fn generation(self) -> u64 {
        (self.0 & GEN_MASK) >> GEN_SHIFT
    }

    /// The generation the next installation of this buffer uses (wrapping in 15 bits).
    #[must_use]
    pub(crate) fn next_generation(self) -> u64 {
        (self.generation() + 1) & ((1 << GEN_BITS) - 1)
    }

    /// Claims `len` bytes in a buffer of `capacity` bytes.
    pub(crate) fn try_reserve(self, len: u32, capacity: u32) -> Reserve {
        if self.is_sealed() {
            return Reserve::Sealed;
        }
        if self.writers() == MAX_WRITERS {
            return Reserve::Busy;
        }
        let offset = self.offset();
        // Not an assertion: a reserver reads `capacity` after the word, so both may belong to
        // different incarnations (the buffer was recycled in between). Then the CAS that
        // follows fails on the generation, so any answer here is discarded; `Full` is merely
        // the one that cannot underflow.
        if offset > capacity || len > capacity - offset {
            return Reserve::Full;
        }
        let next = Snapshot(self.0 + u64::from(len) + WRITER_ONE);
        debug_assert_eq!(next.generation(), self.generation());
        Reserve::Fits { next, offset }
    }

    /// Seals the buffer and takes a writer slot for the sealer (so the padding it may write
    /// is covered by the hand-off rule). `None` if already sealed or the writer count is full.
    #[must_use]
    pub(crate) fn try_seal_join(self) -> Option<Snapshot> {
        if self.is_sealed() || self.writers() == MAX_WRITERS {
            return None;
        }
        Some(Snapshot(self.0 + WRITER_ONE + SEALED))
    }

    /// Drops one writer slot.
    #[must_use]
    pub(crate) fn writer_done(self) -> Snapshot {
        assert!(
            self.writers() > 0,
            "writer_done on a buffer without writers: {self:?}"
        );
        Snapshot(self.0 - WRITER_ONE)
    }

    /// Whether the thread that produced this value (by `writer_done`) must hand the buffer to
    /// the I/O writer: sealed and the last writer has left.
    pub(crate) fn is_handoff(self) -> bool {
        self.is_sealed() && self.writers() == 0
    }
}

/// The atomic word itself. One CAS helper; every ordering documented at its use.
#[derive(Debug)]
pub(crate) struct BufferWord(AtomicU64);

impl BufferWord {
    pub(crate) fn new(s: Snapshot) -> Self {
        BufferWord(AtomicU64::new(s.0))
    }

    /// Loads the word. Acquire: pairs with the Release of [`BufferWord::install`] so a thread
    /// that sees a fresh generation also sees the buffer's base LSN and capacity written
    /// before it.
    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.0.load(Ordering::Acquire))
    }

    /// The one CAS helper. AcqRel on success: Release publishes this thread's writes into its
    /// reserved range before its `writer_done`, Acquire makes the last writer out (and through
    /// it the I/O writer) see every earlier writer's bytes: all updates are RMWs on this word,
    /// so they form one release sequence. Acquire on failure: the returned value is used to
    /// retry and may be a fresh generation whose fields must be visible.
    pub(crate) fn cas(&self, current: Snapshot, new: Snapshot) -> Result<(), Snapshot> {
        #[cfg(all(any(test, feature = "debug-delay"), not(loom)))]
        crate::debug_delay::maybe_yield();
        self.0
            .compare_exchange(current.0, new.0, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(Snapshot)
    }

    /// Drops one writer slot; returns the new value (check [`Snapshot::is_handoff`]).
    pub(crate) fn writer_done(&self) -> Snapshot {
        let mut cur = self.load();
        loop {
            let next = cur.writer_done();
            match self.cas(cur, next) {
                Ok(()) => return next,
                Err(seen) => cur = seen,
            }
        }
    }

    /// Installs a fresh incarnation. Only the installer calls this, on a free buffer (sealed,
    /// no writers, written out). Release: pairs with the Acquire of `load`/`cas` so the new
    /// base LSN, capacity and segment header bytes are visible to whoever reserves in it.
    pub(crate) fn install(&self, fresh: Snapshot) {
        let old = self.load();
        assert!(
            old.is_handoff(),
            "installing over a buffer still in use: {old:?}"
        );
        assert!(
            !fresh.is_sealed() && fresh.writers() == 0,
            "install of a non-fresh word"
        );
        self.0.store(fresh.0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_seal_handoff_sequence() {
        let s = Snapshot::fresh(3, 32);
        let Reserve::Fits { next: a, offset } = s.try_reserve(10, 100) else {
            panic!()
        };
        assert_eq!(offset, 32);
        assert_eq!((a.offset(), a.writers(), a.generation()), (42, 1, 3));
        assert_eq!(a.try_reserve(59, 100), Reserve::Full);
        let sealed = a.try_seal_join().unwrap();
        assert!(sealed.is_sealed() && sealed.writers() == 2 && sealed.offset() == 42);
        assert_eq!(sealed.try_reserve(1, 100), Reserve::Sealed);
        assert!(sealed.try_seal_join().is_none());
        let one = sealed.writer_done();
        assert!(!one.is_handoff());
        let zero = one.writer_done();
        assert!(zero.is_handoff());
        assert_eq!(zero.next_generation(), 4);
    }

    /// Regression: a reserver can pair a word with the capacity of a later incarnation (the
    /// buffer was recycled between its two loads); that must not panic (the CAS then fails).
    #[test]
    fn stale_capacity_below_offset_is_full_not_a_panic() {
        let s = Snapshot::fresh(1, 900);
        assert_eq!(s.try_reserve(10, 100), Reserve::Full);
    }

    #[test]
    fn generation_wraps_and_distinguishes() {
        let max = (1u64 << GEN_BITS) - 1;
        let s = Snapshot::fresh(max, 0);
        assert_eq!(s.generation(), max);
        assert_eq!(s.next_generation(), 0);
        assert_ne!(Snapshot::fresh(1, 0), Snapshot::fresh(2, 0));
    }

    #[test]
    #[should_panic(expected = "without writers")]
    fn writer_done_without_writer_panics() {
        let _ = Snapshot::fresh(0, 0).writer_done();
    }

    #[test]
    fn free_word_is_inert() {
        let f = Snapshot::free();
        assert!(f.is_handoff());
        assert_eq!(f.try_reserve(1, 10), Reserve::Sealed);
        assert!(f.try_seal_join().is_none());
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    //! Models of the word alone plus a tiny byte buffer of loom cells: loom checks that every
    //! byte a writer touches is not touched concurrently by another writer (disjoint ranges)
    //! and that the hand-off thread's reads happen after every writer's writes.
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;
    use loom::thread;

    const CAP: u32 = 4;

    struct Model {
        word: BufferWord,
        bytes: Vec<UnsafeCell<u8>>,
        handoffs: AtomicUsize,
    }

    impl Model {
        fn new(gen: u64) -> Arc<Self> {
            Arc::new(Model {
                word: BufferWord::new(Snapshot::fresh(gen, 0)),
                bytes: (0..CAP).map(|_| UnsafeCell::new(0)).collect(),
                handoffs: AtomicUsize::new(0),
            })
        }

        /// The last writer out "writes the buffer": reads every byte, checks each reservation
        /// finished, counts the hand-off.
        fn handoff(&self, end: u32) {
            self.handoffs.fetch_add(1, Ordering::Relaxed);
            for b in &self.bytes[..end as usize] {
                // Loom flags this read if any writer's write is not ordered before it.
                // SAFETY: loom's cell checks the access; the pointer is valid for the model.
                let v = b.with(|p| unsafe { *p });
                assert_ne!(v, 0, "hand-off before a writer finished its bytes");
            }
        }

        fn done(&self) {
            let after = self.word.writer_done();
            if after.is_handoff() {
                self.handoff(after.offset());
            }
        }

        /// Reserve `len`, fill with `tag`, complete; on Full seal (join, leave). Returns
        /// whether a reservation was made.
        fn write(&self, len: u32, tag: u8) -> bool {
            let mut cur = self.word.load();
            loop {
                match cur.try_reserve(len, CAP) {
                    Reserve::Fits { next, offset } => match self.word.cas(cur, next) {
                        Ok(()) => {
                            for b in &self.bytes[offset as usize..(offset + len) as usize] {
                                // Loom flags a concurrent access: reservations must be disjoint.
                                // SAFETY: loom's cell checks the access; pointer valid.
                                b.with_mut(|p| unsafe { *p = tag });
                            }
                            self.done();
                            return true;
                        }
                        Err(seen) => cur = seen,
                    },
                    Reserve::Full => {
                        self.seal_from(cur);
                        return false;
                    }
                    Reserve::Sealed | Reserve::Busy => return false,
                }
            }
        }

        fn seal_from(&self, mut cur: Snapshot) {
            loop {
                let Some(next) = cur.try_seal_join() else {
                    return;
                };
                match self.word.cas(cur, next) {
                    Ok(()) => {
                        // A sealer writes padding into [offset, CAP) here in the real log.
                        for b in &self.bytes[next.offset() as usize..CAP as usize] {
                            // SAFETY: loom's cell checks the access; pointer valid.
                            b.with_mut(|p| unsafe { *p = 0xFF });
                        }
                        self.done();
                        return;
                    }
                    Err(seen) => cur = seen,
                }
            }
        }

        fn seal(&self) {
            self.seal_from(self.word.load());
        }
    }

    /// Two writers and a sealer race: disjoint ranges, one hand-off, after all writers.
    #[test]
    fn loom_reserve_complete_seal() {
        loom::model(|| {
            let m = Model::new(1);
            let t1 = {
                let m = m.clone();
                thread::spawn(move || m.write(2, 1))
            };
            let t2 = {
                let m = m.clone();
                thread::spawn(move || m.write(1, 2))
            };
            m.seal();
            t1.join().unwrap();
            t2.join().unwrap();
            assert_eq!(
                m.handoffs.load(Ordering::Relaxed),
                1,
                "exactly one hand-off"
            );
            assert!(m.word.load().is_handoff());
        });
    }

    /// Two writers whose sizes cannot both fit: one of them seals on Full.
    #[test]
    fn loom_full_buffer_seals_once() {
        loom::model(|| {
            let m = Model::new(1);
            let t1 = {
                let m = m.clone();
                thread::spawn(move || m.write(3, 1))
            };
            let wrote = m.write(3, 2);
            let other = t1.join().unwrap();
            assert!(wrote || other, "someone fits in an empty buffer");
            m.seal();
            assert_eq!(m.handoffs.load(Ordering::Relaxed), 1);
        });
    }

    /// Three writers (one does not fit) and a flush-style sealer.
    #[test]
    fn loom_three_writers_and_sealer() {
        loom::model(|| {
            let m = Model::new(7);
            let ts: Vec<_> = [(1u32, 1u8), (2, 2), (2, 3)]
                .into_iter()
                .map(|(len, tag)| {
                    let m = m.clone();
                    thread::spawn(move || m.write(len, tag))
                })
                .collect();
            m.seal();
            for t in ts {
                t.join().unwrap();
            }
            assert_eq!(
                m.handoffs.load(Ordering::Relaxed),
                1,
                "exactly one hand-off"
            );
            let end = m.word.load();
            assert!(end.is_handoff() && end.generation() == 7);
        });
    }

    /// A stale CAS prepared against generation 1 must fail after the buffer was written out and
    /// reinstalled as generation 2 with the same offset and writer count.
    #[test]
    fn loom_generation_prevents_aba() {
        loom::model(|| {
            let m = Model::new(1);
            let stale = m.word.load();
            let t = {
                let m = m.clone();
                thread::spawn(move || {
                    // Seal and, if nobody holds a slot, recycle: back to offset 0, writers 0.
                    m.seal();
                    let old = m.word.load();
                    if old.is_handoff() {
                        m.word.install(Snapshot::fresh(old.next_generation(), 0));
                    }
                })
            };
            let Reserve::Fits { next, .. } = stale.try_reserve(1, CAP) else {
                panic!()
            };
            let won = m.word.cas(stale, next).is_ok();
            t.join().unwrap();
            let now = m.word.load();
            if won {
                // Our slot kept the buffer from being handed off, so it cannot be reinstalled.
                assert_eq!(
                    now.generation(),
                    1,
                    "buffer reinstalled under a live reservation"
                );
                // SAFETY: the won reservation is [0, 1); loom checks no one else touches it.
                m.bytes[0].with_mut(|p| unsafe { *p = 9 });
                m.done();
            } else {
                assert!(now.generation() == 2 || now.is_sealed());
            }
            assert_eq!(m.handoffs.load(Ordering::Relaxed), 1);
        });
    }
}
