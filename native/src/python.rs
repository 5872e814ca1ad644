//! The engine as a Python extension: a batch of confluent_kafka Messages in, Avro journal entries
//! out, without a Python object per record. Only this module knows Python.

use std::collections::HashMap;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::assemble::{Assembler, Classify, Item};
use crate::journal::{self, SeededRow};
use crate::json;
use crate::model::{Entry, Op, Phase, Reversibility, Trace};
use crate::parse::{self, Bad, Config, Kind, Parsed, Record};

// Parsing allocates many small maps and strings per record; glibc's per-thread arenas spent a fifth of
// the engine's time in malloc/realloc/mprotect (bench/tap).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A journal entry ready to produce: key, Avro value, and what the metrics need.
type Out<'py> = (
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    String,
    &'static str,
    bool,
    &'static str,
    bool,
);

fn out<'py>(py: Python<'py>, e: &Entry) -> Out<'py> {
    (
        PyBytes::new(py, e.journal_key().as_bytes()),
        PyBytes::new(py, &e.to_avro()),
        e.action_type.clone(),
        e.reversibility.name(),
        e.complete,
        e.phase.name(),
        e.event.as_ref().is_some_and(|ev| ev.type_fallback),
    )
}

fn outs<'py>(py: Python<'py>, entries: &[Entry]) -> Vec<Out<'py>> {
    entries.iter().map(|e| out(py, e)).collect()
}

/// What one record did, for the caller.
enum Step {
    Journaled(Vec<Entry>),
    Invalid,
    Foreign,
}

/// The catalog's answer, from the Python callable the engine was built with.
struct PyClassify(Py<PyAny>);

impl Classify for PyClassify {
    type Error = PyErr;

    fn reversibility(&mut self, action_type: &str) -> PyResult<Reversibility> {
        Python::with_gil(|py| {
            let name: String = self.0.bind(py).call1((action_type,))?.extract()?;
            Ok(Reversibility::parse(&name))
        })
    }
}

#[pyclass(module = "rewind_native")]
struct TapEngine {
    cfg: Config,
    asm: Assembler<PyClassify>,
    router: Py<PyAny>,
    kinds: HashMap<String, Option<Kind>>,
}

impl TapEngine {
    fn kind(&mut self, py: Python<'_>, topic: &str) -> PyResult<Option<Kind>> {
        if let Some(k) = self.kinds.get(topic) {
            return Ok(*k);
        }
        let named: Option<String> = self.router.bind(py).call1((topic,))?.extract()?;
        let kind = named.as_deref().and_then(Kind::parse);
        self.kinds.insert(topic.to_string(), kind);
        Ok(kind)
    }

    fn step(
        &mut self,
        py: Python<'_>,
        rec: &Record,
        now_ms: i64,
    ) -> PyResult<(Option<Kind>, Step)> {
        let routed = self.kind(py, &rec.topic)?;
        let (kind, parsed) = parse::parse(&self.cfg, rec, routed);
        let item = match parsed {
            Err(Bad::Invalid) => return Ok((kind, Step::Invalid)),
            Err(Bad::Foreign) => return Ok((kind, Step::Foreign)),
            Ok(Parsed::Tombstone | Parsed::Routine) => {
                return Ok((kind, Step::Journaled(Vec::new())))
            }
            Ok(Parsed::Change(c)) => Item::Change(c),
            Ok(Parsed::Boundary(b)) => Item::Boundary(b),
            Ok(Parsed::Outbox(o)) => Item::Outbox(o),
        };
        Ok((
            kind,
            Step::Journaled(self.asm.add(&self.cfg, item, now_ms)?),
        ))
    }
}

/// Bytes or None, copied straight from the buffer (a `Vec<u8>` extraction would go item by item).
fn bytes_of(obj: &Bound<'_, PyAny>) -> PyResult<Option<Vec<u8>>> {
    if obj.is_none() {
        return Ok(None);
    }
    Ok(Some(obj.downcast::<PyBytes>()?.as_bytes().to_vec()))
}

