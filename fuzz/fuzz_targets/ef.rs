//! Extended Format (BRC-30): decode; on success re-encoding equals the input, the
//! streamed txid equals the raw form's, and the raw decoder refuses the bytes.
//! The properties are in `fuzz/src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bsv_format_fuzz::check_ef(data);
});
