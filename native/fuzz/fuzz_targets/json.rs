//! The engine's JSON reader and canonical writer: any bytes are read or refused; the canonical text
//! reads back to an equal value (Python's ==, the reference's rule), and writing that again changes
//! nothing. (Not always at the first step: `-0e+0` is the Decimal -0, written `-0` as str(Decimal)
//! writes it, which reads back as the integer 0: an open finding in docs/reliability.md.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewind_native::json;

fuzz_target!(|data: &[u8]| {
    if let Some(value) = json::parse(data) {
        let text = json::canonical(&value);
        let again = json::parse(text.as_bytes()).expect("a canonical text reads back");
        assert!(
            json::py_eq(&value, &again),
            "the canonical text reads back to another value"
        );
        let twice = json::canonical(&again);
        let thrice = json::canonical(&json::parse(twice.as_bytes()).expect("reads back"));
        assert_eq!(twice, thrice, "canonical form is not a fixed point");
    }
});
