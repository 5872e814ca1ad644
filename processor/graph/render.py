"""Drawing a scope: a lineage tree for the terminal, DOT and JSON for tools, SVG/PNG through Graphviz."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.tree import Tree

from processor.errors import ToolMissing
from processor.graph.builder import CausalGraph
from processor.graph.model import EdgeKind
from processor.graph.queries import subgraph
from processor.journal.model import JournalEntry

TREE_LIMIT = 500
ALL_KINDS = frozenset(EdgeKind)


def label(action_id: str, entries: dict[str, JournalEntry]) -> str:
    e = entries.get(action_id)
    if e is None:
        return escape(action_id)
    where = f" [{e.service}]" if e.service else ""
    return escape(
        f"{action_id}  {e.action_type}{where}  {e.phase.value.lower()}, {e.reversibility.value.lower()}"
    )


def lineage_tree(graph: CausalGraph, root: str, entries: dict[str, JournalEntry], *, up: bool) -> Tree:
    """Causes (``up``) or effects of one action as a tree; a node met twice is shown once, marked."""
    tree = Tree(f"[bold]{label(root, entries)}[/bold]")
    step = graph.upstream if up else graph.downstream
    seen = {root}
    stack = [(tree, graph.node(root))]
    while stack and len(seen) < TREE_LIMIT:
        parent, node = stack.pop()
        for nxt, kind in step(node):
            if kind is EdgeKind.OVERWRITES:
                continue
            action = graph.action_id(nxt)
            text = f"{label(action, entries)}  ({kind.value})"
            if action in seen:
                parent.add(f"[dim]{text}  (shown above)[/dim]")
                continue
            seen.add(action)
            stack.append((parent.add(text), nxt))
    if stack:
        tree.add(f"[yellow]... stopped after {TREE_LIMIT} actions[/yellow]")
    return tree


def to_json(graph: CausalGraph, scope: set[str], entries: dict[str, JournalEntry]) -> dict[str, Any]:
    g = subgraph(graph, scope, ALL_KINDS)
    nodes: list[dict[str, Any]] = []
    for action in sorted(scope):
        e = entries.get(action)
        node: dict[str, Any] = {"id": action}
        nodes.append(node | ({} if e is None else {
            "action_type": e.action_type, "service": e.service, "correlation_id": e.correlation_id,
            "phase": e.phase.value, "reversibility": e.reversibility.value, "commit_ts_ms": e.commit_ts_ms,
        }))  # fmt: skip
    edges = [{"source": u, "target": v, "kind": d["kind"]} for u, v, d in sorted(g.edges(data=True))]
    return {"nodes": nodes, "edges": edges}


def to_dot(graph: CausalGraph, scope: set[str], entries: dict[str, JournalEntry]) -> str:
    styles = {"caused_by": "solid", "overwrites": "dashed", "compensates": "dotted"}
    lines = ["digraph rewind {", "  rankdir=LR;", '  node [shape=box, fontsize=10, fontname="Helvetica"];',
             '  edge [fontsize=9, fontname="Helvetica"];']  # fmt: skip
    data = to_json(graph, scope, entries)
    for n in data["nodes"]:
        # Real newlines: json.dumps writes them as \n, which DOT reads as a line break.
        parts = (
            [n["id"]] if "action_type" not in n else [n["action_type"], n["id"], n["reversibility"].lower()]
        )
        text = "\n".join(parts)
        lines.append(f"  {json.dumps(n['id'])} [label={json.dumps(text)}];")
    for e in data["edges"]:
        lines.append(f"  {json.dumps(e['source'])} -> {json.dumps(e['target'])} "
                     f"[label={json.dumps(e['kind'])}, style={styles[e['kind']]}];")  # fmt: skip
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_image(dot: str, out: Path, fmt: str) -> None:
    graphviz = shutil.which("dot")
    if graphviz is None:
        raise ToolMissing(
            f"{fmt.upper()} needs Graphviz (no `dot` on PATH)",
            hint="install it (e.g. `apt-get install graphviz`), or export --format dot/json",
        )
    subprocess.run([graphviz, f"-T{fmt}", "-o", str(out)], input=dot.encode(), check=True)
