"""The graph index against a plain networkx DiGraph, side by side in one run.

Synthetic journal of realistic shape: workflows of 3-30 actions, each action caused by 1-2 earlier
ones of its workflow (fan-out), about 1% of workflows with an explicit cause in another workflow,
each action writing one entity of a shared pool (overwrites). Measured: memory per action (the
index's own count, and process RSS growth for both), build rate, restart time (checkpoint load), and
p50/p99 of closure + undo order (waves) for scopes of about 1k, 100k and 500k actions.

    .venv/bin/python -m bench.graph.run [--actions 1000000] [--no-baseline] [--queries 20]

Run it on a quiet machine: a p99 is one slow query away from another process's noise.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import numpy as np

from processor.graph import store
from processor.graph.builder import CausalGraph
from processor.graph.queries import closure_nodes, undo_waves_nodes
from processor.journal.model import JournalEntry
from processor.runtime import release_free_memory, tune_gc

SCOPES = (1_000, 100_000, 500_000)


def rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def journal(actions: int, seed: int = 1) -> Iterator[tuple[JournalEntry, int]]:
    """Entries with the index of their workflow."""
    rnd = random.Random(seed)
    made, workflow, last_root = 0, 0, ""
    while made < actions:
        ids: list[str] = []
        for i in range(min(rnd.randint(3, 30), actions - made)):
            aid = f"{workflow:08x}-{i:02d}-{rnd.getrandbits(64):016x}"
            causes = rnd.sample(ids, min(len(ids), rnd.randint(1, 2))) if ids else []
            if not ids and workflow and rnd.random() < 0.01:
                causes = [last_root]
            yield JournalEntry(action_id=aid, action_type="T", changes=(), journal_ts_ms=made, commit_ts_ms=made,
                               causation_ids=tuple(causes), correlation_id=f"wf-{workflow}",
                               entities=(f"public.stock:{rnd.randint(0, actions // 4)}",)), workflow  # fmt: skip
            ids.append(aid)
            made += 1
        last_root = ids[0]
        workflow += 1


def percentile(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(p * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--actions", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=20, help="per 100k scope; 5x for 1k, 5 for 500k")
    parser.add_argument("--no-baseline", action="store_true", help="skip networkx (e.g. at 10M actions)")
    args = parser.parse_args()

    base = rss()
    t = time.perf_counter()
    graph = CausalGraph()
    roots: list[tuple[str, int]] = []  # (root action id, workflow index)
    sizes: dict[int, int] = {}
    edge_count = 0
    for entry, wf in journal(args.actions):  # streamed: at 10M the entries would not fit as objects
        graph.add(entry)
        edge_count += len(entry.causation_ids)
        sizes[wf] = sizes.get(wf, 0) + 1
        if sizes[wf] == 1:
            roots.append((entry.action_id, wf))
    graph.csr("out"), graph.csr("in")
    ours_build = time.perf_counter() - t
    ours_rss = rss() - base
    roots = [(r, sizes[wf]) for r, wf in roots]
    csr_bytes = sum(
        c.indptr.nbytes + c.nbrs.nbytes + c.kinds.nbytes for c in (graph.csr("out"), graph.csr("in"))
    )
    ours_bytes = (graph.nbytes + csr_bytes) / len(graph)
    n = len(graph)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.npz"
        store.save(path, store.Checkpoint(graph, "rewind.journal", {0: n}, time.time()))
        release_free_memory()  # the baseline must not include slack the trim below would release
        before = rss()
        t = time.perf_counter()
        restored = store.load(path, "rewind.journal")
        assert restored is not None
        restored.graph.csr("out"), restored.graph.csr("in")
        restart = time.perf_counter() - t
        release_free_memory()  # as the builder does after loading
        restart_rss = rss() - before  # what a restarted builder holds: no slack from building
        checkpoint_mb = path.stat().st_size / 1e6
        del restored

    rnd = random.Random(7)
    scopes: dict[int, list[list[str]]] = {}
    for target in SCOPES:
        if target > args.actions // 2:
            continue
        scopes[target] = []
        for _ in range(args.queries * 5 if target < 100_000 else args.queries if target < 500_000 else 5):
            picked, total = [], 0
            for root, size in rnd.sample(roots, len(roots)):
                if total >= target:
                    break
                picked.append(root)
                total += size
            scopes[target].append(picked)

    tune_gc()  # as the builder process does after loading
    warm = graph.nodes([roots[0][0]])
    undo_waves_nodes(graph, closure_nodes(graph, warm))
    ours_q: dict[int, list[float]] = {}
    scope_sizes: dict[int, int] = {}
    for target, seed_sets in scopes.items():
        ours_q[target] = []
        for seeds in seed_sets:
            start = graph.nodes(seeds)
            t = time.perf_counter()
            scope = closure_nodes(graph, start)
            undo_waves_nodes(graph, scope)
            ours_q[target].append(time.perf_counter() - t)
            scope_sizes[target] = len(scope)

    nx_build = nx_rss = 0.0
    nx_q: dict[int, list[float]] = {}
    if not args.no_baseline:
        base = rss()
        t = time.perf_counter()
        dg = nx.DiGraph()
        for entry, _wf in journal(args.actions):
            dg.add_node(entry.action_id)
            dg.add_edges_from((c, entry.action_id) for c in entry.causation_ids)
        nx_build = time.perf_counter() - t
        nx_rss = rss() - base
        for target, seed_sets in scopes.items():
            nx_q[target] = []
            for seeds in seed_sets:
                t = time.perf_counter()
                scope_set = set(seeds).union(*(nx.descendants(dg, s) for s in seeds))
                list(nx.topological_generations(dg.subgraph(scope_set).reverse(copy=False)))
                nx_q[target].append(time.perf_counter() - t)

    print(
        f"settings: {n:,} actions in {len(roots):,} workflows (3-30 actions, 1-2 causes each, ~1% cross-workflow), "
        f"{edge_count:,} explicit caused_by edges; {args.queries * 5}/{args.queries}/5 queries for the 1k/100k/500k scopes"
    )
    print(f"{'measure':<34} {'ours':>14} {'networkx':>14} {'ratio':>8}")

    def row(name: str, ours: float, theirs: float, fmt: str) -> None:
        ratio = f"{ours / theirs:.2f}" if theirs else "-"
        print(f"{name:<34} {format(ours, fmt):>14} {format(theirs, fmt) if theirs else '-':>14} {ratio:>8}")

    row("bytes/action (index + CSR)", ours_bytes, 0, ",.0f")
    row("bytes/action (RSS growth, building)", ours_rss / n, nx_rss / n, ",.0f")
    row("bytes/action (RSS after restart)", restart_rss / n, 0, ",.0f")
    row("build (actions/s, incl. generating)", n / ours_build, n / nx_build if nx_build else 0, ",.0f")
    row("restart: checkpoint load (s)", restart, 0, ".2f")
    print(f"{'checkpoint size (MB)':<34} {checkpoint_mb:>14,.1f}")
    for target in scopes:
        label = (
            f"~{scope_sizes[target] // 1000}k" if scope_sizes[target] >= 1000 else str(scope_sizes[target])
        )
        for p in (0.5, 0.99):
            theirs = percentile(nx_q[target], p) * 1000 if nx_q else 0
            row(
                f"closure+waves {label} p{int(p * 100)} (ms)",
                percentile(ours_q[target], p) * 1000,
                theirs,
                ",.1f",
            )


if __name__ == "__main__":
    np.random.seed(0)
    main()
