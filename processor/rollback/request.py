"""Rollback requests and operators' control commands: the domain form, validation, and matching.

A selector picks the *seed* actions; the planner adds everything causally downstream. Validation
names the field at fault, and an invalid request is rejected, never half-executed.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from processor.errors import RewindError
from processor.journal.model import JournalEntry
from processor.jsonvalue import JsonInvalid, dumps, is_number, loads


class RequestInvalid(RewindError):
    """The request cannot be planned as written; ``field`` names the part at fault (not retryable)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class SelectorKind(StrEnum):
    ACTION_IDS = "ACTION_IDS"
    CORRELATION_ID = "CORRELATION_ID"
    TRACE_ID = "TRACE_ID"
    ACTION_TYPE_WINDOW = "ACTION_TYPE_WINDOW"
    FIELD_PREDICATE = "FIELD_PREDICATE"


class PredicateOp(StrEnum):
    EQ = "EQ"
    NE = "NE"
    IN = "IN"
    LT = "LT"
    LE = "LE"
    GT = "GT"
    GE = "GE"


_SYMBOLS = {"==": PredicateOp.EQ, "!=": PredicateOp.NE, "<=": PredicateOp.LE, ">=": PredicateOp.GE,
            "<": PredicateOp.LT, ">": PredicateOp.GT, "in": PredicateOp.IN}  # fmt: skip
_FIELD_PATH = re.compile(r"[\w$@-]+(?:\.[\w$@-]+)*")
_OPERATOR = re.compile(r"==|!=|<=|>=|<|>|in(?=[\s\[]|$)")
_BARE_WORD = re.compile(r"[A-Za-z_][\w.:@/-]*")  # v7, PENDING, eu-west-1: text without quotes
_JSON_START = re.compile(r'["\[{0-9-]|true\b|false\b|null\b')
PREFIXES = ("payload", "after", "before", "decision")
_COMPARE = {
    PredicateOp.EQ: operator.eq, PredicateOp.NE: operator.ne, PredicateOp.LT: operator.lt,
    PredicateOp.LE: operator.le, PredicateOp.GT: operator.gt, PredicateOp.GE: operator.ge,
}  # fmt: skip
# A number written as text: Debezium's decimal.handling.mode=string, or a payload field.
_NUMBER_TEXT = re.compile(r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,9})?\s*", re.ASCII)


def as_number(value: Any) -> int | Decimal | None:
    """A value a numeric comparison can read: a number, or a text that writes one; else None."""
    if is_number(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value):
        return Decimal(value.strip())
    return None


