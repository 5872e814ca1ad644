"""Real PostgreSQL and Kafka Connect with Debezium, on free ports in temporary directories."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from processor.config import ConnectSettings, PostgresSettings, SecuritySettings
from processor.devenv.connect import CaptureSpec, LocalConnect
from processor.devenv.postgres import Dsn, LocalPostgres
from processor.devenv.procs import free_port


@pytest.fixture(scope="session")
def postgres() -> Iterator[Dsn]:
    # Not under pytest's 0700 temp root: as root, PostgreSQL runs as the postgres user, who must reach it.
    data_dir = Path(tempfile.mkdtemp(prefix="rewind-pg-"))
    pg = LocalPostgres(PostgresSettings(data_dir=data_dir, port=free_port()))
    dsn = pg.start()
    try:
        yield dsn
    finally:
        pg.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


class ConnectLauncher:
    """Starts one Connect worker per capture spec; all are stopped at the end of the session."""

    def __init__(self, bootstrap: str, root: Path, security: SecuritySettings | None = None) -> None:
        self.bootstrap = bootstrap
        self.root = root
        self.security = security
        self.started: list[LocalConnect] = []

    def start(self, spec: CaptureSpec) -> LocalConnect:
        settings = ConnectSettings(data_dir=self.root / spec.name, rest_port=free_port())
        connect = LocalConnect(settings, self.bootstrap, self.security)
        self.started.append(connect)
        connect.start(spec)
        return connect


@pytest.fixture(scope="session")
def debezium(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConnectLauncher]:
    launcher = ConnectLauncher(kafka_bootstrap, tmp_path_factory.mktemp("connect"))
    try:
        yield launcher
    finally:
        for connect in launcher.started:
            connect.stop()
