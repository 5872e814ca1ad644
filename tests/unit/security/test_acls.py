"""The ACL plan (pure): each role gets what it consumes and produces, and nothing that would let it
do another role's work."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from processor.catalog.catalog import load_catalog
from processor.cli import main
from processor.config import DrillSettings, Settings, TopicSettings
from processor.security.acls import Grant, Operation, Pattern, Resource, acl_plan
from tests.unit.rollback.world import CATALOG

TOPICS = TopicSettings(cdc=["pg.public.orders"], tx_metadata=["pg.transaction"], outbox=["outbox.order"])


def _plan(tmp_path: Path, **more: object) -> list[Grant]:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        CATALOG + "  RevenueCounted:\n    mechanism: replay\n    store: revenue\n    topics: [outbox.order]\n"
    )
    return acl_plan(Settings(topics=TOPICS, **more), load_catalog(catalog))  # type: ignore[arg-type]


def _writes(grants: list[Grant], role: str) -> set[str]:
    return {
        g.name
        for g in grants
        if g.role == role and g.resource is Resource.TOPIC and g.operation is Operation.WRITE
    }


def test_each_role_writes_only_its_outputs(tmp_path: Path) -> None:
    grants, t = _plan(tmp_path), Settings().topics
    assert _writes(grants, "tap") == {t.journal, t.deadletter}
    assert _writes(grants, "graph") == set()
    assert _writes(grants, "operator") == {t.requests, t.control}
    assert _writes(grants, "approver") == {t.control}
    assert _writes(grants, "service") == set()
    commands = {"orders.commands", "inventory.commands", "payments.commands", "ops.notifications"}
    assert _writes(grants, "worker") == {t.status, t.deadletter, "rewind.rollback.notifications", *commands}
    reads = {g.name for g in grants if g.role == "service" and g.resource is Resource.TOPIC}
    assert reads == {*commands, "rewind.rollback.notifications"}


def test_nothing_creates_deletes_or_reaches_another_roles_groups(tmp_path: Path) -> None:
    grants = _plan(tmp_path)
    assert not [g for g in grants if g.operation in (Operation.CREATE, Operation.DELETE)]
    groups = {(g.role, g.name, g.pattern) for g in grants if g.resource is Resource.GROUP}
    assert ("worker", "kafka-rewind-rollback", Pattern.PREFIXED) in groups
    assert not [g for g in groups if g[2] is Pattern.PREFIXED and g[1] in ("kafka-rewind", "kafka-rewind-")]
    txn = {(g.role, g.name) for g in grants if g.resource is Resource.TRANSACTIONAL_ID}
    assert txn == {("tap", "kafka-rewind-tap"), ("worker", "kafka-rewind-rollback-")}


def test_drills_add_their_entry_point_and_their_own_replay_copies(tmp_path: Path) -> None:
    grants = _plan(tmp_path, drill=DrillSettings(entry_topic="shop.checkout"))
    worker = {
        (g.operation, g.name, g.pattern)
        for g in grants
        if g.role == "worker" and g.resource is Resource.TOPIC
    }
    assert (Operation.WRITE, "shop.checkout", Pattern.LITERAL) in worker
    assert (Operation.WRITE, "rewind.rollback.requests", Pattern.LITERAL) in worker  # its key may only drill
    made = {(g.operation, g.name) for g in grants if g.operation in (Operation.CREATE, Operation.DELETE)}
    assert made == {(Operation.CREATE, "outbox.order.drill-"), (Operation.DELETE, "outbox.order.drill-")}


def test_the_plan_prints_as_json(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(CATALOG)
    result = CliRunner().invoke(main, ["acl", "plan", "--catalog", str(catalog), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["role"] for r in rows} == {"tap", "graph", "worker", "operator", "approver", "service"}
    assert all(r["principal"].startswith("rewind-") for r in rows)