@dataclass(frozen=True, slots=True)
class FieldPredicate:
    """``field op value``; field is a dotted path, optionally starting with payload/after/before/decision.

    A bare path is looked up in the payload, the decision metadata and every row's after-image; the
    action matches when any value found there satisfies the comparison. Against a number the comparison
    is numeric and exact: a number, or a text that writes one (decimal.handling.mode=string), compares
    by value; any other text cannot be read as a number (base64 Decimal bytes without the schema) and
    is counted as unreadable, never silently passed over.
    """

    field: str
    op: PredicateOp
    value: Any

    @classmethod
    def parse(cls, text: str) -> FieldPredicate:
        """``rule_version == "v7"``, ``amount > 100``, ``status in ["a", "b"]``: a dotted field path, a
        comparison, and a JSON value (or a bare word, taken as text). Anything else is refused naming
        the column where it goes wrong."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # an undecodable byte of the command line (surrogateescape)
            raise _syntax(text.encode("utf-8", "replace").decode(), exc.start, "not UTF-8 text") from None
        at = _skip_space(text, 0)
        path = _FIELD_PATH.match(text, at)
        if path is None:
            raise _syntax(text, at, "a field path (name or dotted.path) is needed here")
        at = _skip_space(text, path.end())
        symbol = _OPERATOR.match(text, at)
        if symbol is None or (symbol.group() == "in" and at == path.end()):
            raise _syntax(text, at, "a comparison is needed here (==, !=, <, <=, >, >=, in)")
        op = _SYMBOLS[symbol.group()]
        at = _skip_space(text, symbol.end())
        raw = text[at:].rstrip()
        if not raw:
            raise _syntax(text, at, f"a value is needed after '{symbol.group()}'")
        predicate = cls(path.group(), op, _value(text, at, raw))
        predicate.validate()
        return predicate

    def validate(self) -> None:
        if _FIELD_PATH.fullmatch(self.field) is None:
            raise RequestInvalid(
                f"{self.field!r} is not a dotted field path", field="selector.predicate.field"
            )
        if self.op is PredicateOp.IN and not isinstance(self.value, list):
            raise RequestInvalid("'in' needs a JSON list", field="selector.predicate.value_json")

    def matches(self, entry: JournalEntry) -> bool:
        return any(self._holds(v) for v in self.values(entry))

    @property
    def numeric(self) -> bool:
        """Whether the comparison is against a number (or, for 'in', a list holding one)."""
        if self.op is PredicateOp.IN:
            return isinstance(self.value, list) and any(is_number(v) for v in self.value)
        return is_number(self.value)

    def unreadable(self, entry: JournalEntry) -> bool:
        """The entry holds the field as text a numeric comparison cannot read."""
        return self.numeric and any(isinstance(v, str) and as_number(v) is None for v in self.values(entry))

    def values(self, entry: JournalEntry) -> list[Any]:
        head, _, rest = self.field.partition(".")
        if head in PREFIXES and rest:
            sources = _sources(entry, head)
            path = rest
        else:
            sources = [*_sources(entry, "payload"), *_sources(entry, "decision"), *_sources(entry, "after")]
            path = self.field
        found = []
        for source in sources:
            ok, value = _lookup(source, path)
            if ok:
                found.append(value)
        return found

    def _holds(self, actual: Any) -> bool:
        if self.numeric:  # against a number: numbers and number texts, by exact value
            actual = as_number(actual)
            if actual is None:
                return False
            if self.op is PredicateOp.IN:
                return any(as_number(v) == actual for v in self.value)
        elif self.op is PredicateOp.IN:
            return actual in self.value
        try:
            return bool(_COMPARE[self.op](actual, self.value))
        except TypeError:  # comparing a string with a number: no match, not an error
            return False

    def __str__(self) -> str:
        symbol = {v: k.strip() for k, v in _SYMBOLS.items()}[self.op]
        return f"{self.field} {symbol} {dumps(self.value)}"


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def _value(text: str, at: int, raw: str) -> Any:
    """The value written from ``at``: JSON, or a bare word (text); else refused at its column."""
    if _JSON_START.match(raw) is None and _BARE_WORD.fullmatch(raw):
        return raw
    try:
        return loads(raw)
    except JsonInvalid as exc:
        where = at + (exc.pos or 0)
        reason = str(exc).split(" at line ")[0]
        raise _syntax(text, where, f"the value is not JSON ({reason}) nor a bare word") from None


def _syntax(text: str, at: int, what: str) -> RequestInvalid:
    """The selector's text, with a caret under column ``at`` (counted from 1 in the message)."""
    return RequestInvalid(f"{what}, at column {at + 1}:\n  {text}\n  {' ' * at}^", field="predicate")


def _sources(entry: JournalEntry, head: str) -> list[Any]:
    if head == "payload":
        return [entry.event.payload] if entry.event is not None else []
    if head == "decision":
        return [entry.decision]
    return [getattr(c, head) for c in entry.changes if getattr(c, head) is not None]


def _lookup(source: Any, path: str) -> tuple[bool, Any]:
    value = source
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


