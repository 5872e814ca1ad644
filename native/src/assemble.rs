//! Parsed items grouped into actions, as processor/tap/assembler.py does it: one database
//! transaction (its rows and outbox events) per action, dedupe across restarts, offsets held while a
//! transaction is open, intents waiting for their outcome.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};

use crate::journal::SeededRow;
use crate::model::{
    event_identity, transaction_identity, Entry, Op, Phase, Reversibility, RowChange,
};
use crate::parse::{Boundary, Change, Config, Outbox, POSTGRES};

/// Identities journaled within the window, as 64-bit hashes, pruned by age (never, without one).
pub struct Dedupe {
    window_ms: Option<i64>,
    seen: HashSet<u64>,
    order: VecDeque<(i64, u64)>,
}

fn hash(identity: &str) -> u64 {
    let mut h = DefaultHasher::new();
    identity.hash(&mut h);
    h.finish()
}

impl Dedupe {
    fn contains(&self, identity: &str) -> bool {
        self.seen.contains(&hash(identity))
    }

    fn add(&mut self, identity: &str, ts_ms: i64) {
        let h = hash(identity);
        if self.seen.insert(h) {
            self.order.push_back((ts_ms, h));
        }
    }

    fn prune(&mut self, now_ms: i64) {
        let Some(window_ms) = self.window_ms else {
            return;
        };
        while let Some(&(ts, h)) = self.order.front() {
            if ts >= now_ms.saturating_sub(window_ms) {
                break;
            }
            self.seen.remove(&h);
            self.order.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

struct OpenTx {
    serial: u64,
    first_seen_ms: i64,
    rows: Vec<RowChange>,
    events: Vec<Outbox>,
    end: Option<Boundary>,
    row_identities: HashSet<String>,
}

struct Pending {
    serial: u64,
    deadline_ms: i64,
    entry: Entry,
}

#[derive(Default)]
pub struct Stats {
    pub duplicates: u64,
    pub incomplete: u64,
    pub in_doubt: u64,
}

/// What the catalog says of an action type's reversibility (asked once per type, then remembered).
pub trait Classify {
    type Error;
    fn reversibility(&mut self, action_type: &str) -> Result<Reversibility, Self::Error>;
}

pub struct Assembler<C: Classify> {
    pub dedupe: Dedupe,
    pub stats: Stats,
    next_serial: u64,
    open: HashMap<String, OpenTx>,
    open_order: BTreeMap<u64, String>, // first-seen order, which is deadline order
    intents: HashMap<String, Pending>,
    intent_order: BTreeMap<u64, String>,
    // Per partition, (offset, transaction serial) of held records in offset order; closed ones are
    // dropped lazily from the front.
    held: HashMap<(String, i64), VecDeque<(i64, u64)>>,
    classify: C,
    classes: HashMap<String, Reversibility>,
    // Per table, what its updates showed: whole old rows (true, REPLICA IDENTITY FULL) or none.
    identity_full: HashMap<String, bool>,
}

/// An update tells its table's replica identity (assembler.learn_identity).
fn learn_identity(
    known: &mut HashMap<String, bool>,
    op: Op,
    before_null: bool,
    complete: bool,
    table: &str,
) {
    if op != Op::Update {
        return;
    }
    if before_null {
        known.insert(table.to_string(), false);
    } else if complete {
        known.insert(table.to_string(), true);
    }
}

fn table_key(row: &RowChange) -> String {
    format!(
        "{}|{}",
        row.position.connector.as_deref().unwrap_or("None"),
        row.collection
    )
}

/// Where an item goes: the rows and events of a transaction, or an entry of its own.
pub enum Item {
    Change(Change),
    Boundary(Boundary),
    Outbox(Outbox),
}

impl<C: Classify> Assembler<C> {
    pub fn new(window_ms: Option<i64>, classify: C) -> Self {
        Assembler {
            dedupe: Dedupe {
                window_ms,
                seen: HashSet::new(),
                order: VecDeque::new(),
            },
            stats: Stats::default(),
            next_serial: 0,
            open: HashMap::new(),
            open_order: BTreeMap::new(),
            intents: HashMap::new(),
            intent_order: BTreeMap::new(),
            held: HashMap::new(),
            classify,
            classes: HashMap::new(),
            identity_full: HashMap::new(),
        }
    }

    /// A PostgreSQL delete's before-image is the old row only if its table sends whole rows: what
    /// its updates showed decides over the look of the image itself.
    fn judge_before(&mut self, change: &Change) -> Option<bool> {
        if change.kind.as_deref() != Some(POSTGRES) {
            return None;
        }
        let row = &change.row;
        let key = table_key(row);
        learn_identity(
            &mut self.identity_full,
            row.op,
            row.before.is_none(),
            row.before_complete,
            &key,
        );
        if row.op != Op::Delete {
            return None;
        }
        let full = *self.identity_full.get(&key)?;
        Some(full && change.image_complete)
    }

    /// What journaled rows show of their tables (at start-up).
    pub fn learn(&mut self, rows: &[SeededRow]) {
        for r in rows {
            learn_identity(
                &mut self.identity_full,
                r.op,
                r.before_null,
                r.before_complete,
                &r.table_key,
            );
        }
    }

    pub fn open_transactions(&self) -> usize {
        self.open.len()
    }

    pub fn pending_intents(&self) -> usize {
        self.intents.len()
    }

    pub fn add(&mut self, cfg: &Config, item: Item, now_ms: i64) -> Result<Vec<Entry>, C::Error> {
        match item {
            Item::Boundary(b) => self.add_boundary(cfg, b, now_ms),
            Item::Change(c) => self.add_change(cfg, c, now_ms),
            Item::Outbox(o) => self.add_outbox(cfg, o, now_ms),
        }
    }

    fn add_boundary(
        &mut self,
        cfg: &Config,
        b: Boundary,
        now_ms: i64,
    ) -> Result<Vec<Entry>, C::Error> {
        if !cfg.group_transactions {
            return Ok(Vec::new());
        }
        if self.journaled_tx(&b.tx_id) {
            self.stats.duplicates += 1;
            return Ok(Vec::new());
        }
        let tx_id = b.tx_id.clone();
        let serial = self.tx(&tx_id, now_ms);
        self.hold(
            &b.position.topic,
            b.position.partition,
            b.position.offset,
            serial,
        );
        let tx = self.open.get_mut(&tx_id).expect("just opened");
        if b.end {
            tx.end = Some(b);
        }
        self.close_if_complete(cfg, &tx_id, now_ms)
    }

    fn add_change(
        &mut self,
        cfg: &Config,
        change: Change,
        now_ms: i64,
    ) -> Result<Vec<Entry>, C::Error> {
        let judged = self.judge_before(&change);
        let mut row = change.row;
        if let Some(complete) = judged {
            row.before_complete = complete;
        }
        if self.dedupe.contains(&row.identity) {
            self.stats.duplicates += 1;
            return Ok(Vec::new());
        }
        let Some(tx_id) = change.tx_id.filter(|_| cfg.group_transactions) else {
            return self.emit_alone(cfg, vec![row], None, now_ms, true);
        };
        if self.journaled_tx(&tx_id) {
            // A straggler after its transaction timed out.
            return self.emit_alone(cfg, vec![row], None, now_ms, false);
        }
        let serial = self.tx(&tx_id, now_ms);
        let tx = self.open.get_mut(&tx_id).expect("just opened");
        if !tx.row_identities.insert(row.identity.clone()) {
            self.stats.duplicates += 1;
            return Ok(Vec::new());
        }
        let (topic, partition, offset) = (
            row.position.topic.clone(),
            row.position.partition,
            row.position.offset,
        );
        tx.rows.push(row);
        self.hold(&topic, partition, offset, serial);
        self.close_if_complete(cfg, &tx_id, now_ms)
    }

    fn add_outbox(
        &mut self,
        cfg: &Config,
        message: Outbox,
        now_ms: i64,
    ) -> Result<Vec<Entry>, C::Error> {
        if self
            .dedupe
            .contains(&event_identity(&message.event.event_id))
        {
            self.stats.duplicates += 1;
            return Ok(Vec::new());
        }
        let tx_id = match message.tx_id() {
            Some(t) if cfg.group_transactions && !self.journaled_tx(t) => t.clone(),
            _ => return self.emit_alone(cfg, Vec::new(), Some(message), now_ms, true),
        };
        let serial = self.tx(&tx_id, now_ms);
        let tx = self.open.get_mut(&tx_id).expect("just opened");
        if tx
            .events
            .iter()
            .any(|m| m.event.event_id == message.event.event_id)
        {
            self.stats.duplicates += 1;
            return Ok(Vec::new());
        }
        let p = &message.event.position;
        let (topic, partition, offset) = (p.topic.clone(), p.partition, p.offset);
        tx.events.push(message);
        self.hold(&topic, partition, offset, serial);
        self.close_if_complete(cfg, &tx_id, now_ms)
    }

    /// Learn from an entry already in the journal (at start-up): its identities and open intents.
    pub fn seed(&mut self, cfg: &Config, entry: &Entry, identities: &[String]) {
        self.remember(cfg, entry, identities);
    }

    // -- time -------------------------------------------------------------------------------

    pub fn expire(&mut self, cfg: &Config, now_ms: i64) -> Result<Vec<Entry>, C::Error> {
        let mut out = Vec::new();
        while let Some((_, tx_id)) = self.open_order.first_key_value() {
            let tx_id = tx_id.clone();
            if now_ms - self.open[&tx_id].first_seen_ms < cfg.tx_timeout_ms {
                break;
            }
            out.extend(self.close(cfg, &tx_id, now_ms, false)?);
        }
        while let Some((_, intent_id)) = self.intent_order.first_key_value() {
            let intent_id = intent_id.clone();
            if now_ms < self.intents[&intent_id].deadline_ms {
                break;
            }
            let pending = self.intents.remove(&intent_id).expect("present");
            self.intent_order.remove(&pending.serial);
            out.push(self.in_doubt(&intent_id, pending, now_ms));
        }
        self.dedupe.prune(now_ms);
        Ok(out)
    }

    pub fn finish(&mut self, cfg: &Config, now_ms: i64) -> Result<Vec<Entry>, C::Error> {
        let mut out = Vec::new();
        let ids: Vec<String> = self.open_order.values().cloned().collect();
        for tx_id in ids {
            out.extend(self.close(cfg, &tx_id, now_ms, false)?);
        }
        Ok(out)
    }

    /// Per partition, the lowest offset still held: committing below it loses nothing on a crash.
    pub fn safe_offsets(&mut self) -> Vec<(String, i64, i64)> {
        let mut low = Vec::new();
        for ((topic, partition), held) in self.held.iter_mut() {
            drop_closed(held, &self.open_order);
            if let Some((offset, _)) = held.front() {
                low.push((topic.clone(), *partition, *offset));
            }
        }
        low
    }

    fn hold(&mut self, topic: &str, partition: i64, offset: i64, serial: u64) {
        let held = self.held.entry((topic.to_string(), partition)).or_default();
        drop_closed(held, &self.open_order); // here too: `rewind decode` never asks for safe offsets
        if held.back().is_some_and(|(last, _)| offset < *last) {
            // Never from Kafka (in order per partition); keep the queue sorted anyway.
            let at = held.partition_point(|(o, _)| *o <= offset);
            held.insert(at, (offset, serial));
        } else {
            held.push_back((offset, serial));
        }
    }

    // -- building entries -------------------------------------------------------------------

    fn tx(&mut self, tx_id: &str, now_ms: i64) -> u64 {
        if let Some(tx) = self.open.get(tx_id) {
            return tx.serial;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        self.open.insert(
            tx_id.to_string(),
            OpenTx {
                serial,
                first_seen_ms: now_ms,
                rows: Vec::new(),
                events: Vec::new(),
                end: None,
                row_identities: HashSet::new(),
            },
        );
        self.open_order.insert(serial, tx_id.to_string());
        serial
    }

    fn journaled_tx(&self, tx_id: &str) -> bool {
        self.dedupe.contains(&transaction_identity(tx_id))
    }

    fn is_complete(cfg: &Config, tx: &OpenTx) -> bool {
        let Some(end) = &tx.end else { return false };
        if end.collections.is_empty() {
            return (tx.rows.len() + tx.events.len()) as i64 >= end.event_count.unwrap_or(0);
        }
        end.collections.iter().all(|(collection, count)| {
            let (have, need) = if cfg.outbox_tables.contains(collection) {
                let need = if cfg.outbox_rows_deleted_in_tx {
                    count.div_euclid(2)
                } else {
                    *count
                };
                (tx.events.len() as i64, need)
            } else {
                (
                    tx.rows
                        .iter()
                        .filter(|r| &r.collection == collection)
                        .count() as i64,
                    *count,
                )
            };
            have >= need
        })
    }

    fn close_if_complete(
        &mut self,
        cfg: &Config,
        tx_id: &str,
        now_ms: i64,
    ) -> Result<Vec<Entry>, C::Error> {
        if Self::is_complete(cfg, &self.open[tx_id]) {
            self.close(cfg, tx_id, now_ms, true)
        } else {
            Ok(Vec::new())
        }
    }

    fn close(
        &mut self,
        cfg: &Config,
        tx_id: &str,
        now_ms: i64,
        complete: bool,
    ) -> Result<Vec<Entry>, C::Error> {
        let tx = self.open.remove(tx_id).expect("open");
        self.open_order.remove(&tx.serial);
        if !complete {
            self.stats.incomplete += 1;
        }
        let mut rows = tx.rows;
        rows.sort_by_cached_key(|r| r.position.log_order());
        let commit_ts = tx.end.as_ref().and_then(|e| e.ts_ms);
        let tx_id_owned = Some(tx_id.to_string());
        let mut entries = Vec::new();
        if tx.events.is_empty() {
            if !rows.is_empty() {
                entries.push(self.entry(rows, None, tx_id_owned, complete, now_ms, commit_ts)?);
            }
        } else {
            // The rows belong to the transaction's first event; further events stand on their own.
            let mut rows = Some(rows);
            for message in tx.events {
                let own = rows.take().unwrap_or_default();
                entries.push(self.entry(
                    own,
                    Some(message),
                    tx_id_owned.clone(),
                    complete,
                    now_ms,
                    commit_ts,
                )?);
            }
        }
        self.dedupe.add(&transaction_identity(tx_id), now_ms);
        for e in &entries {
            self.remember(cfg, e, &e.identities());
        }
        Ok(entries)
    }

    fn emit_alone(
        &mut self,
        cfg: &Config,
        rows: Vec<RowChange>,
        message: Option<Outbox>,
        now_ms: i64,
        complete: bool,
    ) -> Result<Vec<Entry>, C::Error> {
        let tx_id = match &message {
            Some(m) => m.tx_id().cloned(),
            None => rows[0].position.tx_id.clone(),
        };
        if !complete {
            self.stats.incomplete += 1;
        }
        let entry = self.entry(rows, message, tx_id, complete, now_ms, None)?;
        self.remember(cfg, &entry, &entry.identities());
        Ok(vec![entry])
    }

    fn remember(&mut self, cfg: &Config, entry: &Entry, identities: &[String]) {
        for identity in identities {
            self.dedupe.add(identity, entry.journal_ts_ms);
        }
        let Some(intent_id) = entry.intent_id.clone().filter(|i| !i.is_empty()) else {
            return;
        };
        match entry.phase {
            Phase::Intent => {
                let deadline_ms = entry.journal_ts_ms + cfg.intent_timeout_ms;
                let serial = match self.intents.get(&intent_id) {
                    Some(p) => p.serial, // a dict keeps a re-assigned key in its place
                    None => {
                        let s = self.next_serial;
                        self.next_serial += 1;
                        self.intent_order.insert(s, intent_id.clone());
                        s
                    }
                };
                self.intents.insert(
                    intent_id,
                    Pending {
                        serial,
                        deadline_ms,
                        entry: entry.clone(),
                    },
                );
            }
            Phase::Outcome | Phase::InDoubt => {
                if let Some(p) = self.intents.remove(&intent_id) {
                    self.intent_order.remove(&p.serial);
                }
            }
            Phase::Action => {}
        }
    }

    fn classify(&mut self, action_type: &str) -> Result<Reversibility, C::Error> {
        if let Some(r) = self.classes.get(action_type) {
            return Ok(*r);
        }
        let r = self.classify.reversibility(action_type)?;
        self.classes.insert(action_type.to_string(), r);
        Ok(r)
    }

    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        rows: Vec<RowChange>,
        message: Option<Outbox>,
        tx_id: Option<String>,
        complete: bool,
        now_ms: i64,
        commit_ts: Option<i64>,
    ) -> Result<Entry, C::Error> {
        let latest_row_ts = rows.iter().filter_map(|r| r.position.ts_ms).max();
        let commit = commit_ts.filter(|t| *t != 0).or(latest_row_ts);
        let mut entities: Vec<String> = Vec::new();
        for r in &rows {
            if !entities.contains(&r.entity) {
                entities.push(r.entity.clone());
            }
        }
        let Some(m) = message else {
            let first = &rows[0];
            let action_type = format!("{}.{}", first.collection, first.op.lower());
            return Ok(Entry {
                action_id: derived_id(tx_id.as_deref(), &rows),
                reversibility: self.classify(&action_type)?,
                action_type,
                service: first.position.connector.clone(),
                journal_ts_ms: now_ms,
                commit_ts_ms: commit,
                tx_id,
                complete,
                entities,
                changes: rows,
                aggregate_type: None,
                aggregate_id: None,
                event: None,
                causation_ids: Vec::new(),
                correlation_id: None,
                trace: None,
                decision: Vec::new(),
                external_systems: Vec::new(),
                phase: Phase::Action,
                intent_id: None,
            });
        };
        let mut causes = m.causation_ids;
        if m.phase == Phase::Outcome {
            let pending = self.intents.get(m.intent_id.as_deref().unwrap_or(""));
            if let Some(p) = pending {
                if !causes.contains(&p.entry.action_id) {
                    causes.push(p.entry.action_id.clone());
                }
            }
        }
        let event = m.event;
        let service = match &event.aggregate_type {
            Some(a) if !a.is_empty() => Some(a.clone()),
            _ => rows.first().and_then(|r| r.position.connector.clone()),
        };
        Ok(Entry {
            action_id: event.event_id.clone(),
            action_type: event.event_type.clone(),
            reversibility: self.classify(&event.event_type)?,
            changes: rows,
            journal_ts_ms: now_ms,
            service,
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            commit_ts_ms: commit.filter(|t| *t != 0).or(event.position.ts_ms),
            event: Some(event),
            tx_id,
            complete,
            causation_ids: causes,
            correlation_id: m.correlation_id,
            trace: m.trace,
            decision: m.decision,
            entities,
            external_systems: m.external_systems,
            phase: m.phase,
            intent_id: m.intent_id,
        })
    }

    fn in_doubt(&mut self, intent_id: &str, pending: Pending, now_ms: i64) -> Entry {
        self.stats.in_doubt += 1;
        let intent = pending.entry;
        Entry {
            action_id: format!("{}:in-doubt", intent.action_id),
            action_type: intent.action_type,
            changes: Vec::new(),
            journal_ts_ms: now_ms,
            service: intent.service,
            aggregate_type: intent.aggregate_type,
            aggregate_id: intent.aggregate_id,
            event: None,
            commit_ts_ms: None,
            tx_id: None,
            complete: true,
            causation_ids: vec![intent.action_id],
            correlation_id: intent.correlation_id,
            trace: intent.trace,
            decision: intent.decision,
            entities: Vec::new(),
            external_systems: intent.external_systems,
            phase: Phase::InDoubt,
            intent_id: Some(intent_id.to_string()),
            reversibility: intent.reversibility,
        }
    }
}

/// Release the front of a partition's held queue from transactions that have closed since.
fn drop_closed(held: &mut VecDeque<(i64, u64)>, open: &BTreeMap<u64, String>) {
    while held
        .front()
        .is_some_and(|(_, serial)| !open.contains_key(serial))
    {
        held.pop_front();
    }
}

/// Deterministic id of an action without an outbox event: the same input gives the same id.
fn derived_id(tx_id: Option<&str>, rows: &[RowChange]) -> String {
    let connector = rows[0].position.connector.as_deref().unwrap_or("None");
    match tx_id {
        Some(tx) if rows.len() > 1 => format!("tx:{connector}:{tx}"),
        _ => {
            let digest = sha1_smol::Sha1::from(rows[0].identity.as_bytes())
                .digest()
                .to_string();
            format!("row:{connector}:{}", &digest[..24])
        }
    }
}
