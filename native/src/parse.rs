//! Source records to parsed items: Debezium change events, transaction BEGIN/END, outbox messages.
//! The same decisions as processor/tap/{decoding,cdc,transactions,outbox}.py. Only validity is
//! decided here: an invalid record is handed back, and the Python reference names the reason.

use pyo3::prelude::*;
use serde_json::{Map, Value};

use crate::json::{
    canonical_map, int_or_none, py_dumps, py_eq, py_int, py_loads, py_str, py_strip, truthy,
};
use crate::model::{Event, Op, Phase, Position, RowChange, Trace};

const NEW_KEY_HEADER: &str = "__debezium.newkey";
const OLD_KEY_HEADER: &str = "__debezium.oldkey";
const DEBEZIUM_CONTEXT: &str = "__debezium.context.";

pub struct Config {
    pub max_record_bytes: usize,
    pub event_id_header: String,
    pub event_type_header: String,
    pub aggregate_type_header: String,
    pub topic_prefix: String,
    pub correlation_header: String,
    pub causation_header: String,
    pub tx_header: String,
    pub traceparent_headers: Vec<String>,
    pub tracestate_headers: Vec<String>,
    pub phase_header: String,
    pub intent_header: String,
    pub external_systems_header: String,
    pub correlation_field: String,
    pub causation_field: String,
    pub decision_fields: Vec<String>,
    pub decision_header_prefix: String,
    pub outbox_tables: Vec<String>,
    pub outbox_rows_deleted_in_tx: bool,
    pub tx_timeout_ms: i64,
    pub intent_timeout_ms: i64,
    pub dedupe_window_ms: i64,
    pub group_transactions: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Cdc,
    TxMetadata,
    Outbox,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Cdc => "cdc",
            Kind::TxMetadata => "tx_metadata",
            Kind::Outbox => "outbox",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        match name {
            "cdc" => Some(Kind::Cdc),
            "tx_metadata" => Some(Kind::TxMetadata),
            "outbox" => Some(Kind::Outbox),
            _ => None,
        }
    }
}

pub struct Record {
    pub topic: String,
    pub partition: i64,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub ts_ms: Option<i64>,
}

impl Record {
    /// SourceRecord.size: header names count in characters, as len(str) does.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.chars().count() + v.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
    }

    fn header(&self, name: &str) -> Option<String> {
        let (_, value) = self.headers.iter().rev().find(|(k, _)| k == name)?;
        value
            .as_ref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// All headers as text, a repeated name keeping its first place and its last value (a dict).
    fn header_map(&self) -> Vec<(String, Option<String>)> {
        let mut map: Vec<(String, Option<String>)> = Vec::with_capacity(self.headers.len());
        for (k, v) in &self.headers {
            let text = v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned());
            upsert(&mut map, k, text);
        }
        map
    }
}

fn upsert<V>(map: &mut Vec<(String, V)>, key: &str, value: V) {
    match map.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => map.push((key.to_string(), value)),
    }
}

fn get<'a>(map: &'a [(String, Option<String>)], key: &str) -> Option<&'a str> {
    map.iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.as_deref())
}

pub struct Change {
    pub row: RowChange,
    pub tx_id: Option<String>, // only from the event's transaction block
}

pub struct Boundary {
    pub end: bool,
    pub tx_id: String,
    pub event_count: Option<i64>,
    pub collections: Vec<(String, i64)>,
    pub ts_ms: Option<i64>,
    pub position: Position,
}

pub struct Outbox {
    pub event: Event,
    pub correlation_id: Option<String>,
    pub causation_ids: Vec<String>,
    pub trace: Option<Trace>,
    pub phase: Phase,
    pub intent_id: Option<String>,
    pub decision: Vec<(String, String)>,
    pub external_systems: Vec<String>,
}

impl Outbox {
    pub fn tx_id(&self) -> Option<&String> {
        self.event.position.tx_id.as_ref()
    }
}

pub enum Parsed {
    Tombstone,
    Change(Change),
    Boundary(Boundary),
    Outbox(Outbox),
}

pub enum Bad {
    /// Goes to the dead-letter topic; the reference parser says why.
    Invalid,
    /// Confluent Avro wire format: decoded by Python through the schema registry.
    Foreign,
}

type Parse<T> = Result<T, Bad>;

