//! Source records to parsed items: Debezium change events, transaction BEGIN/END, outbox messages,
//! and the routine records (heartbeats, schema changes) read but not journaled. The same decisions as
//! processor/tap/{decoding,cdc,connect,fields,transactions,outbox}.py. Only validity is decided here:
//! an invalid record is handed back, and the Python reference names the reason.

#[cfg(feature = "python")]
use pyo3::prelude::*;
use serde_json::{Map, Value};

use crate::connect::{field_maps, image_field_maps, placeholder_image, read_decimals};
use crate::json::{
    canonical, canonical_map, int_or_none, is_py_int, parse as parse_json, py_eq, py_int, py_strip,
    text_of, truthy,
};
use crate::model::{Event, Op, Phase, Position, RowChange, Trace};

const NEW_KEY_HEADER: &str = "__debezium.newkey";
const OLD_KEY_HEADER: &str = "__debezium.oldkey";
const DEBEZIUM_CONTEXT: &str = "__debezium.context.";
const HEARTBEAT_TOPIC_PREFIX: &str = "__debezium-heartbeat";
const ENVELOPE_PAYLOAD: &str = "payload";
pub const POSTGRES: &str = "postgresql";

/// The engine's settings: read by name off processor.tap.native.EngineSettings (its one other
/// declaration), so a field either side lacks fails at construction; or from that object's JSON
/// (the fuzz targets and the corpus replay).
#[cfg_attr(feature = "python", derive(FromPyObject))]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub max_record_bytes: usize,
    pub envelope: bool,
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
    pub tx_field: String,
    pub traceparent_field: String,
    pub phase_field: String,
    pub intent_field: String,
    pub decision_fields: Vec<String>,
    pub decision_header_prefix: String,
    pub outbox_tables: Vec<String>,
    pub outbox_rows_deleted_in_tx: bool,
    pub tx_timeout_ms: i64,
    pub intent_timeout_ms: i64,
    pub dedupe_window_ms: Option<i64>,
    pub group_transactions: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Cdc,
    TxMetadata,
    Outbox,
    Heartbeat,
    SchemaChange,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Cdc => "cdc",
            Kind::TxMetadata => "tx_metadata",
            Kind::Outbox => "outbox",
            Kind::Heartbeat => "heartbeat",
            Kind::SchemaChange => "schema_change",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        match name {
            "cdc" => Some(Kind::Cdc),
            "tx_metadata" => Some(Kind::TxMetadata),
            "outbox" => Some(Kind::Outbox),
            "heartbeat" => Some(Kind::Heartbeat),
            "schema_change" => Some(Kind::SchemaChange),
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
    pub kind: Option<String>,  // source.connector: 'postgresql', 'mysql', 'mariadb'
    pub image_complete: bool,  // the before-image holds more than the key (placeholders aside)
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
    Routine,
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
pub fn parse(cfg: &Config, rec: &Record, routed: Option<Kind>) -> (Option<Kind>, Parse<Parsed>) {
    if rec.size() > cfg.max_record_bytes {
        return (routed, Err(Bad::Invalid));
    }
    if routed == Some(Kind::Outbox) {
        let parsed = decode_text(rec.value.as_deref())
            .and_then(|value| parse_outbox(cfg, rec, value).map(Parsed::Outbox));
        return (routed, parsed);
    }
    let (value, value_schema) = match decode_enveloped(rec.value.as_deref()) {
        Ok(v) => v,
        Err(bad) => return (routed, Err(bad)),
    };
    if matches!(routed, None | Some(Kind::Cdc)) {
        if let Some(kind) = routine_kind(rec, &value) {
            return (Some(kind), Ok(Parsed::Routine));
        }
    }
    let Some(kind) = routed.or_else(|| sniff(cfg, rec, &value)) else {
        return (None, Err(Bad::Invalid));
    };
    let parsed = match kind {
        Kind::TxMetadata => parse_tx(rec, &value).map(Parsed::Boundary),
        Kind::Outbox => parse_outbox(cfg, rec, value).map(Parsed::Outbox),
        _ => change_key(rec.key.as_deref()).and_then(|(key, key_schema)| {
            parse_change(rec, key, value, key_schema.as_ref(), value_schema.as_ref())
        }),
    };
    (Some(kind), parsed)
}

fn framed(data: &[u8]) -> bool {
    data.len() >= 5 && data[0] == 0
}

/// (value, its Connect schema when the JSON converter sent one).
fn decode_enveloped(data: Option<&[u8]>) -> Parse<(Value, Option<Value>)> {
    let Some(data) = data else {
        return Ok((Value::Null, None));
    };
    if framed(data) {
        return Err(Bad::Foreign);
    }
    let value = parse_json(data).ok_or(Bad::Invalid)?;
    if is_enveloped(&value) {
        let Value::Object(mut m) = value else {
            unreachable!()
        };
        let schema = m.swap_remove("schema").filter(|s| !s.is_null());
        return Ok((m.swap_remove("payload").expect("checked"), schema));
    }
    Ok((value, None))
}

/// The key and its schema; Kafka Connect's text of a struct (key.converter=StringConverter) stays
/// text, read against the row image by parse_change.
fn change_key(data: Option<&[u8]>) -> Parse<(Value, Option<Value>)> {
    match decode_enveloped(data) {
        Err(Bad::Invalid) => match data {
            Some(d) if d.starts_with(b"Struct{") => std::str::from_utf8(d)
                .map(|t| (Value::String(t.to_string()), None))
                .map_err(|_| Bad::Invalid),
            _ => Err(Bad::Invalid),
        },
        other => other,
    }
}

/// JSON when it reads as JSON, else the bare text (StringConverter); a JSON scalar other than a
/// string stays the text it was written as (processor.tap.decoding.decode_text).
fn decode_text(data: Option<&[u8]>) -> Parse<Value> {
    let Some(data) = data else {
        return Ok(Value::Null);
    };
    if framed(data) {
        return Err(Bad::Foreign);
    }
    match parse_json(data).map(unwrap) {
        Some(v @ (Value::String(_) | Value::Object(_) | Value::Array(_))) => Ok(v),
        _ => std::str::from_utf8(data)
            .map(|t| Value::String(t.to_string()))
            .map_err(|_| Bad::Invalid),
    }
}

/// {schema, payload} where the schema is a Connect schema (null, or an object with a type).
fn is_enveloped(v: &Value) -> bool {
    v.as_object().is_some_and(|m| {
        m.len() == 2
            && m.contains_key("payload")
            && match m.get("schema") {
                Some(Value::Null) => true,
                Some(Value::Object(s)) => s.contains_key("type"),
                _ => false,
            }
    })
}

/// The JSON converter with schemas.enable wraps each value as {schema, payload}.
fn unwrap(v: Value) -> Value {
    if is_enveloped(&v) {
        let Value::Object(mut m) = v else {
            unreachable!()
        };
        return m.swap_remove("payload").expect("checked");
    }
    v
}

fn routine_kind(rec: &Record, value: &Value) -> Option<Kind> {
    if rec.topic.starts_with(HEARTBEAT_TOPIC_PREFIX) {
        return Some(Kind::Heartbeat);
    }
    let m = value.as_object()?;
    if m.len() == 1 && m.contains_key("ts_ms") {
        return Some(Kind::Heartbeat);
    }
    if !m.contains_key("op") && (m.contains_key("ddl") || m.contains_key("tableChanges")) {
        return Some(Kind::SchemaChange);
    }
    None
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

// -- transaction ids and metadata -------------------------------------------------------------

fn looks_like_tx_metadata(v: &Value) -> bool {
    v.as_object().is_some_and(|m| {
        matches!(m.get("status"), Some(Value::String(s)) if s == "BEGIN" || s == "END")
            && m.contains_key("id")
    })
}

/// A transaction id's text, or None when the value cannot be one (a text or an integer).
fn tx_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        n @ Value::Number(_) if is_py_int(n) => Some(canonical(n)),
        _ => None,
    }
}

