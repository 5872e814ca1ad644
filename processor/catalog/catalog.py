"""The action catalog: for every action type, how it is undone (restore, compensate) or that it cannot be.

Loaded from YAML and validated on load; an error names the file, the line and the field.

    actions:
      PaymentCaptured:                  # compensate: a business command that undoes the effect
        mechanism: compensate
        topic: payments.commands
        event_type: RefundPayment
        key: "{payload.payment_id}"
        payload: {payment_id: "{payload.payment_id}", amount: "{payload.amount}"}
      PriceApplied:                     # restore: set the rows the action changed back
        mechanism: restore
        topic: orders.commands
        event_type: RestoreRow          # optional, this is the default
        tables: [public.orders]         # optional: only these tables (default: all it changed)
        fields: [price, rule_version]   # optional: only these fields (default: the changed ones)
        redrive:                        # optional: a repair re-drives this action's inputs here
          topic: pricing.redrive        #   (the fixed service's own topic, not the original one)
          event_type: OrderRequested    #   optional: default the input's own type
          envelope: outbox              #   optional: outbox (payload + headers, as the router
                                        #   publishes) or command (rewind's envelope)
          headers: {id: id, type: eventType}  # optional: the outbox envelope's header names
      RevenueCounted:                   # replay: the effect lives in a derived store (a read model)
        mechanism: replay
        store: revenue_per_sku          #   rebuilt, not patched: from a filtered replay of
        topics: [outbox.event.order]    #   these topics (rewind replay --request <id> ...)
        topic: reporting.notifications  #   optional: who is told to rebuild (default: the notify topic)
      EmailSent:                        # irreversible: tell people, undo nothing
        mechanism: irreversible
        topic: ops.notifications
        text: "email to {payload.to} cannot be unsent"
        requires_approval: true
      RefundIssued:                     # any mechanism: approval_role asks an approver whose key
        mechanism: irreversible         #   holds this role (the keyring's), besides the others
        approval_role: finance

Template strings are described in ``templates``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from processor.catalog.templates import ROOTS, references
from processor.errors import ConfigError, Where
from processor.undo import Mechanism, Reversibility


class Envelope(StrEnum):
    OUTBOX = "outbox"  # value: the payload; id, type, correlation and trace in headers
    COMMAND = "command"  # rewind's compensation envelope, as commands are sent


REDRIVE_HEADERS = {"id": "id", "type": "eventType", "correlation_id": "correlationId",
                   "traceparent": "traceparent"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class RedriveTarget:
    """Where a repair sends an action type's good inputs again: the fixed consumer's own topic."""

    topic: str
    event_type: str | None = None  # default: the input's own type
    envelope: Envelope = Envelope.OUTBOX
    headers: dict[str, str] = field(default_factory=lambda: dict(REDRIVE_HEADERS))


@dataclass(frozen=True, slots=True)
class ActionSpec:
    action_type: str
    mechanism: Mechanism
    requires_approval: bool = False
    approval_role: str | None = None  # an approver must hold this role (implies requires_approval)
    topic: str | None = None  # where the restore, compensation or notification goes
    event_type: str | None = None
    key: Any = None  # template of the Kafka key (compensate)
    payload: Any = None  # template of the payload (compensate)
    tables: tuple[str, ...] = ()  # restore: only these tables ('' = all)
    fields: tuple[str, ...] = ()  # restore: only these fields ('' = the changed ones)
    # compensate: what the owner's answer sets, per table (default: it reverses the action's change)
    effect: dict[str, dict[str, Any]] = field(default_factory=dict)
    text: str | None = None  # irreversible: the notification's text (a template)
    redrive: RedriveTarget | None = None  # repair: where this action's inputs are re-driven
    store: str | None = None  # replay: the derived store that rebuilds
    replay_topics: tuple[str, ...] = ()  # replay: the topics it rebuilds from, filtered
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Catalog:
    actions: dict[str, ActionSpec] = field(default_factory=dict)
    source: str | None = None

    def reversibility(self, action_type: str) -> Reversibility:
        spec = self.actions.get(action_type)
        return spec.mechanism.reversibility if spec else Reversibility.UNCLASSIFIED

    @classmethod
    def empty(cls) -> Catalog:
        return cls()


def load_catalog(path: Path) -> Catalog:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read catalog: {exc.strerror}", where=Where(file=str(path))) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"catalog is not UTF-8 text: byte {exc.start} is {exc.object[exc.start]:#04x}",
            where=Where(file=str(path)),
        ) from None
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"catalog is not valid YAML: {exc}", where=Where(file=str(path))) from exc
    if root is None:
        raise ConfigError("catalog is empty", where=Where(file=str(path)), hint="add an 'actions:' mapping")
    actions_node = _mapping_item(root, "actions", path)
    if not isinstance(actions_node, yaml.MappingNode):
        raise _error(path, actions_node or root, "actions", "must be a mapping of action type -> spec")
    specs: dict[str, ActionSpec] = {}
    for key_node, spec_node in actions_node.value:
        action_type = str(key_node.value)
        specs[action_type] = _spec(path, action_type, key_node, spec_node)
    return Catalog(specs, str(path))


_FIELDS: dict[Mechanism, dict[str, bool]] = {  # allowed fields -> required
    Mechanism.RESTORE: {"topic": True, "event_type": False, "tables": False, "fields": False},
    Mechanism.COMPENSATE: {
        "topic": True,
        "event_type": True,
        "key": False,
        "payload": True,
        "tables": False,
        "effect": False,
    },
    Mechanism.IRREVERSIBLE: {"topic": False, "text": False},
    Mechanism.REPLAY: {"store": True, "topics": True, "topic": False, "text": False},
}
_COMMON = {"mechanism", "requires_approval", "approval_role", "redrive"}


def _spec(path: Path, action_type: str, key_node: yaml.Node, node: yaml.Node) -> ActionSpec:
    line = key_node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        raise _error(path, node, action_type, "must be a mapping with at least 'mechanism'")
    try:
        data = yaml.safe_load(yaml.serialize(node))
    except yaml.YAMLError as exc:  # a tag no safe constructor knows (!python/object, !anything)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _error(path, node, action_type, f"holds what plain YAML cannot read: {problem}") from None

    def fail(name: str, problem: str) -> ConfigError:  # at the field, or at the action when it is missing
        return _error(path, _mapping_item(node, name, path) or key_node, f"{action_type}.{name}", problem)

    raw = data.get("mechanism")
    try:
        mechanism = Mechanism(raw)
    except ValueError:
        choices = ", ".join(m.value for m in Mechanism)
        raise fail("mechanism", f"is {raw!r}; expected one of {choices}") from None
    approval = data.get("requires_approval", False)
    if not isinstance(approval, bool):
        raise fail("requires_approval", "must be true or false")
    allowed = _FIELDS[mechanism]
    for name in data:
        if name not in allowed and name not in _COMMON:
            raise fail(name, f"is not a field of a {mechanism.value} action ({', '.join(sorted(allowed))})")
    for name, required in allowed.items():
        if required and data.get(name) in (None, ""):
            raise fail(name, f"is required for mechanism {mechanism.value}")
    for name in ("topic", "event_type", "text", "store", "approval_role"):
        if name in data and not isinstance(data[name], str):
            raise fail(name, "must be a string")
    for name in ("tables", "fields", "topics"):
        if name in data and not (
            isinstance(data[name], list) and all(isinstance(v, str) for v in data[name])
        ):
            raise fail(name, "must be a list of strings")
    for name in ("key", "payload", "text"):
        for ref in references(data.get(name)):
            if ref.split(".")[0] not in ROOTS:
                roots = ", ".join(sorted(ROOTS))
                raise fail(name, f"refers to '{{{ref}}}', which starts with none of {roots}")
    redrive = _redrive(data.get("redrive"), fail) if "redrive" in data else None
    effect = data.get("effect", {})
    if not (isinstance(effect, dict) and all(isinstance(v, dict) for v in effect.values())):
        raise fail(
            "effect",
            "must map a table to the fields its compensation sets (e.g. payments: {status: REFUNDED})",
        )
    return ActionSpec(
        action_type, mechanism, approval, redrive=redrive,
        topic=data.get("topic"), event_type=data.get("event_type"),
        key=data.get("key"), payload=data.get("payload"),
        tables=tuple(data.get("tables", ())), fields=tuple(data.get("fields", ())),
        text=data.get("text"), store=data.get("store"), replay_topics=tuple(data.get("topics", ())),
        effect={str(t): dict(v) for t, v in effect.items()}, line=line,
        approval_role=data.get("approval_role") or None,
    )  # fmt: skip


def _redrive(raw: Any, fail: Callable[[str, str], ConfigError]) -> RedriveTarget:
    if not isinstance(raw, dict):
        raise fail("redrive", "must be a mapping with at least 'topic'")
    unknown = set(raw) - {"topic", "event_type", "envelope", "headers"}
    if unknown:
        found = ", ".join(sorted(unknown))
        raise fail("redrive", f"has {found}; it takes topic, event_type, envelope, headers")
    if not isinstance(raw.get("topic"), str) or not raw["topic"]:
        raise fail("redrive", "needs 'topic': the fixed consumer's own topic")
    if "event_type" in raw and not isinstance(raw["event_type"], str):
        raise fail("redrive", "'event_type' must be a string")
    try:
        envelope = Envelope(raw.get("envelope", Envelope.OUTBOX.value))
    except ValueError:
        raise fail("redrive", f"'envelope' is {raw['envelope']!r}; expected outbox or command") from None
    headers = raw.get("headers", {})
    if not isinstance(headers, dict) or not all(
        k in REDRIVE_HEADERS and isinstance(v, str) for k, v in headers.items()
    ):
        raise fail("redrive", f"'headers' maps {', '.join(REDRIVE_HEADERS)} to header names")
    return RedriveTarget(raw["topic"], raw.get("event_type"), envelope, REDRIVE_HEADERS | headers)


def _mapping_item(node: yaml.Node, name: str, path: Path) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        raise _error(path, node, "(top level)", "must be a mapping")
    for key, value in node.value:
        if key.value == name:
            found: yaml.Node = value
            return found
    return None


def _error(path: Path, node: yaml.Node, field_name: str, problem: str) -> ConfigError:
    return ConfigError(
        f"catalog field '{field_name}' {problem}",
        where=Where(file=str(path), line=node.start_mark.line + 1),
    )
