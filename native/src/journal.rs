//! Journal entries read back at start-up, straight from their Avro bytes: what dedupe and intent
//! tracking need (identities, time, phase, intent), and the whole entry for an intent still open.
//! The reader follows schemas/journal_entry.avsc field by field, as model.rs writes it.

use crate::model::{event_identity, transaction_identity, Entry, Op, Phase, Reversibility, Trace};

pub struct Seeded {
    pub entry: Entry,
    pub identities: Vec<String>,
    pub rows: Vec<SeededRow>,
}

/// What a journaled row change tells of its table (assemble::Assembler::learn_identity).
pub struct SeededRow {
    pub op: Op,
    pub before_null: bool,
    pub before_complete: bool,
    pub table_key: String,
}

struct ChangeRead {
    identity: String,
    row: SeededRow,
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

/// The bytes do not read as a journal entry (the Python reader names why).
#[derive(Debug)]
pub struct NotAnEntry;

type Read<T> = Result<T, NotAnEntry>;

impl<'a> Reader<'a> {
    fn long(&mut self) -> Read<i64> {
        let (mut n, mut shift) = (0u64, 0u32);
        loop {
            let b = *self.data.get(self.at).ok_or(NotAnEntry)?;
            self.at += 1;
            if shift > 63 {
                return Err(NotAnEntry);
            }
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((n >> 1) as i64 ^ -((n & 1) as i64));
            }
            shift += 7;
        }
    }

