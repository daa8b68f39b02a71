"""Starting and stopping local service processes by PID, with bounded health checks.

Used by the `cluster/` scripts and by the tests: every server binds 127.0.0.1, runs in its own
process group (so its children stop with it) and is stopped by the PID recorded at start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    """True when `url` answers any HTTP response (even 4xx: the server is up)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def wait_until(check: Callable[[], bool], timeout_s: float, what: str,
               interval_s: float = 0.25) -> None:
    """Poll `check` until it holds, at most `timeout_s` seconds; raise naming `what` otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")


@dataclass
class Service:
    """A started server process: its PID, where it logs, and the URL it answers on."""

    name: str
    pid: int
    url: str
    log_path: str
    address: str = ""  # a second address some services have (Ray: the GCS host:port)
    leader_stops_group: bool = False  # SIGTERM the leader alone: it stops its children (Ray)

    def alive(self) -> bool:
        return pid_alive(self.pid)

    def stop(self, timeout_s: float = 15.0) -> None:
        stop_pid(self.pid, timeout_s, leader_only=self.leader_stops_group)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def stop_pid(pid: int, timeout_s: float = 15.0, leader_only: bool = False) -> None:
    """SIGTERM the process group of `pid` (or `pid` alone, see `stop_pids`), then SIGKILL what
    is left of the group once `pid` has exited, or all of it after `timeout_s`."""
    stop_pids([pid], timeout_s, leaders_only=[pid] if leader_only else ())


def stop_pids(pids: list[int], timeout_s: float = 15.0,
              leaders_only: Collection[int] = ()) -> None:
    """`stop_pid` for several groups at once: all are signalled before any is waited for.

    The groups of `leaders_only` get their SIGTERM through the leader alone: a leader that stops
    its children in order (`ray start --block`, in about 2 s) would otherwise see them all
    signalled at once, which leaves Ray's GCS and raylet waiting on each other until SIGKILL."""
    _signal(pids, signal.SIGTERM, leaders_only)
    _wait_exit(pids, timeout_s)
    _signal(pids, signal.SIGKILL, ())
    _wait_exit(pids, timeout_s)


def _signal(pids: list[int], sig: signal.Signals, leaders_only: Collection[int]) -> None:
    """Send `sig` to each pid's process group (to the pid alone for `leaders_only`)."""
    for pid in pids:
        try:
            if pid in leaders_only:
                os.kill(pid, sig)
            else:
                os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, sig)


def _wait_exit(pids: list[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in pids):
        time.sleep(0.1)


def kill_group(pid: int, timeout_s: float = 15.0) -> None:
    """SIGKILL the process group of `pid` at once (a crash, not a shutdown), then wait for it."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_until(lambda: not pid_alive(pid), timeout_s, f"killed process {pid}", interval_s=0.1)


def spawn(name: str, argv: Sequence[str], log_path: str, url: str,
          env: dict[str, str] | None = None) -> Service:
    """Start `argv` in a new session (own process group), logging to `log_path`."""
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, **(env or {})},
        )
    return Service(name, process.pid, url, log_path)
