//! A log record body decoded as the page cache and the tree decode it: fragment or group
//! headers, then each payload as a tree node, catalog or delta (bincode 2).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bwtree::fuzzing::decode_record(data);
});
