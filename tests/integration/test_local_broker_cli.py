"""`rewind kafka start | status | stop` and `rewind demo`, run as a user would, as subprocesses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest
import yaml

from processor.devenv.procs import free_port
from tests.integration.rollkit import people

REWIND = [sys.executable, "-m", "processor.cli"]


def _rewind(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*REWIND, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def broker_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REWIND_")}
    env.update(
        {
            "REWIND_LOCAL_BROKER__PORT": str(free_port()),
            "REWIND_LOCAL_BROKER__CONTROLLER_PORT": str(free_port()),
            "REWIND_LOCAL_BROKER__DATA_DIR": str(tmp_path / "broker"),
            "REWIND_LOCAL_BROKER__READY_TIMEOUT_S": "120",
        }
    )
    return env


def test_start_status_stop(broker_env: dict[str, str]) -> None:
    port = broker_env["REWIND_LOCAL_BROKER__PORT"]
    try:
        started = _rewind(broker_env, "kafka", "start")
        assert started.returncode == 0, started.stderr
        assert f"broker started at 127.0.0.1:{port}" in started.stdout

        again = _rewind(broker_env, "kafka", "start")
        assert again.returncode == 0 and "already running" in again.stdout

        status = _rewind(broker_env, "kafka", "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert f"broker at 127.0.0.1:{port}: up" in status.stdout
        with socket.create_connection(("127.0.0.1", int(port)), timeout=5):
            pass
    finally:
        stopped = _rewind(broker_env, "kafka", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    down = _rewind(broker_env, "kafka", "status")
    assert down.returncode == 1 and "down" in down.stdout
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", int(port)), timeout=2):
        pass


def test_a_secured_broker_starts_answers_its_admin_and_stops(broker_env: dict[str, str]) -> None:
    try:
        started = _rewind(broker_env, "kafka", "start", "--secure")
        assert started.returncode == 0, started.stderr
        assert (
            "secured: SASL_SSL with SCRAM-SHA-512" in started.stdout and "rewind acl apply" in started.stdout
        )
        credentials = Path(broker_env["REWIND_LOCAL_BROKER__DATA_DIR"]) / "secure" / "credentials.yaml"
        assert credentials.stat().st_mode & 0o777 == 0o600
        for password in yaml.safe_load(credentials.read_text()).values():
            assert password not in started.stdout + started.stderr, "a password was printed"
        status = _rewind(broker_env, "kafka", "status")  # it knows the broker is secured, and asks as admin
        assert status.returncode == 0 and ": up" in status.stdout, status.stdout + status.stderr
        with socket.create_connection(("127.0.0.1", int(broker_env["REWIND_LOCAL_BROKER__PORT"])), timeout=5):
            pass
    finally:
        stopped = _rewind(broker_env, "kafka", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout


def test_start_on_a_taken_port_says_which_and_how_to_fix(broker_env: dict[str, str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(broker_env["REWIND_LOCAL_BROKER__PORT"])))
        holder.listen()
        result = _rewind(broker_env, "kafka", "start")
    assert result.returncode == 1
    assert "already in use" in result.stderr and "REWIND_LOCAL_BROKER__PORT" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_check_starts_its_own_broker_and_stops_it(broker_env: dict[str, str], fmt: str) -> None:
    result = _rewind(broker_env, "kafka", "check", "--format", fmt)
    assert result.returncode == 0, result.stdout + result.stderr
    if fmt == "table":
        assert "committed records seen once, aborted never" in result.stdout
        assert "topics: 7 ready (7 created)" in result.stdout
    else:  # the JSON alone on stdout; what it started is said on stderr
        found = json.loads(result.stdout)
        assert found["ok"] is True and found["seen"] == found["committed"] and found["aborted"]
        assert not set(found["seen"]) & set(found["aborted"])
        assert "topics: 7 ready (7 created)" in result.stderr
    status = _rewind(broker_env, "kafka", "status")
    assert status.returncode == 1, "the demo must stop the broker it started"


def test_run_against_an_existing_cluster_serves_metrics(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REWIND_")}
    port = free_port()
    env.update(
        {
            "REWIND_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "REWIND_METRICS_PORT": str(port),
            "REWIND_TOPICS__JOURNAL": f"journal.{port}",
            "REWIND_GRAPH__CHECKPOINT_PATH": str(tmp_path / "graph.npz"),
            "REWIND_SIGNING__KEYRING_FILE": str(people()[0]),
        }
    )
    # stderr to a file: a pipe nobody reads while it runs fills (64 KiB of logs) and blocks every
    # thread that logs, the signal handler's print included, so it could never stop
    errors = (tmp_path / "stderr.log").open("w+")
    proc = subprocess.Popen([*REWIND, "run"], env=env, stdout=subprocess.PIPE, stderr=errors, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "metrics:" in line:
                break
        import urllib.request

        deadline = time.monotonic() + 20  # a probe polls: the graph builder comes up in its own thread
        while True:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            if 'component="graph"} 1.0' in body or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert 'rewind_component_up{component="processor"} 1.0' in body
        assert 'rewind_component_up{component="graph"} 1.0' in body
        assert _healthy(f"http://127.0.0.1:{port}/healthz", 30), "healthz never answered 200"
        assert any(f"cluster: {kafka_bootstrap}" in line for line in lines)
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # every thread's stack, to stderr
            time.sleep(1)
            proc.kill()
            proc.communicate(timeout=30)
            raise AssertionError(f"rewind run did not stop in 30 s of SIGTERM:\n{_tail(errors)}") from None
    assert proc.returncode == 0, _tail(errors)
    assert "stopped" in out
    assert (tmp_path / "graph.npz").is_file(), "the graph builder checkpoints when it stops"


def _tail(log: IO[str], size: int = 8000) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-size:]


def _healthy(url: str, timeout_s: float) -> bool:
    """Whether /healthz answers 200 within the time, polled as a readiness probe does (the worker's
    consumer group assigns its partitions a moment after the graph builder is up)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(url, timeout=5).status == 200:
                return True
        except urllib.error.HTTPError:
            pass
        time.sleep(0.5)
    return False
