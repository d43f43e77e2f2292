//! The packed state word of one I/O buffer, as a typed [`Snapshot`] with pure transitions.
//!
//! ```text
//!  63        44 43 42 41        31 30                       0
//! +------------+--+--+------------+--------------------------+
//! | generation |I |S |  writers   |   offset (bytes used)    |
//! +------------+--+--+------------+--------------------------+
//! ```
//! - `offset` (31 bits): bytes of the buffer handed out so far (reservations are `[old, new)`).
//!   Buffers are at most 1 GiB, so `offset <= capacity <= 2^30` always fits.
//! - `writers` (11 bits): reservations (plus a sealer's own slot) not yet completed or aborted.
//! - `S` (sealed): no more reservations; `offset` is frozen.
//! - `I` (installing): the installer is rewriting the per-incarnation fields (always with `S`
//!   set and no writers). Readers of those fields reject this state (the seqlock's "odd").
//! - `generation` (20 bits): bumped every time the buffer is reinstalled for a new LSN range,
//!   so a CAS prepared against an earlier incarnation fails (ABA) even if offset and writers
//!   repeat. It wraps after 2^20 reinstalls of one buffer: a reserver would have to stall
//!   between its load and its CAS while ~10^6 buffers (1 TiB with the default 1 MiB buffers,
//!   times the buffer count) are written out, and then meet exactly the same offset and writer
//!   count. That is the residual ABA window; it is not otherwise defended.
//!
//! Who may change which field:
//! - any writer: `offset += len` and `writers += 1` together ([`Snapshot::try_reserve`]) while
//!   not sealed; `writers -= 1` once per reservation it holds ([`Snapshot::writer_done`]).
//! - the one sealer: sets `S` and `writers += 1` together ([`Snapshot::try_seal_join`]); it
//!   then writes the end-of-segment padding (if any) and drops its slot like any writer.
//! - the thread whose `writer_done` makes `S && writers == 0` (the last writer out) hands the
//!   buffer to the I/O writer; it is the only thread that ever sees that transition.
//! - the installer (the sealer of the previous buffer, with the buffer written out and free):
//!   first stores `S | I` with `generation + 1` ([`BufferWord::begin_install`]), then rewrites
//!   the incarnation fields, then stores the fresh word of that generation
//!   ([`BufferWord::install`]). Nothing else stores.
//!
//! A free (written-out, not yet reinstalled) or installing buffer is sealed with zero writers,
//! so nothing can reserve in it, seal it, or hand it off again.

use crate::sync::{AtomicU64, Ordering};

const OFFSET_BITS: u32 = 31;
const WRITERS_SHIFT: u32 = 31;
const WRITERS_BITS: u32 = 11;
const SEALED_SHIFT: u32 = 42;
const INSTALLING_SHIFT: u32 = 43;
const GEN_SHIFT: u32 = 44;
/// Wide enough that a wrap needs 2^20 reinstalls of one buffer during one reserver's stall.
pub(crate) const GEN_BITS: u32 = 20;

const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;
const WRITERS_MASK: u64 = ((1 << WRITERS_BITS) - 1) << WRITERS_SHIFT;
const WRITER_ONE: u64 = 1 << WRITERS_SHIFT;
const SEALED: u64 = 1 << SEALED_SHIFT;
const INSTALLING: u64 = 1 << INSTALLING_SHIFT;
const GEN_MASK: u64 = ((1 << GEN_BITS) - 1) << GEN_SHIFT;

/// Most concurrent holders of one buffer; a reserver finding it full waits for the count to
/// drop (it holds nothing, so it may).
pub(crate) const MAX_WRITERS: u64 = (1 << WRITERS_BITS) - 1;
/// Buffers are at most this large (offset field width).
pub(crate) const MAX_BUFFER_BYTES: u64 = OFFSET_MASK;

const _: () = assert!(WRITERS_SHIFT == OFFSET_BITS);
const _: () = assert!(SEALED_SHIFT == WRITERS_SHIFT + WRITERS_BITS);
const _: () = assert!(INSTALLING_SHIFT == SEALED_SHIFT + 1);
const _: () = assert!(GEN_SHIFT == INSTALLING_SHIFT + 1);
const _: () = assert!(GEN_SHIFT + GEN_BITS == 64);
const _: () = assert!(GEN_BITS >= 20);
const _: () = assert!(OFFSET_MASK & WRITERS_MASK == 0);
const _: () = assert!(WRITERS_MASK & SEALED == 0);
const _: () = assert!(SEALED & INSTALLING == 0);
const _: () = assert!(INSTALLING & GEN_MASK == 0);
const _: () = assert!(OFFSET_MASK | WRITERS_MASK | SEALED | INSTALLING | GEN_MASK == u64::MAX);
// The offset field holds any offset of the largest buffer (1 GiB), including its end.
const _: () = assert!(MAX_BUFFER_BYTES >= 1 << 30);