@dataclass(frozen=True, slots=True)
class Selector:
    kind: SelectorKind
    action_ids: tuple[str, ...] = ()
    correlation_id: str | None = None
    trace_id: str | None = None
    action_type: str | None = None
    from_ts_ms: int | None = None
    to_ts_ms: int | None = None
    predicate: FieldPredicate | None = None

    def validate(self) -> None:
        missing = {
            SelectorKind.ACTION_IDS: not self.action_ids,
            SelectorKind.CORRELATION_ID: not self.correlation_id,
            SelectorKind.TRACE_ID: not self.trace_id,
            SelectorKind.ACTION_TYPE_WINDOW: not self.action_type,
            SelectorKind.FIELD_PREDICATE: self.predicate is None,
        }[self.kind]
        if missing:
            needed = {SelectorKind.ACTION_IDS: "action_ids", SelectorKind.CORRELATION_ID: "correlation_id",
                      SelectorKind.TRACE_ID: "trace_id", SelectorKind.ACTION_TYPE_WINDOW: "action_type",
                      SelectorKind.FIELD_PREDICATE: "predicate"}[self.kind]  # fmt: skip
            raise RequestInvalid(f"a {self.kind.value} selector needs {needed}", field=f"selector.{needed}")
        if self.from_ts_ms is not None and self.to_ts_ms is not None and self.from_ts_ms > self.to_ts_ms:
            raise RequestInvalid("the window ends before it starts", field="selector.to_ts_ms")
        if self.predicate is not None:
            self.predicate.validate()

    def in_window(self, ts_ms: int) -> bool:
        return (self.from_ts_ms is None or ts_ms >= self.from_ts_ms) and (
            self.to_ts_ms is None or ts_ms <= self.to_ts_ms
        )

    def matches(self, entry: JournalEntry) -> bool:
        """Whether one action is a seed (the reference semantics every store must agree with)."""
        if not self.in_window(entry.commit_ts_ms or entry.journal_ts_ms):
            return False
        match self.kind:
            case SelectorKind.ACTION_IDS:
                return entry.action_id in self.action_ids
            case SelectorKind.CORRELATION_ID:
                return entry.correlation_id == self.correlation_id
            case SelectorKind.TRACE_ID:
                return entry.trace is not None and entry.trace.trace_id == self.trace_id
            case SelectorKind.ACTION_TYPE_WINDOW:
                return entry.action_type == self.action_type and self._predicate_holds(entry)
            case SelectorKind.FIELD_PREDICATE:
                return self._predicate_holds(entry) and (
                    self.action_type is None or entry.action_type == self.action_type
                )
        return False

    def _predicate_holds(self, entry: JournalEntry) -> bool:
        return self.predicate is None or self.predicate.matches(entry)

    def unreadable(self, entry: JournalEntry) -> bool:
        """An action the selector would look at whose field its numeric predicate cannot read."""
        if self.predicate is None or not self.in_window(entry.commit_ts_ms or entry.journal_ts_ms):
            return False
        if self.action_type is not None and entry.action_type != self.action_type:
            return False
        return self.predicate.unreadable(entry)

    def describe(self) -> str:
        parts = {
            SelectorKind.ACTION_IDS: f"actions {', '.join(self.action_ids[:5])}"
            + (f" (+{len(self.action_ids) - 5})" if len(self.action_ids) > 5 else ""),
            SelectorKind.CORRELATION_ID: f"correlation id {self.correlation_id}",
            SelectorKind.TRACE_ID: f"trace {self.trace_id}",
            SelectorKind.ACTION_TYPE_WINDOW: f"type {self.action_type}",
            SelectorKind.FIELD_PREDICATE: f"where {self.predicate}",
        }
        text = parts[self.kind]
        if self.kind is SelectorKind.FIELD_PREDICATE and self.action_type:
            text += f" and type {self.action_type}"
        if self.from_ts_ms is not None or self.to_ts_ms is not None:
            text += f" in [{self.from_ts_ms or '-'}, {self.to_ts_ms or '-'}]"
        return text


class Mode(StrEnum):
    DRY_RUN = "DRY_RUN"
    EXECUTE = "EXECUTE"


@dataclass(frozen=True, slots=True)
class RollbackRequest:
    request_id: str
    requested_by: str
    reason: str
    requested_ts_ms: int
    selector: Selector
    mode: Mode = Mode.DRY_RUN
    widen_on_overwrites: bool = False
    # Repair: after the undo is verified, re-drive the seeds' good inputs to the fixed consumer.
    repair: bool = False
    exclude_inputs: tuple[str, ...] = ()  # input action (event) ids not to re-drive
    exclude_input_types: tuple[str, ...] = ()  # input action types not to re-drive

    def validate(self) -> None:
        for name in ("request_id", "requested_by", "reason"):
            if not str(getattr(self, name)).strip():
                raise RequestInvalid("must not be empty", field=name)
        self.selector.validate()
        if not self.repair and (self.exclude_inputs or self.exclude_input_types):
            raise RequestInvalid("excluding inputs from a re-drive needs repair", field="exclude_inputs")


class ControlCommand(StrEnum):
    APPROVE = "APPROVE"
    PAUSE = "PAUSE"
    RESUME = "RESUME"
    ABORT = "ABORT"


@dataclass(frozen=True, slots=True)
class Control:
    request_id: str
    command: ControlCommand
    issued_by: str
    issued_ts_ms: int
    reason: str | None = None
    plan_hash: str | None = None  # APPROVE: the plan approved


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Above any of these, a plan waits for an approve command; above ``max_scope`` actions, a request
    is refused before it is planned (memory and time stay bounded whatever a selector matches)."""

    steps: int = 100
    irreversible: int = 0
    conflicts: int = 0
    unclassified: int = 0
    in_doubt: int = 0
    max_scope: int = 100_000
