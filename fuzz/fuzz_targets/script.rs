//! Scripts: chunks and ASM round trips, ASM text parsing, and the interpreter on
//! `flags | tx_version | amount | unlocking_len | unlocking | locking` (never panics).
//! The properties are in `fuzz/src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bsv_format_fuzz::check_script(data);
});
