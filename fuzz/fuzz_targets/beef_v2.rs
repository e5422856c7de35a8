//! BEEF V2 (BRC-96): the input is the body after the `0200BEEF` magic.
//! The properties are in `fuzz/src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bsv_format_fuzz::check_beef(&[&bsv_format_fuzz::BEEF_V2_PREFIX[..], data].concat());
});
