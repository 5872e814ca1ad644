"""Fold journal entries into the causal graph of actions, in any arrival order.

Edges (``source`` first, ``target`` depending on it):
- caused_by: the target names the source in its causation ids; or both carry the same trace span (a
  propagated context) within one workflow, the earliest by commit time being the source;
- overwrites: the target is the next writer, by commit time, of an entity the source wrote;
- compensates: the target was caused by rewind's compensation of the source.

Workflows stay apart: a caused_by edge across correlation ids exists only when the cause is explicit
(causation ids), and each such edge is counted. Explicit edges are stored as they are found; a cause
not seen yet waits as a dangling reference and is linked when it arrives. Overwrites and trace links are
*derived* from the writes and spans tables when adjacency is built, so the graph is the same whatever
order the journal's partitions deliver it in. Adding the same action twice changes nothing.

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
from processor.journal.model import JournalEntry

KIND_CODE = {EdgeKind.CAUSED_BY: 1, EdgeKind.OVERWRITES: 2, EdgeKind.COMPENSATES: 4}
CODE_KIND = {v: k for k, v in KIND_CODE.items()}
IntArray = npt.NDArray[np.int32]
EdgeArrays = tuple[IntArray, IntArray, npt.NDArray[np.int8]]
NODE_ARRAYS = (
    "idkey",
    "workflow",
    "commit_ts",
    "src",
    "dst",
    "kind",
    "w_entity",
    "w_node",
    "s_span",
    "s_node",
)


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
        self._idkey = Growable(np.uint64)  # key64 of the action id: an arrival-independent tie-break
        self._workflow = Growable(np.uint64)  # key64 of the correlation id, 0 for none
        self._commit_ts = Growable(np.int64)
        self._src, self._dst, self._kind = Growable(np.int32), Growable(np.int32), Growable(np.int8)
        self._w_entity, self._w_node = Growable(np.uint64), Growable(np.int32)  # every write
        self._s_span, self._s_node = Growable(np.uint64), Growable(np.int32)  # every traced action
        self._dangling: dict[str, list[tuple[int, int]]] = {}  # id not seen yet -> [(waiting node, kind)]
        self._compensation_events: dict[str, int] = {}  # rewind's event id -> the action it undoes
        # Only an action that resolves dangling references gains edges to older nodes: the one place a
        # cycle can close. They are checked by ``new_cycles`` instead of scanning the whole graph.
        self._resolved: list[int] = []
        self.cross_workflow_edges = 0
        self._derived: tuple[int, EdgeArrays] | None = None
        self._all: tuple[int, EdgeArrays] | None = None
        self._writes: tuple[int, tuple[npt.NDArray[np.uint64], IntArray]] | None = None
        self._orders: dict[str, tuple[int, npt.NDArray[np.intp]]] = {}  # table -> (members, order)
        self._csr: dict[str, tuple[int, Csr]] = {}

    # -- building -----------------------------------------------------------------------------

    def add(self, entry: JournalEntry) -> list[Edge]:
        """Add one action; return the explicit edges this added (empty if the action was known)."""
        if self.find(entry.action_id) >= 0:
            return []
        node = self._new_node(entry)
        made: set[tuple[int, int, EdgeKind]] = set()
        added: list[Edge] = []
        for cause in entry.causation_ids:
            if cause in self._compensation_events:
                added += self._edge(self._compensation_events[cause], node, EdgeKind.COMPENSATES, made)
            else:
                added += self._link(cause, node, EdgeKind.CAUSED_BY, made)
        if entry.compensated_action_id:
            added += self._link(entry.compensated_action_id, node, EdgeKind.COMPENSATES, made)
        if entry.trace is not None:
            self._s_span.append(key64(f"{entry.trace.trace_id}/{entry.trace.span_id}"))
            self._s_node.append(node)
        for entity in entry.entities:
            self._w_entity.append(key64(entity))
            self._w_node.append(node)
        waiting_list = self._dangling.pop(entry.action_id, [])
        for waiting, code in waiting_list:
            added += self._edge(node, waiting, CODE_KIND[code], made)
        if waiting_list:
            self._resolved.append(node)
        return added

    def take_resolved(self) -> list[int]:
        """Nodes that linked late references since the last call: where new cycles could be."""
        resolved, self._resolved = self._resolved, []
        return resolved

    def note_compensation(self, event_id: str, compensated_action_id: str) -> None:
        """Rewind emitted ``event_id`` to undo that action: what it causes compensates the action."""
        node = self.find(compensated_action_id)
        if node < 0:
            return
        self._compensation_events[event_id] = node
        # Answers already added before rewind's event was known (a graph built without the worker, as
        # the graph builder's checkpoint is) wait on the event id: they compensate the action.
        waiting = self._dangling.pop(event_id, [])
        made: set[tuple[int, int, EdgeKind]] = set()
        for target, _code in waiting:
            self._edge(node, target, EdgeKind.COMPENSATES, made)
        if waiting:
            self._resolved.append(node)

    def _new_node(self, entry: JournalEntry) -> int:
        node = self._ids.append(entry.action_id)
        key = key64(entry.action_id)
        if self._index.get(key) >= 0:
            self._collisions[entry.action_id] = node
        else:
            self._index.put(key, node)
        self._idkey.append(key)
        self._workflow.append(key64(entry.correlation_id) if entry.correlation_id else 0)
        self._commit_ts.append(entry.commit_ts_ms or entry.journal_ts_ms)
        return node

    def _link(
        self, source_id: str, node: int, kind: EdgeKind, made: set[tuple[int, int, EdgeKind]]
    ) -> list[Edge]:
        source = self.find(source_id)
        if source < 0:
            self._dangling.setdefault(source_id, []).append((node, KIND_CODE[kind]))
            return []
        return self._edge(source, node, kind, made)

    def _edge(
        self, source: int, target: int, kind: EdgeKind, made: set[tuple[int, int, EdgeKind]]
    ) -> list[Edge]:
        # Stored edges always touch the node being added, so duplicates can only arise within one add().
        if source == target or (source, target, kind) in made:
            return []
        made.add((source, target, kind))
        self._src.append(source)
        self._dst.append(target)
        self._kind.append(KIND_CODE[kind])
        cross = bool(self._workflow[source] != self._workflow[target])
        if cross and kind is EdgeKind.CAUSED_BY:
            self.cross_workflow_edges += 1
        return [Edge(self._ids[source], self._ids[target], kind, cross)]

    # -- edges, stored and derived --------------------------------------------------------------

    def _version(self) -> int:
        return len(self._src) + len(self._w_node) + len(self._s_node)

    def all_edges(self) -> EdgeArrays:
        """Stored and derived edges, each once: sources, targets, kinds (cached until the graph grows)."""
        if self._all is not None and self._all[0] == self._version():
            return self._all[1]
        d_src, d_dst, d_kind = self._derived_edges()
        src = np.concatenate([self._src.view(), d_src])
        dst = np.concatenate([self._dst.view(), d_dst])
        kind = np.concatenate([self._kind.view(), d_kind])
        packed = (src.astype(np.int64) << 34) | (dst.astype(np.int64) << 3) | kind.astype(np.int64)
        _, first = np.unique(packed, return_index=True)
        self._all = (self._version(), (src[first], dst[first], kind[first]))
        return self._all[1]

    def _derived_edges(self) -> EdgeArrays:
        if self._derived is not None and self._derived[0] == self._version():
            return self._derived[1]
        o_src, o_dst = self._overwrite_chain()
        t_src, t_dst = self._trace_links()
        derived = (
            np.concatenate([o_src, t_src]).astype(np.int32),
            np.concatenate([o_dst, t_dst]).astype(np.int32),
            np.concatenate([np.full(len(o_src), KIND_CODE[EdgeKind.OVERWRITES]),
                            np.full(len(t_src), KIND_CODE[EdgeKind.CAUSED_BY])]).astype(np.int8),
        )  # fmt: skip
        self._derived = (self._version(), derived)
        return derived

    def _order(self, name: str, groups: npt.NDArray[np.uint64], nodes: IntArray) -> npt.NDArray[np.intp]:
        """Sort members by group, then commit time, then id key (the same in every arrival order).

        The tables only grow, so the last order is kept per table and new members are merged into it:
        a plan right after a few new journal entries must not pay a full sort of a million writes.
        """
        cached = self._orders.get(name)
        total = len(groups)
        if cached is not None and cached[0] == total:
            return cached[1]
        if cached is None or total - cached[0] > max(1_000, cached[0] // 50):
            order = np.lexsort((self._idkey.view()[nodes], self._commit_ts.view()[nodes], groups))
        else:
            order = self._merge_order(cached[0], cached[1], groups, nodes)
        self._orders[name] = (total, order)
        return order

    def _merge_order(
        self, known: int, old: npt.NDArray[np.intp], groups: npt.NDArray[np.uint64], nodes: IntArray
    ) -> npt.NDArray[np.intp]:
        ts, idkey = self._commit_ts.view(), self._idkey.view()
        new = np.arange(known, len(groups))
        new = new[np.lexsort((idkey[nodes[new]], ts[nodes[new]], groups[new]))]
        sorted_groups = groups[old]
        positions = []
        for i in new.tolist():
            lo = int(np.searchsorted(sorted_groups, groups[i]))
            hi = int(np.searchsorted(sorted_groups, groups[i], side="right"))
            members = nodes[old[lo:hi]]  # the same group: few, in (commit time, id key) order
            mine = (ts[nodes[i]], idkey[nodes[i]])
            positions.append(
                lo + sum(1 for t, k in zip(ts[members], idkey[members], strict=True) if (t, k) < mine)
            )
        return np.insert(old, positions, new)

    def _writes_sorted(self) -> tuple[npt.NDArray[np.uint64], IntArray]:
        """Every write as (entity key, node), by entity, then commit order (cached per version)."""
        if self._writes is not None and self._writes[0] == self._version():
            return self._writes[1]
        entity, node = self._w_entity.view(), self._w_node.view()
        order = self._order("writes", entity, node)
        self._writes = (self._version(), (entity[order], node[order]))
        return self._writes[1]

    def warm(self) -> None:
        """Build the caches a plan needs (downstream adjacency, write order) ahead of the first query."""
        self.csr("out")
        self._writes_sorted()

    def writers(self, entity: str) -> IntArray:
        """Every action that wrote the entity ('table:key'), in commit order."""
        entities, nodes = self._writes_sorted()
        key = np.uint64(key64(entity))
        lo, hi = np.searchsorted(entities, key), np.searchsorted(entities, key, side="right")
        return nodes[lo:hi]

    def _overwrite_chain(self) -> tuple[IntArray, IntArray]:
        """Per entity, each writer -> the next one."""
        e, n = self._writes_sorted()
        chain = (e[:-1] == e[1:]) & (n[:-1] != n[1:])
        return n[:-1][chain], n[1:][chain]

    def _trace_links(self) -> tuple[IntArray, IntArray]:
        """Per span, the earliest action -> each other one of the same workflow."""
        span, node = self._s_span.view(), self._s_node.view()
        order = self._order("spans", span, node)
        s, n = span[order], node[order]
        first = np.ones(len(s), dtype=bool)
        first[1:] = s[1:] != s[:-1]
        owner = n[np.maximum.accumulate(np.where(first, np.arange(len(s)), 0))]
        workflow = self._workflow.view()
        linked = ~first & (workflow[owner] == workflow[n]) & (owner != n)
        owner, n = owner[linked], n[linked]
        # Commit times tie at millisecond resolution: an explicit edge between the two (an outcome
        # naming its intent) says which came first, and the trace link must not point back against it.
        stored = (self._src.view().astype(np.int64) << 32) | self._dst.view().astype(np.int64)
        backwards = np.isin((n.astype(np.int64) << 32) | owner.astype(np.int64), stored)
        return owner[~backwards], n[~backwards]

    def csr(self, direction: str) -> Csr:
        """Adjacency downstream ('out': source -> targets) or upstream ('in'); rebuilt after growth."""
        cached = self._csr.get(direction)
        if cached and cached[0] == self._version():
            return cached[1]
        all_src, all_dst, kinds = self.all_edges()
        src, dst = (all_src, all_dst) if direction == "out" else (all_dst, all_src)
        order = np.argsort(src, kind="stable")
        indptr = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=len(self)), out=indptr[1:])
        csr = Csr(indptr, dst[order].astype(np.int32), kinds[order])
        self._csr[direction] = (self._version(), csr)
        return csr

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
        src, dst, kind = (a.tolist() for a in self.all_edges())
        return {(self._ids[s], self._ids[d], CODE_KIND[k]) for s, d, k in zip(src, dst, kind, strict=True)}

    def dangling(self) -> dict[str, list[str]]:
        """Causes named but never seen, with the actions that named them."""
        return {cause: [self._ids[n] for n, _ in waiting] for cause, waiting in self._dangling.items()}

    def stats(self) -> GraphStats:
        counts = np.bincount(self.all_edges()[2], minlength=8)
        edges = Counter({kind: int(counts[code]) for kind, code in KIND_CODE.items() if counts[code]})
        return GraphStats(len(self), edges, self.cross_workflow_edges, len(self._dangling), self.nbytes)

    @property
    def nbytes(self) -> int:
        """Bytes held by the index's arrays (CSR caches excluded: they are rebuilt on demand)."""
        arrays = sum(getattr(self, f"_{name}").nbytes for name in NODE_ARRAYS)
        return self._ids.nbytes + self._index.nbytes + int(arrays)

    # -- checkpoint ---------------------------------------------------------------------------

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        blob, ends = self._ids.arrays()
        arrays = {name: getattr(self, f"_{name}").view() for name in NODE_ARRAYS}
        return arrays | {
            "id_blob": blob, "id_ends": ends,
            "index_keys": self._index.keys, "index_values": self._index.values,
            "cross": np.array([self.cross_workflow_edges], dtype=np.int64),
        }  # fmt: skip

    def small_state(self) -> dict[str, Any]:
        """The parts kept as plain data: dangling references, rewind's events, id collisions."""
        return {"dangling": self._dangling, "compensation_events": self._compensation_events,
                "collisions": self._collisions}  # fmt: skip

    @classmethod
    def from_arrays(cls, arrays: dict[str, npt.NDArray[Any]], small: dict[str, Any]) -> CausalGraph:
        g = cls()
        g._ids = StringStore.of(arrays["id_blob"], arrays["id_ends"])
        g._index = HashIndex.of(arrays["index_keys"], arrays["index_values"])
        for name in NODE_ARRAYS:
            setattr(g, f"_{name}", Growable.of(arrays[name]))
        g.cross_workflow_edges = int(arrays["cross"][0])
        g._dangling = {k: [(int(n), int(c)) for n, c in v] for k, v in small["dangling"].items()}
        g._compensation_events = dict(small["compensation_events"])
        g._collisions = dict(small["collisions"])
        return g