    fn bytes(&mut self) -> Read<&'a [u8]> {
        let len = usize::try_from(self.long()?).map_err(|_| NotAnEntry)?;
        let end = self.at.checked_add(len).ok_or(NotAnEntry)?;
        let slice = self.data.get(self.at..end).ok_or(NotAnEntry)?;
        self.at = end;
        Ok(slice)
    }

    fn string(&mut self) -> Read<String> {
        std::str::from_utf8(self.bytes()?)
            .map(str::to_string)
            .map_err(|_| NotAnEntry)
    }

    fn boolean(&mut self) -> Read<bool> {
        let b = *self.data.get(self.at).ok_or(NotAnEntry)?;
        self.at += 1;
        Ok(b != 0)
    }

    /// A ["null", T] union: the branch index, then T.
    fn present(&mut self) -> Read<bool> {
        match self.long()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(NotAnEntry),
        }
    }

    fn opt_string(&mut self) -> Read<Option<String>> {
        if self.present()? {
            self.string().map(Some)
        } else {
            Ok(None)
        }
    }

    fn opt_long(&mut self) -> Read<Option<i64>> {
        if self.present()? {
            self.long().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Array or map blocks: a count (negative: followed by the block's byte size), items, then 0.
    fn blocks(&mut self, mut item: impl FnMut(&mut Self) -> Read<()>) -> Read<()> {
        loop {
            let mut count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                // i64::MIN has no positive twin (found by native/fuzz's journal target).
                count = count.checked_neg().ok_or(NotAnEntry)?;
                self.long()?;
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }

    fn strings(&mut self) -> Read<Vec<String>> {
        let mut out = Vec::new();
        self.blocks(|r| {
            out.push(r.string()?);
            Ok(())
        })?;
        Ok(out)
    }

    fn pairs(&mut self) -> Read<Vec<(String, String)>> {
        let mut out = Vec::new();
        self.blocks(|r| {
            out.push((r.string()?, r.string()?));
            Ok(())
        })?;
        Ok(out)
    }

    /// SourcePosition: (lsn, tx_id, connector, log_position); topic, partition, offset, ts skipped.
    #[allow(clippy::type_complexity)]
    fn position(&mut self) -> Read<(Option<i64>, Option<String>, Option<String>, Option<String>)> {
        self.bytes()?;
        self.long()?;
        self.long()?;
        let lsn = self.opt_long()?;
        let tx_id = self.opt_string()?;
        let connector = self.opt_string()?;
        self.opt_long()?;
        let log_position = self.opt_string()?;
        Ok((lsn, tx_id, connector, log_position))
    }

    /// A RowChange's dedupe identity (RowChange.identity) and what it tells of its table.
    fn change(&mut self) -> Read<ChangeRead> {
        let database = self.opt_string()?;
        let schema = self.opt_string()?;
        let table = self.string()?;
        let key_json = self.string()?;
        let op = op(self.long()?)?;
        let before_null = self.opt_string()?.is_none(); // before_json
        self.opt_string()?; // after_json
        self.blocks(|r| r.bytes().map(drop))?; // changed_fields
        let before_complete = self.boolean()?;
        self.opt_string()?; // other_key_json
        let (lsn, tx_id, connector, log_position) = self.position()?;
        let prefix = schema
            .filter(|s| !s.is_empty())
            .or(database.filter(|d| op != Op::Message && !d.is_empty()));
        let collection = match prefix {
            Some(p) => format!("{p}.{table}"),
            None => table,
        };
        let connector = connector.as_deref().unwrap_or("None").to_string();
        let at = match (log_position, lsn) {
            (Some(log), _) => log,
            (None, Some(l)) => l.to_string(),
            (None, None) => "None".to_string(),
        };
        let identity = format!(
            "row|{connector}|{}|{at}|{collection}|{key_json}",
            tx_id.as_deref().unwrap_or("None"),
        );
        let row = SeededRow {
            op,
            before_null,
            before_complete,
            table_key: format!("{connector}|{collection}"),
        };
        Ok(ChangeRead { identity, row })
    }
}

fn op(index: i64) -> Read<Op> {
    Ok(match index {
        0 => Op::Create,
        1 => Op::Update,
        2 => Op::Delete,
        3 => Op::Read,
        4 => Op::Truncate,
        5 => Op::Message,
        _ => return Err(NotAnEntry),
    })
}

fn phase(index: i64) -> Read<Phase> {
    Ok(match index {
        0 => Phase::Action,
        1 => Phase::Intent,
        2 => Phase::Outcome,
        3 => Phase::InDoubt,
        _ => return Err(NotAnEntry),
    })
}

fn reversibility(index: i64) -> Read<Reversibility> {
    Ok(match index {
        0 => Reversibility::Restorable,
        1 => Reversibility::Compensable,
        2 => Reversibility::Irreversible,
        3 => Reversibility::Unclassified,
        4 => Reversibility::Replayable,
        _ => return Err(NotAnEntry),
    })
}

/// One journal entry's bytes, or Err when they do not read as the journal schema.
pub fn read(data: &[u8]) -> Read<Seeded> {
    let mut r = Reader { data, at: 0 };
    let action_id = r.string()?;
    let action_type = r.string()?;
    let service = r.opt_string()?;
    let aggregate_type = r.opt_string()?;
    let aggregate_id = r.opt_string()?;
    let mut identities = Vec::new();
    let mut rows = Vec::new();
    r.blocks(|r| {
        let change = r.change()?;
        identities.push(change.identity);
        rows.push(change.row);
        Ok(())
    })?;
    if r.present()? {
        let event_id = r.string()?;
        identities.push(event_identity(&event_id));
        r.string()?; // event_type
        r.opt_string()?;
        r.opt_string()?;
        r.opt_string()?; // payload_json
        r.pairs()?; // headers
        r.position()?;
        r.boolean()?; // type_fallback
    }
    r.opt_long()?; // commit_ts_ms
    let journal_ts_ms = r.long()?;
    let tx_id = r.opt_string()?;
    if let Some(tx) = &tx_id {
        identities.push(transaction_identity(tx));
    }
    let complete = r.boolean()?;
    let causation_ids = r.strings()?;
    let correlation_id = r.opt_string()?;
    let trace = if r.present()? {
        let traceparent = r.string()?;
        let tracestate = r.opt_string()?;
        Some(Trace {
            traceparent,
            tracestate,
            trace_id: r.string()?,
            span_id: r.string()?,
        })
    } else {
        None
    };
    let decision = r.pairs()?;
    let entities = r.strings()?;
    let external_systems = r.strings()?;
    let phase = phase(r.long()?)?;
    let intent_id = r.opt_string()?;
    let reversibility = reversibility(r.long()?)?;
    r.opt_string()?; // rewind_request_id
    r.opt_string()?; // compensated_action_id
    if r.at != data.len() {
        return Err(NotAnEntry);
    }
    let entry = Entry {
        action_id,
        action_type,
        changes: Vec::new(),
        journal_ts_ms,
        service,
        aggregate_type,
        aggregate_id,
        event: None,
        commit_ts_ms: None,
        tx_id,
        complete,
        causation_ids,
        correlation_id,
        trace,
        decision,
        entities,
        external_systems,
        phase,
        intent_id,
        reversibility,
    };
    Ok(Seeded {
        entry,
        identities,
        rows,
    })
}
