"""The local broker's pure parts and its error paths, with fake java/mvn programs on PATH."""

from __future__ import annotations

import base64
import shutil
import socket
import stat
from pathlib import Path

import pytest

from processor.config import LocalBrokerSettings, Settings
from processor.devenv.procs import free_port, require_java, require_maven
from processor.errors import PortInUse, ServiceNotReady, ToolMissing
from processor.kafka.local_broker import LocalBroker, random_cluster_id


def _program(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only our fakes and the few tools they use (no real java or mvn)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "sleep", "mkdir", "touch", "dirname"):
        real = shutil.which(tool)
        assert real, tool
        (bin_dir / tool).symlink_to(real)
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def _settings(tmp_path: Path, **kw: object) -> LocalBrokerSettings:
    return LocalBrokerSettings(
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
        port=free_port(),
        controller_port=free_port(),
        **kw,
    )


def test_cluster_id_is_a_22_char_base64url_uuid() -> None:
    ids = {random_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert len(cid) == 22 and not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_server_properties_make_a_single_node_transactional_cluster(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    props = dict(line.split("=", 1) for line in LocalBroker(s).server_properties().splitlines() if line)
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{s.port},CONTROLLER://127.0.0.1:{s.controller_port}"
    assert props["controller.quorum.voters"] == f"1@127.0.0.1:{s.controller_port}"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "1", key


def test_missing_java_names_the_fix(fake_bin: Path) -> None:
    with pytest.raises(ToolMissing) as info:
        require_java()
    assert "Java is not installed" in str(info.value) and "apt-get install" in str(info.value)


def test_old_java_is_refused(fake_bin: Path) -> None:
    _program(fake_bin, "java", "echo 'openjdk version \"11.0.20\" 2023-07-18' >&2\n")
    with pytest.raises(ToolMissing, match="Java 11"):
        require_java()


def test_legacy_version_string_is_understood(fake_bin: Path) -> None:
    _program(fake_bin, "java", "echo 'java version \"1.8.0_381\"' >&2\n")
    with pytest.raises(ToolMissing, match="Java 8"):
        require_java()


def test_java_17_is_accepted(fake_bin: Path) -> None:
    _program(fake_bin, "java", "echo 'openjdk version \"17.0.15\" 2025-04-15' >&2\n")
    assert require_java().endswith("/java")


def test_missing_maven_names_the_fix(fake_bin: Path, tmp_path: Path) -> None:
    _program(fake_bin, "java", "echo 'openjdk version \"17.0.15\"' >&2\n")
    with pytest.raises(ToolMissing, match="apt-get install maven"):
        require_maven()
    with pytest.raises(ToolMissing, match="Maven"):
        LocalBroker(_settings(tmp_path)).fetch()


def test_port_in_use_is_named_with_the_setting_to_change(tmp_path: Path, fake_bin: Path) -> None:
    _program(fake_bin, "java", "echo 'openjdk version \"17.0.15\"' >&2\n")
    s = _settings(tmp_path)
    broker = LocalBroker(s)
    broker.jar_dir.mkdir(parents=True)
    (broker.jar_dir / ".complete").write_text("4.1.1")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", s.port))
        holder.listen()
        with pytest.raises(PortInUse) as info:
            broker.start()
    assert f"127.0.0.1:{s.port}" in str(info.value)
    assert "REWIND_LOCAL_BROKER__PORT" in str(info.value)


def _ready_jars(broker: LocalBroker) -> None:
    broker.jar_dir.mkdir(parents=True)
    (broker.jar_dir / ".complete").write_text("4.1.1")


def test_broker_that_dies_reports_the_tail_of_its_log(tmp_path: Path, fake_bin: Path) -> None:
    # A java that answers -version, formats fine, and then dies at start with a message.
    _program(
        fake_bin,
        "java",
        """
case "$*" in
  *-version*) echo 'openjdk version "17.0.15"' >&2 ;;
  *StorageTool*) d="$(dirname "$0")/../data/kraft-logs"; mkdir -p "$d"; touch "$d/meta.properties" ;;
  *kafka.Kafka*) echo "ERROR Exiting Kafka due to fatal exception: log dir is locked" >&2; exit 1 ;;
esac
""",
    )
    broker = LocalBroker(_settings(tmp_path))
    _ready_jars(broker)
    with pytest.raises(ServiceNotReady) as info:
        broker.start()
    assert "exited with code 1" in str(info.value)
    assert "log dir is locked" in info.value.log_tail
    assert broker.running_pid() is None


def test_broker_that_never_gets_ready_times_out_and_is_stopped(tmp_path: Path, fake_bin: Path) -> None:
    _program(
        fake_bin,
        "java",
        """
case "$*" in
  *-version*) echo 'openjdk version "17.0.15"' >&2 ;;
  *StorageTool*) d="$(dirname "$0")/../data/kraft-logs"; mkdir -p "$d"; touch "$d/meta.properties" ;;
  *kafka.Kafka*) echo "INFO still recovering segments" >&2; exec sleep 60 ;;
esac
""",
    )
    broker = LocalBroker(_settings(tmp_path, ready_timeout_s=1.5))
    _ready_jars(broker)
    with pytest.raises(ServiceNotReady) as info:
        broker.start()
    assert "did not report ready within 2s" in str(info.value)
    assert "still recovering segments" in info.value.log_tail
    assert "READY_TIMEOUT_S" in str(info.value)
    assert broker.running_pid() is None


def test_stop_when_nothing_runs_says_so(tmp_path: Path) -> None:
    broker = LocalBroker(_settings(tmp_path))
    assert broker.stop() is False
    assert broker.status().running is False


def test_settings_as_a_role_connect_as_its_principal_and_create_nothing(tmp_path: Path) -> None:
    broker = LocalBroker(_settings(tmp_path, secure=True))
    base = Settings(bootstrap_servers="elsewhere:1")
    tap, admin = broker.settings_as(base, "tap"), broker.settings_as(base, "admin")
    password = tap.security.sasl_password
    assert password is not None and password.get_secret_value() == broker.credentials()["rewind-tap"]
    assert (tap.security.protocol, tap.security.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert tap.security.sasl_username == "rewind-tap" and tap.bootstrap_servers == broker.bootstrap
    assert tap.security.ssl_ca_location == broker.secure_dir / "ca.pem"
    assert not tap.topics.create_missing  # least privilege: only the admin step makes topics
    assert admin.topics.create_missing and admin.security.sasl_username == "rewind-admin"
    with pytest.raises(KeyError):
        broker.settings_as(base, "janitor")
