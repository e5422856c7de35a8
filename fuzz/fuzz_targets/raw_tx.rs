//! Raw transactions (BRC-12): decode; on success re-encoding equals the input.
//! The properties are in `fuzz/src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bsv_format_fuzz::check_raw_tx(data);
});
