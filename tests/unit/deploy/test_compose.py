"""The compose quickstart: a Compose file by the Compose specification's JSON schema, and consistent
with the project: rewind's environment is valid settings naming the topics the shop's connector
really writes, the images are the ones the project builds and tests against, every mounted file
exists, and Prometheus's configuration passes promtool."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from examples.shop.live import ENTRY_TOPIC, OUTBOX_PREFIX, LiveShop
from examples.shop.scenario import AGGREGATES
from processor import __version__
from processor.config import Settings, load_settings
from tests.unit.deploy.exported import DEPLOY

COMPOSE = DEPLOY / "compose" / "compose.yaml"


def _compose() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return found


def _service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = _compose()["services"][name]
    return service


def _schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    checker = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run([str(checker), "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def _rewind_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [n for n in os.environ if n.startswith("REWIND_")]:
        monkeypatch.delenv(name)
    for name, value in _service("rewind")["environment"].items():
        assert name.startswith("REWIND_"), name
        monkeypatch.setenv(name, str(value))
    return load_settings()


def test_the_file_follows_the_compose_specification() -> None:
    ran = _schema_check(COMPOSE)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_the_schema_check_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = _compose()
    broken["services"]["kafka"]["healthcheck"]["retries"] = "many"
    broken["services"]["rewind"]["depends_on"] = {"kafka": {"condition": "when_it_feels_like_it"}}
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    assert _schema_check(path).returncode != 0


def test_every_part_the_quickstart_promises_is_there() -> None:
    assert set(_compose()["services"]) == {
        "kafka",
        "postgres",
        "connect",
        "shop",
        "keys",
        "rewind",
        "prometheus",
        "grafana",
    }


def test_rewinds_environment_is_valid_settings_naming_what_the_shop_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _rewind_settings(monkeypatch)
    shop_env = _service("shop")["environment"]
    for name, value in shop_env.items():
        monkeypatch.setenv(name, str(value))
    capture = LiveShop.from_env().capture
    assert settings.topics.cdc == [
        capture.table_topic(t) for t in capture.tables if t != capture.outbox_table
    ]
    assert settings.topics.tx_metadata == [capture.tx_topic]
    assert settings.topics.outbox == [f"{OUTBOX_PREFIX}{a}" for a in AGGREGATES]
    assert settings.tap.outbox.topic_prefix == capture.outbox_topic_prefix == OUTBOX_PREFIX
    assert settings.tap.outbox_tables == [capture.outbox_table]
    assert settings.drill.entry_topic == ENTRY_TOPIC and settings.drill.every > 0
    assert settings.bootstrap_servers == shop_env["REWIND_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert (capture.dsn.host, capture.dsn.user) == (
        "postgres",
        _service("postgres")["environment"]["POSTGRES_USER"],
    )


def test_the_images_are_the_ones_the_project_builds_and_tests_against() -> None:
    defaults = Settings()
    for name in ("rewind", "shop"):
        service = _service(name)
        assert service["image"] == f"kafka-rewind:{__version__}"
        assert (COMPOSE.parent / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == (
            DEPLOY / "Dockerfile"
        ).resolve()
    assert _service("kafka")["image"].endswith(f"/apache/kafka:{defaults.local_broker.kafka_version}")
    debezium_minor = ".".join(defaults.connect.debezium_version.split(".")[:2])
    assert _service("connect")["image"].endswith(f"/debezium/connect:{debezium_minor}")
    assert "wal_level=logical" in _service("postgres")["command"]


def test_every_mounted_file_exists_and_grafana_loads_the_dashboard() -> None:
    mounts = {}
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (COMPOSE.parent / source).is_file(), f"{name}: {source}"
                mounts[target] = (COMPOSE.parent / source).resolve()
    assert mounts["/etc/kafka-rewind/catalog.yaml"].name == "catalog.yaml"
    assert (
        mounts["/var/lib/grafana/dashboards/kafka-rewind.json"]
        == (DEPLOY / "grafana" / "kafka-rewind.json").resolve()
    )
    provider = yaml.safe_load((COMPOSE.parent / "grafana" / "dashboards.yaml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    [source] = yaml.safe_load((COMPOSE.parent / "grafana" / "datasource.yaml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"


def test_prometheus_scrapes_rewind_and_loads_its_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = yaml.safe_load((COMPOSE.parent / "prometheus.yml").read_text())
    port = _rewind_settings(monkeypatch).metrics_port
    [job] = config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"rewind:{port}"]
    [rules] = config["rule_files"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in _service("prometheus")["volumes"]}
    assert (COMPOSE.parent / mounted[rules]).resolve() == (
        DEPLOY / "prometheus" / "rewind-rules.yaml"
    ).resolve()
    local = dict(config, rule_files=[str(DEPLOY / "prometheus" / "rewind-rules.yaml")])
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(local))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/bootstrap.sh installs Debian's prometheus package"
    ran = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                         text=True, timeout=60, check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_the_processor_trusts_the_keyring_the_keys_service_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    """`rewind keys init` makes the people's keys once; the processor starts after it, reads the keyring
    and drills with its own key, both on the shared volume it mounts read-only."""
    settings = _rewind_settings(monkeypatch)
    keys, rewind = _service("keys"), _service("rewind")
    assert keys["command"][:3] == ["keys", "init", "/keys"] and "rewind-keys:/keys" in keys["volumes"]
    assert rewind["depends_on"]["keys"] == {"condition": "service_completed_successfully"}
    assert "rewind-keys:/keys:ro" in rewind["volumes"]
    made = {k.split("=")[0]: k.split("=")[1].split(",") for k in keys["command"][4::2]}
    assert settings.signing.required and settings.signing.keyring_file == Path("/keys/keyring.yaml")
    assert settings.signing.key_file == Path("/keys/rewind-drill.pem") and made["rewind-drill"] == ["drill"]
    assert {"operator", "approver"} <= {r for roles in made.values() for r in roles}
