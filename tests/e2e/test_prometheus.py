"""The dashboard and the alert rules against a real Prometheus (Debian's package) scraping a real
``rewind run`` on the local broker, while the live shop's orders flow, a bad record is dead-lettered
and scheduled drills roll canary workflows back: every panel's query returns series, every alert
rule loads and evaluates without error, and every metric selector in the rules has series."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Producer

from examples.shop.scenario import DRILL_SKU, SKUS, Scenario
from processor.devenv.postgres import Dsn
from processor.devenv.procs import free_port
from processor.metrics.dashboard import RATE, queries
from tests.e2e.conftest import ConnectLauncher
from tests.e2e.dashboard_png import render

DEPLOY = Path(__file__).parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rewind-rules.yaml"
SELECTOR = re.compile(r"\brewind_[a-z_]+(?:\{[^}]*\})?")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
        return text


def _wait(what: str, check: Any, timeout_s: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(1)
    tail = log.read_text()[-4000:] if log and log.exists() else ""
    raise AssertionError(f"{what} within {timeout_s:.0f}s\n{tail}")


@contextmanager
def _process(
    cmd: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _query(base: str, expr: str) -> list[Any]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        answer = json.loads(_get(url))
    except urllib.error.HTTPError as exc:  # a syntax error is a 400 with Prometheus's reason
        raise AssertionError(f"{expr}: {exc.read().decode()}") from exc
    assert answer["status"] == "success", (expr, answer)
    result: list[Any] = answer["data"]["result"]
    return result


def test_every_panel_and_rule_evaluates_on_a_real_prometheus_scraping_rewind_run(
    kafka_bootstrap: str, postgres: Dsn, debezium: ConnectLauncher, tmp_path: Path
) -> None:
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is missing: scripts/bootstrap.sh installs Debian's prometheus package"
    scenario = Scenario(kafka_bootstrap, postgres, debezium.start, tmp_path, orders=10)
    scenario.create_databases()
    metrics_port, prometheus_port = free_port(), free_port()
    settings = scenario.settings.model_copy(update={
        "metrics_port": metrics_port, "drill": scenario.settings.drill.model_copy(update={"every": 5.0}),
    })  # fmt: skip
    config = tmp_path / "rewind.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    scrape = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "kafka-rewind",
                            "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }  # fmt: skip
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(scrape))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REWIND_")}
    rewind = [str(Path(sys.executable).parent / "rewind"), "--config", str(config), "run"]
    base = f"http://127.0.0.1:{prometheus_port}"
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    rewind_log, prometheus_log = tmp_path / "rewind.log", tmp_path / "prometheus.log"
    started = time.time()

    with (
        scenario.running(rewind=False) as live,
        _process(rewind, rewind_log, env),
        _process([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                  f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prometheus_port}"],
                 prometheus_log),
    ):  # fmt: skip
        shop = scenario.shop(live.gateway, live.mailer)
        try:
            for sku in (*SKUS, DRILL_SKU):
                shop.stock(sku, 100_000)
            _wait(
                "rewind run serves its metrics",
                lambda: 'component="tap"' in _get(metrics_url),
                120,
                rewind_log,
            )
            for n in range(1, 11):
                shop.request_order(n, f"c{n}", SKUS[n % 3], 1)
        finally:
            shop.close()
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        producer.produce(settings.topics.cdc[0], key=b'{"id": 1}', value=b"{not json")
        producer.flush(30)

        def seen(text: str) -> bool:
            return text in _get(metrics_url)

        _wait(
            "a scheduled drill passes",
            lambda: seen("rewind_drill_last_success_timestamp_seconds{"),
            400,
            rewind_log,
        )
        _wait("the bad record is dead-lettered",
              lambda: re.search(r"rewind_tap_dead_letters_total\{[^}]*\} [1-9]", _get(metrics_url)), 60, rewind_log)  # fmt: skip
        _wait(
            "Prometheus scraped the drill",
            lambda: _query(base, "rewind_drill_last_success_timestamp_seconds"),
            60,
            prometheus_log,
        )
        more = scenario.shop(live.gateway, live.mailer)
        try:  # more orders while Prometheus watches: the picture shows them flow
            for n in range(11, 31):
                more.request_order(n, f"c{n}", SKUS[n % 3], 1)
                time.sleep(0.5)
        finally:
            more.close()
        time.sleep(5)  # a few more scrapes, so every rate has two samples in its window

        board = json.loads((DEPLOY / "grafana" / "kafka-rewind.json").read_text())
        empty = []
        for title, expr in queries(board):
            if not _query(base, expr.replace(RATE, "1m")):
                empty.append(f"{title}: {expr}")
        assert not empty, "panels without series:\n" + "\n".join(empty)

        groups = json.loads(_get(f"{base}/api/v1/rules"))["data"]["groups"]
        loaded = [r for g in groups for r in g["rules"]]
        written = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
        assert len(loaded) == len(written)
        assert [r["name"] for r in loaded if r["health"] != "ok"] == [], loaded
        for rule in written:
            _query(base, rule["expr"])  # evaluates (an empty answer is a quiet alert)
            for selector in SELECTOR.findall(rule["expr"]):
                assert _query(base, selector), f"{rule['alert']}: {selector} has no series"
        firing = [r["name"] for r in loaded if r["state"] == "firing"]
        assert "RewindDrillFailed" not in firing and "RewindTapDown" not in firing, firing

        picture = tmp_path / "dashboard.png"  # the README's picture: REWIND_DASHBOARD_PNG=docs/dashboard.png
        drawn = render(board, base, started, time.time(), picture, "15s")
        assert drawn >= len(queries(board)) and picture.stat().st_size > 20_000
        if target := os.environ.get("REWIND_DASHBOARD_PNG"):
            shutil.copyfile(picture, target)
