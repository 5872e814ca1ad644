"""Lineage and scope: ancestors, descendants, the closure of a set, and undo order in waves.

Traversals run on the compact index; networkx gets only the extracted scope, for ordering and cycles.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

import networkx as nx

from processor.graph.builder import CausalGraph
from processor.graph.model import CycleError, EdgeKind

CAUSAL = frozenset({EdgeKind.CAUSED_BY})


def _walk(
    graph: CausalGraph,
    start: Iterable[str],
    step: Callable[[int], list[tuple[int, EdgeKind]]],
    kinds: frozenset[EdgeKind],
) -> set[str]:
    seen = {graph.node(a) for a in start}
    queue = deque(seen)
    while queue:
        for nxt, kind in step(queue.popleft()):
            if kind in kinds and nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return {graph.action_id(n) for n in seen}


def descendants(graph: CausalGraph, actions: Iterable[str], kinds: frozenset[EdgeKind] = CAUSAL) -> set[str]:
    """What the actions affected: everything reachable downstream, the actions excluded."""
    actions = set(actions)
    return _walk(graph, actions, graph.downstream, kinds) - actions


def ancestors(graph: CausalGraph, actions: Iterable[str], kinds: frozenset[EdgeKind] = CAUSAL) -> set[str]:
    """Why the actions happened: everything reachable upstream, the actions excluded."""
    actions = set(actions)
    return _walk(graph, actions, graph.upstream, kinds) - actions


def closure(graph: CausalGraph, actions: Iterable[str], *, widen_on_overwrites: bool = False) -> set[str]:
    """The rollback scope: the actions and everything causally downstream of them."""
    kinds = CAUSAL | {EdgeKind.OVERWRITES} if widen_on_overwrites else CAUSAL
    return _walk(graph, actions, graph.downstream, frozenset(kinds))


def subgraph(graph: CausalGraph, scope: set[str], kinds: frozenset[EdgeKind] = CAUSAL) -> nx.DiGraph:
    """The scope as a networkx DiGraph (cause -> effect), edges of the given kinds inside it only."""
    g = nx.DiGraph()
    g.add_nodes_from(scope)
    for action in scope:
        for nxt, kind in graph.downstream(graph.node(action)):
            target = graph.action_id(nxt)
            if kind in kinds and target in scope:
                g.add_edge(action, target, kind=kind.value)
    return g


def undo_waves(scope: nx.DiGraph) -> list[list[str]]:
    """Reverse topological order in waves: every effect is undone in a wave before its cause's.

    Actions within one wave do not depend on each other and may be undone in parallel.
    """
    try:
        generations = list(nx.topological_generations(scope.reverse(copy=False)))
    except nx.NetworkXUnfeasible:
        cycle = [u for u, _v in nx.find_cycle(scope)]
        raise CycleError(cycle) from None
    return [sorted(wave) for wave in generations]
