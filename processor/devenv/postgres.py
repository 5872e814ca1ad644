"""A local PostgreSQL server from the Debian packages, set up for logical decoding (wal_level=logical).

PostgreSQL refuses to run as root; when we are root, its commands run as the `postgres` user.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from processor.config import PostgresSettings
from processor.devenv.procs import Daemon, answers, require_free_port, run_checked
from processor.errors import LocalServiceError, ToolMissing

COMPONENT = "PostgreSQL"
INSTALL_HINT = "install PostgreSQL, e.g. `apt-get install postgresql`"


def pg_bin_dir() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian keeps them in /usr/lib/postgresql/N/bin)."""
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise ToolMissing("PostgreSQL server binaries not found (no pg_ctl)", hint=INSTALL_HINT)


@dataclass(frozen=True)
class Dsn:
    host: str
    port: int
    user: str
    password: str
    database: str

    def conninfo(self, database: str | None = None) -> str:
        return (
            f"host={self.host} port={self.port} user={self.user} password={self.password} "
            f"dbname={database or self.database}"
        )


class LocalPostgres:
    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir
        self.cluster_dir = self.data_dir / "cluster"
        self.daemon = Daemon(COMPONENT, self.data_dir / "postgres.pid", self.data_dir / "postgres.log")

    @property
    def dsn(self) -> Dsn:
        s = self.settings
        return Dsn(s.host, s.port, s.user, s.password.get_secret_value(), s.database)

    def _as_owner(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def _init_cluster(self, bin_dir: Path) -> None:
        if (self.cluster_dir / "PG_VERSION").is_file():
            return
        self.cluster_dir.mkdir(parents=True, exist_ok=True)
        pwfile = self.data_dir / "pwfile"
        pwfile.write_text(self.settings.password.get_secret_value() + "\n")
        if os.geteuid() == 0:
            for path in (self.data_dir, self.cluster_dir, pwfile):
                shutil.chown(path, "postgres")
            if subprocess.run(self._as_owner(["test", "-r", str(pwfile)]), check=False).returncode != 0:
                raise LocalServiceError(
                    f"{COMPONENT}: the postgres user cannot reach {self.data_dir}",
                    hint="pick a data dir whose parents others may traverse (REWIND_POSTGRES__DATA_DIR)",
                )
        initdb = [
            str(bin_dir / "initdb"), "-D", str(self.cluster_dir), "-U", self.settings.user,
            f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8", "--no-instructions",
        ]  # fmt: skip
        run_checked(self._as_owner(initdb), f"{COMPONENT} initdb", hint=f"remove {self.data_dir} and retry")
        pwfile.unlink()
        with (self.cluster_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# kafka-rewind: logical decoding for Debezium (pgoutput)\n"
                "wal_level = logical\nmax_replication_slots = 10\nmax_wal_senders = 10\n"
                f"listen_addresses = '{self.settings.host}'\nport = {self.settings.port}\n"
                f"unix_socket_directories = '{self.cluster_dir}'\nfsync = off\n"
                "synchronous_commit = off\nfull_page_writes = off\n"
            )
        with (self.cluster_dir / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 scram-sha-256\n")

    def start(self) -> Dsn:
        if self.running_pid() is not None:
            return self.dsn
        bin_dir = pg_bin_dir()
        require_free_port(COMPONENT, self.settings.host, self.settings.port, "REWIND_POSTGRES__PORT")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._init_cluster(bin_dir)
        if os.geteuid() == 0:
            self.daemon.log_file.touch()
            shutil.chown(self.daemon.log_file, "postgres")
        self.daemon.spawn(self._as_owner([str(bin_dir / "postgres"), "-D", str(self.cluster_dir)]))
        pg_isready = str(bin_dir / "pg_isready")
        self.daemon.wait_ready(
            lambda: self._ready(pg_isready),
            self.settings.ready_timeout_s,
            "raise REWIND_POSTGRES__READY_TIMEOUT_S or read the log above",
        )
        self._ensure_database(bin_dir)
        return self.dsn

    def _ready(self, pg_isready: str) -> bool:
        if not answers(self.settings.host, self.settings.port):
            return False
        cmd = [pg_isready, "-h", self.settings.host, "-p", str(self.settings.port), "-q"]
        return subprocess.run(cmd, check=False).returncode == 0

    def _ensure_database(self, bin_dir: Path) -> None:
        psql = [
            str(bin_dir / "psql"), "-h", self.settings.host, "-p", str(self.settings.port),
            "-U", self.settings.user, "-d", "postgres", "-tAc",
        ]  # fmt: skip
        env_pw = {"PGPASSWORD": self.settings.password.get_secret_value()}
        # The name is an identifier by the settings' pattern, so quoting it here is safe.
        query = f"SELECT 1 FROM pg_database WHERE datname = '{self.settings.database}'"  # noqa: S608
        if run_checked([*psql, query], f"{COMPONENT} psql", extra_env=env_pw).strip() != "1":
            run_checked(
                [*psql, f'CREATE DATABASE "{self.settings.database}"'], f"{COMPONENT} psql", extra_env=env_pw
            )

    def running_pid(self) -> int | None:
        return self.daemon.running_pid()

    def stop(self) -> bool:
        # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave.
        return self.daemon.stop(sig=signal.SIGINT)
