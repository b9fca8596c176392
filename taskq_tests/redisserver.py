"""A throwaway Redis server for tests, from the local ``redis-server`` binary.

Standard library only, so that ``noxfile.py`` can load it before any virtualenv
exists. Usage::

    with RedisServer() as server:
        subprocess.run([...], env={**os.environ, **server.env})

``server.env`` holds ``TASKQ_REDIS_URL``. The server listens on 127.0.0.1 on a free
port, persists nothing, keeps its files in a temporary directory, and is stopped and
removed on exit (and killed by the kernel if the process that started it dies).

`server_url()` is what the test suite calls: ``TASKQ_REDIS_URL`` when it is set, else
one server started for this process on first use.

Run ``python taskq_tests/redisserver.py`` to start a server, PING it and stop it;
``--serve`` keeps it running and prints its settings.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "RedisNotFound",
    "RedisServer",
    "RedisStartError",
    "delete_keys",
    "find_server",
    "server_url",
    "url_or_skip",
]

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
SEARCH = ("/usr/bin", "/usr/local/bin", "/usr/sbin", "/opt/homebrew/bin")
INSTALL_HINT = (
    "redis-server was not found on PATH or in /usr/bin, /usr/local/bin. Install it "
    "(Debian/Ubuntu: `apt-get install redis-server`), or point the tests at a running "
    "server with TASKQ_REDIS_URL (its keys under 'taskq:' are deleted by the tests)."
)


class RedisNotFound(RuntimeError):
    """No redis-server binary on this machine."""


class RedisStartError(RuntimeError):
    """The server did not start in time."""


def find_server() -> Path:
    """The ``redis-server`` binary: PATH first, then the usual directories."""
    found = shutil.which("redis-server") or shutil.which("redis-server", path=":".join(SEARCH))
    if not found:
        raise RedisNotFound(INSTALL_HINT)
    return Path(found)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ping(port: int, timeout: float = 1.0) -> bool:
    """True when a Redis server on 127.0.0.1:``port`` answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _die_with_parent() -> Any:
    """A ``preexec_fn`` that makes Linux kill the server when its parent dies."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    return lambda: libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class RedisServer:
    """One Redis server in a temporary directory; a context manager.

    ``persist=True`` writes every change to an append-only file before answering
    (``appendfsync always``), so that :meth:`down` loses nothing.
    """

    def __init__(self, binary: Path | str | None = None, *, persist: bool = False) -> None:
        self.binary = Path(binary) if binary else find_server()
        self.persist = persist
        self.host = "127.0.0.1"
        self.port = 0
        self.tempdir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def env(self) -> dict[str, str]:
        """The settings the test suite reads."""
        return {"TASKQ_REDIS_URL": self.url}

    @property
    def logfile(self) -> Path:
        assert self.tempdir is not None
        return self.tempdir / "redis.log"

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError:
            return ""
        return "\n--- server log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    def start(self, attempts: int = 3) -> RedisServer:
        if self.process is not None:
            return self
        if not self.binary.exists():
            raise RedisNotFound(f"{self.binary} is missing. {INSTALL_HINT}")
        self.tempdir = Path(tempfile.mkdtemp(prefix="taskq-redis-"))
        atexit.register(self.stop)
        for attempt in range(1, attempts + 1):
            self.port = _free_port()
            self._spawn()
            if self._wait_until_ready():
                return self
            self._terminate()
            if attempt == attempts:
                self.stop()
                raise RedisStartError(
                    f"redis-server did not answer on port {self.port} within "
                    f"{START_TIMEOUT:.0f} s.{self._log_tail()}"
                )
        return self  # pragma: no cover - the loop returns or raises

    def _spawn(self) -> None:
        command = [
            str(self.binary),
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--dir",
            str(self.tempdir),
            "--logfile",
            str(self.logfile),
            "--save",
            "",
            "--appendonly",
            "yes" if self.persist else "no",
            "--appendfsync",
            "always",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        self.process = subprocess.Popen(
            command,
            cwd=self.tempdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent(),  # one prctl call: takes no lock
        )

    def _wait_until_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False  # exited: the port was taken, most likely
            if ping(self.port):
                return True
            time.sleep(0.05)
        return False

    def _terminate(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """Stop the server for the duration of the block, then start it on the same port."""
        self._terminate()
        try:
            yield
        finally:
            self._spawn()
            if not self._wait_until_ready():
                raise RedisStartError(f"redis-server did not come back.{self._log_tail()}")

    def stop(self) -> None:
        """Stop the server and remove its directory; safe to call twice."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        self._terminate()
        if self.tempdir is not None:
            shutil.rmtree(self.tempdir, ignore_errors=True)
            self.tempdir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


_shared: RedisServer | None = None


def server_url() -> str:
    """``TASKQ_REDIS_URL``, or the URL of a server started once for this process.

    Raises :class:`RedisNotFound` when neither exists.
    """
    global _shared
    if os.environ.get("TASKQ_REDIS_URL"):
        return os.environ["TASKQ_REDIS_URL"]
    if _shared is None:
        _shared = RedisServer().start()
    return _shared.url


def url_or_skip() -> str:
    """For tests: :func:`server_url`, or skip (fail where ``CI`` is set) without a server."""
    import pytest

    try:
        return server_url()
    except RedisNotFound as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Redis tests: {exc}")
        pytest.skip(f"needs redis-server: {exc}")


def delete_keys(url: str, pattern: str = "taskq:*") -> None:
    """Remove the keys that tests left (needs the ``redis`` package)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help="keep the server running until Ctrl-C")
    args = parser.parse_args(argv)
    try:
        server = RedisServer()
    except RedisNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with server:
        print(f"{server.binary} on {server.host}:{server.port}")
        if args.serve:
            for key, value in server.env.items():
                print(f"export {key}={value!r}")
            print("Ctrl-C to stop.", flush=True)
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
            return 0
        answered = ping(server.port)
        print(f"PING -> {'PONG' if answered else 'no answer'}")
        return 0 if answered else 1


if __name__ == "__main__":
    sys.exit(main())
