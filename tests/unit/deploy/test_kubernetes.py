"""The shipped manifests configure rewind with settings it really accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from processor.config import load_settings
from tests.unit.deploy.exported import DEPLOY

MANIFEST = DEPLOY / "kubernetes" / "rewind.yaml"


def _docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]


def test_manifest_env_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env: dict[str, str] = {}
    for doc in _docs():
        env.update(doc.get("data", {}))
        env.update(doc.get("stringData", {}))
    assert env, "the manifest sets no REWIND_ variables"
    for name, value in env.items():
        assert name.startswith("REWIND_"), name
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.bootstrap_servers == env["REWIND_BOOTSTRAP_SERVERS"]
    assert settings.topics.replication_factor == 3
    assert settings.client_config()["sasl.password"] == env["REWIND_SECURITY__SASL_PASSWORD"]


def test_probe_and_scrape_use_the_metrics_port() -> None:
    docs = {d["kind"]: d for d in _docs()}
    pod = docs["Deployment"]["spec"]["template"]
    port = int(docs["ConfigMap"]["data"]["REWIND_METRICS_PORT"])
    container = pod["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == port
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_graph_checkpoint_and_action_store_live_on_the_state_volume() -> None:
    docs = {d["kind"]: d for d in _docs()}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    checkpoint = Path(docs["ConfigMap"]["data"]["REWIND_GRAPH__CHECKPOINT_PATH"])
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "state"]
    assert checkpoint.parent == Path(mount["mountPath"]), "the store sits beside the checkpoint"
    [volume] = [v for v in pod["volumes"] if v["name"] == "state"]
    assert volume["persistentVolumeClaim"]["claimName"] == docs["PersistentVolumeClaim"]["metadata"]["name"]
