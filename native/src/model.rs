//! The journal's records as the tap builds them, and their Avro encoding (schemas/journal_entry.avsc).
//! Field for field the same as processor/model.py and processor/journal/serde.py.

use serde_json::Value;

use crate::json::canonical;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    Create,
    Update,
    Delete,
    Read,
    Truncate,
    Message,
}

impl Op {
    pub fn from_debezium(code: &str) -> Option<Op> {
        Some(match code {
            "c" => Op::Create,
            "u" => Op::Update,
            "d" => Op::Delete,
            "r" => Op::Read,
            "t" => Op::Truncate,
            "m" => Op::Message,
            _ => return None,
        })
    }

    pub fn lower(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Read => "read",
            Op::Truncate => "truncate",
            Op::Message => "message",
        }
    }

    /// The symbol's index in the schema's RowOp enum.
    fn avro_index(self) -> i64 {
        self as i64
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Action,
    Intent,
    Outcome,
    InDoubt,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Action => "ACTION",
            Phase::Intent => "INTENT",
            Phase::Outcome => "OUTCOME",
            Phase::InDoubt => "IN_DOUBT",
        }
    }

    pub fn parse(name: &str) -> Phase {
        match name {
            "INTENT" => Phase::Intent,
            "OUTCOME" => Phase::Outcome,
            "IN_DOUBT" => Phase::InDoubt,
            _ => Phase::Action,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reversibility {
    Restorable,
    Compensable,
    Irreversible,
    Unclassified,
    Replayable, // appended: the Avro enum's index is the discriminant
}

impl Reversibility {
    pub fn name(self) -> &'static str {
        match self {
            Reversibility::Restorable => "RESTORABLE",
            Reversibility::Compensable => "COMPENSABLE",
            Reversibility::Irreversible => "IRREVERSIBLE",
            Reversibility::Unclassified => "UNCLASSIFIED",
            Reversibility::Replayable => "REPLAYABLE",
        }
    }

    pub fn parse(name: &str) -> Reversibility {
        match name {
            "RESTORABLE" => Reversibility::Restorable,
            "COMPENSABLE" => Reversibility::Compensable,
            "IRREVERSIBLE" => Reversibility::Irreversible,
            "REPLAYABLE" => Reversibility::Replayable,
            _ => Reversibility::Unclassified,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Position {
    pub topic: String,
    pub partition: i64,
    pub offset: i64,
    pub lsn: Option<i64>,
    pub tx_id: Option<String>,
    pub connector: Option<String>,
    pub ts_ms: Option<i64>,
    pub log_position: Option<String>, // MySQL/MariaDB binlog 'file:pos:row'
}

impl Position {
    /// Where the change sits in its database's log: LSN, or binlog file, pos and row
    /// (processor.tap.assembler.log_order, with the offset last).
    pub fn log_order(&self) -> (i64, String, i64, i64, i64) {
        let (mut file, mut pos, mut row) = (String::new(), 0, 0);
        if let Some(log) = &self.log_position {
            let mut parts = log.rsplitn(3, ':');
            row = parts.next().and_then(|r| r.parse().ok()).unwrap_or(0);
            pos = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            file = parts.next().unwrap_or("").to_string();
        }
        (self.lsn.unwrap_or(0), file, pos, row, self.offset)
    }
}

#[derive(Clone, Debug)]
pub struct RowChange {
    pub database: Option<String>,
    pub schema: Option<String>,
    pub table: String,
    pub key_json: String, // canonical
    pub op: Op,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub changed_fields: Vec<String>,
    pub before_complete: bool,
    pub position: Position,
    pub other_key: Option<Value>,
    // Derived once: 'schema.table', the dedupe identity and the entity reference.
    pub collection: String,
    pub identity: String,
    pub entity: String,
}

#[derive(Clone, Debug)]
pub struct Trace {
    pub traceparent: String,
    pub trace_id: String,
    pub span_id: String,
    pub tracestate: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Event {
    pub event_id: String,
    pub event_type: String,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub payload: Value, // Null: no payload
    pub headers: Vec<(String, String)>,
    pub position: Position,
    pub type_fallback: bool, // no event type came: the aggregate type stands in
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub action_id: String,
    pub action_type: String,
    pub changes: Vec<RowChange>,
    pub journal_ts_ms: i64,
    pub service: Option<String>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub event: Option<Event>,
    pub commit_ts_ms: Option<i64>,
    pub tx_id: Option<String>,
    pub complete: bool,
    pub causation_ids: Vec<String>,
    pub correlation_id: Option<String>,
    pub trace: Option<Trace>,
    pub decision: Vec<(String, String)>,
    pub entities: Vec<String>,
    pub external_systems: Vec<String>,
    pub phase: Phase,
    pub intent_id: Option<String>,
    pub reversibility: Reversibility,
}

pub fn event_identity(event_id: &str) -> String {
    format!("event|{event_id}")
}

pub fn transaction_identity(tx_id: &str) -> String {
    format!("tx|None|{tx_id}")
}

impl Entry {
    /// Only what dedupe and intent tracking read of an entry seeded from the journal.
    pub fn bare(journal_ts_ms: i64, phase: Phase, intent_id: Option<String>) -> Entry {
        Entry {
            action_id: String::new(),
            action_type: String::new(),
            changes: Vec::new(),
            journal_ts_ms,
            service: None,
            aggregate_type: None,
            aggregate_id: None,
            event: None,
            commit_ts_ms: None,
            tx_id: None,
            complete: true,
            causation_ids: Vec::new(),
            correlation_id: None,
            trace: None,
            decision: Vec::new(),
            entities: Vec::new(),
            external_systems: Vec::new(),
            phase,
            intent_id,
            reversibility: Reversibility::Unclassified,
        }
    }

    /// What a duplicate delivery of this action's inputs would repeat (JournalEntry.identities).
    pub fn identities(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.changes.iter().map(|c| c.identity.clone()).collect();
        if let Some(event) = &self.event {
            ids.push(event_identity(&event.event_id));
        }
        if let Some(tx) = &self.tx_id {
            ids.push(transaction_identity(tx));
        }
        ids
    }

    /// Keyed by workflow, so one workflow's entries stay in one partition, in order.
    pub fn journal_key(&self) -> &str {
        match &self.correlation_id {
            Some(c) if !c.is_empty() => c,
            _ => &self.action_id,
        }
    }

    pub fn to_avro(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(512));
        w.string(&self.action_id);
        w.string(&self.action_type);
        w.opt_string(&self.service);
        w.opt_string(&self.aggregate_type);
        w.opt_string(&self.aggregate_id);
        if !self.changes.is_empty() {
            w.long(self.changes.len() as i64);
            for change in &self.changes {
                w.change(change);
            }
        }
        w.long(0);
        match &self.event {
            None => w.long(0),
            Some(e) => {
                w.long(1);
                w.string(&e.event_id);
                w.string(&e.event_type);
                w.opt_string(&e.aggregate_type);
                w.opt_string(&e.aggregate_id);
                w.opt_json(if e.payload.is_null() {
                    None
                } else {
                    Some(&e.payload)
                });
                w.pairs(&e.headers);
                w.position(&e.position);
                w.boolean(e.type_fallback);
            }
        }
        w.opt_long(self.commit_ts_ms);
        w.long(self.journal_ts_ms);
        w.opt_string(&self.tx_id);
        w.boolean(self.complete);
        w.strings(&self.causation_ids);
        w.opt_string(&self.correlation_id);
        match &self.trace {
            None => w.long(0),
            Some(t) => {
                w.long(1);
                w.string(&t.traceparent);
                w.opt_string(&t.tracestate);
                w.string(&t.trace_id);
                w.string(&t.span_id);
            }
        }
        w.pairs(&self.decision);
        w.strings(&self.entities);
        w.strings(&self.external_systems);
        w.long(self.phase as i64);
        w.opt_string(&self.intent_id);
        w.long(self.reversibility as i64);
        w.long(0); // rewind_request_id: the tap never sets it
        w.long(0); // compensated_action_id
        w.0
    }
}

/// Avro binary encoding, as fastavro writes it (arrays and maps in one block, then 0).
struct Writer(Vec<u8>);

impl Writer {
    fn long(&mut self, v: i64) {
        let mut n = ((v << 1) ^ (v >> 63)) as u64;
        while n >= 0x80 {
            self.0.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
    }

    fn string(&mut self, s: &str) {
        self.long(s.len() as i64);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn boolean(&mut self, b: bool) {
        self.0.push(b as u8);
    }

    fn opt_string(&mut self, s: &Option<String>) {
        match s {
            None => self.long(0),
            Some(s) => {
                self.long(1);
                self.string(s);
            }
        }
    }

    fn opt_long(&mut self, v: Option<i64>) {
        match v {
            None => self.long(0),
            Some(v) => {
                self.long(1);
                self.long(v);
            }
        }
    }

    fn opt_json(&mut self, v: Option<&Value>) {
        match v {
            None => self.long(0),
            Some(v) => {
                self.long(1);
                self.string(&canonical(v));
            }
        }
    }

    fn strings(&mut self, items: &[String]) {
        if !items.is_empty() {
            self.long(items.len() as i64);
            for item in items {
                self.string(item);
            }
        }
        self.long(0);
    }

    fn pairs(&mut self, items: &[(String, String)]) {
        if !items.is_empty() {
            self.long(items.len() as i64);
            for (k, v) in items {
                self.string(k);
                self.string(v);
            }
        }
        self.long(0);
    }

    fn position(&mut self, p: &Position) {
        self.string(&p.topic);
        self.long(p.partition); // Avro int and long share the zigzag varint
        self.long(p.offset);
        self.opt_long(p.lsn);
        self.opt_string(&p.tx_id);
        self.opt_string(&p.connector);
        self.opt_long(p.ts_ms);
        self.opt_string(&p.log_position);
    }

    fn change(&mut self, c: &RowChange) {
        self.opt_string(&c.database);
        self.opt_string(&c.schema);
        self.string(&c.table);
        self.string(&c.key_json);
        self.long(c.op.avro_index());
        self.opt_json(c.before.as_ref());
        self.opt_json(c.after.as_ref());
        self.strings(&c.changed_fields);
        self.boolean(c.before_complete);
        self.opt_json(c.other_key.as_ref());
        self.position(&c.position);
    }
}
