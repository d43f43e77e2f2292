//! Encoding half of the checkpoint format (layout in the module docs of `checkpoint`): one
//! exactly-sized buffer, filled front to back, sealed with the CRC last.
//!
//! The input comes from the cache, not from disk, so a malformed checkpoint (unsorted pids, a
//! page without fragments, a pid at or past `next_fresh`) is a caller bug and panics here,
//! before anything reaches the disk.

use radix::Pid;

use super::{
    Checkpoint, BODY_LEN_AT, CRC_AT, CRC_FROM, ENTRY_FIXED_LEN, FORMAT_VERSION, HEADER_LEN,
    LOCATION_LEN, LSN_AT, MAGIC, MAGIC_AT, NEXT_FRESH_AT, PAGE_COUNT_AT, RESERVED_AT, VERSION_AT,
};

/// Bytes of the encoding of `ckpt`.
pub(crate) fn encoded_len(ckpt: &Checkpoint) -> usize {
    let locations: usize = ckpt.pages.iter().map(|(_, locs)| locs.len()).sum();
    HEADER_LEN + ckpt.pages.len() * ENTRY_FIXED_LEN + locations * LOCATION_LEN
}

/// Encodes `ckpt` into a fresh buffer, ready to write as one file.
///
/// # Panics
/// If `ckpt` breaks the format's invariants (see the module docs).
pub(crate) fn encode(ckpt: &Checkpoint) -> Vec<u8> {
    assert!(
        ckpt.next_fresh <= Pid::MAX.get() + 1,
        "next_fresh {} past the largest page id",
        ckpt.next_fresh
    );
    let len = encoded_len(ckpt);
    let mut out = Vec::with_capacity(len);
    // Header, in field order; the CRC is a placeholder until the end.
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&ckpt.lsn.0.to_le_bytes());
    out.extend_from_slice(&ckpt.next_fresh.to_le_bytes());
    out.extend_from_slice(&(ckpt.pages.len() as u64).to_le_bytes());
    out.extend_from_slice(&((len - HEADER_LEN) as u64).to_le_bytes());
    assert_eq!(
        out.len(),
        HEADER_LEN,
        "header fields out of step with HEADER_LEN"
    );
    debug_assert_eq!(out[MAGIC_AT..VERSION_AT], MAGIC);
    debug_assert_eq!(out[RESERVED_AT..LSN_AT], [0; 4]);
    debug_assert_eq!(
        out[NEXT_FRESH_AT..PAGE_COUNT_AT],
        ckpt.next_fresh.to_le_bytes()
    );
    debug_assert_eq!(
        out[BODY_LEN_AT..HEADER_LEN],
        ((len - HEADER_LEN) as u64).to_le_bytes()
    );

    let mut previous: Option<Pid> = None;
    for (pid, locations) in &ckpt.pages {
        assert!(
            previous < Some(*pid),
            "checkpoint pages not sorted by strictly increasing pid: {previous:?} then {pid:?}"
        );
        assert!(
            pid.get() < ckpt.next_fresh,
            "page {pid:?} at or past next_fresh {}",
            ckpt.next_fresh
        );
        assert!(!locations.is_empty(), "page {pid:?} has no fragments");
        let count = u32::try_from(locations.len()).expect("fragment count fits u32");
        out.extend_from_slice(&pid.get().to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        for loc in locations {
            out.extend_from_slice(&loc.to_word().to_le_bytes());
        }
        previous = Some(*pid);
    }
    assert_eq!(out.len(), len, "encoded length differs from encoded_len");

    let crc = crc32c::crc32c(&out[CRC_FROM..]);
    out[CRC_AT..CRC_FROM].copy_from_slice(&crc.to_le_bytes());
    // Paired check at the disk boundary: what we write must read back as what we meant.
    debug_assert_eq!(super::decode::decode(&out).as_ref(), Ok(ckpt));
    out
}
