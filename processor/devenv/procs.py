"""Plumbing shared by the local broker, PostgreSQL and Kafka Connect: tools, jars, detached daemons.

A daemon runs in its own session, so the command that started it can return; a pid file next to its
log lets later commands find, check and stop it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path

from processor.errors import JarResolutionFailed, LocalServiceError, PortInUse, ServiceNotReady, ToolMissing
from processor.runtime import Progress

logger = logging.getLogger(__name__)

MIN_JAVA = 17
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
MAVEN_REPOSITORY = Path.home() / ".m2" / "repository"  # Maven's default local repository


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


def fetch_closure(
    pom_resource: str, dest: Path, properties: Mapping[str, str], what: str, progress: Progress | None = None
) -> Path:
    """Copy the runtime closure of a packaged pom into ``dest`` once; later calls reuse it.

    With ``progress``, Maven first lists the closure (poms only, seconds) so that the jars can be
    counted as they land in the local repository."""
    if (dest / ".complete").is_file():
        return dest
    mvn = require_maven()
    require_java()
    logger.info("fetching %s from Maven Central (once)", what)
    work = dest.parent
    work.mkdir(parents=True, exist_ok=True)
    pom = work / pom_resource
    pom.write_text(resources.files("processor.kafka.maven").joinpath(pom_resource).read_text())
    defines = [f"-D{k}={v}" for k, v in properties.items()]
    jars = _closure_jars(mvn, pom, defines, work, what) if progress else []
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        mvn, "-B", "-q", "-f", str(pom), f"{DEPENDENCY_PLUGIN}:copy-dependencies", "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}", *defines,
    ]  # fmt: skip
    _maven(cmd, what, lambda: progress(sum(j.is_file() for j in jars), len(jars)) if progress else None)
    if progress:
        progress(len(jars), len(jars))
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    (dest / ".complete").write_text(" ".join(f"{k}={v}" for k, v in properties.items()))
    return dest


def _closure_jars(mvn: str, pom: Path, defines: list[str], work: Path, what: str) -> list[Path]:
    """Where the closure's jars will be in Maven's local repository (``dependency:tree`` collects
    the poms but downloads no jar)."""
    tree = work / f"{pom.name}.tree"
    cmd = [
        mvn, "-B", "-q", "-f", str(pom), f"{DEPENDENCY_PLUGIN}:tree", "-Dscope=runtime", "-DoutputType=tgf",
        f"-DoutputFile={tree}", *defines,
    ]  # fmt: skip
    _maven(cmd, what, lambda: None)
    return tgf_jars(tree.read_text(), MAVEN_REPOSITORY)


def tgf_jars(tgf: str, repository: Path) -> list[Path]:
    """The jar files of a ``dependency:tree`` in TGF (``<id> group:artifact:type[:classifier]:version:scope``
    per node, the project first, ``#`` before the edges)."""
    nodes = tgf.split("\n#", 1)[0].splitlines()[1:]
    jars = []
    for node in nodes:
        coordinate = node.split()[1].split(":")
        group, artifact, kind, *rest = coordinate
        classifier, version = (rest[0], rest[1]) if len(rest) == 3 else ("", rest[0])
        suffix = f"-{classifier}" if classifier else ""
        name = f"{artifact}-{version}{suffix}.{'jar' if kind == 'bundle' else kind}"
        jars.append(repository.joinpath(*group.split("."), artifact, version, name))
    return jars


def _maven(cmd: list[str], what: str, tick: Callable[[], None]) -> None:
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(cmd, stdout=output, stderr=subprocess.STDOUT)
        while True:
            try:
                process.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                tick()
        output.seek(0)
        text = output.read().decode(errors="replace")
    if process.returncode != 0:
        raise JarResolutionFailed(
            f"Maven could not resolve {what}:\n" + "\n".join(text.strip().splitlines()[-25:]),
            hint="check that Maven Central is reachable and the version exists",
        )


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free_port(component: str, host: str, port: int, setting: str) -> None:
    if not port_is_free(host, port):
        raise PortInUse(
            f"{component}: port {host}:{port} is already in use",
            hint=f"stop what holds it, or set {setting} to a free port",
        )


_HANDED_OUT: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now and not handed out before by this process.

    The kernel may give a just-released port again, so two calls in a row (the broker's port, then
    Connect's) could otherwise name the same port for two daemons.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


class Daemon:
    """One detached process, known by its pid file, logging to one file."""

    def __init__(self, component: str, pid_file: Path, log_file: Path) -> None:
        self.component = component
        self.pid_file = pid_file
        self.log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def spawn(self, cmd: Sequence[str], env: Mapping[str, str] | None = None) -> int:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._log_start = log.tell()
            self._proc = subprocess.Popen(
                list(cmd), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, env=dict(env) if env is not None else None,
            )  # fmt: skip
        self.pid_file.write_text(str(self._proc.pid))
        logger.info("%s started as pid %d; waiting until ready", self.component, self._proc.pid)
        return self._proc.pid

    def log_since_start(self) -> str:
        with self.log_file.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode("utf-8", errors="replace")

    def wait_ready(self, ready: Callable[[], bool], timeout_s: float, timeout_hint: str) -> None:
        """Wait until ``ready()``; if the process dies or time runs out, raise with the log's tail."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready():
                return
            if self._proc is not None and self._proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise ServiceNotReady(
                    f"{self.component} exited with code {self._proc.returncode} before it was ready",
                    log_tail=tail(self.log_file),
                    hint=f"read {self.log_file}",
                )
            time.sleep(0.2)
        self.stop()
        raise ServiceNotReady(
            f"{self.component} did not report ready within {timeout_s:.0f}s",
            log_tail=tail(self.log_file),
            hint=timeout_hint,
        )

    def stop(self, timeout_s: float = 30.0, sig: signal.Signals = signal.SIGTERM) -> bool:
        """Stop it; True when one was running. SIGKILL only if ``sig`` is not enough."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        signal_group(pid, sig)
        deadline = time.monotonic() + timeout_s
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(pid):
            logger.warning("%s did not stop within %.0fs; killing it", self.component, timeout_s)
            signal_group(pid, signal.SIGKILL)
            while alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True


def alive(pid: int) -> bool:
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


def signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def run_checked(
    cmd: Sequence[str], component: str, hint: str | None = None, extra_env: Mapping[str, str] | None = None
) -> str:
    env = {**os.environ, **extra_env} if extra_env else None
    result = subprocess.run(list(cmd), capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise LocalServiceError(
            f"{component}: `{' '.join(cmd[:3])} ...` failed:\n{(result.stderr or result.stdout)[-2000:]}",
            hint=hint,
        )
    return result.stdout
