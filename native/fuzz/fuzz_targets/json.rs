//! The engine's JSON reader and canonical writer: any bytes are read or refused; a canonical text reads
//! back to itself (the journal's row images and payloads are written in this form).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewind_native::json;

fuzz_target!(|data: &[u8]| {
    if let Some(value) = json::parse(data) {
        let text = json::canonical(&value);
        let again = json::parse(text.as_bytes()).expect("a canonical text reads back");
        assert_eq!(
            json::canonical(&again),
            text,
            "canonical form is not a fixed point"
        );
    }
});
