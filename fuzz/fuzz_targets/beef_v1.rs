//! BEEF V1 (BRC-62): the input is the body after the `0100BEEF` magic.
//! The properties are in `fuzz/src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bsv_format_fuzz::check_beef(&[&bsv_format_fuzz::BEEF_V1_PREFIX[..], data].concat());
});
