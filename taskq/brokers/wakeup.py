"""Push wake-ups for the ORM broker, so an idle cluster answers a new task at once.

- PostgreSQL: enqueue sends ``NOTIFY taskq`` (delivered when the enqueuing transaction
  commits); each Pusher LISTENs on a dedicated connection.
- SQLite (one host by nature): enqueue sends an empty datagram to the Pushers of that
  database and queue, which wait on Linux abstract-namespace sockets (no files, nothing
  to clean up). A Pusher binds the first free of ``SLOTS`` names; enqueue tries them all.

Either way a wake-up that is lost only costs the fallback poll.
"""

from __future__ import annotations

import hashlib
import logging
import select
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

CHANNEL = "taskq"
SLOTS = 8  # Pushers of one database and queue on one host that get datagram wake-ups
REPROBE = 0.05  # seconds a wake-up skips the names that refused the last one
HAS_ABSTRACT_SOCKETS = sys.platform.startswith("linux")


def socket_names(database: str, queue: str) -> list[bytes]:
    digest = hashlib.sha1(f"{database}\0{queue}".encode()).hexdigest()[:20]
    return [f"\0taskq-{digest}-{slot}".encode() for slot in range(SLOTS)]


class DatagramWaker:
    """Sends wake-ups to the Pushers of one SQLite database and queue on this host.

    A name nobody has bound refuses the datagram; such names are skipped for
    ``REPROBE`` seconds, so that a burst of enqueues does not knock on every empty slot
    each time. A Pusher that binds a skipped name in that moment is woken by the next
    enqueue after it, and meanwhile polls (it polls often just after it starts).
    """

    def __init__(self, database: str, queue: str, clock: Callable[[], float] = time.monotonic):
        self.names = socket_names(database, queue) if HAS_ABSTRACT_SOCKETS else []
        self.sock: socket.socket | None = None
        self.clock = clock
        self.refused: set[bytes] = set()
        self.probe_after = 0.0

    def wake(self) -> None:
        if not self.names:
            return
        if self.sock is None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.setblocking(False)
        now = self.clock()
        probing = now >= self.probe_after
        if probing:
            self.refused = set()
            self.probe_after = now + REPROBE
        for name in self.names:
            if name in self.refused:
                continue
            try:
                self.sock.sendto(b"", name)
            except (ConnectionRefusedError, FileNotFoundError):  # nobody bound there
                if probing:
                    self.refused.add(name)
            except OSError:  # its buffer is full: that Pusher has wake-ups waiting anyway
                continue

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class DatagramListener:
    """A Pusher's end: binds a free slot and waits for datagrams."""

    def __init__(self, database: str, queue: str) -> None:
        self.sock: socket.socket | None = None
        if not HAS_ABSTRACT_SOCKETS:
            return
        for name in socket_names(database, queue):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(name)
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            self.sock = sock
            return
        logger.info("more than %s clusters on this queue here: this one polls", SLOTS)

    def wait(self, timeout: float) -> bool:
        """True if woken before ``timeout`` seconds; drains every pending wake-up."""
        if self.sock is None:
            time.sleep(timeout)
            return False
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return False
        while True:
            try:
                self.sock.recv(16)
            except BlockingIOError:
                return True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class PostgresListener:
    """A dedicated autocommit connection that LISTENs for enqueue notifications."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.conn: Any = None

    def connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(**self.params, autocommit=True)
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def wait(self, timeout: float) -> bool:
        if self.conn is None or self.conn.closed:
            self.conn = self.connect()
        ready, _, _ = select.select([self.conn.fileno()], [], [], timeout)
        if not ready:
            return False
        return any(True for _ in self.conn.notifies(timeout=0))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
