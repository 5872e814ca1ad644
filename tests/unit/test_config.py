from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from processor.cli import main
from processor.config import RollbackSettings, Settings, TapSettings, load_settings
from processor.errors import ConfigError
from processor.kafka import clients


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("REWIND_"):
            monkeypatch.delenv(name)


def test_defaults_need_no_configuration() -> None:
    s = load_settings()
    assert s.bootstrap_servers is None
    assert s.topics.journal == "rewind.journal"
    assert s.local_broker.kafka_version.startswith("4.")


def test_environment_sets_nested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWIND_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("REWIND_TOPICS__JOURNAL", "audit.journal")
    monkeypatch.setenv("REWIND_TOPICS__CDC", '["shop.public.orders"]')
    monkeypatch.setenv("REWIND_LOCAL_BROKER__PORT", "19092")
    s = load_settings()
    assert s.bootstrap_servers == "k1:9092,k2:9092"
    assert s.topics.journal == "audit.journal"
    assert s.topics.cdc == ["shop.public.orders"]
    assert s.local_broker.port == 19092


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_file_is_read_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    body = {
        ".yaml": "bootstrap_servers: file:9092\ngroup_id: from-file\ntopics:\n  outbox: [ob.orders]\n",
        ".toml": 'bootstrap_servers = "file:9092"\ngroup_id = "from-file"\n'
        '[topics]\noutbox = ["ob.orders"]\n',
    }[suffix]
    path = tmp_path / f"rewind{suffix}"
    path.write_text(body)
    monkeypatch.setenv("REWIND_GROUP_ID", "from-env")
    s = load_settings(path)
    assert s.bootstrap_servers == "file:9092"
    assert s.topics.outbox == ["ob.orders"]
    assert s.group_id == "from-env"


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("client_id: via-env-file\n")
    monkeypatch.setenv("REWIND_CONFIG_FILE", str(path))
    assert load_settings().client_id == "via-env-file"


def test_security_reaches_librdkafka_and_secrets_stay_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REWIND_BOOTSTRAP_SERVERS", "k:9093")
    monkeypatch.setenv("REWIND_SECURITY__PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("REWIND_SECURITY__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("REWIND_SECURITY__SASL_USERNAME", "rewind")
    monkeypatch.setenv("REWIND_SECURITY__SASL_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("REWIND_SECURITY__SSL_KEY_PASSWORD", "key-secret")
    monkeypatch.setenv("REWIND_SECURITY__EXTRA", '{"ssl.endpoint.identification.algorithm": "none"}')
    s = load_settings()
    conf = s.client_config()
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.password"] == "hunter2-secret"
    assert conf["ssl.key.password"] == "key-secret"
    assert conf["ssl.endpoint.identification.algorithm"] == "none"
    dumped = json.dumps(s.redacted())
    assert "hunter2-secret" not in dumped and "key-secret" not in dumped
    assert "hunter2-secret" not in repr(s) and "hunter2-secret" not in str(s)


def test_config_show_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWIND_SECURITY__SASL_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("REWIND_TOPICS__JOURNAL", "audit.journal")
    for fmt in ("yaml", "json"):
        result = CliRunner().invoke(main, ["config", "show", "--format", fmt])
        assert result.exit_code == 0, result.output
        assert "hunter2-secret" not in result.output
        assert "**********" in result.output
        assert "audit.journal" in result.output


def test_invalid_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWIND_LOCAL_BROKER__PORT", "99999")
    with pytest.raises(ConfigError, match=r"local_broker\.port"):
        load_settings()


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("topics:\n  jornal: typo\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "topics.jornal" in str(info.value) and str(path) in str(info.value)


def test_malformed_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("topics: [unclosed\n")
    with pytest.raises(ConfigError, match=str(path)):
        load_settings(path)


def test_cli_reports_config_errors_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWIND_METRICS_PORT", "not-a-port")
    result = CliRunner().invoke(main, ["config", "show"])
    assert result.exit_code == 1
    assert "metrics_port" in result.output and "Traceback" not in result.output


def test_no_bootstrap_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="REWIND_BOOTSTRAP_SERVERS"):
        load_settings().client_config()


def test_one_catalog_for_the_tap_and_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    assert Settings(catalog_file=Path("c.yaml")).catalog_file == Path("c.yaml")
    old = Settings(tap=TapSettings(catalog_file=Path("old.yaml")))  # the old name, for one release
    assert old.catalog_file == Path("old.yaml") and "REWIND_TAP__CATALOG_FILE is deprecated" in caplog.text
    with pytest.raises(ValidationError, match="one catalog"):
        Settings(
            tap=TapSettings(catalog_file=Path("a.yaml")),
            rollback=RollbackSettings(catalog_file=Path("b.yaml")),
        )


def test_client_properties_tune_timeouts_but_not_what_exactly_once_rests_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "REWIND_CLIENTS__PRODUCER", '{"transaction.timeout.ms": "7000", "enable.idempotence": "false"}'
    )
    monkeypatch.setenv(
        "REWIND_CLIENTS__CONSUMER", '{"session.timeout.ms": "6000", "isolation.level": "read_uncommitted"}'
    )
    settings = Settings(bootstrap_servers="127.0.0.1:1")
    seen: dict[str, dict[str, object]] = {}
    monkeypatch.setattr(clients, "Producer", lambda conf: seen.setdefault("producer", conf))
    monkeypatch.setattr(clients, "Consumer", lambda conf: seen.setdefault("consumer", conf))
    clients.producer(settings, "127.0.0.1:1", transactional_id="t")
    clients.consumer(settings, "127.0.0.1:1", "g", extra={"session.timeout.ms": 10000})
    assert (
        seen["producer"]["transaction.timeout.ms"] == "7000"
        and seen["producer"]["enable.idempotence"] is True
    )
    assert seen["consumer"]["session.timeout.ms"] == "6000"  # the user's value over rewind's default
    assert seen["consumer"]["isolation.level"] == "read_committed"