/// One loaded value of a buffer's state word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(u64);

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.generation())
            .field("sealed", &self.is_sealed())
            .field("installing", &self.is_installing())
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
        assert!(
            u64::from(offset) <= OFFSET_MASK,
            "offset {offset} beyond the offset field"
        );
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
    pub(crate) fn is_installing(self) -> bool {
        self.0 & INSTALLING != 0
    }
    pub(crate) fn generation(self) -> u64 {
        (self.0 & GEN_MASK) >> GEN_SHIFT
    }

    /// The generation the next installation of this buffer uses (wrapping in `GEN_BITS`).
    #[must_use]
    pub(crate) fn next_generation(self) -> u64 {
        (self.generation() + 1) & ((1 << GEN_BITS) - 1)
    }

    /// The installer's first step on a free buffer: the next generation, sealed and
    /// installing, no writers, offset 0. Panics unless `self` is a free (handed-off) word.
    #[must_use]
    pub(crate) fn begin_install(self) -> Snapshot {
        assert!(
            self.is_handoff(),
            "installing over a buffer still in use: {self:?}"
        );
        Snapshot(((self.next_generation() << GEN_SHIFT) & GEN_MASK) | SEALED | INSTALLING)
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
    /// the I/O writer: sealed and the last writer has left. Also true of a free buffer (never
    /// installed, or written out and not yet reinstalled); false while it is being installed.
    pub(crate) fn is_handoff(self) -> bool {
        self.is_sealed() && self.writers() == 0 && !self.is_installing()
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

    /// The installer's first step (seqlock "begin write"), on a free buffer: stores
    /// [`Snapshot::begin_install`] and returns its generation. The incarnation fields may be
    /// rewritten only after this store.
    ///
    /// Relaxed store: what orders it before the field stores is that those are Release stores
    /// (see `IoBuffer::set_incarnation`); a reader that reads any new field value and then runs
    /// its Acquire fence is ordered after this store, so its second load of the word cannot
    /// return the value it loaded first. Only the installer writes the word of a free buffer,
    /// so a plain store (no CAS) cannot lose an update.
    pub(crate) fn begin_install(&self) -> u64 {
        let installing = self.load().begin_install();
        self.0.store(installing.0, Ordering::Relaxed);
        installing.generation()
    }

    /// Installs a fresh incarnation (seqlock "end write"). Only the installer calls this, after
    /// [`BufferWord::begin_install`] and the field stores. Release: pairs with the Acquire of
    /// `load`/`cas` so the new base LSN, capacity and segment header bytes are visible to
    /// whoever reserves in it.
    pub(crate) fn install(&self, fresh: Snapshot) {
        let old = self.load();
        assert!(
            old.is_installing(),
            "install without begin_install: {old:?}"
        );
        assert_eq!(
            old.generation(),
            fresh.generation(),
            "install of another generation than begun"
        );
        assert!(
            !fresh.is_sealed() && !fresh.is_installing() && fresh.writers() == 0,
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

    #[test]
    fn installing_word_is_inert_and_not_a_handoff() {
        let i = Snapshot::free().begin_install();
        assert!(i.is_installing() && i.is_sealed());
        assert_eq!(i.writers(), 0);
        assert_eq!(i.generation(), 1);
        assert!(!i.is_handoff(), "an installing word must not look free");
        assert_eq!(i.try_reserve(1, 10), Reserve::Sealed);
        assert!(i.try_seal_join().is_none());
        let fresh = Snapshot::fresh(i.generation(), 32);
        assert!(!fresh.is_installing() && !fresh.is_sealed());
    }

    #[test]
    #[should_panic(expected = "still in use")]
    fn begin_install_on_a_live_buffer_panics() {
        let _ = Snapshot::fresh(3, 0).begin_install();
    }

    #[test]
    fn fields_do_not_overlap_at_their_extremes() {
        let max_gen = (1u64 << GEN_BITS) - 1;
        let s = Snapshot(
            (max_gen << GEN_SHIFT) | SEALED | (MAX_WRITERS << WRITERS_SHIFT) | MAX_BUFFER_BYTES,
        );
        assert_eq!(s.generation(), max_gen);
        assert!(s.is_sealed() && !s.is_installing());
        assert_eq!(s.writers(), MAX_WRITERS);
        assert_eq!(u64::from(s.offset()), MAX_BUFFER_BYTES);
        let full = Snapshot::fresh(max_gen, 1 << 30);
        assert_eq!(full.offset(), 1 << 30, "offset of a full 1 GiB buffer");
        assert_eq!(full.generation(), max_gen);
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
                    if m.word.load().is_handoff() {
                        let gen = m.word.begin_install();
                        m.word.install(Snapshot::fresh(gen, 0));
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
