"""The one settings object: ``REWIND_``-prefixed environment variables over an optional file.

Precedence, highest first: environment (``REWIND_SECTION__FIELD``), the settings file
(YAML or TOML, from ``--config`` or ``REWIND_CONFIG_FILE``), the defaults below.
Secrets are ``SecretStr``: they print as ``**********`` and are revealed only to the Kafka client.
"""

from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from processor.errors import ConfigError, Where

CONFIG_FILE_ENV = "REWIND_CONFIG_FILE"
logger = logging.getLogger(__name__)


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback) / "kafka-rewind"


class Section(BaseModel):
    model_config = {"extra": "forbid"}


class SecuritySettings(Section):
    """How clients authenticate to the cluster; passed to librdkafka as-is."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="security.protocol"
    )
    sasl_mechanism: str | None = Field(None, description="sasl.mechanism, e.g. SCRAM-SHA-512")
    sasl_username: str | None = Field(None, description="sasl.username")
    sasl_password: SecretStr | None = Field(None, description="sasl.password")
    ssl_ca_location: Path | None = Field(None, description="ssl.ca.location")
    ssl_certificate_location: Path | None = Field(None, description="ssl.certificate.location")
    ssl_key_location: Path | None = Field(None, description="ssl.key.location")
    ssl_key_password: SecretStr | None = Field(None, description="ssl.key.password")
    extra: dict[str, str] = Field(
        default_factory=dict, description="further librdkafka properties, e.g. ssl.endpoint..."
    )

    def librdkafka(self) -> dict[str, str]:
        conf: dict[str, str] = {"security.protocol": self.protocol}
        plain = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
        }
        secret = {"sasl.password": self.sasl_password, "ssl.key.password": self.ssl_key_password}
        conf.update({k: str(v) for k, v in plain.items() if v is not None})
        conf.update({k: v.get_secret_value() for k, v in secret.items() if v is not None})
        conf.update(self.extra)
        return conf


class ClientSettings(Section):
    """librdkafka properties of rewind's own clients beyond what it sets itself: timeouts to match a
    cluster's (transaction.timeout.ms, session.timeout.ms, message.timeout.ms), buffers, retries. What
    exactly-once depends on (idempotence, acks, isolation level, manual commits) stays rewind's."""

    producer: dict[str, str] = Field(
        default_factory=dict, description='e.g. {"transaction.timeout.ms": "60000"}'
    )
    consumer: dict[str, str] = Field(default_factory=dict, description='e.g. {"session.timeout.ms": "45000"}')


class SigningSettings(Section):
    """Signed requests and control messages (processor.security): the worker admits a request, an
    approval or a stop only when a key in its keyring with the needed role signed it lately."""

    keyring_file: Path | None = Field(
        None, description="the public keys the worker trusts and each key's roles (YAML; a mounted Secret)"
    )
    key_file: Path | None = Field(
        None, description="the private key this process signs with (`rewind keys new`); the drill's too"
    )
    key_dir: Path = Field(
        Path.home() / ".config" / "kafka-rewind" / "keys", description="where `rewind keys new` writes keys"
    )
    required: bool = Field(
        True,
        description="refuse unsigned messages; false only beside a development broker (a warning says so)",
    )
    window_s: float = Field(300.0, gt=0, description="how far a message's issue time may be from now")


class PrincipalSettings(Section):
    """One Kafka principal (User:<name>) per role: what `rewind acl plan` grants each, and the SCRAM
    users the secured local broker creates."""

    admin: str = Field(
        "rewind-admin", description="creates topics and ACLs (a separate step); never at run time"
    )
    tap: str = "rewind-tap"
    graph: str = "rewind-graph"
    worker: str = "rewind-worker"
    operator: str = Field("rewind-operator", description="writes requests and control messages")
    approver: str = Field("rewind-approver", description="writes control messages (approvals)")
    service: str = Field("rewind-service", description="a service that consumes rewind's commands")
    service_group: str = Field("shop", description="the services' consumer groups start with this")
    service_topics: list[str] = Field(
        default_factory=list, description="what the services write besides (their outbox, their entry topics)"
    )

    def roles(self) -> dict[str, str]:
        """Role -> principal name."""
        return {"admin": self.admin, "tap": self.tap, "graph": self.graph, "worker": self.worker,
                "operator": self.operator, "approver": self.approver, "service": self.service}  # fmt: skip


