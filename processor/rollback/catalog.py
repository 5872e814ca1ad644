"""The action catalog: for every action type, how it is undone (restore, compensate) or that it cannot be.

Loaded from YAML and validated on load; an error names the file, the line and the field.

    actions:
      OrderPlaced:
        mechanism: compensate
        ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from processor.errors import ConfigError, Where
from processor.model import Reversibility


class Mechanism(StrEnum):
    RESTORE = "restore"
    COMPENSATE = "compensate"
    IRREVERSIBLE = "irreversible"

    @property
    def reversibility(self) -> Reversibility:
        return {
            Mechanism.RESTORE: Reversibility.RESTORABLE,
            Mechanism.COMPENSATE: Reversibility.COMPENSABLE,
            Mechanism.IRREVERSIBLE: Reversibility.IRREVERSIBLE,
        }[self]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    action_type: str
    mechanism: Mechanism
    requires_approval: bool = False
    options: dict[str, Any] = field(default_factory=dict)
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


def _spec(path: Path, action_type: str, key_node: yaml.Node, node: yaml.Node) -> ActionSpec:
    line = key_node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        raise _error(path, node, action_type, "must be a mapping with at least 'mechanism'")
    data = yaml.safe_load(yaml.serialize(node))
    raw = data.get("mechanism")
    try:
        mechanism = Mechanism(raw)
    except ValueError:
        where = _mapping_item(node, "mechanism", path) or node
        choices = ", ".join(m.value for m in Mechanism)
        raise _error(
            path, where, f"{action_type}.mechanism", f"is {raw!r}; expected one of {choices}"
        ) from None
    approval = data.get("requires_approval", False)
    if not isinstance(approval, bool):
        raise _error(path, node, f"{action_type}.requires_approval", "must be true or false")
    options = {k: v for k, v in data.items() if k not in ("mechanism", "requires_approval")}
    return ActionSpec(action_type, mechanism, approval, options, line)


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
