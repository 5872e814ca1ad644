"""Group parsed records into actions: one database transaction (its rows and outbox events) per action.

Pure and deterministic: time comes in as ``now_ms`` (wall clock live, record time offline). Records of a
transaction may arrive in any order across topics; the transaction is complete when its END record's
per-collection counts are met, or is journaled as incomplete after ``tx_timeout_ms``.

While a transaction is open its records are *held*: ``safe_offsets`` never moves a partition's committed
offset past a held record, so a crash re-reads them; the dedupe index drops what was journaled already.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import Enum

from processor.config import TapSettings
from processor.journal.model import (
    JournalEntry,
    Op,
    Phase,
    RowChange,
    SourcePosition,
    event_identity,
    transaction_identity,
)
from processor.tap.cdc import POSTGRES, ChangeEvent
from processor.tap.outbox import OutboxMessage
from processor.tap.transactions import TxBoundary
from processor.undo import Reversibility

Classify = Callable[[str], Reversibility]
TopicPartitionKey = tuple[str, int]


class DedupeIndex:
    """Identities journaled within the window: outbox event ids, (txId, LSN, table, key), tx ids.
    Without a window (a capture read offline) nothing is forgotten."""

    def __init__(self, window_ms: int | None) -> None:
        self.window_ms = window_ms
        self._seen: set[int] = set()
        self._order: deque[tuple[int, int]] = deque()

    @staticmethod
    def _hash(identity: str) -> int:
        # 64 bits, like any 8-byte digest, at a fraction of the cost. Not stable across processes,
        # and need not be: the index is rebuilt from the journal at every start.
        return hash(identity)

    def __contains__(self, identity: str) -> bool:
        return self._hash(identity) in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, identity: str, ts_ms: int) -> None:
        h = self._hash(identity)
        if h not in self._seen:
            self._seen.add(h)
            self._order.append((ts_ms, h))

    def prune(self, now_ms: int) -> None:
        if self.window_ms is None:
            return
        while self._order and self._order[0][0] < now_ms - self.window_ms:
            self._seen.discard(self._order.popleft()[1])


@dataclass
class _OpenTx:
    tx_id: str
    first_seen_ms: int
    rows: list[RowChange] = field(default_factory=list)
    events: list[OutboxMessage] = field(default_factory=list)
    end: TxBoundary | None = None
    closed: bool = False
    row_identities: set[str] = field(default_factory=set)

    def is_complete(self, settings: TapSettings) -> bool:
        if self.end is None:
            return False
        if not self.end.collections:
            return len(self.rows) + len(self.events) >= (self.end.event_count or 0)
        for collection, count in self.end.collections.items():
            if collection in settings.outbox_tables:
                have = len(self.events)
                count = count // 2 if settings.outbox_rows_deleted_in_tx else count
            else:
                have = sum(1 for r in self.rows if r.collection == collection)
            if have < count:
                return False
        return True


@dataclass(frozen=True, slots=True)
class _PendingIntent:
    action_id: str
    action_type: str
    deadline_ms: int
    entry: JournalEntry


class ReplicaIdentity(Enum):
    """What a PostgreSQL table sends as old values, as its updates show: nothing but the key
    (DEFAULT: an update's before-image is null) or the whole row (FULL)."""

    DEFAULT = "DEFAULT"
    FULL = "FULL"


def learn_identity(known: dict[str, ReplicaIdentity], row: RowChange) -> None:
    """An update tells its table's replica identity (deletes are judged by it)."""
    if row.op is Op.UPDATE:
        if row.before is None:
            known[_table_key(row)] = ReplicaIdentity.DEFAULT
        elif row.before_complete:
            known[_table_key(row)] = ReplicaIdentity.FULL


def _table_key(row: RowChange) -> str:
    return f"{row.position.connector}|{row.collection}"


@dataclass
class TapStats:
    """What a tap core counted (both engines report these)."""

    duplicates: int = 0
    incomplete: int = 0
    in_doubt: int = 0


class Assembler:
    def __init__(
        self,
        settings: TapSettings,
        classify: Classify,
        *,
        group_transactions: bool,
        dedupe: DedupeIndex | None = None,
    ) -> None:
        """``group_transactions``: transaction metadata is read, so rows and events wait for END."""
        self.settings = settings
        self.group_transactions = group_transactions
        self.classify = classify
        self.dedupe = dedupe or DedupeIndex(int(settings.dedupe_window_hours * 3_600_000))
        self.stats = TapStats()
        self._open: dict[str, _OpenTx] = {}
        self._intents: dict[str, _PendingIntent] = {}
        self._identity: dict[str, ReplicaIdentity] = {}  # per table: what its updates have shown
        # Per partition, (offset, transaction) of held records in offset order; closed ones are
        # dropped lazily from the front, so finding the lowest held offset is amortized O(1).
        self._held: dict[TopicPartitionKey, deque[tuple[int, _OpenTx]]] = {}

    # -- input --------------------------------------------------------------------------------

    def add(self, item: ChangeEvent | TxBoundary | OutboxMessage, now_ms: int) -> list[JournalEntry]:
        if isinstance(item, TxBoundary):
            return self._add_boundary(item, now_ms)
        if isinstance(item, ChangeEvent):
            return self._add_change(item, now_ms)
        return self._add_outbox(item, now_ms)

    def _add_boundary(self, boundary: TxBoundary, now_ms: int) -> list[JournalEntry]:
        if not self.group_transactions:
            return []
        if self._journaled_tx(boundary.tx_id):
            self.stats.duplicates += 1
            return []
        tx = self._tx(boundary.tx_id, now_ms)
        if boundary.position is not None:
            self._hold(boundary.position, tx)
        if boundary.status == "END":
            tx.end = boundary
        return self._close_if_complete(tx, now_ms)

    def _add_change(self, change: ChangeEvent, now_ms: int) -> list[JournalEntry]:
        row = self._judge_before(change)
        identity = row.identity  # canonical JSON of the key: computed once per row
        if identity in self.dedupe:
            self.stats.duplicates += 1
            return []
        if change.tx_id is None or not self.group_transactions:
            return self._emit_alone(rows=[row], message=None, now_ms=now_ms, complete=True)
        if self._journaled_tx(change.tx_id):  # a straggler after its transaction timed out
            return self._emit_alone(rows=[row], message=None, now_ms=now_ms, complete=False)
        tx = self._tx(change.tx_id, now_ms)
        if identity in tx.row_identities:
            self.stats.duplicates += 1
            return []
        tx.row_identities.add(identity)
        tx.rows.append(row)
        self._hold(row.position, tx)
        return self._close_if_complete(tx, now_ms)

    def _add_outbox(self, message: OutboxMessage, now_ms: int) -> list[JournalEntry]:
        if event_identity(message.event.event_id) in self.dedupe:
            self.stats.duplicates += 1
            return []
        if message.tx_id is None or not self.group_transactions or self._journaled_tx(message.tx_id):
            return self._emit_alone(rows=[], message=message, now_ms=now_ms, complete=True)
        tx = self._tx(message.tx_id, now_ms)
        if any(m.event.event_id == message.event.event_id for m in tx.events):
            self.stats.duplicates += 1
            return []
        tx.events.append(message)
        self._hold(message.event.position, tx)
        return self._close_if_complete(tx, now_ms)

    def seed(self, entry: JournalEntry) -> None:
        """Learn from an entry already in the journal (at start-up): its identities, open intents, and
        what its updates show of their tables."""
        for row in entry.changes:
            learn_identity(self._identity, row)
        self._remember(entry)

    def _judge_before(self, change: ChangeEvent) -> RowChange:
        """A PostgreSQL delete's before-image is the old row only if the table sends whole rows: what
        its updates showed decides over the look of the image itself."""
        row = change.row
        if change.kind != POSTGRES:
            return row
        learn_identity(self._identity, row)
        known = self._identity.get(_table_key(row))
        if row.op is not Op.DELETE or known is None:
            return row
        complete = known is ReplicaIdentity.FULL and change.image_complete
        return row if complete == row.before_complete else replace(row, before_complete=complete)

    # -- time ---------------------------------------------------------------------------------

    def expire(self, now_ms: int) -> list[JournalEntry]:
        """Journal transactions past their timeout as incomplete, and intents past theirs as in doubt."""
        # Both dicts are in insertion order, which is first-seen (deadline) order: stop at the first
        # one not yet due instead of scanning everything on every tick.
        out: list[JournalEntry] = []
        while self._open:
            tx = next(iter(self._open.values()))
            if now_ms - tx.first_seen_ms < self.settings.tx_timeout_ms:
                break
            out += self._close(tx, now_ms, complete=False)
        while self._intents:
            intent_id, pending = next(iter(self._intents.items()))
            if now_ms < pending.deadline_ms:
                break
            del self._intents[intent_id]
            out.append(self._in_doubt(intent_id, pending, now_ms))
        self.dedupe.prune(now_ms)
        return out

    def finish(self, now_ms: int) -> list[JournalEntry]:
        """End of input (a capture): journal every open transaction as it is, incomplete."""
        out: list[JournalEntry] = []
        for tx in list(self._open.values()):
            out += self._close(tx, now_ms, complete=False)
        return out

    def safe_offsets(self) -> dict[TopicPartitionKey, int]:
        """Per partition, the lowest offset still held: committing below it loses nothing on a crash."""
        low: dict[TopicPartitionKey, int] = {}
        for key, held in self._held.items():
            _drop_closed(held)
            if held:
                low[key] = held[0][0]
        return low

    def _hold(self, position: SourcePosition, tx: _OpenTx) -> None:
        held = self._held.setdefault((position.topic, position.partition), deque())
        _drop_closed(held)  # here too: `rewind decode` never asks for safe offsets
        if held and position.offset < held[-1][0]:  # never from Kafka (in order per partition)
            bisect.insort(held, (position.offset, tx), key=lambda item: item[0])
        else:
            held.append((position.offset, tx))

    @property
    def open_transactions(self) -> int:
        return len(self._open)

    @property
    def pending_intents(self) -> int:
        return len(self._intents)

    # -- building entries ---------------------------------------------------------------------

    def _tx(self, tx_id: str, now_ms: int) -> _OpenTx:
        tx = self._open.get(tx_id)
        if tx is None:
            tx = self._open[tx_id] = _OpenTx(tx_id, now_ms)
        return tx

    def _journaled_tx(self, tx_id: str) -> bool:
        return transaction_identity(None, tx_id) in self.dedupe

    def _close_if_complete(self, tx: _OpenTx, now_ms: int) -> list[JournalEntry]:
        return self._close(tx, now_ms, complete=True) if tx.is_complete(self.settings) else []

    def _close(self, tx: _OpenTx, now_ms: int, *, complete: bool) -> list[JournalEntry]:
        del self._open[tx.tx_id]
        tx.closed = True
        if not complete:
            self.stats.incomplete += 1
        rows = sorted(tx.rows, key=log_order)
        commit_ts = tx.end.ts_ms if tx.end else None
        entries: list[JournalEntry] = []
        if not tx.events:
            if rows:
                entries.append(self._entry(rows, None, tx.tx_id, complete, now_ms, commit_ts))
        else:
            # The rows belong to the transaction's first event; further events stand on their own.
            for i, message in enumerate(tx.events):
                entries.append(
                    self._entry(rows if i == 0 else [], message, tx.tx_id, complete, now_ms, commit_ts)
                )
        self.dedupe.add(transaction_identity(None, tx.tx_id), now_ms)
        return [self._remember(e) for e in entries]

    def _emit_alone(
        self, rows: list[RowChange], message: OutboxMessage | None, now_ms: int, *, complete: bool
    ) -> list[JournalEntry]:
        tx_id = message.tx_id if message else rows[0].position.tx_id
        if not complete:
            self.stats.incomplete += 1
        return [self._remember(self._entry(rows, message, tx_id, complete, now_ms, None))]

    def _remember(self, entry: JournalEntry) -> JournalEntry:
        for identity in entry.identities:
            self.dedupe.add(identity, entry.journal_ts_ms)
        if entry.phase is Phase.INTENT and entry.intent_id:
            deadline = entry.journal_ts_ms + self.settings.intent_timeout_ms
            self._intents[entry.intent_id] = _PendingIntent(
                entry.action_id, entry.action_type, deadline, entry
            )
        elif entry.phase in (Phase.OUTCOME, Phase.IN_DOUBT) and entry.intent_id:
            self._intents.pop(entry.intent_id, None)
        return entry

    def _entry(
        self,
        rows: list[RowChange],
        message: OutboxMessage | None,
        tx_id: str | None,
        complete: bool,
        now_ms: int,
        commit_ts: int | None,
    ) -> JournalEntry:
        row_ts = [r.position.ts_ms for r in rows if r.position.ts_ms is not None]
        commit = commit_ts or (max(row_ts) if row_ts else None)
        entities = tuple(dict.fromkeys(r.entity for r in rows))
        if message is None:
            first = rows[0]
            action_type = f"{first.collection}.{first.op.value.lower()}"
            return JournalEntry(
                action_id=_derived_id(tx_id, rows),
                action_type=action_type,
                changes=tuple(rows),
                journal_ts_ms=now_ms,
                service=first.position.connector,
                commit_ts_ms=commit,
                tx_id=tx_id,
                complete=complete,
                entities=entities,
                reversibility=self.classify(action_type),
            )
        event = message.event
        causes = message.causation_ids
        pending = self._intents.get(message.intent_id or "") if message.phase is Phase.OUTCOME else None
        if pending and pending.action_id not in causes:
            causes = (*causes, pending.action_id)
        return JournalEntry(
            action_id=event.event_id,
            action_type=event.event_type,
            changes=tuple(rows),
            journal_ts_ms=now_ms,
            service=event.aggregate_type or (rows[0].position.connector if rows else None),
            aggregate_type=event.aggregate_type,
            aggregate_id=event.aggregate_id,
            event=event,
            commit_ts_ms=commit or event.position.ts_ms,
            tx_id=tx_id,
            complete=complete,
            causation_ids=causes,
            correlation_id=message.correlation_id,
            trace=message.trace,
            decision=message.decision,
            entities=entities,
            external_systems=message.external_systems,
            phase=message.phase,
            intent_id=message.intent_id,
            reversibility=self.classify(event.event_type),
        )

    def _in_doubt(self, intent_id: str, pending: _PendingIntent, now_ms: int) -> JournalEntry:
        self.stats.in_doubt += 1
        intent = pending.entry
        return JournalEntry(
            action_id=f"{pending.action_id}:in-doubt",
            action_type=pending.action_type,
            changes=(),
            journal_ts_ms=now_ms,
            service=intent.service,
            aggregate_type=intent.aggregate_type,
            aggregate_id=intent.aggregate_id,
            causation_ids=(pending.action_id,),
            correlation_id=intent.correlation_id,
            trace=intent.trace,
            decision=intent.decision,
            external_systems=intent.external_systems,
            phase=Phase.IN_DOUBT,
            intent_id=intent_id,
            reversibility=intent.reversibility,
        )


def log_order(row: RowChange) -> tuple[int, str, int, int, int]:
    """Where a row change sits in its database's log: LSN, or binlog file, pos and row."""
    p = row.position
    file, pos, number = "", 0, 0
    if p.log_position is not None:
        file, pos_text, row_text = p.log_position.rsplit(":", 2)
        pos, number = int(pos_text), int(row_text)
    return (p.lsn or 0, file, pos, number, p.offset)


def _drop_closed(held: deque[tuple[int, _OpenTx]]) -> None:
    """Release the front of a partition's held queue from transactions that have closed since."""
    while held and held[0][1].closed:
        held.popleft()


def _derived_id(tx_id: str | None, rows: Iterable[RowChange]) -> str:
    """Deterministic id of an action without an outbox event: the same input gives the same id."""
    rows = list(rows)
    connector = rows[0].position.connector
    if tx_id is not None and len(rows) > 1:
        return f"tx:{connector}:{tx_id}"
    digest = hashlib.sha1(rows[0].identity.encode(), usedforsecurity=False).hexdigest()[:24]
    return f"row:{connector}:{digest}"
