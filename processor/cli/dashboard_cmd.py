"""``rewind dashboard``: the Grafana dashboard of rewind's metrics, as JSON (the one under
deploy/grafana is this command's output)."""

from __future__ import annotations

from pathlib import Path

import click

from processor.cli.base import Context, pass_context


@click.command("dashboard")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write it to this file instead of standard output.")  # fmt: skip
@pass_context
def dashboard_cmd(ctx: Context, out: Path | None) -> None:
    """Print the Grafana dashboard (import it, or provision it; pick the Prometheus datasource)."""
    text = ctx.app().dashboard()
    if out is None:
        click.echo(text, nl=False)
    else:
        try:
            out.write_text(text)
        except OSError as exc:
            raise click.ClickException(f"cannot write the dashboard to {out}: {exc.strerror}") from exc
        ctx.out.print(f"dashboard written to {out}")


def register(main: click.Group) -> None:
    main.add_command(dashboard_cmd)
