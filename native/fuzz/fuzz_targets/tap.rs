//! Capture lines (kcat -C -J) through the engine's parse and assembly, every promise of
//! rewind_native::harness checked (bench/fuzz's Python `tap` target runs the same seeds through both
//! engines and compares them; this one follows the native code's own branches).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rewind_native::harness::check(data);
});