class TopicSettings(Section):
    """Topic names: rewind's own topics and the source topics the tap reads."""

    journal: str = "rewind.journal"
    deadletter: str = "rewind.deadletter"
    deadletter_max_bytes: int = Field(
        900_000,
        gt=8192,
        description="a dead letter larger than this is written as a reference (its first 4 KiB, size, "
        "SHA-256, source position): keep it below the producer's message.max.bytes and the topic's "
        "max.message.bytes",
    )
    requests: str = "rewind.rollback.requests"
    control: str = "rewind.rollback.control"
    status: str = "rewind.rollback.status"
    drills: str = Field("rewind.drills", description="each drill's verdict (rewind drill report reads it)")
    cdc: list[str] = Field(default_factory=list, description="Debezium change-event topics")
    tx_metadata: list[str] = Field(default_factory=list, description="Debezium transaction metadata topics")
    outbox: list[str] = Field(default_factory=list, description="outbox event router topics")
    partitions: int = Field(6, ge=1, description="partitions when rewind creates its own topics")
    replication_factor: int = Field(1, ge=1, description="replication when rewind creates topics")
    create_missing: bool = Field(
        True,
        description="each component creates rewind's missing topics at start; false on a cluster with least-"
        "privilege ACLs, where the admin step (`rewind acl apply`, or Strimzi) makes them",
    )

    def own(self) -> list[str]:
        return [self.journal, self.deadletter, self.requests, self.control, self.status, self.drills]


class OutboxConvention(Section):
    """Where outbox messages carry each fact: header names (extra outbox columns placed as headers)
    and payload fields used as fallbacks."""

    envelope: bool = Field(
        False,
        description="the router places extra columns in the value beside 'payload' "
        "(table.fields.additional.placement=...:envelope:...); each fact below is read from its header, "
        "else from the envelope field of the same name",
    )
    event_id_header: str = Field("id", description="the router's 'id' header (table.field.event.id)")
    event_type_header: str = Field(
        "eventType", description="placed by table.fields.additional.placement=type:header:eventType"
    )
    aggregate_type_header: str = "aggregateType"
    topic_prefix: str = Field(
        "outbox.event.", description="EventRouter topic prefix; the rest names the aggregate type"
    )
    correlation_header: str = "correlationId"
    causation_header: str = Field("causationId", description="one id or a comma-separated list")
    tx_header: str = "txId"
    traceparent_headers: list[str] = Field(default_factory=lambda: ["traceparent", "ce_traceparent"])
    tracestate_headers: list[str] = Field(default_factory=lambda: ["tracestate", "ce_tracestate"])
    phase_header: str = Field("phase", description="'intent' or 'outcome' for calls to the outside world")
    intent_header: str = Field("intentId", description="links an outcome to its intent")
    external_systems_header: str = "externalSystems"
    correlation_field: str = Field(
        "correlation_id", description="payload fields stand in for headers the router did not place"
    )
    causation_field: str = "causation_id"
    tx_field: str = Field("tx_id", description="payload field holding txid_current(), without a txId header")
    traceparent_field: str = "traceparent"
    phase_field: str = "phase"
    intent_field: str = "intent_id"
    decision_fields: list[str] = Field(
        default_factory=lambda: ["rule", "rule_version", "model_version", "decision_id"],
        description="payload fields copied into the entry's decision metadata",
    )
    decision_header_prefix: str = "decision."


class TapSettings(Section):
    """How the tap turns source records into journal entries."""

    outbox: OutboxConvention = Field(default_factory=OutboxConvention)
    outbox_tables: list[str] = Field(
        default_factory=lambda: ["public.outbox"],
        description="data collections whose rows arrive as outbox events (for END counts)",
    )
    outbox_rows_deleted_in_tx: bool = Field(
        False, description="services delete each outbox row in the transaction that inserted it"
    )
    tx_topic_suffix: str = ".transaction"
    engine: Literal["auto", "native", "python"] = Field(
        "auto", description="tap core: native (Rust, from native/) when installed, else the Python reference"
    )
    tx_timeout_ms: int = Field(30_000, gt=0, description="journal an unfinished transaction as incomplete")
    intent_timeout_ms: int = Field(300_000, gt=0, description="journal an intent without outcome as in doubt")
    max_record_bytes: int = Field(1_048_576, gt=0)
    commit_interval_ms: int = Field(100, gt=0, description="Kafka transaction length")
    dedupe_window_hours: float = Field(
        168.0, gt=0, description="how far back the journal is read for duplicates"
    )
    instance_id: str = Field(
        "tap-0", description="static group membership: a restarted tap takes its predecessor's place at once"
    )
    catalog_file: Path | None = Field(
        None, description="deprecated: use catalog_file (REWIND_CATALOG_FILE); read for one release"
    )
    schema_registry_url: str | None = Field(None, description="for Avro-encoded source records")
    schema_registry_user: str | None = None
    schema_registry_password: SecretStr | None = None


class GraphSettings(Section):
    """The graph builder: where its checkpoint lives and how often it is written."""

    checkpoint_path: Path = Field(
        default_factory=lambda: _xdg("XDG_STATE_HOME", ".local/state") / "graph.npz",
        description="the whole-graph index with the journal offsets it reflects",
    )
    checkpoint_interval_s: float = Field(30.0, gt=0)


