"""The composition root: one catalog for every component, the components it builds, and a host that
stops the others when one fails."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from processor.app import Rewind
from processor.config import Settings, SigningSettings, TopicSettings
from processor.errors import ConfigError
from processor.journal.serde import to_json_view
from processor.jsonvalue import dumps
from processor.rollback.request import FieldPredicate, Mode, RollbackRequest, Selector, SelectorKind
from processor.undo import Reversibility
from tests.unit.rollback.world import CATALOG, World
from tests.unit.tap.builders import OUTBOX_TOPIC, TS, outbox


def _catalog(tmp_path: Path, name: str, text: str = CATALOG) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_one_catalog_reaches_the_tap_core_and_the_worker(tmp_path: Path) -> None:
    configured = _catalog(tmp_path, "configured.yaml", "actions: {OrderPriced: {mechanism: irreversible}}\n")
    given = _catalog(tmp_path, "given.yaml")
    settings = Settings(catalog_file=configured, topics=TopicSettings(outbox=[OUTBOX_TOPIC]))
    app = Rewind(settings, catalog_file=given)
    assert app.catalog.source == str(given), "--catalog wins over REWIND_CATALOG_FILE"
    [entry] = app.tap_core().process(outbox("e1", "OrderPriced", {"rule_version": "v7"}), TS).entries
    assert entry.reversibility is Reversibility.RESTORABLE, "the tap stamps what the given catalog says"
    with pytest.raises(ConfigError, match="no keyring"):  # it cannot check who signed: it does not start
        app.worker("unused:0")
    unsigned = Rewind(
        settings.model_copy(update={"signing": SigningSettings(required=False)}), catalog_file=given
    )
    assert unsigned.worker("unused:0").catalog is unsigned.catalog
    assert Rewind(Settings(catalog_file=configured)).catalog.source == str(configured)
    assert not Rewind(Settings()).catalog.actions


def test_offline_plan_from_a_journal_dump_uses_the_workers_planner(tmp_path: Path) -> None:
    world = World()
    world.act("p1", "OrderPriced", wf="order-1", payload={"rule_version": "v7"})
    world.act("s1", "StockReserved", wf="order-1", causes=("p1",), payload={"sku": "a", "quantity": 1})
    world.act("p2", "OrderPriced", wf="order-2", payload={"rule_version": "v6"})
    dump = tmp_path / "journal.jsonl"
    dump.write_text("".join(dumps(to_json_view(e)) + "\n" for e in world.entries))
    app = Rewind(Settings(), catalog_file=_catalog(tmp_path, "catalog.yaml"))
    graph, entries = app.graph(dump=dump)
    selector = Selector(SelectorKind.FIELD_PREDICATE, predicate=FieldPredicate.parse('rule_version == "v7"'))
    request = RollbackRequest("r1", "me", "test", 1, selector, Mode.DRY_RUN)
    plan = app.plan(request, graph, entries)
    assert {s.action_id for s in plan.steps} == {"p1", "s1"}, "order-2 is another workflow"


def test_a_failing_component_stops_the_others_of_its_process() -> None:
    app = Rewind(Settings())
    stop = threading.Event()

    def fails() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        app._hosted("rollback", fails, stop)
    assert stop.is_set()
    assert not app.metrics.healthy()
