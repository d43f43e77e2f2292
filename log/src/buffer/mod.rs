//! In-memory I/O buffers: a packed state word ([`state`]), the bytes ([`mem`]), and the
//! per-incarnation facts (base LSN, file offset, capacity) the installer publishes through the
//! word's generation.

pub(crate) mod mem;
pub(crate) mod state;

use crate::sync::{fence, AtomicU32, AtomicU64, Mutex, Ordering, StdAtomicU64};
use crate::types::SegmentId;
use mem::BufMem;
use state::{BufferWord, Snapshot};

/// Whether a buffer holds records not yet written to the file, and whether its bytes may be
/// read. Guarded by `IoBuffer::status`; readers hold the lock while copying so the I/O writer
/// cannot mark the buffer written (and the installer cannot reuse it) under them.
///
/// Transitions: `Free -> Filling` (installer, buffer free), `Filling` narrowed to the sealed end
/// (sealer, before the next buffer exists), `Filling -> HandedOff` (the last writer out, once
/// the word is sealed with zero writers), `HandedOff -> Free` (I/O writer, after the write).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Status {
    /// Written out (or never used): free to install; records are read from the file.
    Free,
    /// Installed and accepting (or finishing) reservations in LSNs `[base, base + len)` (`len`
    /// is the capacity, narrowed to the sealed end by the sealer). Holders may be writing
    /// anywhere in the range: **nobody else may read its bytes**. A reader waits for
    /// `HandedOff` (or `Free`).
    Filling { base: u64, len: u32 },
    /// Sealed with no writers, not yet written out: the bytes of `[base, base + len)` are
    /// immutable until the I/O writer marks the buffer `Free` (under this lock), so a reader
    /// holding the lock may copy any of them.
    HandedOff { base: u64, len: u32 },
}

impl Status {
    /// Whether `[lsn, end)` lies inside the range of this status (any variant but `Free`).
    pub(crate) fn covers(self, lsn: u64, end: u64) -> bool {
        match self {
            Status::Free => false,
            Status::Filling { base, len } | Status::HandedOff { base, len } => {
                lsn >= base && end <= base + u64::from(len)
            }
        }
    }
}

/// One rotating I/O buffer.
#[derive(Debug)]
pub(crate) struct IoBuffer {
    pub word: BufferWord,
    pub mem: BufMem,
    pub status: Mutex<Status>,
    // Per-incarnation fields. Written only by the installer (buffer free, before the Release
    // in `BufferWord::install`) and by the sealer (`end`, before its `writer_done`). Read with
    // Relaxed by threads whose Acquire on the word (a successful reserve CAS, or the hand-off
    // chain) orders them after those writes; a reader that loses the generation race
    // discards what it read because its CAS fails.
    seq: AtomicU64,
    base_lsn: AtomicU64,
    file_offset: AtomicU64,
    segment: AtomicU64,
    capacity: AtomicU32,
    salt: AtomicU32,
    end: AtomicU32,
    /// Bytes of completed Data/BlobPointer records (segment live-byte accounting).
    pub live: StdAtomicU64,
    /// Records completed in this incarnation, folded into the log-wide counter once, at
    /// hand-off: a per-record RMW on the shared counters' cache line would make every appender
    /// contend with every other, while this line is already owned for `live`.
    pub records: StdAtomicU64,
}

/// The facts of one incarnation, as the installer sets them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Incarnation {
    /// Position in the rotation: buffer `seq % count`, installed after `seq - 1` was sealed.
    pub seq: u64,
    pub base_lsn: u64,
    pub file_offset: u64,
    pub segment: SegmentId,
    pub capacity: u32,
    /// Low 32 bits of the segment's salt, stamped into every record header.
    pub salt: u32,
}

impl IoBuffer {
    pub(crate) fn new(size: usize) -> Self {
        IoBuffer {
            word: BufferWord::new(Snapshot::free()),
            mem: BufMem::new(size),
            status: Mutex::new(Status::Free),
            seq: AtomicU64::new(0),
            base_lsn: AtomicU64::new(0),
            file_offset: AtomicU64::new(0),
            segment: AtomicU64::new(0),
            capacity: AtomicU32::new(0),
            salt: AtomicU32::new(0),
            end: AtomicU32::new(0),
            live: StdAtomicU64::new(0),
            records: StdAtomicU64::new(0),
        }
    }

