"""The local Kafka Connect worker's properties: how it connects as a principal of a secured cluster."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from processor.config import ConnectSettings, SecuritySettings
from processor.devenv.connect import CLIENT_PREFIXES, LocalConnect, java_client_properties
from processor.errors import ConfigError

SCRAM = SecuritySettings.model_validate({
    "protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "rewind-admin",
    "sasl_password": "pw-\"quoted\"", "ssl_ca_location": "/keys/ca.pem",
})  # fmt: skip


def test_scram_over_tls_becomes_a_jaas_login_and_a_pem_truststore() -> None:
    props = java_client_properties(SCRAM)
    assert props["security.protocol"] == "SASL_SSL" and props["sasl.mechanism"] == "SCRAM-SHA-512"
    assert props["sasl.jaas.config"].startswith(
        "org.apache.kafka.common.security.scram.ScramLoginModule required"
    )
    assert props["sasl.jaas.config"].endswith(' username="rewind-admin" password="pw-\\"quoted\\"";')
    assert (props["ssl.truststore.type"], props["ssl.truststore.location"]) == ("PEM", "/keys/ca.pem")


def test_plaintext_needs_nothing_more() -> None:
    assert java_client_properties(SecuritySettings()) == {"security.protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        (
            {"protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_username": "u", "sasl_password": "p"},
            "GSSAPI",
        ),
        ({"protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"}, "PLAIN"),
        (
            {"protocol": "SSL", "ssl_certificate_location": "/c.pem", "ssl_key_location": "/k.pem"},
            "certificate",
        ),
    ],
)
def test_what_connect_here_cannot_log_in_with_is_refused_by_name(fields: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        java_client_properties(SecuritySettings.model_validate(fields))


def test_every_client_of_the_worker_connects_the_same_way(tmp_path: Path) -> None:
    connect = LocalConnect(ConnectSettings(data_dir=tmp_path), "127.0.0.1:9093", SCRAM)
    lines = connect.worker_properties().splitlines()
    for prefix in CLIENT_PREFIXES:
        assert f"{prefix}security.protocol=SASL_SSL" in lines
        assert any(
            re.fullmatch(rf"{re.escape(prefix)}sasl\.jaas\.config=.*rewind-admin.*", line) for line in lines
        )
    plain = LocalConnect(ConnectSettings(data_dir=tmp_path), "127.0.0.1:9092").worker_properties()
    assert "security.protocol" not in plain and "sasl" not in plain