/// Kafka headers: a list of (name, bytes or None) pairs, or None.
fn headers_of(obj: &Bound<'_, PyAny>) -> PyResult<Vec<(String, Option<Vec<u8>>)>> {
    if obj.is_none() {
        return Ok(Vec::new());
    }
    obj.try_iter()?
        .map(|item| {
            let pair = item?;
            let pair = pair.downcast::<PyTuple>()?;
            Ok((pair.get_item(0)?.extract()?, bytes_of(&pair.get_item(1)?)?))
        })
        .collect()
}

fn message_record(msg: &Bound<'_, PyAny>) -> PyResult<Record> {
    let py = msg.py();
    let (ts_type, ts): (i64, i64) = msg.call_method0(intern!(py, "timestamp"))?.extract()?;
    Ok(Record {
        topic: msg.call_method0(intern!(py, "topic"))?.extract()?,
        partition: msg.call_method0(intern!(py, "partition"))?.extract()?,
        offset: msg.call_method0(intern!(py, "offset"))?.extract()?,
        key: bytes_of(&msg.call_method0(intern!(py, "key"))?)?,
        value: bytes_of(&msg.call_method0(intern!(py, "value"))?)?,
        headers: headers_of(&msg.call_method0(intern!(py, "headers"))?)?,
        ts_ms: (ts_type != 0).then_some(ts),
    })
}

#[pymethods]
impl TapEngine {
    /// ``config``: processor.tap.native.EngineSettings, read attribute by attribute into ``Config``;
    /// ``router(topic)`` names a topic's kind or None; ``classify(action_type)`` gives the
    /// reversibility's name.
    #[new]
    fn new(config: &Bound<'_, PyAny>, router: Py<PyAny>, classify: Py<PyAny>) -> PyResult<Self> {
        let cfg: Config = config.extract()?;
        let asm = Assembler::new(cfg.dedupe_window_ms, PyClassify(classify));
        Ok(TapEngine {
            cfg,
            asm,
            router,
            kinds: HashMap::new(),
        })
    }

