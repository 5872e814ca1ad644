"""The checkpoint file, and `rewind lineage` / `rewind graph export` offline on a capture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.graph import store
from processor.graph.builder import CausalGraph
from processor.graph.queries import closure
from processor.kafka.messages import SourceRecord
from tests.unit.graph.test_graph import action, build
from tests.unit.tap.builders import outbox


def test_checkpoint_round_trips_with_its_offsets(tmp_path: Path) -> None:
    graph = build(action("a"), action("b", causes=("a",)), action("c", causes=("missing",)))
    path = tmp_path / "graph.npz"
    store.save(path, store.Checkpoint(graph, "rewind.journal", {0: 17, 2: 4}, 1234.5))
    loaded = store.load(path, "rewind.journal")
    assert loaded is not None
    assert loaded.offsets == {0: 17, 2: 4} and loaded.written_at == 1234.5
    assert loaded.graph.edge_set() == graph.edge_set() and loaded.graph.dangling() == {"missing": ["c"]}
    assert closure(loaded.graph, ["a"]) == {"a", "b"}
    assert not path.with_name("graph.npz.tmp").exists()


def test_checkpoint_of_another_journal_or_unreadable_means_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "graph.npz"
    store.save(path, store.Checkpoint(build(action("a")), "other.journal", {0: 1}, 0))
    with pytest.raises(store.CheckpointError, match=r"other\.journal"):
        store.load(path, "rewind.journal")
    assert len(store.load_or_empty(path, "rewind.journal").graph) == 0
    path.write_bytes(b"not a checkpoint")
    fresh = store.load_or_empty(path, "rewind.journal")
    assert len(fresh.graph) == 0 and fresh.offsets == {}
    assert store.load(tmp_path / "absent.npz", "rewind.journal") is None


def _capture(tmp_path: Path) -> Path:
    """order placed -> payment captured -> email sent, and an unrelated workflow."""
    records: list[SourceRecord] = [
        outbox("order-1", "OrderPlaced", {}, correlation="wf-1", offset=0),
        outbox("pay-1", "PaymentCaptured", {}, correlation="wf-1", causation="order-1", offset=1),
        outbox("mail-1", "EmailSent", {}, correlation="wf-1", causation="pay-1", offset=2),
        outbox("order-2", "OrderPlaced", {}, correlation="wf-2", offset=3),
    ]
    path = tmp_path / "capture.jsonl"
    with path.open("w") as f:
        for r in records:
            headers = [x for k, v in r.headers for x in (k, None if v is None else v.decode())]
            f.write(json.dumps({"topic": r.topic, "partition": 0, "offset": r.offset, "ts": r.timestamp_ms,
                                "headers": headers, "key": (r.key or b"").decode(), "payload": (r.value or b"").decode()}) + "\n")  # fmt: skip
    return path


def test_lineage_draws_effects_and_causes(tmp_path: Path) -> None:
    capture = _capture(tmp_path)
    down = CliRunner().invoke(main, ["lineage", "order-1", "--capture", str(capture)])
    assert down.exit_code == 0, down.output
    assert "effects of order-1: 2" in down.output
    assert "pay-1  PaymentCaptured [order]" in down.output and "mail-1  EmailSent" in down.output
    assert "order-2" not in down.output
    up = CliRunner().invoke(main, ["lineage", "mail-1", "--up", "--capture", str(capture)])
    assert "causes of mail-1: 2" in up.output and "order-1" in up.output


def test_lineage_of_an_unknown_action_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["lineage", "nope", "--capture", str(_capture(tmp_path))])
    assert result.exit_code == 1 and "'nope' is not in the graph (4 actions)" in result.output


def test_export_json_and_dot_of_a_scope(tmp_path: Path) -> None:
    capture = _capture(tmp_path)
    result = CliRunner().invoke(
        main, ["graph", "export", "--capture", str(capture), "--action", "pay-1", "--format", "json"]
    )
    data = json.loads(result.output)
    assert sorted(n["id"] for n in data["nodes"]) == ["mail-1", "pay-1"]
    assert data["edges"] == [{"source": "pay-1", "target": "mail-1", "kind": "caused_by"}]
    out = tmp_path / "scope.dot"
    result = CliRunner().invoke(main, ["graph", "export", "--capture", str(capture), "--action", "pay-1",
                                       "--direction", "both", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    dot = out.read_text()
    assert dot.startswith("digraph rewind") and '"order-1" -> "pay-1"' in dot and "order-2" not in dot
    assert r'"pay-1" [label="PaymentCaptured\npay-1\nunclassified"]' in dot  # \n: a line break to DOT


def test_image_export_without_graphviz_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = CliRunner().invoke(main, ["graph", "export", "--capture", str(_capture(tmp_path)), "--format", "svg",
                                       "--out", str(tmp_path / "g.svg")])  # fmt: skip
    assert (
        result.exit_code == 1 and "Graphviz" in result.output and "apt-get install graphviz" in result.output
    )


def test_without_source_or_checkpoint_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REWIND_GRAPH__CHECKPOINT_PATH", str(tmp_path / "none.npz"))
    result = CliRunner().invoke(main, ["lineage", "x"])
    assert result.exit_code == 1 and "rewind graph build" in result.output


def test_empty_graph_has_nothing_dangling() -> None:
    assert CausalGraph().dangling() == {} and len(CausalGraph()) == 0


def test_svg_and_png_through_graphviz(tmp_path: Path) -> None:
    if shutil.which("dot") is None:
        pytest.fail("Graphviz is not installed: scripts/bootstrap.sh installs it (apt-get install graphviz)")
    capture = _capture(tmp_path)
    for fmt in ("svg", "png"):
        out = tmp_path / f"scope.{fmt}"
        result = CliRunner().invoke(main, ["graph", "export", "--capture", str(capture), "--action", "order-1",
                                           "--format", fmt, "--out", str(out)])  # fmt: skip
        assert result.exit_code == 0, result.output
        data = out.read_bytes()
        assert data.startswith(b"\x89PNG") if fmt == "png" else b"<svg" in data and b"PaymentCaptured" in data


def test_stats_reports_edges_and_causes_never_seen(tmp_path: Path) -> None:
    capture = _capture(tmp_path)
    with capture.open("a") as f:
        f.write(json.dumps({"topic": "outbox.event.order", "partition": 0, "offset": 9, "ts": 1,
                            "headers": ["id", "orphan", "eventType", "T", "causationId", "ghost-1"],
                            "key": '"1"', "payload": '"{}"'}) + "\n")  # fmt: skip
    result = CliRunner().invoke(main, ["graph", "stats", "--capture", str(capture)])
    assert result.exit_code == 0, result.output
    assert "actions: 5" in result.output and "caused_by 2" in result.output
    assert "causes never seen: 1" in result.output and "ghost-1  named by orphan" in result.output
    as_json = CliRunner().invoke(main, ["graph", "stats", "--capture", str(capture), "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    found = json.loads(as_json.stdout)
    assert found["actions"] == 5 and found["edges"]["caused_by"] == 2
    assert found["causes_never_seen"] == 1 and found["dangling"] == {"ghost-1": ["orphan"]}