/// processor.tap.fields.normalize_tx_id: PostgreSQL's '571' and '571:53195832' are both '571',
/// reduced to the 32-bit xid; other databases' ids (GTIDs) stay whole.
pub fn normalize_tx_id(text: &str) -> String {
    let t = py_strip(text);
    let (head, tail) = match t.find(':') {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let pg = digits(head) && (head == "0" || !head.starts_with('0')) && tail.is_none_or(digits);
    if !pg {
        return t.to_string();
    }
    let last = &head[head.len().saturating_sub(32)..];
    let n: u128 = last.parse().expect("ascii digits");
    (n % (1u128 << 32)).to_string()
}

fn parse_tx(rec: &Record, value: &Value) -> Parse<Boundary> {
    if !looks_like_tx_metadata(value) {
        return Err(Bad::Invalid);
    }
    let m = value.as_object().expect("checked");
    let tx_id = normalize_tx_id(&tx_text(&m["id"]).ok_or(Bad::Invalid)?);
    let end = m["status"] == "END";
    let count = m.get("event_count").and_then(py_int);
    let mut collections: Vec<(String, i64)> = Vec::new();
    if end {
        if count.is_none_or(|c| c < 0) {
            return Err(Bad::Invalid);
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
                        _ => return Err(Bad::Invalid),
                    }
                }
            }
            Some(other) if truthy(other) => return Err(Bad::Invalid),
            _ => {}
        }
        let total: i128 = collections.iter().map(|(_, n)| i128::from(*n)).sum();
        if !collections.is_empty() && total != i128::from(count.unwrap_or(0)) {
            return Err(Bad::Invalid);
        }
    }
    Ok(Boundary {
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
            log_position: None,
        },
        tx_id,
    })
}

