//! Journal entries read back at start-up (journal::read): any bytes on the journal topic are read or
//! refused, never a panic or a runaway allocation; what was read, written again, reads again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewind_native::journal;

fuzz_target!(|data: &[u8]| {
    if let Ok(read) = journal::read(data) {
        assert!(
            journal::read(&read.entry.to_avro()).is_ok(),
            "an entry read back does not write back"
        );
    }
});
