"""``rewind graph build | export`` and ``rewind lineage``: the dependency graph of actions."""

from __future__ import annotations

import json
from pathlib import Path

import click

from processor.cli.base import Context, load_graph, pass_context, stop_on_signals, with_sources
from processor.cli.progress import Bar
from processor.errors import ConfigError
from processor.graph import render
from processor.graph.queries import ancestors, around, descendants


@click.group("graph")
def graph_group() -> None:
    """Build and export the dependency graph of actions."""


@graph_group.command("build")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@pass_context
def build(ctx: Context, duration: float | None) -> None:
    """Follow the journal into the graph index, checkpointing it with the offsets it reflects."""
    bar = Bar(ctx.err, "graph catch-up", "entries")

    def caught_up_so_far(done: int, total: int) -> None:
        bar.update(done, total)
        if done >= total:  # then it follows the journal, with no end to show
            bar.close()

    with bar:
        checkpoint = ctx.app().run_graph(stop_on_signals(ctx, duration), caught_up_so_far)
    ctx.out.print(
        f"graph: {len(checkpoint.graph)} actions checkpointed to {ctx.settings.graph.checkpoint_path}"
    )


@graph_group.command("stats")
@with_sources
@click.option(
    "--dangling", "show_dangling", type=int, default=20, show_default=True, help="Causes never seen to list."
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_context
def stats(
    ctx: Context,
    capture: Path | None,
    journal_dump: Path | None,
    catalog_file: Path | None,
    show_dangling: int,
    fmt: str,
) -> None:
    """Nodes, edges by kind, cross-workflow causes, and causes named but never seen."""
    graph, _ = load_graph(ctx, capture, journal_dump, catalog_file)
    s = graph.stats()
    if fmt == "json":
        dangling = dict(list(graph.dangling().items())[:show_dangling])
        click.echo(json.dumps({
            "actions": s.nodes, "edges": {k.value: v for k, v in sorted(s.edges.items())},
            "cross_workflow_causes": s.cross_workflow_edges, "index_bytes": s.bytes,
            "causes_never_seen": s.dangling_references, "dangling": dangling,
        }, indent=2))  # fmt: skip
        return
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
    scope = around(graph, actions, direction)
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