/// The record's kind (configured, else sniffed; None when unrecognized) and what it parses to.
pub fn parse(
    py: Python<'_>,
    cfg: &Config,
    rec: &Record,
    routed: Option<Kind>,
) -> PyResult<(Option<Kind>, Parse<Parsed>)> {
    if rec.size() > cfg.max_record_bytes {
        return Ok((routed, Err(Bad::Invalid)));
    }
    let value = match decode(rec.value.as_deref()) {
        Ok(v) => v,
        Err(bad) => return Ok((routed, Err(bad))),
    };
    let Some(kind) = routed.or_else(|| sniff(cfg, rec, &value)) else {
        return Ok((None, Err(Bad::Invalid)));
    };
    if kind == Kind::TxMetadata {
        return Ok((Some(kind), parse_tx(py, rec, &value)?.map(Parsed::Boundary)));
    }
    let key = match decode(rec.key.as_deref()) {
        Ok(k) => k,
        Err(bad) => return Ok((Some(kind), Err(bad))),
    };
    let parsed = if kind == Kind::Cdc {
        parse_change(py, rec, key, value)?
    } else {
        parse_outbox(py, cfg, rec, key, value)?.map(Parsed::Outbox)
    };
    Ok((Some(kind), parsed))
}

fn decode(data: Option<&[u8]>) -> Parse<Value> {
    let Some(data) = data else {
        return Ok(Value::Null);
    };
    if data.len() >= 5 && data[0] == 0 {
        return Err(Bad::Foreign);
    }
    serde_json::from_slice(data)
        .map(unwrap)
        .map_err(|_| Bad::Invalid)
}

/// The JSON converter with schemas.enable wraps each value as {schema, payload}.
fn unwrap(v: Value) -> Value {
    match v {
        Value::Object(mut m)
            if m.len() == 2 && m.contains_key("schema") && m.contains_key("payload") =>
        {
            m.swap_remove("payload").expect("checked")
        }
        other => other,
    }
}

fn sniff(cfg: &Config, rec: &Record, value: &Value) -> Option<Kind> {
    if looks_like_tx_metadata(value) {
        return Some(Kind::TxMetadata);
    }
    if value.is_null()
        || value
            .as_object()
            .is_some_and(|m| m.contains_key("op") && m.contains_key("source"))
    {
        return Some(Kind::Cdc);
    }
    rec.header(&cfg.event_id_header).map(|_| Kind::Outbox)
}

// -- transaction metadata ---------------------------------------------------------------------

fn looks_like_tx_metadata(v: &Value) -> bool {
    v.as_object().is_some_and(|m| {
        matches!(m.get("status"), Some(Value::String(s)) if s == "BEGIN" || s == "END")
            && m.contains_key("id")
    })
}

/// One text for a transaction across Debezium's forms: '571:53195832' and 571 are both '571'.
pub fn normalize_tx_id(text: &str) -> String {
    let head = py_strip(text.split(':').next().unwrap_or(""));
    if !head.is_empty() && head.bytes().all(|b| b.is_ascii_digit()) {
        let reduced = head.bytes().fold(0u64, |acc, b| {
            (acc * 10 + u64::from(b - b'0')) % (1u64 << 32)
        });
        reduced.to_string()
    } else {
        head.to_string()
    }
}

fn normalize_value(py: Python<'_>, v: &Value) -> PyResult<String> {
    Ok(normalize_tx_id(&py_str(py, v)?))
}

fn parse_tx(py: Python<'_>, rec: &Record, value: &Value) -> PyResult<Parse<Boundary>> {
    if !looks_like_tx_metadata(value) {
        return Ok(Err(Bad::Invalid));
    }
    let m = value.as_object().expect("checked");
    let end = m["status"] == "END";
    let count = m.get("event_count").and_then(py_int);
    let mut collections: Vec<(String, i64)> = Vec::new();
    if end {
        if count.is_none_or(|c| c < 0) {
            return Ok(Err(Bad::Invalid));
        }
        match m.get("data_collections") {
            Some(Value::Array(items)) => {
                for item in items {
                    let name = item.get("data_collection").and_then(Value::as_str);
                    let n = item
                        .as_object()
                        .and_then(|o| o.get("event_count"))
                        .and_then(py_int);
                    match (name, n) {
                        (Some(name), Some(n)) => upsert(&mut collections, name, n),
                        _ => return Ok(Err(Bad::Invalid)),
                    }
                }
            }
            Some(other) if truthy(other) => return Ok(Err(Bad::Invalid)),
            _ => {}
        }
        if !collections.is_empty()
            && collections.iter().map(|(_, n)| n).sum::<i64>() != count.unwrap_or(0)
        {
            return Ok(Err(Bad::Invalid));
        }
    }
    let tx_id = normalize_value(py, &m["id"])?;
    Ok(Ok(Boundary {
        end,
        event_count: if end { count } else { None },
        collections,
        ts_ms: m.get("ts_ms").and_then(py_int),
        position: Position {
            topic: rec.topic.clone(),
            partition: rec.partition,
            offset: rec.offset,
            lsn: None,
            tx_id: Some(tx_id.clone()),
            connector: None,
            ts_ms: None,
        },
        tx_id,
    }))
}

