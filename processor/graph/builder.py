"""Fold journal entries into the causal graph of actions, in any arrival order.

Edges (``source`` first, ``target`` depending on it):
- caused_by: the target names the source in its causation ids; or the target's traceparent carries a
  span first seen on the source (a propagated context) within the same workflow;
- overwrites: the target changed an entity the source wrote before it (by commit time);
- compensates: the target was caused by rewind's compensation of the source.

Workflows stay apart: a caused_by edge across correlation ids exists only when the cause is explicit
(causation ids), and each such edge is counted. A cause not seen yet is held as a dangling reference and
linked when it arrives. Adding the same action twice changes nothing.

The index is compact (see ``arrays``): nodes are integers, ids and keys live in numpy arrays, edges in
append-only arrays from which CSR adjacency is built when a query needs it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from processor.graph.arrays import Growable, HashIndex, StringStore, key64
from processor.graph.model import Edge, EdgeKind
from processor.model import JournalEntry

KIND_CODE = {EdgeKind.CAUSED_BY: 1, EdgeKind.OVERWRITES: 2, EdgeKind.COMPENSATES: 4}
CODE_KIND = {v: k for k, v in KIND_CODE.items()}
IntArray = npt.NDArray[np.int32]


@dataclass(frozen=True)
class Csr:
    """Adjacency in compressed rows: the neighbours of node n are ``nbrs[indptr[n]:indptr[n+1]]``."""

    indptr: npt.NDArray[np.int64]
    nbrs: IntArray
    kinds: npt.NDArray[np.int8]


@dataclass
class GraphStats:
    nodes: int
    edges: Counter[EdgeKind]
    cross_workflow_edges: int
    dangling_references: int
    bytes: int


class CausalGraph:
    """The whole-graph index of every action."""

    def __init__(self) -> None:
        self._ids = StringStore()
        self._index = HashIndex()
        self._collisions: dict[str, int] = {}  # ids whose 64-bit key another id took first
        self._workflow = Growable(np.uint64)  # key64 of the correlation id, 0 for none
        self._commit_ts = Growable(np.int64)
        self._src, self._dst, self._kind = Growable(np.int32), Growable(np.int32), Growable(np.int8)
        self._writer = HashIndex()  # key64(entity) -> its latest writer (by commit time)
        self._span_owner = HashIndex()  # key64(trace id + span id) -> the action first seen with it
        self._dangling: dict[str, list[int]] = {}  # cause id not seen yet -> the actions naming it
        self._compensation_events: dict[str, int] = {}  # rewind's event id -> the action it undoes
        self.edge_counts: Counter[EdgeKind] = Counter()
        self.cross_workflow_edges = 0
        self._csr: dict[str, tuple[int, Csr]] = {}

    # -- building -----------------------------------------------------------------------------

    def add(self, entry: JournalEntry) -> list[Edge]:
        """Add one action; return the edges this added (empty if the action was known already)."""
        if self.find(entry.action_id) >= 0:
            return []
        node = self._new_node(entry)
        added: list[Edge] = []
        made: set[tuple[int, int, EdgeKind]] = set()
        for cause in entry.causation_ids:
            added += self._link_cause(cause, node, made)
        compensated = self.find(entry.compensated_action_id) if entry.compensated_action_id else -1
        if compensated >= 0:
            added += self._edge(compensated, node, EdgeKind.COMPENSATES, made)
        added += self._link_trace(entry, node, made)
        added += self._link_writes(entry, node, made)
        for waiting in self._dangling.pop(entry.action_id, []):
            added += self._edge(node, waiting, EdgeKind.CAUSED_BY, made)
        return added

    def note_compensation(self, event_id: str, compensated_action_id: str) -> None:
        """Rewind emitted ``event_id`` to undo that action: what it causes compensates the action."""
        node = self.find(compensated_action_id)
        if node >= 0:
            self._compensation_events[event_id] = node

    def _new_node(self, entry: JournalEntry) -> int:
        node = self._ids.append(entry.action_id)
        key = key64(entry.action_id)
        if self._index.get(key) >= 0:
            self._collisions[entry.action_id] = node
        else:
            self._index.put(key, node)
        self._workflow.append(key64(entry.correlation_id) if entry.correlation_id else 0)
        self._commit_ts.append(entry.commit_ts_ms or entry.journal_ts_ms)
        return node

    def _link_cause(self, cause: str, node: int, made: set[tuple[int, int, EdgeKind]]) -> list[Edge]:
        if cause in self._compensation_events:
            return self._edge(self._compensation_events[cause], node, EdgeKind.COMPENSATES, made)
        source = self.find(cause)
        if source < 0:
            self._dangling.setdefault(cause, []).append(node)
            return []
        return self._edge(source, node, EdgeKind.CAUSED_BY, made)

    def _link_trace(self, entry: JournalEntry, node: int, made: set[tuple[int, int, EdgeKind]]) -> list[Edge]:
        if entry.trace is None:
            return []
        key = key64(f"{entry.trace.trace_id}/{entry.trace.span_id}")
        owner = self._span_owner.get(key)
        if owner < 0:
            self._span_owner.put(key, node)
            return []
        if self._workflow[owner] != self._workflow[node] or (owner, node, EdgeKind.CAUSED_BY) in made:
            return []  # a trace alone never links two workflows
        return self._edge(owner, node, EdgeKind.CAUSED_BY, made)

    def _link_writes(
        self, entry: JournalEntry, node: int, made: set[tuple[int, int, EdgeKind]]
    ) -> list[Edge]:
        added: list[Edge] = []
        for entity in entry.entities:
            key = key64(entity)
            previous = self._writer.get(key)
            if previous < 0:
                self._writer.put(key, node)
            elif self._commit_ts[previous] <= self._commit_ts[node]:
                added += self._edge(previous, node, EdgeKind.OVERWRITES, made)
                self._writer.put(key, node)
            else:  # arrived late but happened earlier: the known writer overwrote it
                added += self._edge(node, previous, EdgeKind.OVERWRITES, made)
        return added

    def _edge(
        self, source: int, target: int, kind: EdgeKind, made: set[tuple[int, int, EdgeKind]]
    ) -> list[Edge]:
        # Duplicates can only arise within one add(): an edge links the new node, once per call.
        if source == target or (source, target, kind) in made:
            return []
        made.add((source, target, kind))
        self._src.append(source)
        self._dst.append(target)
        self._kind.append(KIND_CODE[kind])
        self.edge_counts[kind] += 1
        cross = bool(self._workflow[source] != self._workflow[target])
        if cross and kind is EdgeKind.CAUSED_BY:
            self.cross_workflow_edges += 1
        return [Edge(self._ids[source], self._ids[target], kind, cross)]

    # -- reading ------------------------------------------------------------------------------

    def find(self, action_id: str) -> int:
        """The node of an action, or -1."""
        node = self._index.get(key64(action_id))
        if node >= 0 and self._ids[node] == action_id:
            return node
        return self._collisions.get(action_id, -1)

    def node(self, action_id: str) -> int:
        node = self.find(action_id)
        if node < 0:
            raise KeyError(f"action {action_id!r} is not in the graph")
        return node

    def nodes(self, action_ids: Any) -> IntArray:
        return np.fromiter((self.node(a) for a in action_ids), dtype=np.int32)

    def __contains__(self, action_id: str) -> bool:
        return self.find(action_id) >= 0

    def __len__(self) -> int:
        return len(self._ids)

    def action_id(self, node: int) -> str:
        return self._ids[node]

    def csr(self, direction: str) -> Csr:
        """Adjacency downstream ('out': source -> targets) or upstream ('in'), rebuilt when edges grew."""
        cached = self._csr.get(direction)
        if cached and cached[0] == len(self._src):
            return cached[1]
        src, dst = (
            (self._src.view(), self._dst.view())
            if direction == "out"
            else (self._dst.view(), self._src.view())
        )
        order = np.argsort(src, kind="stable")
        indptr = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=len(self)), out=indptr[1:])
        csr = Csr(indptr, dst[order].astype(np.int32), self._kind.view()[order])
        self._csr[direction] = (len(self._src), csr)
        return csr

    def downstream(self, node: int) -> list[tuple[int, EdgeKind]]:
        return self._neighbours(self.csr("out"), node)

    def upstream(self, node: int) -> list[tuple[int, EdgeKind]]:
        return self._neighbours(self.csr("in"), node)

    @staticmethod
    def _neighbours(csr: Csr, node: int) -> list[tuple[int, EdgeKind]]:
        lo, hi = int(csr.indptr[node]), int(csr.indptr[node + 1])
        return [(int(n), CODE_KIND[int(k)]) for n, k in zip(csr.nbrs[lo:hi], csr.kinds[lo:hi], strict=True)]

    def edge_set(self) -> set[tuple[str, str, EdgeKind]]:
        """Every edge by action ids: comparable between graphs whose node numbers differ."""
        src, dst, kind = self._src.view().tolist(), self._dst.view().tolist(), self._kind.view().tolist()
        return {(self._ids[s], self._ids[d], CODE_KIND[k]) for s, d, k in zip(src, dst, kind, strict=True)}

    def dangling(self) -> dict[str, list[str]]:
        """Causes named but never seen, with the actions that named them."""
        return {cause: [self._ids[n] for n in nodes] for cause, nodes in self._dangling.items()}

    def stats(self) -> GraphStats:
        return GraphStats(
            len(self), Counter(self.edge_counts), self.cross_workflow_edges, len(self._dangling), self.nbytes
        )

    @property
    def nbytes(self) -> int:
        """Bytes held by the index's arrays (CSR caches excluded: they are rebuilt on demand)."""
        arrays = (self._workflow, self._commit_ts, self._src, self._dst, self._kind)
        tables = (self._index, self._writer, self._span_owner)
        return self._ids.nbytes + sum(a.nbytes for a in arrays) + sum(t.nbytes for t in tables)

    # -- checkpoint ---------------------------------------------------------------------------

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        blob, ends = self._ids.arrays()
        counts = [self.edge_counts[k] for k in EdgeKind]
        return {
            "id_blob": blob, "id_ends": ends,
            "index_keys": self._index.keys, "index_values": self._index.values,
            "workflow": self._workflow.view(), "commit_ts": self._commit_ts.view(),
            "src": self._src.view(), "dst": self._dst.view(), "kind": self._kind.view(),
            "writer_keys": self._writer.keys, "writer_values": self._writer.values,
            "span_keys": self._span_owner.keys, "span_values": self._span_owner.values,
            "edge_counts": np.array([*counts, self.cross_workflow_edges], dtype=np.int64),
        }  # fmt: skip

    def small_state(self) -> dict[str, Any]:
        """The parts kept as plain data: dangling references, rewind's events, id collisions."""
        return {"dangling": self._dangling, "compensation_events": self._compensation_events,
                "collisions": self._collisions}  # fmt: skip

    @classmethod
    def from_arrays(cls, arrays: dict[str, npt.NDArray[Any]], small: dict[str, Any]) -> CausalGraph:
        g = cls()
        g._ids = StringStore.of(arrays["id_blob"], arrays["id_ends"])
        g._index = _table(arrays["index_keys"], arrays["index_values"])
        g._workflow, g._commit_ts = Growable.of(arrays["workflow"]), Growable.of(arrays["commit_ts"])
        g._src, g._dst, g._kind = (
            Growable.of(arrays["src"]),
            Growable.of(arrays["dst"]),
            Growable.of(arrays["kind"]),
        )
        g._writer = _table(arrays["writer_keys"], arrays["writer_values"])
        g._span_owner = _table(arrays["span_keys"], arrays["span_values"])
        *counts, cross = arrays["edge_counts"].tolist()
        g.edge_counts = Counter({k: c for k, c in zip(EdgeKind, counts, strict=True) if c})
        g.cross_workflow_edges = cross
        g._dangling = {k: list(v) for k, v in small["dangling"].items()}
        g._compensation_events = dict(small["compensation_events"])
        g._collisions = dict(small["collisions"])
        return g


def _table(keys: npt.NDArray[np.uint64], values: npt.NDArray[np.int32]) -> HashIndex:
    table = HashIndex(len(keys))
    table.keys, table.values = keys.copy(), values.copy()
    table.size = int(np.count_nonzero(keys))
    return table
