"""A single-node Apache Kafka (KRaft) broker on loopback, built from Maven Central jars.

The broker's runtime closure is resolved once with Maven into a cache directory and reused.
The broker runs detached (its own session), so ``rewind kafka start`` can return while it keeps
running; a pid file in the data directory lets ``status`` and ``stop`` find it again.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from processor.config import LocalBrokerSettings
from processor.errors import (
    BrokerNotReady,
    JarResolutionFailed,
    LocalBrokerError,
    PortInUse,
    ToolMissing,
)

logger = logging.getLogger(__name__)

READY_LINE = "Kafka Server started"
MIN_JAVA = 17
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"

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


def require_java() -> str:
    """The java executable, checked to be version 17 or newer."""
    java = shutil.which("java")
    hint = "install Java 17 or newer, e.g. `apt-get install openjdk-17-jre-headless`"
    if java is None:
        raise ToolMissing("Java is not installed (no `java` on PATH)", hint=hint)
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match is None:
        raise ToolMissing(f"cannot tell the version of {java}: {out.stderr.strip()[:200]}", hint=hint)
    major = int(match.group(1)) if match.group(1) != "1" else int(match.group(2) or 0)
    if major < MIN_JAVA:
        raise ToolMissing(f"Java {major} found at {java}; Kafka 4 needs {MIN_JAVA}+", hint=hint)
    return java


def require_maven() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ToolMissing(
            "Maven is not installed (no `mvn` on PATH); it fetches the Kafka jars",
            hint="install Maven, e.g. `apt-get install maven`",
        )
    return mvn


def random_cluster_id() -> str:
    """A Kafka Uuid in its base64url text form, as `kafka-storage random-uuid` makes it."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka refuses ids that look like command-line flags
            return text


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


class LocalBroker:
    """Fetch, format, start, inspect and stop one local broker described by its settings."""

    def __init__(self, settings: LocalBrokerSettings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir
        self.jar_dir = settings.cache_dir / f"kafka-{settings.kafka_version}" / "libs"

    @property
    def bootstrap(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    # -- jars -------------------------------------------------------------------------------

    def jars_ready(self) -> bool:
        return (self.jar_dir / ".complete").is_file()

    def fetch(self) -> Path:
        """Resolve the broker's runtime jars into the cache, unless they are already there."""
        if self.jars_ready():
            return self.jar_dir
        mvn = require_maven()
        require_java()
        logger.info("fetching Apache Kafka %s jars from Maven Central (once)", self.settings.kafka_version)
        work = self.jar_dir.parent
        work.mkdir(parents=True, exist_ok=True)
        pom = work / "pom.xml"
        pom.write_text(resources.files("processor.kafka.maven").joinpath("broker.pom.xml").read_text())
        staging = work / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            DEPENDENCY_PLUGIN,
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
            f"-Dkafka.version={self.settings.kafka_version}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()[-25:]
            raise JarResolutionFailed(
                f"Maven could not resolve Apache Kafka {self.settings.kafka_version}:\n" + "\n".join(output),
                hint="check that Maven Central is reachable and the Kafka version exists",
            )
        shutil.rmtree(self.jar_dir, ignore_errors=True)
        staging.rename(self.jar_dir)
        (self.jar_dir / ".complete").write_text(self.settings.kafka_version)
        return self.jar_dir

    # -- lifecycle --------------------------------------------------------------------------

    def server_properties(self) -> str:
        s = self.settings
        controller = f"{s.host}:{s.controller_port}"
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{controller}",
                f"listeners=PLAINTEXT://{self.bootstrap},CONTROLLER://{controller}",
                f"advertised.listeners=PLAINTEXT://{self.bootstrap}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
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

    def _java_command(self, java: str, main: str, *args: str) -> list[str]:
        log4j = self.data_dir / "log4j2.properties"
        return [
            java,
            f"-Xmx{self.settings.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{self.jar_dir}/*",
            main,
            *args,
        ]

    def _format_storage(self, java: str) -> None:
        if (self.data_dir / "kraft-logs" / "meta.properties").is_file():
            return  # formatted before: keep the data
        cmd = self._java_command(
            java,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            random_cluster_id(),
            "-c",
            str(self.properties_file),
        )
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalBrokerError(
                f"formatting KRaft storage in {self.data_dir} failed:\n{result.stderr[-2000:]}",
                hint=f"remove {self.data_dir} to start from empty storage",
            )

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(self) -> str:
        """Start the broker (fetching jars if needed) and return its bootstrap address when ready."""
        if self.running_pid() is not None:
            return self.bootstrap
        java = require_java()
        self.fetch()
        for name, port in (("port", self.settings.port), ("controller_port", self.settings.controller_port)):
            if not port_is_free(self.settings.host, port):
                raise PortInUse(
                    f"port {self.settings.host}:{port} is already in use",
                    hint=f"stop what holds it, or set REWIND_LOCAL_BROKER__{name.upper()} to a free port",
                )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(self.server_properties())
        (self.data_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        self._format_storage(java)
        cmd = self._java_command(java, "kafka.Kafka", str(self.properties_file))
        with self.log_file.open("ab") as log:
            start_offset = log.tell()
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        self.pid_file.write_text(str(proc.pid))
        logger.info("started broker pid %d at %s; waiting until ready", proc.pid, self.bootstrap)
        self._wait_ready(proc, start_offset)
        return self.bootstrap

    def _wait_ready(self, proc: subprocess.Popen[bytes], start_offset: int) -> None:
        deadline = time.monotonic() + self.settings.ready_timeout_s
        while time.monotonic() < deadline:
            if READY_LINE in self._log_since(start_offset):
                return
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerNotReady(
                    f"the broker exited with code {proc.returncode} before it was ready",
                    log_tail=tail(self.log_file),
                    hint=f"read {self.log_file}; a stale {self.data_dir} can be removed",
                )
            time.sleep(0.2)
        self.stop()
        raise BrokerNotReady(
            f"the broker did not report ready within {self.settings.ready_timeout_s:.0f}s",
            log_tail=tail(self.log_file),
            hint="raise REWIND_LOCAL_BROKER__READY_TIMEOUT_S or read the log above",
        )

    def _log_since(self, offset: int) -> str:
        with self.log_file.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", errors="replace")

    def status(self) -> BrokerStatus:
        pid = self.running_pid()
        if pid is None:
            return BrokerStatus(False, None, self.bootstrap, False, "not running")
        reachable = _answers(self.settings.host, self.settings.port)
        detail = "up and accepting connections" if reachable else "process alive, port not answering"
        return BrokerStatus(True, pid, self.bootstrap, reachable, detail)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker; True when one was running. SIGKILL only if SIGTERM is not enough."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our own exited child, so it does not linger as a zombie.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False