// -- change events ----------------------------------------------------------------------------

fn str_or_none(py: Python<'_>, v: Option<&Value>) -> PyResult<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => py_str(py, v).map(Some),
    }
}

/// Takes the row image out of the event (no copy); None when absent or null.
fn take_image(m: &mut Map<String, Value>, name: &str) -> Parse<Option<Value>> {
    match m.swap_remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(Bad::Invalid),
    }
}

fn parse_change(py: Python<'_>, rec: &Record, key: Value, value: Value) -> PyResult<Parse<Parsed>> {
    if value.is_null() {
        return Ok(Ok(Parsed::Tombstone));
    }
    let Value::Object(mut m) = value else {
        return Ok(Err(Bad::Invalid));
    };
    let Some(op) = m
        .get("op")
        .and_then(Value::as_str)
        .and_then(Op::from_debezium)
    else {
        return Ok(Err(Bad::Invalid));
    };
    let source = match m.swap_remove("source") {
        Some(Value::Object(source)) => source,
        _ => return Ok(Err(Bad::Invalid)),
    };
    let (before, after) = match (take_image(&mut m, "before"), take_image(&mut m, "after")) {
        (Ok(b), Ok(a)) => (b, a),
        _ => return Ok(Err(Bad::Invalid)),
    };
    let needs_after = matches!(op, Op::Create | Op::Read | Op::Update);
    if (needs_after && after.is_none()) || (op == Op::Delete && before.is_none()) {
        return Ok(Err(Bad::Invalid));
    }
    let Ok(row_key) = row_key(op, key, before.as_ref(), after.as_ref()) else {
        return Ok(Err(Bad::Invalid));
    };
    let tx_id = match m.get("transaction") {
        Some(Value::Object(t)) if t.contains_key("id") => Some(normalize_value(py, &t["id"])?),
        _ => None,
    };
    let source_tx = match source.get("txId") {
        None | Some(Value::Null) => None,
        Some(v) => Some(normalize_value(py, v)?),
    };
    let position = Position {
        topic: rec.topic.clone(),
        partition: rec.partition,
        offset: rec.offset,
        lsn: int_or_none(source.get("lsn")),
        tx_id: tx_id.clone().or(source_tx),
        connector: str_or_none(py, source.get("name"))?,
        ts_ms: int_or_none(source.get("ts_ms")),
    };
    let (table, schema) = if op == Op::Message {
        let prefix = m
            .get("message")
            .and_then(Value::as_object)
            .and_then(|msg| msg.get("prefix"));
        let prefix = match prefix {
            Some(p) if truthy(p) => py_str(py, p)?,
            _ => "unknown".to_string(),
        };
        (format!("message.{prefix}"), None)
    } else {
        match source.get("table") {
            Some(Value::String(t)) if !t.is_empty() => {
                (t.clone(), str_or_none(py, source.get("schema"))?)
            }
            _ => return Ok(Err(Bad::Invalid)),
        }
    };
    let changed_fields = changed_fields(op, before.as_ref(), after.as_ref(), &row_key);
    let before_complete = before_is_complete(op, before.as_ref(), &row_key);
    let collection = match &schema {
        Some(s) if !s.is_empty() => format!("{s}.{table}"),
        _ => table.clone(),
    };
    let key_json = canonical_map(&row_key);
    let identity = format!(
        "row|{}|{}|{}|{}|{}",
        position.connector.as_deref().unwrap_or("None"),
        position.tx_id.as_deref().unwrap_or("None"),
        position.lsn.map_or("None".to_string(), |l| l.to_string()),
        collection,
        key_json
    );
    let entity = entity_ref(py, &collection, &row_key, &key_json)?;
    let after = if op == Op::Message {
        m.get("message").filter(|v| !v.is_null()).cloned()
    } else {
        after
    };
    let row = RowChange {
        database: str_or_none(py, source.get("db"))?,
        schema,
        table,
        key_json,
        op,
        before,
        after,
        changed_fields,
        before_complete,
        other_key: other_key(py, rec, op)?,
        position,
        collection,
        identity,
        entity,
    };
    Ok(Ok(Parsed::Change(Change { row, tx_id })))
}

