//! The engine without Python, on captured records: what the fuzz targets (`native/fuzz`) and the
//! corpus replay of `cargo test` run. Input is `kcat -C -J` lines, as bench/fuzz's Python tap target
//! reads them (one corpus for both), each topic taken as what its name says.
//!
//! The checks are the engine's own promises, whatever the bytes: no panic; every entry it journals
//! reads back (journal::read, what start-up does) with the identities it was journaled with; nothing
//! stays open after the end of input; and a second engine that read that journal back drops every
//! record delivered again (Debezium's redelivery after a restart) instead of journaling it twice.

use std::convert::Infallible;

use serde_json::Value;

use crate::assemble::{Assembler, Classify, Item};
use crate::journal;
use crate::model::{Entry, Reversibility};
use crate::parse::{self, Bad, Config, Kind, Parsed, Record};

/// The settings bench/fuzz's Python tap target gives both engines (written there by `bench.fuzz.seed`,
/// compared with processor.tap.native.engine_config by tests/unit/test_fuzz_corpus.py).
pub const CONFIG_JSON: &str = include_str!("../../bench/fuzz/native-config.json");

pub const NOW_MS: i64 = 1_795_000_000_000;

/// An empty catalog: every action type unclassified.
pub struct EmptyCatalog;

impl Classify for EmptyCatalog {
    type Error = Infallible;

    fn reversibility(&mut self, _action_type: &str) -> Result<Reversibility, Infallible> {
        Ok(Reversibility::Unclassified)
    }
}

pub fn config() -> Config {
    serde_json::from_str(CONFIG_JSON)
        .expect("bench/fuzz/native-config.json reads as the engine's Config")
}

fn bytes_of(v: Option<&Value>) -> Option<Vec<u8>> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone().into_bytes()),
        other => Some(other.to_string().into_bytes()),
    }
}

/// One kcat line as a record, or None where it is not one (the Python reader refuses it too).
fn record(line: &[u8], offset: i64) -> Option<Record> {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(line) else {
        return None;
    };
    let topic = obj.get("topic")?.as_str()?.to_string();
    let flat = match obj.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() % 2 == 0 => items.clone(),
        _ => return None,
    };
    let headers = flat
        .chunks(2)
        .map(|pair| Some((pair[0].as_str()?.to_string(), bytes_of(Some(&pair[1])))))
        .collect::<Option<Vec<_>>>()?;
    Some(Record {
        topic,
        partition: obj.get("partition").and_then(Value::as_i64).unwrap_or(0),
        offset,
        key: bytes_of(obj.get("key")),
        value: bytes_of(obj.get("payload")),
        headers,
        ts_ms: obj.get("ts").and_then(Value::as_i64),
    })
}

/// The records of a capture, a line's number as its offset.
pub fn records(data: &[u8]) -> Vec<Record> {
    data.split(|b| *b == b'\n')
        .enumerate()
        .filter_map(|(n, line)| record(line, n as i64))
        .collect()
}

/// What a topic's name says it carries (bench/fuzz/targets.py `_settings`).
pub fn kind_of(topic: &str) -> Kind {
    if topic.ends_with(".transaction") {
        Kind::TxMetadata
    } else if topic.contains("outbox") {
        Kind::Outbox
    } else {
        Kind::Cdc
    }
}

/// What the engine did with a capture.
#[derive(Default)]
pub struct Outcome {
    pub entries: Vec<Entry>,
    pub invalid: usize,
    pub foreign: usize,
    pub peak_open_transactions: usize,
}

fn add(asm: &mut Assembler<EmptyCatalog>, cfg: &Config, rec: &Record, now: i64, out: &mut Outcome) {
    let (_, parsed) = parse::parse(cfg, rec, Some(kind_of(&rec.topic)));
    let item = match parsed {
        Err(Bad::Invalid) => return out.invalid += 1,
        Err(Bad::Foreign) => return out.foreign += 1,
        Ok(Parsed::Tombstone | Parsed::Routine) => return,
        Ok(Parsed::Change(c)) => Item::Change(c),
        Ok(Parsed::Boundary(b)) => Item::Boundary(b),
        Ok(Parsed::Outbox(o)) => Item::Outbox(o),
    };
    let Ok(done) = asm.add(cfg, item, now);
    out.entries.extend(done);
}