// -- change events ----------------------------------------------------------------------------

fn str_or_none(v: Option<&Value>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(v) => Some(text_of(v)),
    }
}

/// Takes the row image out of the event (no copy); None when absent or null.
fn take_image(m: &mut Map<String, Value>, name: &str) -> Parse<Option<Map<String, Value>>> {
    match m.swap_remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(Bad::Invalid),
    }
}

/// The image with its decimals read (a copy only where one was read).
fn decimals(
    image: &Option<Map<String, Value>>,
    schema: Option<&Value>,
    name: &str,
) -> Parse<Option<Map<String, Value>>> {
    let Some(image) = image else { return Ok(None) };
    read_decimals(image, &image_field_maps(schema, name)).map_err(|_| Bad::Invalid)
}

fn parse_change(
    rec: &Record,
    key: Value,
    value: Value,
    key_schema: Option<&Value>,
    value_schema: Option<&Value>,
) -> Parse<Parsed> {
    if value.is_null() {
        return Ok(Parsed::Tombstone);
    }
    let Value::Object(mut m) = value else {
        return Err(Bad::Invalid);
    };
    let op = m
        .get("op")
        .and_then(Value::as_str)
        .and_then(Op::from_debezium)
        .ok_or(Bad::Invalid)?;
    let source = match m.swap_remove("source") {
        Some(Value::Object(source)) => source,
        _ => return Err(Bad::Invalid),
    };
    let raw_before = take_image(&mut m, "before")?;
    let raw_after = take_image(&mut m, "after")?;
    let read_before = decimals(&raw_before, value_schema, "before")?;
    let read_after = decimals(&raw_after, value_schema, "after")?;
    let after = read_after.or(raw_after);
    let before_ref = read_before.as_ref().or(raw_before.as_ref());
    let needs_after = matches!(op, Op::Create | Op::Read | Op::Update);
    if needs_after && after.is_none() {
        return Err(Bad::Invalid);
    }
    let row_key = row_key(op, key, before_ref, after.as_ref(), key_schema)?;
    let tx_id = tx_id(m.get("transaction"), &source)?;
    let kind = str_or_none(source.get("connector"));
    let position = position(rec, &source, tx_id.clone())?;
    let (table, schema) = table(op, &m, &source)?;
    let image_complete = before_is_complete(op, before_ref, &row_key);
    let placeholders = kind.as_deref() == Some(POSTGRES)
        && op == Op::Delete
        && match (&raw_before, before_ref) {
            (Some(raw), Some(read)) => placeholder_image(
                raw,
                read,
                &row_key,
                &image_field_maps(value_schema, "before"),
            ),
            _ => false,
        };
    let before = read_before.or(raw_before).map(Value::Object);
    let after = after.map(Value::Object);
    let changed_fields = changed_fields(op, before.as_ref(), after.as_ref(), &row_key);
    let database = str_or_none(source.get("db"));
    let prefix = schema.as_deref().filter(|s| !s.is_empty()).or_else(|| {
        database
            .as_deref()
            .filter(|d| op != Op::Message && !d.is_empty())
    });
    let collection = match prefix {
        Some(p) => format!("{p}.{table}"),
        None => table.clone(),
    };
    let key_json = canonical_map(&row_key);
    let identity = format!(
        "row|{}|{}|{}|{}|{}",
        position.connector.as_deref().unwrap_or("None"),
        position.tx_id.as_deref().unwrap_or("None"),
        match (&position.log_position, position.lsn) {
            (Some(log), _) => log.clone(),
            (None, Some(lsn)) => lsn.to_string(),
            (None, None) => "None".to_string(),
        },
        collection,
        key_json
    );
    let entity = entity_ref(&collection, &row_key, &key_json);
    let after = if op == Op::Message {
        m.get("message").filter(|v| !v.is_null()).cloned()
    } else {
        after
    };
    let own_tx = match m.get("transaction") {
        Some(Value::Object(t)) if t.get("id").is_some_and(|i| !i.is_null()) => tx_id,
        _ => None,
    };
    let row = RowChange {
        database,
        schema,
        table,
        key_json,
        op,
        before,
        after,
        changed_fields,
        before_complete: image_complete && !placeholders,
        other_key: other_key(rec, op),
        position,
        collection,
        identity,
        entity,
    };
    Ok(Parsed::Change(Change {
        row,
        tx_id: own_tx,
        kind,
        image_complete,
    }))
}

