"""One writer at a time among a cluster's own processes, for single-writer databases.

SQLite lets one transaction write at a time. When the Pusher's claim and the Monitor's
batch meet, SQLite makes the second wait in its busy handler, which sleeps (1 ms, then
2, 5, ...) and looks again: a stall on every collision. The cluster's processes take
their turns on a :class:`WriteLock` first, and a waiter starts the moment the holder
is done. It is a POSIX record lock (``lockf``) on a file the Sentinel opens before it
forks: the kernel releases it when its holder dies, so a killed process never leaves
the others waiting. Other writers (web processes, other clusters) still meet SQLite's
own locking, which remains what keeps the data safe.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import weakref
from types import TracebackType


class WriteLock:
    def __init__(self) -> None:
        fd, path = tempfile.mkstemp(prefix="taskq-write-")
        os.unlink(path)  # the open descriptor is all the lock needs
        self.fd = fd
        self.closer = weakref.finalize(self, os.close, fd)

    def __enter__(self) -> WriteLock:
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.closer()