/// The records through one engine, ticking after each (one millisecond apart), then the end of input.
pub fn run(asm: &mut Assembler<EmptyCatalog>, cfg: &Config, recs: &[Record]) -> Outcome {
    let mut out = Outcome::default();
    for (n, rec) in recs.iter().enumerate() {
        let now = NOW_MS + n as i64;
        add(asm, cfg, rec, now, &mut out);
        let Ok(expired) = asm.expire(cfg, now);
        out.entries.extend(expired);
        out.peak_open_transactions = out.peak_open_transactions.max(asm.open_transactions());
    }
    let Ok(rest) = asm.finish(cfg, NOW_MS + recs.len() as i64);
    out.entries.extend(rest);
    out
}

/// A capture through the engine, and every promise of the module's comment checked: panics name
/// the one broken.
pub fn check(data: &[u8]) -> Outcome {
    let recs = records(data);
    let mut cfg = config();
    // As the reference decides it: transactions wait for their END when metadata is read at all.
    cfg.group_transactions = recs.iter().any(|r| kind_of(&r.topic) == Kind::TxMetadata);
    let mut first = Assembler::new(cfg.dedupe_window_ms, EmptyCatalog);
    let out = run(&mut first, &cfg, &recs);
    assert_eq!(
        first.open_transactions(),
        0,
        "a transaction stayed open after the end of input"
    );
    assert!(
        out.peak_open_transactions <= recs.len(),
        "more transactions open than records read"
    );
    let mut restarted = Assembler::new(cfg.dedupe_window_ms, EmptyCatalog);
    for entry in &out.entries {
        let read = journal::read(&entry.to_avro()).expect("a journaled entry reads back");
        assert_eq!(
            read.identities,
            entry.identities(),
            "identities read back differ"
        );
        restarted.learn(&read.rows);
        restarted.seed(&cfg, &read.entry, &read.identities);
    }
    let again = run(&mut restarted, &cfg, &recs);
    let doubled: Vec<&str> = again.entries.iter().map(|e| e.action_id.as_str()).collect();
    assert!(
        doubled.is_empty(),
        "delivered again, journaled twice: {doubled:?}"
    );
    out
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;

    /// The fuzzers' seed corpus (real connectors' captures, bench/fuzz/seed.py), replayed: what CI runs
    /// of the native fuzz targets.
    #[test]
    fn the_seed_corpus_keeps_every_promise() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/fuzz/corpus/tap");
        let mut journaled = 0;
        for file in fs::read_dir(&dir).expect("bench/fuzz/corpus/tap") {
            let data = fs::read(file.unwrap().path()).unwrap();
            journaled += check(&data).entries.len();
        }
        assert!(
            journaled > 0,
            "the corpus journaled nothing: the harness reads no record"
        );
    }

    /// A transaction whose END never comes (a real connector's capture, its END records dropped) holds
    /// its rows only until the transaction timeout: then it is journaled incomplete and let go.
    #[test]
    fn a_transaction_that_never_ends_is_let_go_at_its_timeout() {
        let capture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/debezium/captured/pg-json-default.jsonl");
        let data = fs::read(capture).unwrap();
        const END: &[u8] = br#"\"status\":\"END\""#;
        let kept: Vec<&[u8]> = data
            .split(|b| *b == b'\n')
            .filter(|line| !line.windows(END.len()).any(|w| w == END))
            .collect();
        let recs = records(&kept.join(&b'\n'));
        let mut cfg = config();
        cfg.group_transactions = true;
        let mut asm = Assembler::new(cfg.dedupe_window_ms, EmptyCatalog);
        let mut out = Outcome::default();
        for (n, rec) in recs.iter().enumerate() {
            add(&mut asm, &cfg, rec, NOW_MS + n as i64, &mut out);
        }
        let open = asm.open_transactions();
        assert!(
            open > 0 && out.entries.is_empty(),
            "rows wait for an END that never comes"
        );
        let Ok(expired) = asm.expire(&cfg, NOW_MS + recs.len() as i64 + cfg.tx_timeout_ms + 1);
        assert_eq!(asm.open_transactions(), 0, "nothing held past the timeout");
        assert_eq!(expired.len(), open);
        assert!(expired.iter().all(|e| !e.complete));
        assert_eq!(asm.stats.incomplete, open as u64);
    }

    #[test]
    fn a_journal_entry_that_does_not_read_is_refused_not_a_panic() {
        // The last: two strings, three null unions, then a block count of i64::MIN, whose negation
        // overflowed (found by native/fuzz's journal target).
        let min_count = b"\x02a\x02b\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00";
        for data in [
            &b""[..],
            b"\x00",
            b"\x02a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
            min_count,
        ] {
            assert!(journal::read(data).is_err());
        }
    }
}
