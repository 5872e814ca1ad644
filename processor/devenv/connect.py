"""A local Kafka Connect worker (standalone) running Debezium's PostgreSQL connector and outbox router.

Jars come from Maven Central: the Connect runtime onto the classpath, Debezium into a plugin directory.
Readiness is the connector and its task reporting RUNNING on the worker's REST API, and the connector
having started to stream from its replication slot.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from processor.config import ConnectSettings, SecuritySettings
from processor.devenv.postgres import Dsn
from processor.devenv.procs import Daemon, fetch_closure, require_free_port, require_java
from processor.errors import ConfigError, LocalServiceError
from processor.kafka.local_broker import LOG4J2_PROPERTIES, java_command
from processor.runtime import Progress

COMPONENT = "Kafka Connect"
STREAMING_LINE = "Starting streaming"
OUTBOX_HEADERS = {
    "type": "eventType",
    "aggregatetype": "aggregateType",
    "tx_id": "txId",
    "correlation_id": "correlationId",
    "causation_id": "causationId",
    "traceparent": "traceparent",
    "phase": "phase",
    "intent_id": "intentId",
}


STRING_CONVERTER = "org.apache.kafka.connect.storage.StringConverter"


@dataclass(frozen=True)
class CaptureSpec:
    """What one Debezium connector captures, how its topics are named, and how it is configured."""

    name: str
    dsn: Dsn
    tables: tuple[str, ...]  # schema.table, the outbox table included
    topic_prefix: str
    outbox_table: str | None = "public.outbox"
    outbox_topic_prefix: str = "outbox.event."
    # Outbox columns the router places as headers (column -> header); None: rewind's full convention,
    # {}: the router's default configuration (only the 'id' header).
    outbox_headers: Mapping[str, str] | None = None
    # Connector settings over the defaults below: converters, decimal.handling.mode, heartbeats...
    overrides: Mapping[str, str] = field(default_factory=dict)

    @property
    def tx_topic(self) -> str:
        return f"{self.topic_prefix}.transaction"

    def table_topic(self, table: str) -> str:
        return f"{self.topic_prefix}.{table}"


def connector_config(spec: CaptureSpec) -> dict[str, str]:
    slot = spec.name.replace("-", "_")
    conf = {
        "name": spec.name,
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": spec.dsn.host,
        "database.port": str(spec.dsn.port),
        "database.user": spec.dsn.user,
        "database.password": spec.dsn.password,
        "database.dbname": spec.dsn.database,
        "topic.prefix": spec.topic_prefix,
        "slot.name": slot,
        "publication.name": slot,
        "publication.autocreate.mode": "filtered",
        "table.include.list": ",".join(spec.tables),
        "provide.transaction.metadata": "true",
        "snapshot.mode": "no_data",
    }
    if spec.outbox_table:
        headers = OUTBOX_HEADERS if spec.outbox_headers is None else spec.outbox_headers
        placement = ",".join(f"{col}:header:{header}" for col, header in headers.items())
        conf |= {
            "predicates": "isOutbox",
            "predicates.isOutbox.type": "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
            "predicates.isOutbox.pattern": spec.table_topic(spec.outbox_table).replace(".", r"\."),
            "transforms": "outbox",
            "transforms.outbox.type": "io.debezium.transforms.outbox.EventRouter",
            "transforms.outbox.predicate": "isOutbox",
            "transforms.outbox.route.by.field": "aggregatetype",
            "transforms.outbox.route.topic.replacement": spec.outbox_topic_prefix + "${routedByValue}",
            "transforms.outbox.table.field.event.key": "aggregateid",
        }
        if placement:
            conf["transforms.outbox.table.fields.additional.placement"] = placement
    return conf | dict(spec.overrides)


LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
CLIENT_PREFIXES = ("", "producer.", "consumer.", "admin.")  # the worker's own clients, and its tasks'


def java_client_properties(security: SecuritySettings) -> dict[str, str]:
    """The Java client properties of the identity ``security`` describes for librdkafka: SASL with a
    username and password, TLS trusting a CA file (PEM). Client certificates are not carried over."""
    props: dict[str, str] = {"security.protocol": security.protocol}
    if security.ssl_certificate_location or security.ssl_key_location:
        raise ConfigError(
            "Kafka Connect here takes no client certificate",
            hint="connect the local Connect worker with SASL, or without security",
        )
    if security.protocol.startswith("SASL_"):
        mechanism = security.sasl_mechanism or "PLAIN"
        module = LOGIN_MODULES.get(mechanism)
        if module is None or security.sasl_username is None or security.sasl_password is None:
            raise ConfigError(
                f"Kafka Connect here cannot log in with SASL mechanism {mechanism}",
                hint=f"one of {', '.join(LOGIN_MODULES)}, with security.sasl_username and sasl_password",
            )
        user, password = (
            _jaas_quoted(security.sasl_username),
            _jaas_quoted(security.sasl_password.get_secret_value()),
        )
        props |= {
            "sasl.mechanism": mechanism,
            "sasl.jaas.config": f"{module} required username={user} password={password};",
        }
    if security.ssl_ca_location is not None:
        props |= {"ssl.truststore.type": "PEM", "ssl.truststore.location": str(security.ssl_ca_location)}
    return props


def _jaas_quoted(value: str) -> str:
    """A JAAS option value, quoted (its tokenizer takes backslash escapes inside quotes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class LocalConnect:
    def __init__(
        self, settings: ConnectSettings, bootstrap: str, security: SecuritySettings | None = None
    ) -> None:
        """``security``: how the worker and its connector's clients connect (default: plaintext)."""
        self.settings = settings
        self.bootstrap = bootstrap
        self.security = security
        self.data_dir = settings.data_dir
        self.runtime_dir = settings.cache_dir / f"connect-{settings.version}" / "libs"
        self.plugin_root = settings.cache_dir / f"debezium-{settings.debezium_version}" / "plugins"
        self.daemon = Daemon(COMPONENT, self.data_dir / "connect.pid", self.data_dir / "connect.log")

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.rest_port}"

    def fetch(self, progress: Progress | None = None) -> None:
        """Connect's runtime and the Debezium plugin; ``progress`` counts the jars of both."""
        first = [0]

        def runtime(done: int, total: int) -> None:
            first[0] = total
            if progress:
                progress(done, total)

        def plugin(done: int, total: int) -> None:
            if progress:
                progress(first[0] + done, first[0] + total)

        fetch_closure(
            "connect.pom.xml", self.runtime_dir, {"kafka.version": self.settings.version},
            f"Kafka Connect {self.settings.version} jars", runtime if progress else None,
        )  # fmt: skip
        fetch_closure(
            "debezium.pom.xml", self.plugin_root / "debezium-connector-postgres",
            {"debezium.version": self.settings.debezium_version},
            f"Debezium PostgreSQL connector {self.settings.debezium_version}", plugin if progress else None,
        )  # fmt: skip

    def worker_properties(self) -> str:
        schemas = str(self.settings.value_schemas).lower()
        return "\n".join(
            [
                f"bootstrap.servers={self.bootstrap}",
                "key.converter=org.apache.kafka.connect.json.JsonConverter",
                "key.converter.schemas.enable=false",
                "value.converter=org.apache.kafka.connect.json.JsonConverter",
                f"value.converter.schemas.enable={schemas}",
                f"offset.storage.file.filename={self.data_dir / 'offsets.dat'}",
                "offset.flush.interval.ms=1000",
                f"plugin.path={self.plugin_root}",
                f"listeners=http://127.0.0.1:{self.settings.rest_port}",
                *self._security_lines(),
                "",
            ]
        )

    def _security_lines(self) -> list[str]:
        if self.security is None:
            return []
        props = java_client_properties(self.security)
        return [f"{prefix}{k}={v}" for prefix in CLIENT_PREFIXES for k, v in props.items()]

    def start(self, spec: CaptureSpec) -> None:
        """Start the worker with one connector and wait until it streams."""
        if self.daemon.running_pid() is not None:
            return
        java = require_java()
        self.fetch()
        require_free_port(COMPONENT, "127.0.0.1", self.settings.rest_port, "REWIND_CONNECT__REST_PORT")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        worker = self.data_dir / "worker.properties"
        worker.touch(mode=0o600)  # it may hold the worker's SASL password
        worker.chmod(0o600)
        worker.write_text(self.worker_properties())
        connector = self.data_dir / f"{spec.name}.properties"
        connector.write_text("\n".join(f"{k}={v}" for k, v in connector_config(spec).items()) + "\n")
        log4j = self.data_dir / "log4j2.properties"
        log4j.write_text(LOG4J2_PROPERTIES.replace("logger.kafka.level = INFO", "logger.kafka.level = WARN"))
        cmd = java_command(
            java, self.runtime_dir, log4j, self.settings.heap,
            "org.apache.kafka.connect.cli.ConnectStandalone", str(worker), str(connector),
        )  # fmt: skip
        self.daemon.spawn(cmd)
        self.daemon.wait_ready(
            lambda: self._streaming(spec.name),
            self.settings.ready_timeout_s,
            "raise REWIND_CONNECT__READY_TIMEOUT_S, or read the log above for the connector's error",
        )

    def _streaming(self, name: str) -> bool:
        status = self.status(name)
        if status is None:
            return False
        failed = [
            t for t in [status.get("connector", {}), *status.get("tasks", [])] if t.get("state") == "FAILED"
        ]
        if failed:
            trace = failed[0].get("trace", "")
            raise LocalServiceError(
                f"{COMPONENT}: connector {name} FAILED:\n{trace[:3000]}",
                hint=f"check the PostgreSQL connection and wal_level; full log: {self.daemon.log_file}",
            )
        tasks = status.get("tasks", [])
        running = status.get("connector", {}).get("state") == "RUNNING" and tasks
        return (
            bool(running)
            and all(t.get("state") == "RUNNING" for t in tasks)
            and (STREAMING_LINE in self.daemon.log_since_start())
        )

    def status(self, name: str) -> dict[str, Any] | None:
        try:
            url = f"{self.rest_url}/connectors/{name}/status"  # http on loopback, built here
            with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310
                data: dict[str, Any] = json.loads(response.read())
                return data
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def running_pid(self) -> int | None:
        return self.daemon.running_pid()

    def stop(self) -> bool:
        return self.daemon.stop()
