"""``rewind demo``'s run: a broker, PostgreSQL and Debezium started here for the shop scenario, stopped
at the end, and the picture of what the bad rule caused with its undo."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from examples.shop.scenario import Outcome, Scenario
from processor.config import Settings
from processor.devenv.connect import CaptureSpec, LocalConnect
from processor.devenv.postgres import LocalPostgres
from processor.devenv.procs import free_port
from processor.errors import RewindError
from processor.graph import render
from processor.graph.model import EdgeKind
from processor.kafka import cluster
from processor.kafka.local_broker import LocalBroker
from processor.rollback.engine import RollbackEngine

T = TypeVar("T")
PICTURE_WORKFLOWS = 3  # bad orders drawn in the picture (the whole scope is too big to read)


class DemoFailed(RewindError):
    """A service the demo started failed (the message names it)."""


def run_demo(
    settings: Settings, orders: int, say: Callable[[str], None], mode: str = "repair", secure: bool = False
) -> tuple[Scenario, Outcome]:
    """The scenario on services started here (in a scratch directory removed at the end). ``secure``:
    on a secured broker of its own, every part of rewind on its own principal."""
    if secure and settings.bootstrap_servers:
        raise DemoFailed(
            "--secure starts a secured broker of its own",
            hint="unset REWIND_BOOTSTRAP_SERVERS to run the demo with --secure",
        )
    work = Path(tempfile.mkdtemp(prefix="rewind-demo-"))
    work.chmod(0o755)  # as root, PostgreSQL runs as the postgres user, who must reach its data dir
    try:
        with _broker(settings, work, secure) as (bootstrap, secured):
            say(f"[bold]kafka[/]: {bootstrap}" + (" (SASL/SCRAM over TLS, ACLs enforced)" if secured else ""))
            pg = LocalPostgres(settings.postgres.model_copy(update={"data_dir": work / "postgres"}))
            dsn = _step("postgres", pg.start)
            say(f"[bold]postgres[/]: {dsn.host}:{dsn.port} (wal_level=logical)")
            # Debezium is the shop's: on the secured broker it connects as the admin.
            security = secured.client_security(settings.principals.admin) if secured else None
            connect = LocalConnect(
                settings.connect.model_copy(update={"data_dir": work / "connect"}), bootstrap, security
            )
            try:
                _step("kafka connect", connect.fetch)

                def start_capture(spec: CaptureSpec) -> None:
                    _step("kafka connect", lambda: connect.start(spec))

                scenario = Scenario(
                    bootstrap, dsn, start_capture, work, orders, progress=lambda x: say(f"  {x}"), mode=mode,
                    secured=secured,
                )  # fmt: skip
                outcome = scenario.run()
            finally:
                connect.stop()
                pg.stop()
        say("[bold]stopped[/]: Connect, PostgreSQL and the broker this demo started")
        return scenario, outcome
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def _broker(settings: Settings, work: Path, secure: bool) -> Iterator[tuple[str, LocalBroker | None]]:
    """The configured cluster or the local broker; with ``secure``, a secured broker of the demo's own
    (free ports, in the scratch directory), stopped at the end."""
    if not secure:
        with cluster.connect(settings) as bootstrap:
            yield bootstrap, None
        return
    local = settings.local_broker.model_copy(update={
        "data_dir": work / "kafka", "port": free_port(), "controller_port": free_port(), "secure": True,
    })  # fmt: skip
    broker = LocalBroker(local, settings.principals)
    bootstrap = _step("kafka (secured)", broker.start)
    try:
        yield bootstrap, broker
    finally:
        broker.stop()


def _step(component: str, action: Callable[[], T]) -> T:
    """Run one component's step; a failure says which component, and keeps the hint."""
    try:
        return action()
    except RewindError as exc:
        raise DemoFailed(f"{component} failed: {exc}") from exc


def affected_picture(scenario: Scenario, outcome: Outcome) -> tuple[str, int, int]:
    """DOT of a few bad orders' actions with the actions that undid them: (dot, actions, orders)."""
    engine, plan = scenario.worker.engine, outcome.status.plan
    if engine is None or plan is None:
        return "", 0, 0
    shown = {f"order-{n}" for n in sorted(outcome.bad)[:PICTURE_WORKFLOWS]}
    entries = engine.actions.get_many(plan.scope)
    scope = {a for a, e in entries.items() if e.correlation_id in shown}
    scope |= {a.action_id for a in engine.actions.get_many(_compensations(engine, scope)).values()}
    dot = render.to_dot(engine.graph, scope, entries | engine.actions.get_many(scope))
    return dot, len(scope), len(shown)


def _compensations(engine: RollbackEngine, scope: set[str]) -> list[str]:
    """The actions that undid the ones in scope (the services' answers to rewind's commands)."""
    found = []
    for action in scope:
        for node, kind in engine.graph.downstream(engine.graph.node(action)):
            if kind is EdgeKind.COMPENSATES:
                found.append(engine.graph.action_id(node))
    return found
