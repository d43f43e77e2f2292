//! Opens a database over arbitrary directory contents (the store's own file names with
//! arbitrary bytes, see `DirSpec`) and, if it opens, reads every tree to the end.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|spec: bwtree_fuzz::DirSpec| {
    let _ = bwtree_fuzz::open_and_read(&spec);
});
