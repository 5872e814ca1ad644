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


def _broker(ctx: Context, secure: bool | None = None) -> LocalBroker:
    settings = ctx.settings.local_broker
    if secure is not None:
        settings = settings.model_copy(update={"secure": secure or settings.secure})
    return LocalBroker(settings, ctx.settings.principals)


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
@click.option(
    "--secure", is_flag=True, help="SASL/SCRAM-SHA-512 over TLS, ACLs enforced (REWIND_LOCAL_BROKER__SECURE)."
)
@pass_context
def start(ctx: Context, secure: bool) -> None:
    """Start the broker and wait until it is ready."""
    broker = _broker(ctx, secure)
    was_running = broker.running_pid() is not None
    bootstrap = broker.start()
    verb = "already running" if was_running else "started"
    ctx.out.print(f"broker {verb} at {bootstrap} (pid {broker.running_pid()}, log {broker.log_file})")
    if broker.settings.secure:
        users = ", ".join(sorted(broker.credentials()))
        ctx.out.print(
            f"secured: SASL_SSL with SCRAM-SHA-512, CA {broker.secure_dir / 'ca.pem'}, no ACL no access; "
            f"users {users} (their passwords: {broker.secure_dir / 'credentials.yaml'}, mode 0600). "
            f"As the admin ({ctx.settings.principals.admin}), `rewind acl apply` makes the topics and ACLs."
        )


@kafka_group.command("status")
@pass_context
def status(ctx: Context) -> None:
    """Report whether the broker runs and answers; exit 1 when it is not up."""
    broker = _broker(ctx)
    state = broker.status()
    if not state.running:
        ctx.out.print(f"broker at {state.bootstrap}: down ({state.detail})")
        sys.exit(1)
    settings = ctx.settings
    if broker.secured:  # asked as its admin
        settings = settings.model_copy(update={"security": broker.client_security(settings.principals.admin)})
    try:
        info = clients.describe_cluster(clients.admin(settings, state.bootstrap), timeout_s=10)
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