class RollbackSettings(Section):
    """The rollback worker: its catalog, approval thresholds, confirmation policy and outputs."""

    catalog_file: Path | None = Field(
        None, description="deprecated: use catalog_file (REWIND_CATALOG_FILE); read for one release"
    )
    instance_id: str = Field("worker-0", description="part of the worker's transactional id")
    notify_topic: str = Field(
        "rewind.rollback.notifications", description="irreversible steps without a topic of their own"
    )
    command_format: Literal["avro", "json"] = Field("avro", description="encoding of emitted commands")
    approve_over_steps: int = Field(100, ge=0, description="plans with more steps wait for approval")
    approve_over_irreversible: int = Field(0, ge=0)
    approve_over_conflicts: int = Field(0, ge=0)
    approve_over_unclassified: int = Field(0, ge=0)
    approve_over_in_doubt: int = Field(0, ge=0)
    approvers_required: int = Field(
        1, ge=1, description="distinct approvers (never the requester) a plan that needs approval waits for"
    )
    max_scope_actions: int = Field(
        100_000, ge=1, description="a request whose scope holds more actions is refused before planning"
    )
    confirm_timeout_s: float = Field(30.0, gt=0, description="wait for a step's effect in the journal")
    max_attempts: int = Field(3, ge=1, description="emissions of an unconfirmed step before it fails")
    backoff: float = Field(2.0, ge=1.0, description="each retry waits this many times longer")
    wave_barrier: Literal["confirmed", "emitted"] = Field(
        "confirmed", description="start a wave when the previous one is confirmed, or just emitted"
    )
    max_emits_per_transaction: int = Field(500, ge=1)
    max_emits_per_s: float = Field(0.0, ge=0, description="pace commands for downstream services (0: none)")
    store_path: Path | None = Field(
        None,
        description="SQLite file for the action store (unset: beside the graph checkpoint, per journal "
        "and instance; ':memory:' keeps it in memory and rebuilds it from the journal at each start)",
    )
    status_max_bytes: int = Field(
        16 * 1024 * 1024, gt=0, description="largest status record (a plan with every step)"
    )


class DrillSettings(Section):
    """Drills: a canary workflow started through the services' own entry point, then undone through the
    normal request path and checked. Nothing real is touched: the canary's correlation id starts with
    ``drill-`` so the services and the tap know it, and its payload names reserved rows."""

    entry_topic: str | None = Field(
        None, description="where a canary workflow starts (the services consume it); unset: no drills"
    )
    entry_event_type: str = Field("CheckoutRequested", description="the canary's first event type")
    entry_payload: dict[str, Any] = Field(
        default_factory=dict,
        description="the canary event's payload: a template where {drill.id} and {drill.number} "
        "(unique per drill) name its own rows",
    )
    entry_key: str = Field("{drill.id}", description="the canary event's Kafka key (a template)")
    complete_types: list[str] = Field(
        default_factory=list,
        description="action types the canary's workflow ends with; unset: it has ended once no action of "
        "it reached the journal for settle_s",
    )
    settle_s: float = Field(5.0, gt=0)
    every: float = Field(
        0.0, ge=0, description="seconds between drills in `rewind run` (REWIND_DRILL__EVERY); 0 = off"
    )
    mechanisms: list[Literal["restore", "compensate", "replay", "all"]] = Field(
        default=["all"], description="what each scheduled drill exercises, in turn"
    )
    timeout_s: float = Field(300.0, gt=0, description="a drill not judged by then has timed out")
    window_s: float = Field(
        86_400.0, gt=0, description="coverage: a mechanism or action type with no passing drill this long"
    )


