"""A throw-away PostgreSQL cluster for tests and benchmarks: ``initdb`` into a fresh folder, ``pg_ctl start``
on a free port of 127.0.0.1 (never the machine's own server on 5432), trust authentication, stopped and
deleted afterwards.

PostgreSQL refuses to run as root: when the tests run as root, the server runs as the ``postgres`` user (the
one Debian's package creates) in a folder it owns under /tmp (pytest's own tmp folders are root-only).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from kuzet.central.broker import free_port

_SEARCH = ["/usr/local/bin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]


def find_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl (PATH first, then Debian's versioned folders), or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    for folder in _SEARCH:
        if os.access(Path(folder) / "initdb", os.X_OK) and os.access(Path(folder) / "pg_ctl", os.X_OK):
            return Path(folder)
    return None


class PostgresCluster:
    def __init__(self, bin_dir: Path, settings: dict[str, str] | None = None):
        self.bin_dir = bin_dir
        self.settings = settings or {}  # server settings beyond the defaults below (``-c name=value``)
        self.port = free_port()
        self.user = None if os.geteuid() != 0 else "postgres"
        self.root = Path(tempfile.mkdtemp(prefix="kuzet-pg-"))
        self.data = self.root / "data"
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql://kuzet@127.0.0.1:{self.port}/kuzet"

    def database_url(self, name: str) -> str:
        return f"postgresql://kuzet@127.0.0.1:{self.port}/{name}"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            user=self.user,
            cwd=self.root,
        )

    def start(self) -> PostgresCluster:
        # The "C" locale: ISO-8601 text sorts as time, which the monthly partitions rely on.
        self._run("initdb", "-D", str(self.data), "-U", "kuzet", "--auth=trust", "--locale=C", "-E", "UTF8")
        self._start_server()
        self.create_database("kuzet")
        return self

    def restart(self) -> None:
        """Stop the server at once (as a crash would) and start it again on the same port."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self._start_server()

    def _start_server(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} -c fsync=off"
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.database_url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
