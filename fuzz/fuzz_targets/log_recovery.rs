//! The recovery scan over a data file in simulated storage. Input: a flags byte (bit 0:
//! rewrite the CRCs first; bits 1..: which segment boundary to recover from), then the file.
//! Recovery must return the records of a valid prefix or a typed error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, file)) = data.split_first() else {
        return;
    };
    let _ = bwtree_fuzz::recover_data_file(flags, file);
});
