//! kafka-rewind's native tap engine. processor/tap (Python) is the reference it is tested against,
//! byte for byte; this crate exists for speed: a batch of consumed messages goes in, Avro journal
//! entries come out, without a Python object per record.
//!
//! The engine itself (parse, assemble, journal) is plain Rust; the `python` feature (on by default,
//! what `pip install ./native` builds) adds the extension module. Without it the crate builds alone,
//! for the fuzz targets under `fuzz/` and the corpus replay of `cargo test`.

pub mod assemble;
pub mod connect;
#[cfg(any(test, feature = "harness"))]
pub mod harness;
pub mod journal;
pub mod json;
pub mod model;
pub mod parse;
#[cfg(feature = "python")]
mod python;
