"""``rewind graph build | export`` and ``rewind lineage``: the dependency graph of actions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from processor.catalog.catalog import Catalog
from processor.cli.base import Context, ensure_own_topics, pass_context, stop_on_signals
from processor.cli.tap_cmd import FILE, catalog_from
from processor.config import Settings
from processor.errors import ConfigError
from processor.graph import render, store
from processor.graph.builder import CausalGraph
from processor.graph.queries import ancestors, closure, descendants
from processor.graph.runner import GraphBuilder
from processor.journal.model import JournalEntry
from processor.journal.serde import from_json_view
from processor.jsonvalue import loads
from processor.kafka import cluster
from processor.kafka.registry import registry_lookup
from processor.metrics import Metrics
from processor.metrics.server import serve
from processor.tap.offline import open_capture

F = TypeVar("F", bound=Callable[..., Any])

SOURCES = [
    click.option("--capture", type=FILE, help="Build from a kcat -J capture, through the tap's decoder."),
    click.option(
        "--journal", "journal_dump", type=FILE, help="Build from a journal dump (`rewind decode` output)."
    ),
    click.option(
        "--catalog", "catalog_file", type=FILE, help="Action catalog, for reversibility with --capture."
    ),
]


def with_sources(f: F) -> F:
    for option in reversed(SOURCES):
        f = option(f)
    return f


def load_graph(
    ctx: Context, capture: Path | None, journal_dump: Path | None, catalog_file: Path | None
) -> tuple[CausalGraph, dict[str, JournalEntry]]:
    """The graph from a capture or a dump (with each action's entry), else the builder's checkpoint."""
    entries = _entries(ctx.settings, capture, journal_dump, catalog_from(ctx, catalog_file))
    if capture or journal_dump:
        graph = CausalGraph()
        for e in entries:
            graph.add(e)
        return graph, {e.action_id: e for e in entries}
    path = ctx.settings.graph.checkpoint_path
    checkpoint = store.load(path, ctx.settings.topics.journal)
    if checkpoint is None:
        raise ConfigError(
            f"no graph checkpoint at {path}",
            hint="run `rewind graph build`, or pass --capture FILE or --journal FILE",
        )
    return checkpoint.graph, {}


def _entries(
    settings: Settings, capture: Path | None, dump: Path | None, catalog: Catalog
) -> list[JournalEntry]:
    if capture:
        _, outputs = open_capture(
            settings, catalog, capture, registry_lookup(settings),
            lambda error: click.echo(f"unreadable line: {error}", err=True),
        )  # fmt: skip
        return [e for out in outputs for e in out.entries]
    if dump:
        lines = dump.read_text(encoding="utf-8").splitlines()
        return [from_json_view(loads(line)) for line in lines if line.strip()]
    return []


@click.group("graph")
def graph_group() -> None:
    """Build and export the dependency graph of actions."""


@graph_group.command("build")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@pass_context
def build(ctx: Context, duration: float | None) -> None:
    """Follow the journal into the graph index, checkpointing it with the offsets it reflects."""
    settings = ctx.settings
    stop = stop_on_signals(ctx, duration)
    metrics = Metrics()
    with cluster.connect(settings) as bootstrap:
        ensure_own_topics(ctx, settings, bootstrap)
        server = serve(metrics, settings.metrics_port) if settings.metrics_port else None
        metrics.component_started("graph")
        try:
            checkpoint = GraphBuilder(settings, bootstrap, metrics).run(stop)
        finally:
            metrics.component_stopped("graph")
            if server:
                server.shutdown()
    ctx.out.print(f"graph: {len(checkpoint.graph)} actions checkpointed to {settings.graph.checkpoint_path}")


@graph_group.command("stats")
@with_sources
@click.option(
    "--dangling", "show_dangling", type=int, default=20, show_default=True, help="Causes never seen to list."
)
@pass_context
def stats(
    ctx: Context,
    capture: Path | None,
    journal_dump: Path | None,
    catalog_file: Path | None,
    show_dangling: int,
) -> None:
    """Nodes, edges by kind, cross-workflow causes, and causes named but never seen."""
    graph, _ = load_graph(ctx, capture, journal_dump, catalog_file)
    s = graph.stats()
    edges = ", ".join(f"{k.value} {v:,}" for k, v in sorted(s.edges.items())) or "none"
    ctx.out.print(
        f"actions: {s.nodes:,}   edges: {edges}   cross-workflow causes: {s.cross_workflow_edges:,}"
    )
    ctx.out.print(
        f"index: {s.bytes / max(s.nodes, 1):,.0f} bytes/action   causes never seen: {s.dangling_references:,}"
    )
    for cause, waiting in list(graph.dangling().items())[:show_dangling]:
        ctx.out.print(f"  {cause}  named by {', '.join(waiting[:5])}{' ...' if len(waiting) > 5 else ''}")


@graph_group.command("export")
@with_sources
@click.option("--action", "actions", multiple=True, help="Scope around these actions (repeat); default: all.")
@click.option("--direction", type=click.Choice(["down", "up", "both"]), default="down", show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(["dot", "json", "svg", "png"]), default="dot", show_default=True
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default: stdout)."
)
@pass_context
def export(
    ctx: Context, capture: Path | None, journal_dump: Path | None, catalog_file: Path | None,
    actions: tuple[str, ...], direction: str, fmt: str, out: Path | None,
) -> None:  # fmt: skip
    """Write a scope of the graph as DOT or JSON, or as SVG/PNG through Graphviz."""
    graph, entries = load_graph(ctx, capture, journal_dump, catalog_file)
    scope = _scope(graph, actions, direction)
    if fmt in ("svg", "png"):
        if out is None:
            raise click.UsageError(f"--format {fmt} needs --out FILE")
        render.render_image(render.to_dot(graph, scope, entries), out, fmt)
    else:
        text = (
            render.to_dot(graph, scope, entries)
            if fmt == "dot"
            else json.dumps(render.to_json(graph, scope, entries), indent=2)
        )
        if out:
            out.write_text(text)
        else:
            click.echo(text.rstrip())
    if out:
        ctx.err.print(f"wrote {len(scope)} actions to {out}")


def _scope(graph: CausalGraph, actions: tuple[str, ...], direction: str) -> set[str]:
    if not actions:
        return {graph.action_id(n) for n in range(len(graph))}
    scope = set(actions)
    if direction in ("down", "both"):
        scope |= closure(graph, actions)
    if direction in ("up", "both"):
        scope |= ancestors(graph, actions)
    return scope


@click.command("lineage")
@click.argument("action_id")
@click.option("--up", "up", is_flag=True, help="Why it happened: its causes.")
@click.option("--down", "down", is_flag=True, help="What it affected (the default).")
@with_sources
@pass_context
def lineage(
    ctx: Context, action_id: str, up: bool, down: bool,
    capture: Path | None, journal_dump: Path | None, catalog_file: Path | None,
) -> None:  # fmt: skip
    """Draw an action's causes (--up) or effects (--down) as a tree."""
    graph, entries = load_graph(ctx, capture, journal_dump, catalog_file)
    if action_id not in graph:
        raise ConfigError(f"action {action_id!r} is not in the graph ({len(graph)} actions)")
    for going_up in [True] * up + [False] * (down or not up):
        related = ancestors(graph, [action_id]) if going_up else descendants(graph, [action_id])
        ctx.out.print(f"{'causes' if going_up else 'effects'} of {action_id}: {len(related)}")
        ctx.out.print(render.lineage_tree(graph, action_id, entries, up=going_up))


def register(main: click.Group) -> None:
    main.add_command(graph_group)
    main.add_command(lineage)
