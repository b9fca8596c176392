"""A throwaway PostgreSQL server for tests, built from the local server binaries.

Standard library only, so that ``noxfile.py`` can load it before any virtualenv
exists. Usage::

    with PostgresServer() as pg:
        subprocess.run([...], env={**os.environ, **pg.env})

``pg.env`` holds ``TASKQ_PG_HOST``, ``TASKQ_PG_PORT``, ``TASKQ_PG_USER``,
``TASKQ_PG_PASSWORD`` and ``TASKQ_PG_NAME``. The server listens on 127.0.0.1 only,
keeps its data in a temporary directory and is stopped and removed on exit.

By default it is built for test speed: it trusts every local connection and does
not flush its writes to disk (``SERVER_SETTINGS``). ``PostgresServer(stock=True)``
is configured as a packaged PostgreSQL is out of the box instead: commits are
durable (``fsync``, ``synchronous_commit`` and ``full_page_writes`` on) and TCP
connections authenticate with a password (``scram-sha-256``); the benchmark uses it.
When run as root the server runs as the ``postgres`` OS user (created if missing),
since PostgreSQL refuses to run as root.

Run ``python taskq_tests/pgserver.py`` to start a server, run ``SELECT 1`` with
psql and stop it; ``--serve`` keeps it running and prints its settings, ``--stock``
starts the packaged configuration.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["PostgresNotFound", "PostgresServer", "PostgresStartError", "find_bindir"]

OS_USER = "postgres"
DB_USER = "postgres"
DB_NAME = "taskq"  # created at start; the maintenance db "postgres" exists too
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0

SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "128MB",
    "log_min_messages": "warning",
}

# stock=True: only what the server needs to run here; durability and memory as shipped
STOCK_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "log_min_messages": "warning",
}

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or in "
    "/usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: "
    "`apt-get install postgresql`), or point the tests at a running server by "
    "setting TASKQ_PG_HOST (and TASKQ_PG_PORT, TASKQ_PG_USER, TASKQ_PG_PASSWORD, "
    "TASKQ_PG_NAME)."
)


class PostgresNotFound(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


class PostgresStartError(RuntimeError):
    """The server could not be initialised or did not start in time."""


def _version_key(bindir: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin -> (15,)
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first, then the newest
    ``/usr/lib/postgresql/*/bin``."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        bindir = Path(on_path).resolve().parent
        if (bindir / "initdb").exists():
            return bindir
    candidates = [Path(found).parent for found in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")]
    candidates = [c for c in candidates if (c / "initdb").exists()]
    if not candidates:
        raise PostgresNotFound(INSTALL_HINT)
    return max(candidates, key=_version_key)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class PostgresServer:
    """One PostgreSQL server in a temporary directory; a context manager.

    ``stock=True``: durable commits and password authentication over TCP, as a
    packaged server has them, rather than the fast, trusting test configuration.
    """

    def __init__(self, bindir: Path | str | None = None, *, stock: bool = False) -> None:
        self.bindir = Path(bindir) if bindir else find_bindir()
        self.stock = stock
        self.host = "127.0.0.1"
        self.port = 0
        self.user = DB_USER
        self.password = secrets.token_hex(16) if stock else ""
        self.name = DB_NAME
        self.tempdir: Path | None = None
        self._as_root = os.geteuid() == 0
        self._started = False

    # -- paths and commands -------------------------------------------------

    @property
    def datadir(self) -> Path:
        assert self.tempdir is not None
        return self.tempdir / "data"

    @property
    def socketdir(self) -> Path:
        assert self.tempdir is not None
        return self.tempdir / "socket"

    @property
    def logfile(self) -> Path:
        assert self.tempdir is not None
        return self.tempdir / "server.log"

    @property
    def env(self) -> dict[str, str]:
        """The settings the test suite reads."""
        return {
            "TASKQ_PG_HOST": self.host,
            "TASKQ_PG_PORT": str(self.port),
            "TASKQ_PG_USER": self.user,
            "TASKQ_PG_PASSWORD": self.password,
            "TASKQ_PG_NAME": self.name,
        }

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bindir / program), *args]
        if self._as_root:
            command = ["runuser", "-u", OS_USER, "--", *command]
        return command

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        command = self._command(program, *args)
        proc = subprocess.run(
            command,
            cwd=self.tempdir,
            env={**os.environ, "PGPASSWORD": self.password},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise PostgresStartError(
                f"{' '.join(command)} exited with {proc.returncode}:\n"
                f"{proc.stdout}{proc.stderr}{self._log_tail()}"
            )

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError:
            return ""
        return "\n--- server log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    # -- lifecycle -----------------------------------------------------------

    def _prepare_os_user(self) -> None:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            subprocess.run(["useradd", "-r", OS_USER], check=True)
        entry = pwd.getpwnam(OS_USER)
        assert self.tempdir is not None
        for path in (self.tempdir, *self.tempdir.rglob("*")):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> PostgresServer:
        if self._started:
            return self
        for program in ("initdb", "pg_ctl"):
            if not (self.bindir / program).exists():
                raise PostgresNotFound(f"{self.bindir / program} is missing. {INSTALL_HINT}")
        self.tempdir = Path(tempfile.mkdtemp(prefix="taskq-pg-"))
        self._started = True
        atexit.register(self.stop)
        try:
            self.socketdir.mkdir()
            if self._as_root:
                self.tempdir.chmod(0o755)
                self._prepare_os_user()
            self._run("initdb", *self._initdb_options(), timeout=120)
            settings = {
                **(STOCK_SETTINGS if self.stock else SERVER_SETTINGS),
                "unix_socket_directories": f"'{self.socketdir}'",
            }
            with (self.datadir / "postgresql.conf").open("a") as conf:
                conf.write("\n# taskq test server\n")
                conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
            self._start_on_free_port()
        except BaseException:
            self.stop()
            raise
        return self

    def _initdb_options(self) -> list[str]:
        options = ["--pgdata", str(self.datadir), "--username", DB_USER]
        options += ["--encoding=UTF8", "--locale=C", "--no-sync"]
        if not self.stock:
            return [*options, "--auth=trust"]
        assert self.tempdir is not None
        pwfile = self.tempdir / "password"
        pwfile.write_text(self.password + "\n")
        if self._as_root:
            entry = pwd.getpwnam(OS_USER)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        # the socket in the temporary directory stays trusted, as on a packaged server
        return [*options, "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]

    def _start_on_free_port(self, attempts: int = 3) -> None:
        for attempt in range(1, attempts + 1):
            self.port = _free_port()
            try:
                self._pg_ctl_start()
                break
            except (PostgresStartError, subprocess.TimeoutExpired) as exc:
                port_taken = "already in use" in self._log_tail()
                if attempt < attempts and port_taken:
                    continue
                raise PostgresStartError(
                    f"PostgreSQL did not start within {START_TIMEOUT:.0f} s "
                    f"(port {self.port}, data in {self.datadir}): {exc}"
                ) from exc
        self._run("createdb", "-h", self.host, "-p", str(self.port), "-U", DB_USER, self.name)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        isready = self.bindir / "pg_isready"
        while time.monotonic() < deadline:
            if isready.exists():
                probe = subprocess.run(
                    [str(isready), "-q", "-h", self.host, "-p", str(self.port), "-U", DB_USER],
                    stdin=subprocess.DEVNULL,
                    check=False,
                )
                if probe.returncode == 0:
                    return
            elif _accepts_connections(self.port):
                return
            time.sleep(0.2)
        raise PostgresStartError(
            f"PostgreSQL on {self.host}:{self.port} does not accept connections "
            f"after {START_TIMEOUT:.0f} s.{self._log_tail()}"
        )

    def stop(self) -> None:
        """Stop the server and remove its directory; safe to call twice."""
        if not self._started:
            return
        self._started = False
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        assert self.tempdir is not None
        if (self.datadir / "postmaster.pid").exists():
            try:
                self._pg_ctl_stop()
            except (PostgresStartError, subprocess.TimeoutExpired):
                self._kill_postmaster()
        shutil.rmtree(self.tempdir, ignore_errors=True)

    def _pg_ctl_start(self) -> None:
        self._run(
            "pg_ctl",
            "--pgdata",
            str(self.datadir),
            "--log",
            str(self.logfile),
            "--options",
            f"-p {self.port}",
            "--wait",
            "--timeout",
            str(int(START_TIMEOUT)),
            "start",
            timeout=START_TIMEOUT + 10,
        )
        self._wait_until_ready()

    def _pg_ctl_stop(self) -> None:
        """A fast shutdown: sessions are cut and their transactions rolled back."""
        self._run(
            "pg_ctl",
            "--pgdata",
            str(self.datadir),
            "--mode",
            "fast",
            "--wait",
            "--timeout",
            str(int(STOP_TIMEOUT)),
            "stop",
            timeout=STOP_TIMEOUT + 10,
        )

    def pause(self) -> None:
        """Shut the server down and keep its data, as a database restart would."""
        self._pg_ctl_stop()

    def resume(self) -> None:
        """Start a paused server again, on the same port, with the same data."""
        self._pg_ctl_start()

    def _kill_postmaster(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.datadir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown; children follow

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--serve",
        action="store_true",
        help="keep the server running and print its settings until Ctrl-C",
    )
    parser.add_argument(
        "--stock",
        action="store_true",
        help="durable commits and password authentication, as a packaged server",
    )
    args = parser.parse_args(argv)
    try:
        server = PostgresServer(stock=args.stock)
    except PostgresNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with server:
        print(f"PostgreSQL from {server.bindir} on {server.host}:{server.port}")
        if args.serve:
            for key, value in server.env.items():
                print(f"export {key}={value!r}")
            print("Ctrl-C to stop.", flush=True)
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
            return 0
        psql = [
            str(server.bindir / "psql"),
            "-X",
            "-A",
            "-t",
            "-h",
            server.host,
            "-p",
            str(server.port),
            "-U",
            server.user,
            "-d",
            server.name,
            "-c",
            "SELECT 1",
        ]
        env = {**os.environ, "PGPASSWORD": server.password}
        out = subprocess.run(psql, capture_output=True, text=True, check=False, env=env)
        print(f"SELECT 1 -> {out.stdout.strip()!r}{out.stderr.strip()}")
        return 0 if out.stdout.strip() == "1" else 1


if __name__ == "__main__":
    sys.exit(main())