/// The transaction block's id, else the source's txId (PostgreSQL) or GTID (MySQL, MariaDB).
fn tx_id(block: Option<&Value>, source: &Map<String, Value>) -> Parse<Option<String>> {
    let from_block = block.and_then(Value::as_object).and_then(|b| b.get("id"));
    for raw in [from_block, source.get("txId"), source.get("gtid")] {
        match raw {
            None | Some(Value::Null) => continue,
            Some(v) => return Ok(Some(normalize_tx_id(&tx_text(v).ok_or(Bad::Invalid)?))),
        }
    }
    Ok(None)
}

fn position(rec: &Record, source: &Map<String, Value>, tx_id: Option<String>) -> Parse<Position> {
    let lsn = int_or_none(source.get("lsn"));
    let mut log_position = None;
    if lsn.is_none() {
        let file = match source.get("file") {
            Some(Value::String(f)) if !f.is_empty() => f,
            _ => return Err(Bad::Invalid),
        };
        let pos = int_or_none(source.get("pos")).ok_or(Bad::Invalid)?;
        let row = int_or_none(source.get("row")).unwrap_or(0);
        log_position = Some(format!("{file}:{pos}:{row}"));
    }
    Ok(Position {
        topic: rec.topic.clone(),
        partition: rec.partition,
        offset: rec.offset,
        lsn,
        tx_id,
        connector: str_or_none(source.get("name")),
        ts_ms: int_or_none(source.get("ts_ms")),
        log_position,
    })
}

