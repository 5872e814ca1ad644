"""The Kubernetes manifests: valid against the Kubernetes schemas (kubernetes-validate, strict), and
they configure rewind with settings it really accepts: the probes, scrape, state volume, topics and
alert rules all agree with the processor and the other files under deploy/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from processor.app import own_topic_configs
from processor.config import Settings, load_settings
from tests.unit.deploy.exported import DEPLOY

KUBERNETES = DEPLOY / "kubernetes"
MANIFEST = KUBERNETES / "rewind.yaml"


def _docs(path: Path = MANIFEST) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _kinds(path: Path = MANIFEST) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in _docs(path)}


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    validator = Path(sys.executable).parent / "kubernetes-validate"
    return subprocess.run([str(validator), "--strict", str(path)], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def _env(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], Settings]:
    env: dict[str, str] = {}
    for doc in _docs():
        env.update(doc.get("data", {}))
        env.update(doc.get("stringData", {}))
    for name, value in env.items():
        assert name.startswith("REWIND_"), name
        monkeypatch.setenv(name, value)
    return env, load_settings()


def test_the_manifests_are_valid_kubernetes_objects() -> None:
    ran = _validate(MANIFEST)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.count("passed for resource") == len(_docs()) >= 6


def test_the_validator_rejects_a_broken_manifest(tmp_path: Path) -> None:
    docs = _docs()
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["replicas"] = "one"
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump_all(docs))
    ran = _validate(broken)
    assert ran.returncode != 0
    assert "replicas" in ran.stdout + ran.stderr


def test_manifest_env_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env, settings = _env(monkeypatch)
    assert settings.bootstrap_servers == env["REWIND_BOOTSTRAP_SERVERS"]
    assert settings.topics.replication_factor == 3
    assert settings.client_config()["sasl.password"] == env["REWIND_SECURITY__SASL_PASSWORD"]
    secret = _kinds()["Secret"]["stringData"]
    assert all("PASSWORD" not in k for k in _kinds()["ConfigMap"]["data"]), "secrets belong in the Secret"
    assert "REWIND_SECURITY__SASL_PASSWORD" in secret


def test_probes_scrape_and_service_use_the_metrics_port() -> None:
    docs = _kinds()
    pod = docs["Deployment"]["spec"]["template"]
    port = int(docs["ConfigMap"]["data"]["REWIND_METRICS_PORT"])
    container = pod["spec"]["containers"][0]
    assert container["ports"][0] == {"name": "metrics", "containerPort": port, "protocol": "TCP"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}, probe
    service = docs["Service"]["spec"]
    assert service["ports"][0]["targetPort"] == "metrics"
    labels = pod["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    monitor = _kinds(KUBERNETES / "servicemonitor.yaml")["ServiceMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= docs["Service"]["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["endpoints"]] == [service["ports"][0]["name"]]


def test_it_runs_as_the_images_non_root_user() -> None:
    spec = _kinds()["Deployment"]["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert f"--uid {spec['securityContext']['runAsUser']} " in (DEPLOY / "Dockerfile").read_text()
    assert spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_graph_checkpoint_and_action_store_live_on_the_state_volume() -> None:
    docs = _kinds()
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    checkpoint = Path(docs["ConfigMap"]["data"]["REWIND_GRAPH__CHECKPOINT_PATH"])
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "state"]
    assert checkpoint.parent == Path(mount["mountPath"]), "the store sits beside the checkpoint"
    [volume] = [v for v in pod["volumes"] if v["name"] == "state"]
    assert volume["persistentVolumeClaim"]["claimName"] == docs["PersistentVolumeClaim"]["metadata"]["name"]


def test_the_topics_are_the_ones_rewind_uses_with_its_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    _names, settings = _env(monkeypatch)
    topics = {d["spec"]["topicName"]: d["spec"] for d in _docs(KUBERNETES / "topics.yaml")}
    assert set(topics) == {*settings.topics.own(), settings.rollback.notify_topic}
    configs = own_topic_configs(settings)
    for name, spec in topics.items():
        assert spec["partitions"] == settings.topics.partitions, name
        assert spec["replicas"] == settings.topics.replication_factor, name
        assert spec.get("config", {}) == configs.get(name, {}), name


def test_the_operators_rules_are_the_alert_rules() -> None:
    rule = _kinds(KUBERNETES / "servicemonitor.yaml")["PrometheusRule"]
    assert rule["spec"] == yaml.safe_load((DEPLOY / "prometheus" / "rewind-rules.yaml").read_text())


def test_the_keyring_and_the_drill_key_come_from_their_secret_read_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, settings = _env(monkeypatch)
    pod = _kinds()["Deployment"]["spec"]["template"]["spec"]
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "keys"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "keys"]
    assert mount["readOnly"] and volume["secret"]["secretName"] == "kafka-rewind-keys"
    assert volume["secret"]["defaultMode"] == 0o400, "the drill's private key readable by the pod's user only"
    for path in (settings.signing.keyring_file, settings.signing.key_file):
        assert path is not None and path.parent == Path(mount["mountPath"])
    assert settings.signing.required, "the manifest does not turn signatures off"
