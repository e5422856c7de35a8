//! BUMPs (BRC-74), strict and lenient: round trip, and the root of every
//! level-0 leaf against an independent computation.
//! The properties are in `fuzz/src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bsv_format_fuzz::check_bump(data);
});
