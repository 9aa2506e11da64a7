"""A throwaway PostgreSQL server for tests: initdb in a temp dir, loopback only.

initdb refuses to run as root; as root the server commands run as the ``postgres``
system user (created by the Debian package) through ``runuser``, in a temp dir it owns.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def server_bindir() -> Path | None:
    """The directory of initdb: the newest /usr/lib/postgresql/<version>/bin, else PATH's."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                      else 0)
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def postgres_server(database: str = "history") -> Iterator[str]:
    """Start a server, create ``database``, yield its SQLAlchemy URL, stop and delete it."""
    bindir = server_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian package postgresql)")
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="shiftbench-pg-"))
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        try:
            shutil.chown(root, user="postgres", group="postgres")
        except LookupError:
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL")
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=60)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "shiftbench", "-A", "trust",
            "-E", "UTF8", "--no-sync", "--no-instructions")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off", "start")
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "shiftbench",
            database)
        yield f"postgresql+psycopg://shiftbench@127.0.0.1:{port}/{database}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                            "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
