//! The mapping table's slot: one atomic pointer-sized word per page id, and [`SlotWord`], the
//! typed snapshot of its value.
//!
//! # Encoding
//!
//! The word is a pointer whose two low bits are a tag (so in-memory pointers keep their
//! provenance, which Miri checks):
//!
//! ```text
//!  63                                            2   1 0
//! +-----------------------------------------------+-----+
//! | 0 ... 0                                       | 0 0 |  Free: the all-zero word
//! | pointer to a node (aligned to >= 4), bits 63..2| 0 1 |  InMemory
//! | 62-bit on-disk location                       | 1 0 |  OnDisk
//! | 62-bit opaque payload                         | 1 1 |  Reserved
//! +-----------------------------------------------+-----+
//! ```
//!
//! - `Free`: the id has no page; the all-zero word, so zeroed memory reads as `Free`.
//! - `InMemory`: the newest delta or base of a resident page. The table never dereferences it;
//!   the caller owns the pointee and reclaims it through crossbeam-epoch.
//! - `OnDisk`: an evicted page: one word and no heap object. The payload's meaning (a log
//!   location) belongs to the layer above.
//! - `Reserved`: claimed by the layer above for a transition it is carrying out (for example a
//!   page-in in flight, so concurrent page-ins do the read once). The payload is the caller's.
//!
//! # Who changes a slot
//!
//! Only the layer above, by [`Slot::try_replace`] (a CAS), after its own protocol decided to.
//! The table only creates slots as `Free`.

use std::fmt;
use std::ptr;

use crate::sync::{AtomicPtr, Ordering};

const TAG_BITS: u32 = 2;
const TAG_MASK: usize = (1 << TAG_BITS) - 1;
const TAG_IN_MEMORY: usize = 0b01;
const TAG_ON_DISK: usize = 0b10;
const TAG_RESERVED: usize = 0b11;

/// The largest payload an `OnDisk` or `Reserved` word can carry (62 bits).
pub const MAX_PAYLOAD: u64 = (1 << (usize::BITS - TAG_BITS)) - 1;

const _: () = assert!(usize::BITS == 64, "slot words assume 64-bit pointers");
#[cfg(not(loom))]
const _: () = assert!(
    std::mem::size_of::<Slot>() == 8,
    "a slot is one 8-byte word"
);

/// What a slot word says, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SlotState {
    /// No page.
    Free,
    /// A resident page: pointer to its newest delta or base.
    InMemory(*mut u8),
    /// An evicted page at this on-disk location (opaque to the table).
    OnDisk(u64),
    /// Claimed for an in-flight transition; payload opaque to the table.
    Reserved(u64),
}

/// A snapshot of a slot's value. Obtained from [`Slot::load`] or built by the constructors;
/// compared by value (the pointer's address and tag).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SlotWord(*mut u8);

// SAFETY: a SlotWord is a plain value. It never dereferences the pointer it may carry; turning it
// back into a reference needs the caller's own `unsafe`, with the caller's own synchronisation
// (the Acquire load that produced the word, and an epoch guard keeping the pointee alive).
unsafe impl Send for SlotWord {}
// SAFETY: as for Send: shared access to the value only copies an address.
unsafe impl Sync for SlotWord {}

impl SlotWord {
    /// The `Free` word (all zero).
    pub const FREE: SlotWord = SlotWord(ptr::null_mut());

    /// A word pointing at an in-memory page.
    ///
    /// # Panics
    /// If `page` is null or not aligned to at least 4 bytes (the tag needs the two low bits).
    #[must_use]
    pub fn in_memory<T>(page: *const T) -> SlotWord {
        let page = page.cast::<u8>().cast_mut();
        assert!(
            !page.is_null(),
            "an in-memory slot word needs a non-null pointer"
        );
        assert_eq!(
            page.addr() & TAG_MASK,
            0,
            "page pointers must be 4-byte aligned"
        );
        SlotWord(page.map_addr(|addr| addr | TAG_IN_MEMORY))
    }

    /// A word for an evicted page at `location`.
    ///
    /// # Panics
    /// If `location` exceeds [`MAX_PAYLOAD`].
    #[must_use]
    pub fn on_disk(location: u64) -> SlotWord {
        SlotWord::with_payload(location, TAG_ON_DISK)
    }

    /// A `Reserved` word carrying the caller's `payload`.
    ///
    /// # Panics
    /// If `payload` exceeds [`MAX_PAYLOAD`].
    #[must_use]
    pub fn reserved(payload: u64) -> SlotWord {
        SlotWord::with_payload(payload, TAG_RESERVED)
    }

    fn with_payload(payload: u64, tag: usize) -> SlotWord {
        assert!(
            payload <= MAX_PAYLOAD,
            "slot payload {payload} exceeds 62 bits"
        );
        let addr = ((payload as usize) << TAG_BITS) | tag;
        SlotWord(ptr::without_provenance_mut(addr))
    }

