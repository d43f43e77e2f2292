//! [`Location`]: where a page fragment's log record lives, packed into one 62-bit word so an
//! evicted page costs exactly its radix slot (no heap object).
//!
//! Layout (`u64`, bits 62-63 always zero so it fits a slot payload):
//! `record length (23 bits) << 39 | file offset (39 bits)`.
//! The log's slot table turns the offset back into the record's LSN; `Log::read_at` checks
//! the record there still belongs to the slot's current incarnation.

use logstore::DiskPtr;

use crate::error::{Error, Result};

/// Bits of the file offset: data files up to 512 GiB.
const OFFSET_BITS: u32 = 39;
/// Bits of the record length: inline records up to 8 MiB (the page cache caps the log's I/O
/// buffer size accordingly). 8 MiB lets a tree node hold a 1 MiB key, a 1 MiB value and two
/// 1 MiB fences with room to spare.
const LEN_BITS: u32 = 23;

/// The largest data file whose fragments a [`Location`] can address.
pub const MAX_FILE_BYTES: u64 = 1 << OFFSET_BITS;
/// The largest inline log record a [`Location`] can describe.
pub const MAX_RECORD_LEN: u64 = (1 << LEN_BITS) - 1;

const _: () = assert!(
    OFFSET_BITS + LEN_BITS == 62,
    "a location must fit a slot payload"
);

/// A fragment's record: file offset and inline record length.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Location(u64);

impl Location {
    /// The location of the record `ptr` names.
    ///
    /// # Errors
    /// [`Error::DatabaseTooLarge`] past [`MAX_FILE_BYTES`]. (Record lengths always fit: the
    /// page cache validates the log's I/O buffer size.)
    pub fn of(ptr: &DiskPtr) -> Result<Location> {
        let offset = ptr.file_offset();
        if offset >= MAX_FILE_BYTES {
            return Err(Error::DatabaseTooLarge { offset });
        }
        let len = u64::from(ptr.record_len());
        assert!(
            len <= MAX_RECORD_LEN,
            "record length {len} exceeds {LEN_BITS} bits"
        );
        Ok(Location(len << OFFSET_BITS | offset))
    }

    /// The packed word (a slot payload, or a checkpoint entry).
    pub fn to_word(self) -> u64 {
        self.0
    }

    /// Unpacks a word from a slot or a checkpoint; `None` if bits 62-63 are set or the length
    /// is zero (never a valid record).
    pub fn from_word(word: u64) -> Option<Location> {
        let loc = Location(word);
        (word >> (OFFSET_BITS + LEN_BITS) == 0 && loc.record_len() > 0).then_some(loc)
    }

    /// The location an `OnDisk` slot word carries (only the page cache writes those words, so
    /// anything else is a broken invariant).
    pub(crate) fn in_slot(payload: u64) -> Location {
        Location::from_word(payload).expect("an on-disk slot holds a location")
    }

    /// Byte offset of the record header in the data file.
    pub fn file_offset(self) -> u64 {
        self.0 & (MAX_FILE_BYTES - 1)
    }

    /// Length of the inline record (header + body).
    pub fn record_len(self) -> u32 {
        (self.0 >> OFFSET_BITS) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A well-formed pointer (LSN and offset agree within a segment).
    fn ptr(offset: u64, len: u32) -> DiskPtr {
        let mut b = [0u8; DiskPtr::ENCODED_LEN];
        b[0..8].copy_from_slice(&(offset + (1 << 50)).to_le_bytes());
        b[8..16].copy_from_slice(&offset.to_le_bytes());
        b[16..20].copy_from_slice(&len.to_le_bytes());
        DiskPtr::from_bytes(&b).unwrap()
    }

    #[test]
    fn roundtrips_offset_and_length() {
        let ptr = ptr((1 << 39) - 1, (1 << 23) - 1);
        let loc = Location::of(&ptr).unwrap();
        assert_eq!(loc.file_offset(), (1 << 39) - 1);
        assert_eq!(loc.record_len(), (1 << 23) - 1);
        assert_eq!(Location::from_word(loc.to_word()), Some(loc));
        assert!(loc.to_word() <= radix::MAX_PAYLOAD);
    }

    #[test]
    fn rejects_offsets_past_the_limit_and_malformed_words() {
        let ptr = ptr(1 << 39, 30);
        assert!(matches!(
            Location::of(&ptr),
            Err(Error::DatabaseTooLarge { .. })
        ));
        assert_eq!(Location::from_word(1 << 62), None);
        assert_eq!(Location::from_word(5), None, "zero length");
    }
}
