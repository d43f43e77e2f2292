//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not part of the API).

use crate::consolidate::TreeModel;

/// Decodes a log record body as the page cache does on replay and page-in: its fragments,
/// then each payload as a tree page (node or catalog) or delta. Returns the fragment count.
pub fn decode_record(bytes: &[u8]) -> Result<usize, String> {
    pagecache::fuzzing::decode_record::<TreeModel>(bytes)
}
