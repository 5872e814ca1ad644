"""Edges between actions, and what the builder reports about them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EdgeKind(StrEnum):
    CAUSED_BY = "caused_by"  # effect <- cause: explicit causation ids, or a shared trace span
    OVERWRITES = "overwrites"  # a later action changed an entity an earlier one wrote
    COMPENSATES = "compensates"  # an action caused by rewind's compensation of another


@dataclass(frozen=True, slots=True)
class Edge:
    """``source`` happened first; ``target`` depends on it (was caused by it, or overwrote it)."""

    source: str
    target: str
    kind: EdgeKind
    cross_workflow: bool = False


class CycleError(ValueError):
    """The causal links form a cycle: a data error, reported with the actions in it."""

    def __init__(self, actions: list[str]) -> None:
        super().__init__(f"causal cycle among {len(actions)} actions: {' -> '.join(actions[:20])}")
        self.actions = actions