    /// Decodes the word.
    #[must_use]
    pub fn state(self) -> SlotState {
        let addr = self.0.addr();
        let payload = (addr >> TAG_BITS) as u64;
        match addr & TAG_MASK {
            TAG_IN_MEMORY => SlotState::InMemory(self.0.map_addr(|a| a & !TAG_MASK)),
            TAG_ON_DISK => SlotState::OnDisk(payload),
            TAG_RESERVED => SlotState::Reserved(payload),
            _ => {
                // Tag 00 is produced only by FREE: the constructors never make another.
                assert_eq!(addr, 0, "slot word with tag 00 must be all zero");
                SlotState::Free
            }
        }
    }

    /// Whether this is the `Free` word.
    #[must_use]
    pub fn is_free(self) -> bool {
        self.0.is_null()
    }

    /// The page pointer if the word is `InMemory`.
    #[must_use]
    pub fn as_ptr<T>(self) -> Option<*mut T> {
        match self.state() {
            SlotState::InMemory(page) => Some(page.cast()),
            _ => None,
        }
    }
}

impl fmt::Debug for SlotWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state() {
            SlotState::Free => write!(f, "Free"),
            SlotState::InMemory(page) => write!(f, "InMemory({page:p})"),
            SlotState::OnDisk(location) => write!(f, "OnDisk({location})"),
            SlotState::Reserved(payload) => write!(f, "Reserved({payload})"),
        }
    }
}

/// One page id's atomic word in the mapping table.
#[repr(transparent)]
pub struct Slot(AtomicPtr<u8>);

impl Slot {
    pub(crate) fn free() -> Slot {
        Slot(AtomicPtr::new(ptr::null_mut()))
    }

    /// The current word.
    ///
    /// Acquire: pairs with the Release of the [`Slot::try_replace`] that installed the word, so a
    /// caller that follows an `InMemory` pointer sees the page as it was initialised before it
    /// was published.
    #[must_use]
    pub fn load(&self) -> SlotWord {
        SlotWord(self.0.load(Ordering::Acquire))
    }

    /// Replaces `current` with `new` if the slot still holds `current`; otherwise returns the
    /// word it holds instead. This is the only way a slot changes.
    ///
    /// Success is AcqRel: Release publishes `new`'s pointee to later Acquire loads; Acquire
    /// orders this thread after the writer of `current`, whose pointee the caller may now retire.
    /// Failure is Acquire so the returned word can be followed like a [`Slot::load`].
    pub fn try_replace(&self, current: SlotWord, new: SlotWord) -> Result<(), SlotWord> {
        crate::debug_delay::before_cas();
        self.0
            .compare_exchange(current.0, new.0, Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
            .map_err(SlotWord)
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Slot").field(&self.load()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_through_their_state() {
        let page = Box::new(7u64);
        let raw: *const u64 = &*page;
        assert_eq!(SlotWord::FREE.state(), SlotState::Free);
        assert!(SlotWord::FREE.is_free());
        assert_eq!(
            SlotWord::in_memory(raw).as_ptr::<u64>(),
            Some(raw.cast_mut())
        );
        assert_eq!(SlotWord::on_disk(0).state(), SlotState::OnDisk(0));
        assert_eq!(
            SlotWord::on_disk(MAX_PAYLOAD).state(),
            SlotState::OnDisk(MAX_PAYLOAD)
        );
        assert_eq!(SlotWord::reserved(42).state(), SlotState::Reserved(42));
        assert!(
            !SlotWord::on_disk(0).is_free(),
            "OnDisk(0) must differ from Free"
        );
        assert_ne!(SlotWord::on_disk(5), SlotWord::reserved(5));
        assert_eq!(SlotWord::on_disk(9).as_ptr::<u64>(), None);
    }

    #[test]
    fn pointer_read_back_from_a_slot_is_dereferenceable() {
        let page = Box::into_raw(Box::new(0xfeed_u64));
        let slot = Slot::free();
        slot.try_replace(SlotWord::FREE, SlotWord::in_memory(page))
            .unwrap();
        let back = slot.load().as_ptr::<u64>().unwrap();
        // SAFETY: `back` is `page` with its provenance: a live Box owned by this test.
        assert_eq!(unsafe { *back }, 0xfeed);
        // SAFETY: reclaiming the Box leaked above; no other reference to it exists.
        drop(unsafe { Box::from_raw(back) });
    }

    #[test]
    #[should_panic(expected = "exceeds 62 bits")]
    fn oversized_payload_is_rejected() {
        let _ = SlotWord::on_disk(MAX_PAYLOAD + 1);
    }

    #[test]
    #[should_panic(expected = "4-byte aligned")]
    fn misaligned_pointer_is_rejected() {
        let words = [0u32; 2]; // 4-aligned, so one byte in is never 4-aligned
        let _ = SlotWord::in_memory(words.as_ptr().cast::<u8>().wrapping_add(1));
    }

    #[test]
    fn try_replace_reports_the_current_word_on_failure() {
        let slot = Slot::free();
        assert_eq!(
            slot.try_replace(SlotWord::FREE, SlotWord::on_disk(1)),
            Ok(())
        );
        let lost = slot.try_replace(SlotWord::FREE, SlotWord::on_disk(2));
        assert_eq!(lost, Err(SlotWord::on_disk(1)));
        assert_eq!(slot.load(), SlotWord::on_disk(1));
    }
}