fn row_key(
    op: Op,
    key: Value,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<Map<String, Value>, ()> {
    let key = unwrap(key);
    if !matches!(op, Op::Create | Op::Read | Op::Update | Op::Delete) {
        return Ok(match key {
            Value::Object(m) => m,
            _ => Map::new(),
        });
    }
    let Value::Object(key) = key else {
        return Err(());
    };
    if key.is_empty() || key.values().any(Value::is_null) {
        return Err(());
    }
    if let Some(Value::Object(image)) = after.or(before) {
        if key.keys().any(|f| !image.contains_key(f)) {
            return Err(());
        }
    }
    Ok(key)
}

fn keys(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_object)
        .map_or_else(Vec::new, |m| m.keys().cloned().collect())
}

fn changed_fields(
    op: Op,
    before: Option<&Value>,
    after: Option<&Value>,
    key: &Map<String, Value>,
) -> Vec<String> {
    if op == Op::Delete {
        return keys(before);
    }
    let (Some(Value::Object(b)), Some(Value::Object(a))) = (before, after) else {
        return keys(after);
    };
    if op != Op::Update || !before_is_complete(op, before, key) {
        return keys(after);
    }
    a.iter()
        .filter(|(f, v)| b.get(*f).is_none_or(|old| !py_eq(old, v)))
        .map(|(f, _)| f.clone())
        .collect()
}

/// False when the before-image is missing or holds only the key (REPLICA IDENTITY DEFAULT).
fn before_is_complete(op: Op, before: Option<&Value>, key: &Map<String, Value>) -> bool {
    if matches!(op, Op::Create | Op::Read | Op::Message) {
        return true;
    }
    let Some(Value::Object(b)) = before else {
        return false;
    };
    let mut others = b.iter().filter(|(f, _)| !key.contains_key(*f)).peekable();
    others.peek().is_some() && others.any(|(_, v)| !v.is_null())
}

/// 'public.orders:1042' for a one-column key, else 'public.lines:{"line":2,"order":1042}'.
fn entity_ref(
    py: Python<'_>,
    collection: &str,
    key: &Map<String, Value>,
    key_json: &str,
) -> PyResult<String> {
    Ok(match key.len() {
        0 => format!("{collection}:*"),
        1 => format!(
            "{collection}:{}",
            py_str(py, key.values().next().expect("one"))?
        ),
        _ => format!("{collection}:{key_json}"),
    })
}

fn other_key(py: Python<'_>, rec: &Record, op: Op) -> PyResult<Option<Value>> {
    let name = match op {
        Op::Delete => NEW_KEY_HEADER,
        Op::Create => OLD_KEY_HEADER,
        _ => return Ok(None),
    };
    let Some(text) = rec.header(name) else {
        return Ok(None);
    };
    Ok(Some(match py_loads(py, &text)? {
        None => Value::Object(Map::from_iter([("raw".to_string(), Value::String(text))])),
        Some(v) => match unwrap(v) {
            obj @ Value::Object(_) => obj,
            other => Value::Object(Map::from_iter([("value".to_string(), other)])),
        },
    }))
}

// -- outbox -----------------------------------------------------------------------------------

/// Header values set through the JSON header converter arrive quoted; strip that.
fn clean(text: Option<&str>) -> Option<String> {
    let t = py_strip(text?);
    let t = if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        &t[1..t.len() - 1]
    } else {
        t
    };
    (!t.is_empty()).then(|| t.to_string())
}

fn field(py: Python<'_>, payload: &Value, names: &[&str]) -> PyResult<Option<String>> {
    let Some(m) = payload.as_object() else {
        return Ok(None);
    };
    for name in names {
        match m.get(*name) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) if s.is_empty() => continue,
            Some(Value::String(s)) => return Ok(Some(s.clone())),
            Some(other) => return py_dumps(py, other, false).map(Some),
        }
    }
    Ok(None)
}

/// 'a', 'a,b', or a JSON array '["a","b"]' -> [a, b].
fn id_list(py: Python<'_>, raw: Option<&str>) -> PyResult<Vec<String>> {
    let Some(text) = clean(raw.filter(|r| !r.is_empty())) else {
        return Ok(Vec::new());
    };
    if text.starts_with('[') {
        if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(&text) {
            return items
                .iter()
                .filter(|i| truthy(i))
                .map(|i| py_str(py, i))
                .collect();
        }
    }
    Ok(text
        .split(',')
        .map(|part| py_strip(part).trim_matches('"'))
        .filter(|part| !part.is_empty())
        .map(str::to_string)
        .collect())
}