fn table(
    op: Op,
    m: &Map<String, Value>,
    source: &Map<String, Value>,
) -> Parse<(String, Option<String>)> {
    if op == Op::Message {
        let prefix = m
            .get("message")
            .and_then(Value::as_object)
            .and_then(|msg| msg.get("prefix"));
        let prefix = match prefix {
            Some(p) if truthy(p) => text_of(p),
            _ => "unknown".to_string(),
        };
        return Ok((format!("message.{prefix}"), None));
    }
    match source.get("table") {
        Some(Value::String(t)) if !t.is_empty() => {
            Ok((t.clone(), str_or_none(source.get("schema"))))
        }
        _ => Err(Bad::Invalid),
    }
}

fn row_key(
    op: Op,
    key: Value,
    before: Option<&Map<String, Value>>,
    after: Option<&Map<String, Value>>,
    key_schema: Option<&Value>,
) -> Parse<Map<String, Value>> {
    let key = unwrap(key);
    if !matches!(op, Op::Create | Op::Read | Op::Update | Op::Delete) {
        return Ok(match key {
            Value::Object(m) => m,
            _ => Map::new(),
        });
    }
    let key = match key {
        Value::String(text) if text.starts_with("Struct{") => struct_key(&text, after.or(before))?,
        other => other,
    };
    let Value::Object(key) = key else {
        return Err(Bad::Invalid);
    };
    if key.is_empty() || key.values().any(Value::is_null) {
        return Err(Bad::Invalid);
    }
    if let Some(image) = after.or(before) {
        if key.keys().any(|f| !image.contains_key(f)) {
            return Err(Bad::Invalid);
        }
    }
    let read = read_decimals(&key, &field_maps(key_schema)).map_err(|_| Bad::Invalid)?;
    Ok(read.unwrap_or(key))
}

/// A key written by StringConverter, 'Struct{id=42}': its fields' names, their values from the row
/// image, held only when the image's values write the same text back (cdc._struct_key).
fn struct_key(text: &str, image: Option<&Map<String, Value>>) -> Parse<Value> {
    let inner = text
        .strip_prefix("Struct{")
        .and_then(|t| t.strip_suffix('}'))
        .filter(|t| !t.is_empty());
    let (Some(inner), Some(image)) = (inner, image) else {
        return Err(Bad::Invalid);
    };
    let mut names: Vec<&str> = Vec::new();
    for name in struct_field_names(inner) {
        if image.contains_key(name) && !names.contains(&name) {
            names.push(name);
        }
    }
    let mut written = Vec::with_capacity(names.len());
    for n in &names {
        written.push(format!(
            "{n}={}",
            java_text(&image[*n]).ok_or(Bad::Invalid)?
        ));
    }
    if names.is_empty() || written.join(",") != inner {
        return Err(Bad::Invalid);
    }
    Ok(Value::Object(
        names
            .iter()
            .map(|n| (n.to_string(), image[*n].clone()))
            .collect(),
    ))
}

/// The `name=` tokens at the start or after a comma, as re.finditer(r"(?:^|,)([A-Za-z_][A-Za-z0-9_$]*)=")
/// finds them: scanning on after each match.
fn struct_field_names(inner: &str) -> Vec<&str> {
    let b = inner.as_bytes();
    let ident = |at: usize| -> Option<usize> {
        let first = *b.get(at)?;
        if !(first.is_ascii_alphabetic() || first == b'_') {
            return None;
        }
        let mut end = at + 1;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_' || b[end] == b'$')
        {
            end += 1;
        }
        (b.get(end) == Some(&b'=')).then_some(end)
    };
    let (mut out, mut j) = (Vec::new(), 0usize);
    while j < b.len() {
        let found = if j == 0 {
            ident(0).map(|e| (0, e))
        } else {
            None
        }
        .or_else(|| {
            (b[j] == b',')
                .then(|| ident(j + 1).map(|e| (j + 1, e)))
                .flatten()
        });
        match found {
            Some((start, end)) => {
                out.push(&inner[start..end]);
                j = end + 1;
            }
            None => j += 1,
        }
    }
    out
}

