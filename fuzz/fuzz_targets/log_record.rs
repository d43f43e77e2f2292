//! The log's record decoder on arbitrary bytes: an optional segment header, then records
//! (header, CRC, blob pointer bodies, a blob file).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = logstore::fuzzing::decode_records(data);
});
