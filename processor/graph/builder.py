"""Fold journal entries into the causal graph of actions, in any arrival order.

Edges (``source`` first, ``target`` depending on it):
- caused_by: the target names the source in its causation ids; or the target's traceparent carries a
  span first seen on the source (a propagated context) within the same workflow;
- overwrites: the target changed an entity the source wrote before it (by commit time);
- compensates: the target was caused by rewind's compensation of the source.

Workflows stay apart: a caused_by edge across correlation ids exists only when the cause is explicit
(causation ids), and each such edge is counted. A cause not seen yet is held as a dangling reference and
linked when it arrives. Adding the same action twice changes nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from processor.graph.model import Edge, EdgeKind
from processor.model import JournalEntry

Adjacency = dict[int, list[tuple[int, EdgeKind]]]


@dataclass
class GraphStats:
    nodes: int = 0
    edges: Counter[EdgeKind] | None = None
    cross_workflow_edges: int = 0
    dangling_references: int = 0


class CausalGraph:
    """The whole-graph index: every action an integer node, edges in adjacency lists both ways."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        self._workflow: list[int] = []  # interned correlation id per node, -1 for none
        self._workflows: dict[str, int] = {}
        self._commit_ts: list[int] = []
        self._out: Adjacency = {}  # source -> [(target, kind)]: downstream
        self._in: Adjacency = {}  # target -> [(source, kind)]: upstream
        self._writer: dict[str, int] = {}  # entity -> its latest writer (by commit time)
        self._span_owner: dict[tuple[str, str], int] = {}
        self._dangling: dict[str, list[int]] = {}  # cause id not seen yet -> the actions naming it
        self._compensation_events: dict[str, int] = {}  # rewind's event id -> the action it undoes
        self.edge_counts: Counter[EdgeKind] = Counter()
        self.cross_workflow_edges = 0

    # -- building -----------------------------------------------------------------------------

    def add(self, entry: JournalEntry) -> list[Edge]:
        """Add one action; return the edges this added (empty if the action was known already)."""
        if entry.action_id in self._index:
            return []
        node = self._new_node(entry)
        added: list[Edge] = []
        for cause in entry.causation_ids:
            added += self._link_cause(cause, node)
        if entry.compensated_action_id and entry.compensated_action_id in self._index:
            added += self._edge(self._index[entry.compensated_action_id], node, EdgeKind.COMPENSATES)
        added += self._link_trace(entry, node)
        added += self._link_writes(entry, node)
        for waiting in self._dangling.pop(entry.action_id, []):
            added += self._edge(node, waiting, EdgeKind.CAUSED_BY)
        return added

    def note_compensation(self, event_id: str, compensated_action_id: str) -> None:
        """Rewind emitted ``event_id`` to undo that action: what it causes compensates the action."""
        if compensated_action_id in self._index:
            self._compensation_events[event_id] = self._index[compensated_action_id]

    def _new_node(self, entry: JournalEntry) -> int:
        node = len(self._ids)
        self._ids.append(entry.action_id)
        self._index[entry.action_id] = node
        wf = entry.correlation_id
        self._workflow.append(self._workflows.setdefault(wf, len(self._workflows)) if wf else -1)
        self._commit_ts.append(entry.commit_ts_ms or entry.journal_ts_ms)
        return node

    def _link_cause(self, cause: str, node: int) -> list[Edge]:
        if cause in self._compensation_events:
            return self._edge(self._compensation_events[cause], node, EdgeKind.COMPENSATES)
        source = self._index.get(cause)
        if source is None:
            self._dangling.setdefault(cause, []).append(node)
            return []
        return self._edge(source, node, EdgeKind.CAUSED_BY)

    def _link_trace(self, entry: JournalEntry, node: int) -> list[Edge]:
        if entry.trace is None:
            return []
        key = (entry.trace.trace_id, entry.trace.span_id)
        owner = self._span_owner.setdefault(key, node)
        if owner == node or self._workflow[owner] != self._workflow[node] or self._has_edge(owner, node):
            return []  # a trace alone never links two workflows
        return self._edge(owner, node, EdgeKind.CAUSED_BY)

    def _link_writes(self, entry: JournalEntry, node: int) -> list[Edge]:
        added: list[Edge] = []
        for entity in entry.entities:
            previous = self._writer.get(entity)
            if previous is None:
                self._writer[entity] = node
            elif self._commit_ts[previous] <= self._commit_ts[node]:
                added += self._edge(previous, node, EdgeKind.OVERWRITES)
                self._writer[entity] = node
            else:  # arrived late but happened earlier: the known writer overwrote it
                added += self._edge(node, previous, EdgeKind.OVERWRITES)
        return added

    def _has_edge(self, source: int, target: int) -> bool:
        return any(t == target for t, _ in self._out.get(source, ()))

    def _edge(self, source: int, target: int, kind: EdgeKind) -> list[Edge]:
        if source == target or (target, kind) in self._out.get(source, ()):
            return []
        self._out.setdefault(source, []).append((target, kind))
        self._in.setdefault(target, []).append((source, kind))
        self.edge_counts[kind] += 1
        cross = self._workflow[source] != self._workflow[target]
        if cross and kind is EdgeKind.CAUSED_BY:
            self.cross_workflow_edges += 1
        return [Edge(self._ids[source], self._ids[target], kind, cross)]

    # -- reading ------------------------------------------------------------------------------

    def __contains__(self, action_id: str) -> bool:
        return action_id in self._index

    def __len__(self) -> int:
        return len(self._ids)

    def node(self, action_id: str) -> int:
        try:
            return self._index[action_id]
        except KeyError:
            raise KeyError(f"action {action_id!r} is not in the graph") from None

    def action_id(self, node: int) -> str:
        return self._ids[node]

    def downstream(self, node: int) -> list[tuple[int, EdgeKind]]:
        return self._out.get(node, [])

    def upstream(self, node: int) -> list[tuple[int, EdgeKind]]:
        return self._in.get(node, [])

    def dangling(self) -> dict[str, list[str]]:
        """Causes named but never seen, with the actions that named them."""
        return {cause: [self._ids[n] for n in nodes] for cause, nodes in self._dangling.items()}

    def stats(self) -> GraphStats:
        return GraphStats(
            len(self._ids), Counter(self.edge_counts), self.cross_workflow_edges, len(self._dangling)
        )
