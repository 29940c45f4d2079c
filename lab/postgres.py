"""A throwaway PostgreSQL server for tests and benchmarks: Debian's binaries, a temporary data
directory, loopback only, trust authentication for one superuser.

PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user the
Debian package creates (or `nobody`), through `setpriv` (or `runuser`). The binaries are found
on PATH or in /usr/lib/postgresql/<version>/bin, where Debian's postgresql package puts them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from lab.pipeline.processes import free_port

SUPERUSER = "rollback"


def find_bindir() -> Path | None:
    """The directory holding initdb and postgres (PATH first, then Debian's layout)."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(os.path.realpath(on_path)).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


def _runas() -> list[str]:
    """The command prefix that drops root (the server refuses it); empty when not root."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        if shutil.which("setpriv"):  # execs the command itself: signals reach postgres
            return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
        return ["runuser", "-u", user, "--"]
    raise RuntimeError("running as root and no postgres or nobody user to run PostgreSQL as")


def _owner() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    return None


@dataclass
class PostgresServer:
    """A running server; `dsn(database)` for clients, `stop()` to end it and remove its data."""

    bindir: Path
    datadir: Path
    port: int
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, *, bindir: Path, durable: bool = False) -> PostgresServer:
        """initdb into a fresh temporary directory and start postgres on 127.0.0.1.

        `durable=False` turns fsync off (tests kill workers, never the server); benchmarks
        pass True to measure commits as production makes them.
        """
        root = Path(tempfile.mkdtemp(prefix="rollback-webhook-pg-"))
        datadir = root / "data"
        owner = _owner()
        if owner:
            os.chown(root, *owner)
        prefix = _runas()
        subprocess.run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(datadir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        port = free_port()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(root),
            "max_connections": "200",
            "fsync": "on" if durable else "off",
            "full_page_writes": "on" if durable else "off",
        }
        args = [f"-c{k}={v}" for k, v in settings.items()]
        log = (root / "postgres.log").open("wb")
        if owner:
            os.chown(root / "postgres.log", *owner)
        process = subprocess.Popen(
            [*prefix, str(bindir / "postgres"), "-D", str(datadir), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server = cls(bindir=bindir, datadir=datadir, port=port, process=process)
        server._wait_ready(root / "postgres.log")
        return server

    def _wait_ready(self, logfile: Path, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {logfile.read_text()[-2000:]}")
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise RuntimeError(f"postgres did not start in {timeout}s: {logfile.read_text()[-2000:]}")

    def dsn(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "audit") -> str:
        """A new empty database; returns its DSN."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # smart shutdown: SIGTERM to the postmaster
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.datadir.parent, ignore_errors=True)
