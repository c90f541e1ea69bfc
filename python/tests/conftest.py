"""Fixtures: a real redis-server and a real ``sesame serve`` on free loopback ports.

The service binary is ``$SESAME_BIN`` (default: ``<repo>/target/debug/sesame``). Every process
started here is stopped by its pid at the end.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import List, Optional

import pytest

from sesame_session import SesameClient

REPO = Path(__file__).resolve().parents[2]
TOKEN_SECRET = "python-tests-token-secret-" + secrets.token_urlsafe(24)
SERVICE_KEY = "python-tests-key-" + secrets.token_urlsafe(16)


def sesame_bin() -> str:
    path = os.environ.get("SESAME_BIN") or str(REPO / "target" / "debug" / "sesame")
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"the sesame binary is not at {path}: build it (cargo build -p sesame-cli --bin "
            "sesame) or set SESAME_BIN"
        )
    return path


def free_port() -> int:
    """A loopback port nothing listens on now (never 6379)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != 6379:
            return port


class Proc:
    """A child process whose stderr is read line by line in a thread (kept for diagnostics)."""

    def __init__(self, argv: List[str], env: Optional[dict] = None, stdout_too: bool = False):
        self.argv = argv
        self.lines: List[str] = []
        self._cond = threading.Condition()
        self.p = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_too else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if stdout_too else subprocess.PIPE,
            text=True,
            errors="replace",
        )
        stream = self.p.stdout if stdout_too else self.p.stderr
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.p.pid

    def _read(self, stream) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match:
        """The first output line matching ``pattern``; fails when the process ends first or
        the time runs out."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    m = rx.search(line)
                    if m:
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and not self._reader.is_alive()):
                    break
                self._cond.wait(min(left, 0.2))
        self.stop()
        raise RuntimeError(
            f"{self.argv[0]} did not print {pattern!r} (exit {self.p.poll()}); its output:\n"
            + "\n".join(self.lines[-40:])
        )

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)


def start_redis() -> tuple:
    """A private redis-server without persistence; (Proc, port)."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed (Debian: apt-get install redis-server)")
    for _ in range(5):
        port = free_port()
        proc = Proc(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout_too=True,
        )
        try:
            proc.wait_for(r"[Rr]eady to accept connections", timeout=10)
            return proc, port
        except RuntimeError:
            proc.stop()  # most likely the port was taken meanwhile: try another
    raise RuntimeError("could not start redis-server")


def start_service(redis_port: int, *extra: str, key: Optional[str] = SERVICE_KEY) -> tuple:
    """``sesame serve`` on a free port, on the given Redis; (Proc, base URL)."""
    env = dict(os.environ, SESAME_TOKEN_SECRET=TOKEN_SECRET)
    env.pop("SESAME_SERVICE_KEY", None)
    if key is not None:
        env["SESAME_SERVICE_KEY"] = key
    proc = Proc(
        [
            sesame_bin(),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            f"redis://127.0.0.1:{redis_port}",
            *extra,
        ],
        env=env,
    )
    m = proc.wait_for(r"listening on (http://\S+)")
    return proc, m.group(1).rstrip("/")


@pytest.fixture(scope="session")
def redis_port():
    proc, port = start_redis()
    yield port
    proc.stop()


@pytest.fixture(scope="session")
def service_url(redis_port):
    proc, url = start_service(redis_port)
    yield url
    proc.stop()


@pytest.fixture()
def client(service_url):
    c = SesameClient(service_url, service_key=SERVICE_KEY, timeout=5)
    yield c
    c.close()


@pytest.fixture()
def anon_client(service_url):
    """A client without the service key."""
    c = SesameClient(service_url, timeout=5)
    yield c
    c.close()


def unique(prefix: str) -> str:
    """A principal no other test uses."""
    return f"{prefix}-{secrets.token_hex(4)}"
