//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not part of the API).
//!
//! Each function runs one decoder of this crate on untrusted bytes. The contract the fuzzers
//! check: `Ok` or an error, never a panic, and no allocation sized by a field that was not
//! validated against the bytes present.

use crate::checkpoint;
use crate::codec;
use crate::fragment::Kind;
use crate::group::record;
use crate::model::PageModel;

/// Decodes a checkpoint file; returns its page count.
pub fn decode_checkpoint(bytes: &[u8]) -> Result<usize, String> {
    checkpoint::decode_bytes(bytes).map(|c| c.pages.len())
}

/// Rewrites the CRC of a checkpoint file whose header is at least present, so a fuzzer can
/// reach the checks behind it.
pub fn fix_checkpoint_crc(bytes: &mut [u8]) {
    if bytes.len() >= checkpoint::HEADER_LEN {
        let crc = crc32c::crc32c(&bytes[checkpoint::CRC_FROM..]);
        bytes[checkpoint::CRC_AT..checkpoint::CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Decodes a log record body as the page cache does on replay and page-in: its fragments (a
/// Group record's sub-fragments), then each Base or Delta payload as `M`'s type. Returns the
/// number of fragments.
pub fn decode_record<M: PageModel>(bytes: &[u8]) -> Result<usize, String> {
    let (frags, _) = record::decode_any(bytes)?;
    for frag in &frags {
        match frag.kind {
            Kind::Base => drop(codec::decode_exact::<M::Base>(frag.payload)?),
            Kind::Delta => drop(codec::decode_exact::<M::Delta>(frag.payload)?),
            Kind::Free | Kind::Group => {}
        }
    }
    Ok(frags.len())
}
