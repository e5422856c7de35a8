//! Atomic BEEF (BRC-95): the input follows the `01010101` prefix (subject txid,
//! then a whole V1 or V2 BEEF).
//! The properties are in `fuzz/src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bsv_format_fuzz::check_beef(&[&bsv_format_fuzz::ATOMIC_PREFIX[..], data].concat());
});