    /// The current incarnation's facts. Only meaningful to a thread ordered after the install
    /// (see the field comment); others must validate with a CAS on the word.
    pub(crate) fn incarnation(&self) -> Incarnation {
        // Relaxed: see the field comment (ordered by the word's Acquire/Release).
        Incarnation {
            seq: self.seq.load(Ordering::Relaxed),
            base_lsn: self.base_lsn.load(Ordering::Relaxed),
            file_offset: self.file_offset.load(Ordering::Relaxed),
            segment: SegmentId(self.segment.load(Ordering::Relaxed)),
            capacity: self.capacity.load(Ordering::Relaxed),
            salt: self.salt.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn capacity(&self) -> u32 {
        // Relaxed: validated by the caller's CAS on the word (generation).
        self.capacity.load(Ordering::Relaxed)
    }

    /// Installer only, between [`BufferWord::begin_install`] and [`BufferWord::install`]: sets
    /// the facts of the next incarnation. This is the seqlock's write section: the word reads
    /// "installing" (the seqlock's odd count) from before the first store here until the
    /// Release store in `install` publishes the fresh word.
    ///
    /// The stores are Release (not Relaxed) for [`IoBuffer::validated_view`]: a reader whose
    /// Relaxed load reads one of them and then issues an Acquire fence is ordered after
    /// everything the installer did before that store, including `begin_install`'s store of
    /// the word, so the reader's re-load of the word cannot still return the value it loaded
    /// before reading the fields (the free word of the previous generation).
    pub(crate) fn set_incarnation(&self, inc: Incarnation) {
        debug_assert!(
            self.word.load().is_installing(),
            "set_incarnation outside an install"
        );
        self.seq.store(inc.seq, Ordering::Release);
        self.base_lsn.store(inc.base_lsn, Ordering::Release);
        self.file_offset.store(inc.file_offset, Ordering::Release);
        self.segment.store(inc.segment.0, Ordering::Release);
        self.capacity.store(inc.capacity, Ordering::Release);
        self.salt.store(inc.salt, Ordering::Release);
        // Relaxed: only read by threads ordered after the following `install` (Release).
        self.end.store(0, Ordering::Relaxed);
        self.live.store(0, Ordering::Relaxed);
    }

    /// A consistent (word, incarnation) pair without taking a writer slot, seqlock style:
    /// load the word (Acquire), reject an installing word, load the fields, an Acquire fence,
    /// load the word again; `None` if it changed or was installing (the caller retries).
    ///
    /// Why a validated pair is consistent: if the first load returned the fresh word of
    /// generation g (or a later value of it), the Acquire orders every field load after g's
    /// field stores; if any field load returned a value of a later install, the fence orders
    /// the second word load after that install's `begin_install`, so the word differs (its
    /// generation, or the installing bit). If the first load returned a free word, the same
    /// argument applies to the install that starts from it. See `set_incarnation`.
    pub(crate) fn validated_view(&self) -> Option<(Snapshot, Incarnation)> {
        let before = self.word.load();
        if before.is_installing() {
            return None;
        }
        let inc = self.incarnation();
        // Acquire fence: pairs with the Release field stores in `set_incarnation` (see above).
        fence(Ordering::Acquire);
        let after = self.word.load();
        (before == after).then_some((before, inc))
    }

    /// Sealer only: the number of buffer bytes to write (frozen offset, or capacity when the
    /// rest of the segment was padded). Published to the I/O writer by the sealer's
    /// `writer_done` (AcqRel) and the hand-off mutex.
    pub(crate) fn set_end(&self, end: u32) {
        // Relaxed: see the doc comment (ordered by the word's RMW chain and the hand-off).
        self.end.store(end, Ordering::Relaxed);
    }

    /// I/O writer only, after the hand-off.
    pub(crate) fn end(&self) -> u32 {
        // Relaxed: ordered after the sealer's store by the hand-off (see `set_end`).
        self.end.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    //! The seqlock `validated_view` against a concurrent install: a view that validates must
    //! never mix the word of one incarnation with the fields of another, and never return the
    //! fields while an install is rewriting them.
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// The fields of generation `seq`; all zero for 0, like a new buffer's.
    fn incarnation(seq: u64) -> Incarnation {
        Incarnation {
            seq,
            base_lsn: seq * 1000,
            file_offset: seq * 10,
            segment: SegmentId(seq),
            capacity: 8 * seq as u32,
            salt: seq as u32,
        }
    }

    /// The installer's steps, as `Shared::install` takes them.
    fn install(buf: &IoBuffer, seq: u64) {
        let gen = buf.word.begin_install();
        assert_eq!(gen, seq, "the models keep generation == seq");
        buf.set_incarnation(incarnation(seq));
        buf.word.install(Snapshot::fresh(gen, 0));
    }

    fn check_view(buf: &IoBuffer) {
        if let Some((snap, inc)) = buf.validated_view() {
            assert!(!snap.is_installing(), "view of a buffer being installed");
            assert_eq!(
                inc.seq,
                snap.generation(),
                "word and fields of different incarnations"
            );
            let want = incarnation(inc.seq);
            assert_eq!(inc.base_lsn, want.base_lsn, "fields of two incarnations");
            assert_eq!(
                inc.file_offset, want.file_offset,
                "fields of two incarnations"
            );
            assert_eq!(inc.segment, want.segment, "fields of two incarnations");
            assert_eq!(inc.capacity, want.capacity, "fields of two incarnations");
            assert_eq!(inc.salt, want.salt, "fields of two incarnations");
        }
    }

    /// A reader against the install of a free buffer (the case the seqlock's "begin write"
    /// exists for: the free word does not change until the install is over, so without the
    /// installing state the reader's two loads agree around a half-written set of fields).
    #[test]
    fn loom_validated_view_from_free_state() {
        loom::model(|| {
            // A new buffer is free (generation 0) with all-zero fields, which are exactly
            // `incarnation(0)`.
            let buf = Arc::new(IoBuffer::new(16));
            let installer = {
                let buf = buf.clone();
                thread::spawn(move || install(&buf, 1))
            };
            check_view(&buf);
            installer.join().unwrap();
            check_view(&buf);
        });
    }

    /// A reader against a seal, hand-off and reinstall of an installed buffer.
    #[test]
    fn loom_validated_view_never_mixes_incarnations() {
        loom::model(|| {
            let buf = Arc::new(IoBuffer::new(16));
            install(&buf, 1);
            let recycler = {
                let buf = buf.clone();
                thread::spawn(move || {
                    // Seal (sealer's own slot), leave: hand-off; then reinstall as incarnation 2.
                    let s = buf.word.load();
                    let sealed = s.try_seal_join().unwrap();
                    buf.word.cas(s, sealed).unwrap();
                    assert!(buf.word.writer_done().is_handoff());
                    install(&buf, 2);
                })
            };
            check_view(&buf);
            recycler.join().unwrap();
        });
    }
}