    /// Run ``messages[start:]`` (confluent_kafka Messages) until one needs Python: a message with an
    /// error, or a value in Confluent's Avro wire format. Returns (entries, indexes of invalid
    /// records, consumed [(topic, kind, count)], next offsets [(topic, partition, offset)], stop) where
    /// ``stop`` is the index of the message left to Python, or len(messages).
    #[allow(clippy::type_complexity)]
    fn process_messages<'py>(
        &mut self,
        py: Python<'py>,
        messages: &Bound<'py, PyList>,
        start: usize,
        now_ms: i64,
    ) -> PyResult<(
        Vec<Out<'py>>,
        Vec<usize>,
        Vec<(String, Option<&'static str>, u64)>,
        Vec<(String, i64, i64)>,
        usize,
    )> {
        let mut entries = Vec::new();
        let mut invalid = Vec::new();
        let mut consumed: Vec<(String, Option<&'static str>, u64)> = Vec::new();
        let mut positions: Vec<(String, i64, i64)> = Vec::new();
        let mut stop = messages.len();
        for i in start..messages.len() {
            let msg = messages.get_item(i)?;
            if !msg.call_method0(intern!(py, "error"))?.is_none() {
                stop = i;
                break;
            }
            let rec = message_record(&msg)?;
            let (kind, step) = self.step(py, &rec, now_ms)?;
            match step {
                Step::Foreign => {
                    stop = i;
                    break;
                }
                Step::Invalid => invalid.push(i),
                Step::Journaled(done) => entries.extend(done.iter().map(|e| out(py, e))),
            }
            let kind = kind.map(Kind::name);
            match consumed
                .iter_mut()
                .find(|(t, k, _)| *t == rec.topic && *k == kind)
            {
                Some(slot) => slot.2 += 1,
                None => consumed.push((rec.topic.clone(), kind, 1)),
            }
            match positions
                .iter_mut()
                .find(|(t, p, _)| *t == rec.topic && *p == rec.partition)
            {
                Some(slot) => slot.2 = rec.offset + 1,
                None => positions.push((rec.topic, rec.partition, rec.offset + 1)),
            }
        }
        Ok((entries, invalid, consumed, positions, stop))
    }

    /// One record whose key and value are JSON (or None). Returns (entries, status, kind) with status
    /// "ok", "invalid" (the reference names why) or "foreign" (Avro: decode it first).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (topic, partition, offset, key, value, headers, ts_ms, now_ms))]
    fn process_record<'py>(
        &mut self,
        py: Python<'py>,
        topic: String,
        partition: i64,
        offset: i64,
        key: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        ts_ms: Option<i64>,
        now_ms: i64,
    ) -> PyResult<(Vec<Out<'py>>, &'static str, Option<&'static str>)> {
        let rec = Record {
            topic,
            partition,
            offset,
            key: bytes_of(key)?,
            value: bytes_of(value)?,
            headers: headers_of(headers)?,
            ts_ms,
        };
        let (kind, step) = self.step(py, &rec, now_ms)?;
        let kind = kind.map(Kind::name);
        Ok(match step {
            Step::Journaled(done) => (outs(py, &done), "ok", kind),
            Step::Invalid => (Vec::new(), "invalid", kind),
            Step::Foreign => (Vec::new(), "foreign", kind),
        })
    }

    /// Transactions past their timeout (incomplete) and intents past theirs (in doubt).
    fn tick<'py>(&mut self, py: Python<'py>, now_ms: i64) -> PyResult<Vec<Out<'py>>> {
        let done = self.asm.expire(&self.cfg, now_ms)?;
        Ok(outs(py, &done))
    }

    /// End of input: every open transaction as it is, incomplete.
    fn finish<'py>(&mut self, py: Python<'py>, now_ms: i64) -> PyResult<Vec<Out<'py>>> {
        let done = self.asm.finish(&self.cfg, now_ms)?;
        Ok(outs(py, &done))
    }

    /// Learn from a JournalEntry already in the journal: its identities, and its intent if open.
    fn seed(&mut self, entry: &Bound<'_, PyAny>) -> PyResult<()> {
        let identities: Vec<String> = entry.getattr("identities")?.extract()?;
        self.asm.learn(&seeded_rows(entry)?);
        let phase = Phase::parse(&entry.getattr("phase")?.extract::<String>()?);
        let template = if phase == Phase::Intent {
            entry_template(entry)? // kept until its outcome comes, or journaled as in doubt
        } else {
            Entry::bare(
                entry.getattr("journal_ts_ms")?.extract()?,
                phase,
                entry.getattr("intent_id")?.extract()?,
            )
        };
        self.asm.seed(&self.cfg, &template, &identities);
        Ok(())
    }

    /// Learn from journal entries as Avro bytes (what start-up reads back). Returns the index of the
    /// first value that does not read as a journal entry, or None when all did: the caller names it.
    fn seed_journal(&mut self, values: &Bound<'_, PyList>) -> PyResult<Option<usize>> {
        for (i, value) in values.iter().enumerate() {
            let Ok(seeded) = journal::read(value.downcast::<PyBytes>()?.as_bytes()) else {
                return Ok(Some(i));
            };
            self.asm.learn(&seeded.rows);
            self.asm.seed(&self.cfg, &seeded.entry, &seeded.identities);
        }
        Ok(None)
    }

    fn safe_offsets(&mut self) -> Vec<(String, i64, i64)> {
        self.asm.safe_offsets()
    }

    #[getter]
    fn open_transactions(&self) -> usize {
        self.asm.open_transactions()
    }

    #[getter]
    fn pending_intents(&self) -> usize {
        self.asm.pending_intents()
    }

    #[getter]
    fn dedupe_size(&self) -> usize {
        self.asm.dedupe.len()
    }

    #[getter]
    fn duplicates(&self) -> u64 {
        self.asm.stats.duplicates
    }

    #[getter]
    fn incomplete(&self) -> u64 {
        self.asm.stats.incomplete
    }

    #[getter]
    fn in_doubt(&self) -> u64 {
        self.asm.stats.in_doubt
    }
}

