"""A throw-away PostgreSQL server on loopback (Debian's `postgresql` package): initdb into a
temp dir, `postgres` started in its own process group and stopped by PID. As root (CI) the
server runs as the `postgres` system user, since PostgreSQL refuses to run as root."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time

from cluster.processes import LOOPBACK, Service, free_port, spawn, wait_until

USER = "shoematch"


def _binary(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or \
        [p for p in [shutil.which(name)] if p]
    if not found:
        raise FileNotFoundError(f"PostgreSQL's {name} not found: apt-get install -y postgresql")
    return found[-1]


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--", *argv]


def _accepts(port: int) -> bool:
    check = subprocess.run([_binary("pg_isready"), "-h", LOOPBACK, "-p", str(port)],
                           capture_output=True)
    return check.returncode == 0


def start_postgres() -> tuple[Service, str]:
    """Start a server in a new directory under /tmp (the server user must reach it; pytest's
    own temp dirs are private to root); returns it (url: an SQLAlchemy URL) and the dir."""
    root = tempfile.mkdtemp(prefix="shoematch-pg-")
    data, sockets = os.path.join(root, "data"), os.path.join(root, "sockets")
    os.makedirs(sockets, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
    subprocess.run(_as_server_user([_binary("initdb"), "-D", data, "-U", USER, "--auth=trust",
                                    "--no-sync", "-E", "UTF8"]),
                   check=True, capture_output=True, timeout=120)
    port = free_port()
    service = spawn("postgres", _as_server_user(
        [_binary("postgres"), "-D", data, "-h", LOOPBACK, "-p", str(port), "-k", sockets,
         "-c", "fsync=off"]), os.path.join(root, "postgres.log"),
        f"postgresql+psycopg://{USER}@{LOOPBACK}:{port}/postgres")
    try:
        wait_until(lambda: _accepts(port), 60, f"PostgreSQL on port {port}")
    except TimeoutError:
        service.stop()
        raise
    return service, root


def stop_postgres(service: Service, timeout_s: float = 15.0) -> None:
    """PostgreSQL's fast shutdown (SIGINT: every session ended, then a clean exit), then
    `Service.stop` for anything left. The SIGTERM of `Service.stop` alone is the smart shutdown,
    which waits for clients (the test process's pooled connections) until the SIGKILL: 15 s."""
    try:
        os.kill(service.pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while service.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    service.stop(timeout_s)
