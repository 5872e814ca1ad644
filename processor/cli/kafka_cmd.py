"""``rewind kafka fetch|start|status|stop``: the local single-node KRaft broker."""

from __future__ import annotations

import sys

import click

from processor.cli.base import Context, pass_context
from processor.cli.progress import Bar
from processor.errors import KafkaError
from processor.kafka import clients
from processor.kafka.local_broker import LocalBroker


@click.group("kafka")
def kafka_group() -> None:
    """Run a local Apache Kafka broker (KRaft, jars from Maven Central)."""


def _broker(ctx: Context) -> LocalBroker:
    return LocalBroker(ctx.settings.local_broker)


@kafka_group.command("fetch")
@pass_context
def fetch(ctx: Context) -> None:
    """Resolve the broker jars into the cache (done once; later runs reuse them)."""
    broker = _broker(ctx)
    cached = broker.jars_ready()
    with Bar(ctx.err, "broker jars", "jars") as progress:
        path = broker.fetch(progress)
    version = ctx.settings.local_broker.kafka_version
    ctx.out.print(f"{'cached' if cached else 'fetched'}: Apache Kafka {version} jars in {path}")


@kafka_group.command("start")
@pass_context
def start(ctx: Context) -> None:
    """Start the broker and wait until it is ready."""
    broker = _broker(ctx)
    was_running = broker.running_pid() is not None
    bootstrap = broker.start()
    verb = "already running" if was_running else "started"
    ctx.out.print(f"broker {verb} at {bootstrap} (pid {broker.running_pid()}, log {broker.log_file})")


@kafka_group.command("status")
@pass_context
def status(ctx: Context) -> None:
    """Report whether the broker runs and answers; exit 1 when it is not up."""
    broker = _broker(ctx)
    state = broker.status()
    if not state.running:
        ctx.out.print(f"broker at {state.bootstrap}: down ({state.detail})")
        sys.exit(1)
    try:
        info = clients.describe_cluster(clients.admin(ctx.settings, state.bootstrap), timeout_s=10)
    except KafkaError as exc:
        ctx.out.print(f"broker at {state.bootstrap}: process {state.pid} alive but not answering: {exc}")
        sys.exit(1)
    ctx.out.print(
        f"broker at {state.bootstrap}: up (pid {state.pid}, cluster {info.cluster_id}, "
        f"{info.brokers} broker, {info.topics} topics)"
    )


@kafka_group.command("stop")
@pass_context
def stop(ctx: Context) -> None:
    """Stop the broker (SIGTERM, then SIGKILL after 30 s)."""
    broker = _broker(ctx)
    stopped = broker.stop()
    ctx.out.print(f"broker at {broker.bootstrap}: {'stopped' if stopped else 'was not running'}")


def register(main: click.Group) -> None:
    main.add_command(kafka_group)
