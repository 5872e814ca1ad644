"""A single-node Apache Kafka (KRaft) broker on loopback, built from Maven Central jars.

The broker's runtime closure is resolved once with Maven into a cache directory and reused.
The broker runs detached, so ``rewind kafka start`` can return while it keeps running.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from processor.config import LocalBrokerSettings, PrincipalSettings, SecuritySettings, Settings
from processor.devenv.procs import (
    Daemon,
    answers,
    fetch_closure,
    require_free_port,
    require_java,
    run_checked,
)
from processor.errors import ConfigError
from processor.runtime import Progress
from processor.security.tls import make_broker_tls

READY_LINE = "Kafka Server started"

LOG4J2_PROPERTIES = """\
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.err.ref = STDERR
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    reachable: bool
    detail: str


def random_cluster_id() -> str:
    """A Kafka Uuid in its base64url text form, as `kafka-storage random-uuid` makes it."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka refuses ids that look like command-line flags
            return text


def java_command(java: str, jars: Path, log4j: Path, heap: str, main: str, *args: str) -> list[str]:
    return [
        java, f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{jars}/*", main, *args,
    ]  # fmt: skip


class LocalBroker:
    """Fetch, format, start, inspect and stop one local broker described by its settings."""

    def __init__(self, settings: LocalBrokerSettings, principals: PrincipalSettings | None = None) -> None:
        self.settings = settings
        self.principals = principals or PrincipalSettings()
        self.data_dir = settings.data_dir
        self.jar_dir = settings.cache_dir / f"kafka-{settings.kafka_version}" / "libs"
        self.daemon = Daemon("Kafka broker", self.data_dir / "broker.pid", self.data_dir / "broker.log")

    @property
    def bootstrap(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    @property
    def log_file(self) -> Path:
        return self.daemon.log_file

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    def jars_ready(self) -> bool:
        return (self.jar_dir / ".complete").is_file()

    def fetch(self, progress: Progress | None = None) -> Path:
        """Resolve the broker's runtime jars into the cache, unless they are already there."""
        version = self.settings.kafka_version
        return fetch_closure(
            "broker.pom.xml",
            self.jar_dir,
            {"kafka.version": version},
            f"Apache Kafka {version} jars",
            progress,
        )

    def server_properties(self) -> str:
        s = self.settings
        controller = f"{s.host}:{s.controller_port}"
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{controller}",
                *(self._secure_listeners(controller) if s.secure else self._plain_listeners(controller)),
                f"log.dirs={self.data_dir / 'kraft-logs'}",
                "num.partitions=1",
                # One node: every internal topic must accept a single replica, or groups and
                # transactions never become available.
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=10",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "transaction.state.log.num.partitions=10",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=true",
                "",
            ]
        )

    def _plain_listeners(self, controller: str) -> list[str]:
        return [
            f"listeners=PLAINTEXT://{self.bootstrap},CONTROLLER://{controller}",
            f"advertised.listeners=PLAINTEXT://{self.bootstrap}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ]

    def _secure_listeners(self, controller: str) -> list[str]:
        """Clients: SASL/SCRAM-SHA-512 over TLS. The controller listener (loopback, the broker's own
        connection to its controller) takes SASL PLAIN as the admin: SCRAM credentials live in the
        metadata the controller serves, so it cannot check them itself. No ACL, no access."""
        admin, password = self.principals.admin, self.credentials()[self.principals.admin]
        tls = make_broker_tls(self.secure_dir, self.settings.host)
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        return [
            f"listeners=SASL_SSL://{self.bootstrap},CONTROLLER://{controller}",
            f"advertised.listeners=SASL_SSL://{self.bootstrap}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=SASL_SSL",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            f'listener.name.controller.plain.sasl.jaas.config={plain} required username="{admin}" '
            f'password="{password}" user_{admin}="{password}";',
            f'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram} required username="{admin}" '
            f'password="{password}";',
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={tls.keystore_pem}",
            "ssl.truststore.type=PEM",  # its own connections (inter-broker) trust the same CA
            f"ssl.truststore.location={tls.ca_pem}",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            f"super.users=User:{admin}",
        ]

    @property
    def secured(self) -> bool:
        """Whether the broker in this data directory was started secured (however it is asked now)."""
        written = self.properties_file.read_text() if self.properties_file.is_file() else ""
        return self.settings.secure or "listeners=SASL_SSL://" in written

    @property
    def secure_dir(self) -> Path:
        return self.data_dir / "secure"

    def credentials(self) -> dict[str, str]:
        """Each principal's SCRAM password: made once, with the storage that holds them."""
        path = self.secure_dir / "credentials.yaml"
        if path.is_file():
            found: dict[str, str] = yaml.safe_load(path.read_text())
            return found
        if (self.data_dir / "kraft-logs" / "meta.properties").is_file():
            raise ConfigError(
                f"{self.data_dir} holds a broker formatted without SCRAM users",
                hint="remove it, or start the broker without REWIND_LOCAL_BROKER__SECURE",
            )
        made = {name: secrets.token_urlsafe(18) for name in self.principals.roles().values()}
        self.secure_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(made))
        path.chmod(0o600)
        return made

    def client_security(self, principal: str) -> SecuritySettings:
        """How ``principal`` connects to the secured broker."""
        password = self.credentials().get(principal)
        if password is None:
            raise ConfigError(
                f"the secured broker has no user {principal!r}", hint=f"one of {sorted(self.credentials())}"
            )
        return SecuritySettings.model_validate({
            "protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": principal,
            "sasl_password": password, "ssl_ca_location": self.secure_dir / "ca.pem",
        })  # fmt: skip

    def settings_as(self, base: Settings, role: str) -> Settings:
        """``base`` as ``role`` connects to this secured broker: its principal's credentials, and (but
        for the admin) no topic creation at run time, as least privilege has it."""
        principal = base.principals.roles()[role]
        topics = base.topics.model_copy(update={"create_missing": role == "admin"})
        update = {"bootstrap_servers": self.bootstrap, "security": self.client_security(principal)}
        return base.model_copy(update={**update, "topics": topics})

    def _scram_users(self, users: Iterable[tuple[str, str]]) -> list[str]:
        return [
            arg for name, pw in users for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={pw}]")
        ]

    def _java(self, java: str, main: str, *args: str) -> list[str]:
        log4j = self.data_dir / "log4j2.properties"
        return java_command(java, self.jar_dir, log4j, self.settings.heap, main, *args)

    def _format_storage(self, java: str) -> None:
        if (self.data_dir / "kraft-logs" / "meta.properties").is_file():
            return  # formatted before: keep the data
        users = self._scram_users(self.credentials().items()) if self.settings.secure else []
        run_checked(
            self._java(java, "kafka.tools.StorageTool", "format", "-t", random_cluster_id(),
                       "-c", str(self.properties_file), *users),
            "Kafka broker (formatting storage)",
            hint=f"remove {self.data_dir} to start from empty storage",
        )  # fmt: skip

    def running_pid(self) -> int | None:
        return self.daemon.running_pid()

    def start(self) -> str:
        """Start the broker (fetching jars if needed) and return its bootstrap address when ready."""
        if self.running_pid() is not None:
            return self.bootstrap
        java = require_java()
        self.fetch()
        s = self.settings
        require_free_port("Kafka broker", s.host, s.port, "REWIND_LOCAL_BROKER__PORT")
        require_free_port("Kafka broker", s.host, s.controller_port, "REWIND_LOCAL_BROKER__CONTROLLER_PORT")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(self.server_properties())
        (self.data_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        self._format_storage(java)
        self.daemon.spawn(self._java(java, "kafka.Kafka", str(self.properties_file)))
        self.daemon.wait_ready(
            lambda: READY_LINE in self.daemon.log_since_start(),
            s.ready_timeout_s,
            "raise REWIND_LOCAL_BROKER__READY_TIMEOUT_S or read the log above",
        )
        return self.bootstrap

    def status(self) -> BrokerStatus:
        pid = self.running_pid()
        if pid is None:
            return BrokerStatus(False, None, self.bootstrap, False, "not running")
        reachable = answers(self.settings.host, self.settings.port)
        detail = "up and accepting connections" if reachable else "process alive, port not answering"
        return BrokerStatus(True, pid, self.bootstrap, reachable, detail)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker; True when one was running. SIGKILL only if SIGTERM is not enough."""
        return self.daemon.stop(timeout_s)