fn first(headers: &[(String, Option<String>)], names: &[String]) -> Option<String> {
    names.iter().find_map(|n| clean(get(headers, n)))
}

/// W3C traceparent 'vv-trace-span-flags'; None when absent or malformed.
fn trace(traceparent: Option<String>, tracestate: Option<String>) -> Option<Trace> {
    let tp = py_strip(traceparent.as_deref()?).to_lowercase();
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if parts.len() != 4
        || !hex(parts[0], 2)
        || !hex(parts[1], 32)
        || !hex(parts[2], 16)
        || !hex(parts[3], 2)
    {
        return None;
    }
    if parts[1].bytes().all(|b| b == b'0') || parts[2].bytes().all(|b| b == b'0') {
        return None;
    }
    Some(Trace {
        trace_id: parts[1].to_string(),
        span_id: parts[2].to_string(),
        traceparent: tp.clone(),
        tracestate: tracestate.filter(|s| !s.is_empty()),
    })
}

fn payload_of(py: Python<'_>, value: Value) -> PyResult<Value> {
    Ok(match unwrap(value) {
        Value::String(s) => py_loads(py, &s)?.unwrap_or(Value::String(s)),
        other => other,
    })
}

fn parse_outbox(
    py: Python<'_>,
    cfg: &Config,
    rec: &Record,
    key: Value,
    value: Value,
) -> PyResult<Parse<Outbox>> {
    let payload = payload_of(py, value)?;
    let headers = rec.header_map();
    let h = |name: &str| get(&headers, name);
    let Some(event_id) = clean(h(&cfg.event_id_header)) else {
        return Ok(Err(Bad::Invalid));
    };
    let event_type = match clean(h(&cfg.event_type_header)) {
        Some(t) => t,
        None => match field(py, &payload, &["type", "eventType"])? {
            Some(t) => t,
            None => return Ok(Err(Bad::Invalid)),
        },
    };
    let aggregate_type = clean(h(&cfg.aggregate_type_header)).or_else(|| {
        rec.topic
            .strip_prefix(cfg.topic_prefix.as_str())
            .map(str::to_string)
    });
    let tx_id = clean(h(&cfg.tx_header)).map(|t| normalize_tx_id(&t));
    let aggregate_id = match unwrap(key) {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(py_dumps(py, &other, true)?),
    };
    let correlation_id = match clean(h(&cfg.correlation_header)) {
        Some(c) => Some(c),
        None => field(py, &payload, &[cfg.correlation_field.as_str()])?,
    };
    let causation_raw = match h(&cfg.causation_header).filter(|c| !c.is_empty()) {
        Some(c) => Some(c.to_string()),
        None => field(py, &payload, &[cfg.causation_field.as_str()])?,
    };
    let causation_ids = id_list(py, causation_raw.as_deref())?;
    let trace = trace(
        first(&headers, &cfg.traceparent_headers),
        first(&headers, &cfg.tracestate_headers),
    );
    let phase = match clean(h(&cfg.phase_header))
        .map(|p| p.to_lowercase())
        .as_deref()
    {
        Some("intent") => Phase::Intent,
        Some("outcome") => Phase::Outcome,
        _ => Phase::Action,
    };
    let intent_id = clean(h(&cfg.intent_header));
    let mut decision: Vec<(String, String)> = Vec::new();
    for name in &cfg.decision_fields {
        if let Some(v) = field(py, &payload, &[name.as_str()])? {
            upsert(&mut decision, name, v);
        }
    }
    for (k, v) in &headers {
        if let (Some(rest), Some(v)) = (k.strip_prefix(cfg.decision_header_prefix.as_str()), v) {
            upsert(&mut decision, rest, v.clone());
        }
    }
    let external_systems = id_list(py, h(&cfg.external_systems_header))?;
    let event_headers = headers
        .iter()
        .filter(|(k, _)| !k.starts_with(DEBEZIUM_CONTEXT))
        .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
        .collect();
    Ok(Ok(Outbox {
        event: Event {
            event_id,
            event_type,
            aggregate_type,
            aggregate_id,
            payload,
            headers: event_headers,
            position: Position {
                topic: rec.topic.clone(),
                partition: rec.partition,
                offset: rec.offset,
                lsn: None,
                tx_id,
                connector: None,
                ts_ms: rec.ts_ms,
            },
        },
        correlation_id,
        causation_ids,
        trace,
        phase,
        intent_id,
        decision,
        external_systems,
    }))
}