/// What a Python JournalEntry's row changes tell of their tables.
fn seeded_rows(entry: &Bound<'_, PyAny>) -> PyResult<Vec<SeededRow>> {
    let mut rows = Vec::new();
    for change in entry.getattr("changes")?.try_iter()? {
        let c = change?;
        let op: String = c.getattr("op")?.getattr("value")?.extract()?;
        let connector: Option<String> = c.getattr("position")?.getattr("connector")?.extract()?;
        let collection: String = c.getattr("collection")?.extract()?;
        rows.push(SeededRow {
            op: match op.as_str() {
                "CREATE" => Op::Create,
                "UPDATE" => Op::Update,
                "DELETE" => Op::Delete,
                "READ" => Op::Read,
                "TRUNCATE" => Op::Truncate,
                _ => Op::Message,
            },
            before_null: c.getattr("before")?.is_none(),
            before_complete: c.getattr("before_complete")?.extract()?,
            table_key: format!("{}|{collection}", connector.as_deref().unwrap_or("None")),
        });
    }
    Ok(rows)
}

/// A JSON text's canonical form by the engine's rules, or None where it does not read (for tests:
/// processor.jsonvalue must give the same).
#[pyfunction]
fn canonical_json(data: &[u8]) -> Option<String> {
    json::parse(data).map(|v| json::canonical(&v))
}

/// The parts of a Python JournalEntry that a seeded intent needs to be journaled as in doubt later.
fn entry_template(e: &Bound<'_, PyAny>) -> PyResult<Entry> {
    let trace = e.getattr("trace")?;
    let trace = if trace.is_none() {
        None
    } else {
        Some(Trace {
            traceparent: trace.getattr("traceparent")?.extract()?,
            trace_id: trace.getattr("trace_id")?.extract()?,
            span_id: trace.getattr("span_id")?.extract()?,
            tracestate: trace.getattr("tracestate")?.extract()?,
        })
    };
    let decision: Vec<(String, String)> = e
        .getattr("decision")?
        .downcast::<PyDict>()?
        .iter()
        .map(|(k, v)| Ok((k.extract()?, v.extract()?)))
        .collect::<PyResult<_>>()?;
    let external: Vec<String> = e
        .getattr("external_systems")?
        .downcast::<PyTuple>()?
        .extract()?;
    Ok(Entry {
        action_id: e.getattr("action_id")?.extract()?,
        action_type: e.getattr("action_type")?.extract()?,
        changes: Vec::new(),
        journal_ts_ms: e.getattr("journal_ts_ms")?.extract()?,
        service: e.getattr("service")?.extract()?,
        aggregate_type: e.getattr("aggregate_type")?.extract()?,
        aggregate_id: e.getattr("aggregate_id")?.extract()?,
        event: None,
        commit_ts_ms: None,
        tx_id: None,
        complete: true,
        causation_ids: Vec::new(),
        correlation_id: e.getattr("correlation_id")?.extract()?,
        trace,
        decision,
        entities: Vec::new(),
        external_systems: external,
        phase: Phase::parse(&e.getattr("phase")?.extract::<String>()?),
        intent_id: e.getattr("intent_id")?.extract()?,
        reversibility: Reversibility::parse(&e.getattr("reversibility")?.extract::<String>()?),
    })
}

#[pymodule]
fn rewind_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TapEngine>()?;
    m.add_function(wrap_pyfunction!(canonical_json, m)?)?;
    Ok(())
}