class LocalBrokerSettings(Section):
    """The single-node KRaft broker that rewind starts when no cluster is configured."""

    kafka_version: str = "4.1.1"
    host: str = "127.0.0.1"
    port: int = Field(9092, ge=1, le=65535)
    controller_port: int = Field(9093, ge=1, le=65535)
    data_dir: Path = Field(default_factory=lambda: _xdg("XDG_STATE_HOME", ".local/state") / "broker")
    cache_dir: Path = Field(default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache"))
    ready_timeout_s: float = Field(90.0, gt=0)
    heap: str = Field("1g", description="JVM -Xmx for the broker")
    secure: bool = Field(
        False,
        description="SASL/SCRAM-SHA-512 over TLS, StandardAuthorizer, no ACL no access; one SCRAM user "
        "per role of `principals` (passwords in <data_dir>/secure/credentials.yaml)",
    )


class PostgresSettings(Section):
    """The local PostgreSQL (Debian packages) the demo and end-to-end tests capture from."""

    host: str = "127.0.0.1"
    port: int = Field(5433, ge=1, le=65535)
    data_dir: Path = Field(default_factory=lambda: _xdg("XDG_STATE_HOME", ".local/state") / "postgres")
    user: str = Field("rewind", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    password: SecretStr = Field(SecretStr("rewind"), description="for Debezium's connection")
    database: str = Field("shop", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    ready_timeout_s: float = Field(60.0, gt=0)


class ConnectSettings(Section):
    """The local Kafka Connect worker (standalone) running Debezium's PostgreSQL connector."""

    version: str = Field("4.1.1", description="Kafka Connect runtime version")
    debezium_version: str = "3.4.3.Final"
    rest_port: int = Field(8083, ge=1, le=65535)
    data_dir: Path = Field(default_factory=lambda: _xdg("XDG_STATE_HOME", ".local/state") / "connect")
    cache_dir: Path = Field(default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache"))
    topic_prefix: str = Field(
        "shop", description="Debezium topic.prefix: topics are <prefix>.<schema>.<table>"
    )
    value_schemas: bool = Field(False, description="JSON converter schemas.enable for values")
    ready_timeout_s: float = Field(120.0, gt=0)
    heap: str = "1g"


class Settings(BaseSettings):
    """Everything kafka-rewind can be told; see README 'Configuration' for the env names."""

    model_config = SettingsConfigDict(
        env_prefix="REWIND_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    bootstrap_servers: str | None = Field(
        None, description="Kafka cluster; unset means: start and use the local broker"
    )
    client_id: str = "kafka-rewind"
    group_id: str = "kafka-rewind"
    transactional_id_prefix: str = "kafka-rewind"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="rewind's log level; librdkafka's own lines appear only at DEBUG"
    )
    metrics_port: int = Field(9464, ge=0, le=65535, description="/metrics and /healthz; 0 = off")
    catalog_file: Path | None = Field(
        None, description="the action catalog (YAML): the tap's reversibility and the planner's mechanisms"
    )
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    clients: ClientSettings = Field(default_factory=ClientSettings)
    signing: SigningSettings = Field(default_factory=SigningSettings)
    principals: PrincipalSettings = Field(default_factory=PrincipalSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    local_broker: LocalBrokerSettings = Field(default_factory=LocalBrokerSettings)
    tap: TapSettings = Field(default_factory=TapSettings)
    graph: GraphSettings = Field(default_factory=GraphSettings)
    rollback: RollbackSettings = Field(default_factory=RollbackSettings)
    drill: DrillSettings = Field(default_factory=DrillSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    connect: ConnectSettings = Field(default_factory=ConnectSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's content arrives as init kwargs; the environment must win over it.
        return env_settings, init_settings, file_secret_settings

    @model_validator(mode="after")
    def _one_catalog(self) -> Settings:
        """One catalog for the tap and the worker; the old per-component names still work for now."""
        old = {f"{name}.catalog_file": path for name, path in (("tap", self.tap.catalog_file),
               ("rollback", self.rollback.catalog_file)) if path is not None}  # fmt: skip
        if not old:
            return self
        names = ", ".join(f"REWIND_{k.upper().replace('.', '__')}" for k in old)
        if len(set(old.values())) > 1 or (self.catalog_file and self.catalog_file not in old.values()):
            raise ValueError(f"the tap and the worker must read one catalog: set catalog_file only ({names})")
        logger.warning("%s is deprecated: set catalog_file (REWIND_CATALOG_FILE) instead", names)
        self.catalog_file = self.catalog_file or next(iter(old.values()))
        return self

    def client_config(self, bootstrap_servers: str | None = None) -> dict[str, str]:
        """Base librdkafka config for any client; secrets revealed only here."""
        servers = bootstrap_servers or self.bootstrap_servers
        if not servers:
            raise ConfigError(
                "no bootstrap servers known",
                hint="set REWIND_BOOTSTRAP_SERVERS or start the local broker (rewind kafka start)",
            )
        return {"bootstrap.servers": servers, "client.id": self.client_id, **self.security.librdkafka()}

    def redacted(self) -> dict[str, Any]:
        """A JSON-ready dump with every secret masked."""
        return self.model_dump(mode="json")


def _read_file(path: Path) -> dict[str, Any]:
    where = Where(file=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read settings file: {exc.strerror}", where=where) from exc
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"settings file is not valid {path.suffix or 'YAML'}: {exc}", where=where) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("settings file must hold a mapping at the top level", where=where)
    return data


def load_settings(config_file: Path | None = None) -> Settings:
    """Build the settings once, at the edge, and pass them down."""
    env_file = os.environ.get(CONFIG_FILE_ENV)
    path = config_file or (Path(env_file) if env_file else None)
    file_data = _read_file(path) if path else {}
    try:
        return Settings(**file_data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        where = Where(file=str(path)) if path else Where(component="environment")
        raise ConfigError(f"invalid settings: {problems}", where=where) from exc
