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
      EmailSent:                        # irreversible: tell people, undo nothing
        mechanism: irreversible
        topic: ops.notifications
        text: "email to {payload.to} cannot be unsent"
        requires_approval: true

Template strings are described in ``templates``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from processor.catalog.templates import ROOTS, references
from processor.errors import ConfigError, Where
from processor.undo import Mechanism, Reversibility


@dataclass(frozen=True, slots=True)
class ActionSpec:
    action_type: str
    mechanism: Mechanism
    requires_approval: bool = False
    topic: str | None = None  # where the restore, compensation or notification goes
    event_type: str | None = None
    key: Any = None  # template of the Kafka key (compensate)
    payload: Any = None  # template of the payload (compensate)
    tables: tuple[str, ...] = ()  # restore: only these tables ('' = all)
    fields: tuple[str, ...] = ()  # restore: only these fields ('' = the changed ones)
    text: str | None = None  # irreversible: the notification's text (a template)
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
    Mechanism.COMPENSATE: {"topic": True, "event_type": True, "key": False, "payload": True},
    Mechanism.IRREVERSIBLE: {"topic": False, "text": False},
}
_COMMON = {"mechanism", "requires_approval"}


def _spec(path: Path, action_type: str, key_node: yaml.Node, node: yaml.Node) -> ActionSpec:
    line = key_node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        raise _error(path, node, action_type, "must be a mapping with at least 'mechanism'")
    data = yaml.safe_load(yaml.serialize(node))

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
    for name in ("topic", "event_type", "text"):
        if name in data and not isinstance(data[name], str):
            raise fail(name, "must be a string")
    for name in ("tables", "fields"):
        if name in data and not (
            isinstance(data[name], list) and all(isinstance(v, str) for v in data[name])
        ):
            raise fail(name, "must be a list of strings")
    for name in ("key", "payload", "text"):
        for ref in references(data.get(name)):
            if ref.split(".")[0] not in ROOTS:
                roots = ", ".join(sorted(ROOTS))
                raise fail(name, f"refers to '{{{ref}}}', which starts with none of {roots}")
    return ActionSpec(
        action_type, mechanism, approval,
        topic=data.get("topic"), event_type=data.get("event_type"),
        key=data.get("key"), payload=data.get("payload"),
        tables=tuple(data.get("tables", ())), fields=tuple(data.get("fields", ())),
        text=data.get("text"), line=line,
    )  # fmt: skip


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