/// How Java's toString writes a key column's value, for the types that read back exactly.
fn java_text(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(if *b { "true" } else { "false" }.to_string()),
        Value::String(s) => Some(s.clone()),
        n @ Value::Number(_) if is_py_int(n) => Some(canonical(n)),
        _ => None,
    }
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
    if op != Op::Update || !before_is_complete(op, Some(b), key) {
        return keys(after);
    }
    a.iter()
        .filter(|(f, v)| b.get(*f).is_none_or(|old| !py_eq(old, v)))
        .map(|(f, _)| f.clone())
        .collect()
}

/// False when the before-image is missing or holds only the key (REPLICA IDENTITY DEFAULT).
fn before_is_complete(
    op: Op,
    before: Option<&Map<String, Value>>,
    key: &Map<String, Value>,
) -> bool {
    if matches!(op, Op::Create | Op::Read | Op::Message) {
        return true;
    }
    let Some(b) = before else {
        return false;
    };
    let mut others = b.iter().filter(|(f, _)| !key.contains_key(*f)).peekable();
    others.peek().is_some() && others.any(|(_, v)| !v.is_null())
}

/// 'public.orders:1042' for a one-column key, else 'public.lines:{"line":2,"order":1042}'.
fn entity_ref(collection: &str, key: &Map<String, Value>, key_json: &str) -> String {
    match key.len() {
        0 => format!("{collection}:*"),
        1 => format!(
            "{collection}:{}",
            text_of(key.values().next().expect("one"))
        ),
        _ => format!("{collection}:{key_json}"),
    }
}

