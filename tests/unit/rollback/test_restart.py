"""A restarted worker starts from the graph builder's checkpoint and its own action store, each with
the journal position it reflects, and ends up where one that rebuilt everything from the journal does."""

from __future__ import annotations

from pathlib import Path

from processor.graph import store as graph_store
from processor.graph.builder import CausalGraph
from processor.graph.model import EdgeKind
from processor.rollback.actions import ActionStore
from processor.rollback.engine import EngineConfig, RollbackEngine
from processor.rollback.plan import StepState
from processor.rollback.serde import decode_status
from tests.unit.rollback.test_engine import LIMITS, refund_answered_then_died
from tests.unit.rollback.world import World, catalog


def test_a_store_file_keeps_its_entries_and_the_journal_position_they_reach(tmp_path: Path) -> None:
    w = World()
    w.order(1, rule="v7", price=90)
    path = tmp_path / "actions.sqlite"
    store, why = ActionStore.open(path, "journal")
    assert why == f"no action store at {path}"
    store.add_many([(e, None) for e in w.entries[:2]])
    store.mark({0: 2})
    store.add_many([(e, None) for e in w.entries[2:]])
    store.mark({0: 3, 1: 1})
    store.mark({0: 1})  # a position never goes back
    store.close()
    again, why = ActionStore.open(path, "journal")
    assert why is None
    assert again.positions() == {0: 3, 1: 1}
    assert len(again) == len(w.entries)
    assert again.get("price-1") == w.entries[0]


def test_a_store_of_another_journal_or_unreadable_is_replaced_and_says_why(tmp_path: Path) -> None:
    w = World()
    w.order(1, rule="v7", price=90)
    path = tmp_path / "actions.sqlite"
    store, _ = ActionStore.open(path, "journal-a")
    store.add_many([(e, None) for e in w.entries])
    store.mark({0: 4})
    store.close()
    other, why = ActionStore.open(path, "journal-b")
    assert why == f"the action store at {path} is of journal 'journal-a'"
    assert len(other) == 0 and other.positions() == {}
    other.close()
    path.write_bytes(b"this is not a database" * 100)
    broken, why = ActionStore.open(path, "journal-b")
    assert why is not None and "unreadable" in why
    assert len(broken) == 0
    _, why = ActionStore.open(":memory:", "journal-b")
    assert why == "the action store is in memory"


def test_from_a_checkpoint_built_without_the_worker_the_undo_links_and_confirmations_hold(
    tmp_path: Path,
) -> None:
    w, saved = refund_answered_then_died(tmp_path)

    # The graph builder indexed the whole journal, the answer included, and checkpointed it.
    built = CausalGraph()
    for e in w.entries:
        built.add(e)
    checkpoint = tmp_path / "graph.npz"
    graph_store.save(checkpoint, graph_store.Checkpoint(built, "journal", {0: len(w.entries)}, 0.0))
    loaded = graph_store.load(checkpoint, "journal")
    assert loaded is not None
    actions = ActionStore()
    actions.add_many([(e, None) for e in w.entries])

    restarted = RollbackEngine(
        catalog(tmp_path), EngineConfig(thresholds=LIMITS), graph=loaded.graph, actions=actions
    )
    restarted.resume(decode_status(saved))
    answer = w.entries[-1]
    restarted.add_entries([(answer, None)], 40)  # after the store's restart position: read again
    step = restarted.requests["r1"].plan.step("pay-2")  # type: ignore[union-attr]
    assert step is not None and step.state is StepState.CONFIRMED and step.confirmed_by == answer.action_id
    graph = restarted.graph
    assert (graph.node(answer.action_id), EdgeKind.COMPENSATES) in graph.downstream(graph.node("pay-2"))
    assert len(graph) == len(w.entries), "entries read again add nothing"
    [release] = restarted.tick(50).commands
    assert release.envelope["compensated_action_id"] == "reserve-2"


def test_rebuilding_from_the_journal_links_the_answers_too(tmp_path: Path) -> None:
    w, saved = refund_answered_then_died(tmp_path)

    rebuilt = RollbackEngine(catalog(tmp_path), EngineConfig(thresholds=LIMITS))
    rebuilt.resume(decode_status(saved))  # before the graph holds pay-2
    rebuilt.add_entries([(e, None) for e in w.entries], 40)
    rebuilt.note_resumed()
    graph, answer = rebuilt.graph, w.entries[-1].action_id
    assert (graph.node(answer), EdgeKind.COMPENSATES) in graph.downstream(graph.node("pay-2"))
