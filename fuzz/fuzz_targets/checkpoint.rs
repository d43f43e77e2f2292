//! The checkpoint decoder on arbitrary bytes. The first byte says whether to rewrite the CRC
//! first (so mutations reach the checks behind it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, file)) = data.split_first() else {
        return;
    };
    let mut file = file.to_vec();
    if flags & 1 != 0 {
        pagecache::fuzzing::fix_checkpoint_crc(&mut file);
    }
    let _ = pagecache::fuzzing::decode_checkpoint(&file);
});