fn other_key(rec: &Record, op: Op) -> Option<Value> {
    let name = match op {
        Op::Delete => NEW_KEY_HEADER,
        Op::Create => OLD_KEY_HEADER,
        _ => return None,
    };
    let text = rec.header(name)?;
    Some(match parse_json(text.as_bytes()) {
        None => Value::Object(Map::from_iter([("raw".to_string(), Value::String(text))])),
        Some(v) => match unwrap(v) {
            obj @ Value::Object(_) => obj,
            other => Value::Object(Map::from_iter([("value".to_string(), other)])),
        },
    })
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

fn field(payload: &Value, names: &[&str]) -> Option<String> {
    let m = payload.as_object()?;
    names.iter().find_map(|name| match m.get(*name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(v) => Some(text_of(v)),
    })
}

/// 'a', 'a,b', or a JSON array '["a","b"]' -> [a, b].
fn id_list(raw: Option<&str>) -> Vec<String> {
    let Some(text) = clean(raw.filter(|r| !r.is_empty())) else {
        return Vec::new();
    };
    if text.starts_with('[') {
        if let Some(Value::Array(items)) = parse_json(text.as_bytes()) {
            return items.iter().filter(|i| truthy(i)).map(text_of).collect();
        }
    }
    text.split(',')
        .map(|part| py_strip(part).trim_matches('"'))
        .filter(|part| !part.is_empty())
        .map(str::to_string)
        .collect()
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

fn payload_of(value: Value) -> Value {
    match unwrap(value) {
        Value::String(s) => parse_json(s.as_bytes()).unwrap_or(Value::String(s)),
        other => other,
    }
}

/// (envelope fields, payload): with ``envelope``, a value holding 'payload' is the envelope.
fn split(value: Value, cfg: &Config) -> (Map<String, Value>, Value) {
    match value {
        Value::Object(mut m) if cfg.envelope && m.contains_key(ENVELOPE_PAYLOAD) => {
            let payload = m.shift_remove(ENVELOPE_PAYLOAD).expect("checked");
            (m, payload_of(payload))
        }
        other => (Map::new(), payload_of(other)),
    }
}

/// Where the router placed extra columns: headers first, then the envelope's fields.
struct Facts<'a> {
    headers: &'a [(String, Option<String>)],
    envelope: &'a Map<String, Value>,
}

impl Facts<'_> {
    /// The header's text, else the envelope field's; None when neither has a non-empty one.
    fn raw(&self, name: &str) -> Option<String> {
        match get(self.headers, name) {
            Some(text) if !text.is_empty() => Some(text.to_string()),
            _ => self
                .envelope
                .get(name)
                .filter(|v| !v.is_null())
                .map(text_of)
                .filter(|t| !t.is_empty()),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        clean(self.raw(name).as_deref())
    }

    fn first(&self, names: &[String]) -> Option<String> {
        names.iter().find_map(|n| self.get(n))
    }
}

fn parse_outbox(cfg: &Config, rec: &Record, value: Value) -> Parse<Outbox> {
    let key = decode_text(rec.key.as_deref())?;
    let (envelope, payload) = split(unwrap(value), cfg);
    let headers = rec.header_map();
    let facts = Facts {
        headers: &headers,
        envelope: &envelope,
    };
    let event_id = facts.get(&cfg.event_id_header).ok_or(Bad::Invalid)?;
    let aggregate_type = facts.get(&cfg.aggregate_type_header).or_else(|| {
        rec.topic
            .strip_prefix(cfg.topic_prefix.as_str())
            .map(str::to_string)
    });
    let typed = facts
        .get(&cfg.event_type_header)
        .or_else(|| field(&payload, &["type", "eventType"]));
    let type_fallback = typed.is_none();
    let event_type = match typed {
        Some(t) => t,
        None => aggregate_type
            .clone()
            .filter(|a| !a.is_empty())
            .ok_or(Bad::Invalid)?,
    };
    let tx_id = facts
        .get(&cfg.tx_header)
        .or_else(|| field(&payload, &[cfg.tx_field.as_str()]))
        .map(|t| normalize_tx_id(&t));
    let aggregate_id = match key {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(canonical(&other)),
    };
    let correlation_id = facts
        .get(&cfg.correlation_header)
        .or_else(|| field(&payload, &[cfg.correlation_field.as_str()]));
    let causation_raw = facts
        .raw(&cfg.causation_header)
        .or_else(|| field(&payload, &[cfg.causation_field.as_str()]));
    let causation_ids = id_list(causation_raw.as_deref());
    let trace = trace(
        facts
            .first(&cfg.traceparent_headers)
            .or_else(|| field(&payload, &[cfg.traceparent_field.as_str()])),
        facts.first(&cfg.tracestate_headers),
    );
    let phase_raw = facts
        .raw(&cfg.phase_header)
        .or_else(|| field(&payload, &[cfg.phase_field.as_str()]));
    let phase = match clean(phase_raw.as_deref())
        .map(|p| p.to_lowercase())
        .as_deref()
    {
        Some("intent") => Phase::Intent,
        Some("outcome") => Phase::Outcome,
        _ => Phase::Action,
    };
    let intent_id = facts
        .get(&cfg.intent_header)
        .or_else(|| field(&payload, &[cfg.intent_field.as_str()]));
    let mut decision: Vec<(String, String)> = Vec::new();
    for name in &cfg.decision_fields {
        if let Some(v) = field(&payload, &[name.as_str()]) {
            upsert(&mut decision, name, v);
        }
    }
    for (k, v) in &headers {
        if let (Some(rest), Some(v)) = (k.strip_prefix(cfg.decision_header_prefix.as_str()), v) {
            upsert(&mut decision, rest, v.clone());
        }
    }
    let external_systems = id_list(facts.raw(&cfg.external_systems_header).as_deref());
    let event_headers = headers
        .iter()
        .filter(|(k, _)| !k.starts_with(DEBEZIUM_CONTEXT))
        .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
        .collect();
    Ok(Outbox {
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
                log_position: None,
            },
            type_fallback,
        },
        correlation_id,
        causation_ids,
        trace,
        phase,
        intent_id,
        decision,
        external_systems,
    })
}
