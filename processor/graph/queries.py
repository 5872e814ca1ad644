"""Lineage and scope: ancestors, descendants, the closure of a set, and undo order in waves.

Traversals are vectorized over the index's CSR arrays, a whole frontier per step, so a scope of
100k actions costs milliseconds; networkx gets only extracted scopes, to name a cycle and to export.
The ``*_nodes`` functions work on node numbers (what the planner uses); the others on action ids.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx
import numpy as np
import numpy.typing as npt

from processor.graph.builder import CODE_KIND, KIND_CODE, CausalGraph, Csr, IntArray
from processor.graph.model import CycleError, EdgeKind

CAUSAL = frozenset({EdgeKind.CAUSED_BY})


def _mask(kinds: frozenset[EdgeKind]) -> int:
    return sum(KIND_CODE[k] for k in kinds)


def _gather(csr: Csr, frontier: IntArray, mask: int) -> tuple[IntArray, IntArray, npt.NDArray[np.int8]]:
    """All (frontier node, neighbour, kind code) triples along edges whose kind is in the mask."""
    starts, ends = csr.indptr[frontier], csr.indptr[frontier + 1]
    lengths = ends - starts
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    keep = (csr.kinds[offsets] & mask) != 0
    return np.repeat(frontier, lengths)[keep], csr.nbrs[offsets][keep], csr.kinds[offsets][keep]


def reach_nodes(graph: CausalGraph, start: IntArray, direction: str, kinds: frozenset[EdgeKind]) -> IntArray:
    """The start nodes and every node reachable from them along edges of the given kinds, sorted."""
    csr, mask = graph.csr(direction), _mask(kinds)
    seen = np.zeros(len(graph), dtype=bool)  # calloc'd: pages are touched only where the walk goes
    frontier = np.unique(start).astype(np.int32)
    seen[frontier] = True
    parts = [frontier]
    while frontier.size:
        _, nbrs, _ = _gather(csr, frontier, mask)
        frontier = np.unique(nbrs[~seen[nbrs]])
        seen[frontier] = True
        parts.append(frontier)
    return np.sort(np.concatenate(parts)).astype(np.int32)


def closure_nodes(graph: CausalGraph, start: IntArray, *, widen_on_overwrites: bool = False) -> IntArray:
    kinds = CAUSAL | {EdgeKind.OVERWRITES} if widen_on_overwrites else CAUSAL
    return reach_nodes(graph, start, "out", frozenset(kinds))


def undo_waves_nodes(
    graph: CausalGraph, scope: IntArray, kinds: frozenset[EdgeKind] = CAUSAL
) -> list[IntArray]:
    """Reverse topological order in waves: every effect is undone in a wave before its cause's.

    Kahn's algorithm, a wave at a time, in scope-local numbering (cost follows the scope, not the
    graph): a node is ready once all its effects inside the scope are done. Actions within one wave do
    not depend on each other.
    """
    scope = np.unique(scope).astype(np.int32)
    causes, effects, _ = _gather(graph.csr("out"), scope, _mask(kinds))
    cause_at, effect_at, inside = _local(scope, causes), _local(scope, effects), _members(scope, effects)
    cause_at, effect_at = cause_at[inside], effect_at[inside]
    pending = np.bincount(cause_at, minlength=len(scope))  # effects not yet undone, per cause
    order = np.argsort(effect_at, kind="stable")
    causes_by_effect, effect_sorted = cause_at[order], effect_at[order]
    remaining = np.ones(len(scope), dtype=bool)
    waves: list[IntArray] = []
    while remaining.any():
        wave = np.flatnonzero(remaining & (pending == 0))
        if wave.size == 0:
            raise CycleError(_find_cycle(graph, scope[remaining], kinds))
        waves.append(scope[wave])
        remaining[wave] = False
        lo, hi = np.searchsorted(effect_sorted, wave), np.searchsorted(effect_sorted, wave, side="right")
        lengths = hi - lo
        released = causes_by_effect[
            np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        ]
        np.subtract.at(pending, released, 1)
    return waves


def new_cycles(graph: CausalGraph, kinds: frozenset[EdgeKind] = CAUSAL) -> list[list[str]]:
    """Causal cycles closed since the last call, each as the sorted actions on it."""
    cycles: list[list[str]] = []
    covered: set[int] = set()
    for node in graph.take_resolved():
        if node in covered:
            continue
        start = np.array([node], dtype=np.int32)
        down, up = reach_nodes(graph, start, "out", kinds), reach_nodes(graph, start, "in", kinds)
        # Other nodes reachable both ways from it lie on a cycle with it (an edge never loops to itself).
        both = np.intersect1d(down, up)
        if both.size > 1:
            covered.update(both.tolist())
            cycles.append(sorted(graph.action_id(int(n)) for n in both))
    return cycles


def _local(scope: IntArray, nodes: IntArray) -> npt.NDArray[np.intp]:
    return np.minimum(np.searchsorted(scope, nodes), len(scope) - 1)


def _members(scope: IntArray, nodes: IntArray) -> npt.NDArray[np.bool_]:
    return scope[_local(scope, nodes)] == nodes if len(scope) else np.zeros(len(nodes), dtype=bool)


def _find_cycle(graph: CausalGraph, nodes: IntArray, kinds: frozenset[EdgeKind]) -> list[str]:
    sub = subgraph(graph, {graph.action_id(int(n)) for n in nodes}, kinds)
    return [u for u, _v in nx.find_cycle(sub)]


# -- the same, on action ids ------------------------------------------------------------------------


def _ids(graph: CausalGraph, nodes: IntArray) -> set[str]:
    return {graph.action_id(int(n)) for n in nodes}


def descendants(graph: CausalGraph, actions: Iterable[str], kinds: frozenset[EdgeKind] = CAUSAL) -> set[str]:
    """What the actions affected: everything reachable downstream, the actions excluded."""
    actions = set(actions)
    return _ids(graph, reach_nodes(graph, graph.nodes(actions), "out", kinds)) - actions


def ancestors(graph: CausalGraph, actions: Iterable[str], kinds: frozenset[EdgeKind] = CAUSAL) -> set[str]:
    """Why the actions happened: everything reachable upstream, the actions excluded."""
    actions = set(actions)
    return _ids(graph, reach_nodes(graph, graph.nodes(actions), "in", kinds)) - actions


def closure(graph: CausalGraph, actions: Iterable[str], *, widen_on_overwrites: bool = False) -> set[str]:
    """The rollback scope: the actions and everything causally downstream of them."""
    return _ids(graph, closure_nodes(graph, graph.nodes(actions), widen_on_overwrites=widen_on_overwrites))


def undo_waves(graph: CausalGraph, scope: set[str]) -> list[list[str]]:
    return [
        sorted(graph.action_id(int(n)) for n in wave) for wave in undo_waves_nodes(graph, graph.nodes(scope))
    ]


def subgraph(graph: CausalGraph, scope: set[str], kinds: frozenset[EdgeKind] = CAUSAL) -> nx.DiGraph:
    """The scope as a networkx DiGraph (cause -> effect), with edges of the given kinds inside it."""
    g = nx.DiGraph()
    g.add_nodes_from(scope)
    causes, effects, codes = _gather(graph.csr("out"), np.unique(graph.nodes(scope)), _mask(kinds))
    for c, e, k in zip(causes.tolist(), effects.tolist(), codes.tolist(), strict=True):
        target = graph.action_id(e)
        if target in scope:
            g.add_edge(graph.action_id(c), target, kind=CODE_KIND[k].value)
    return g


def around(graph: CausalGraph, actions: Iterable[str], direction: str) -> set[str]:
    """The actions, with what they caused (``down``), what caused them (``up``) or both; no actions:
    the whole graph."""
    chosen = list(actions)
    if not chosen:
        return {graph.action_id(n) for n in range(len(graph))}
    scope = set(chosen)
    if direction in ("down", "both"):
        scope |= closure(graph, chosen)
    if direction in ("up", "both"):
        scope |= ancestors(graph, chosen)
    return scope
