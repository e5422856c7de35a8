//! Raw transactions (BRC-12): `Transaction::from_bytes` never panics, and a
//! successful decode re-encodes to exactly the input bytes (the decoder
//! rejects every non-canonical form, so the encoding is a bijection).
#![no_main]

use bsv_format::Transaction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = Transaction::from_bytes(data) {
        assert_eq!(tx.to_bytes(), data, "raw tx re-encoding differs from input");
        assert_eq!(tx.size(), data.len());
        assert_eq!(tx.txid(), bsv_format::Txid::of_raw(data));
    }
});
