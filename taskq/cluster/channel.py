"""A pipe between the cluster's processes that writes in the caller's thread.

``multiprocessing.Queue`` hands every item to a feeder thread, which pickles and writes
it; for small, frequent messages the thread switch under the GIL costs more than the
write. A :class:`Channel` pickles and writes at once, under a lock shared by every
writer, and reads under a lock shared by every reader. A write blocks while the pipe
(1 MiB where Linux allows) is full, so a channel must have a reader that keeps up: the
task channel holds at most ``queue_limit`` tasks, and the Monitor reads the result
channel all the time. The Sentinel, which must never block, writes through a
:class:`Relay`, and reads the task channel while it waits for the Pusher to stop, so that
the Pusher is never killed in the middle of a write.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import pickle
import queue
import struct
import threading
import time
from typing import Any

CONTEXT = multiprocessing.get_context("fork")
PROTOCOL = pickle.HIGHEST_PROTOCOL
HEADER = struct.Struct("!i")  # how Connection.send_bytes frames a message
FRAME_LIMIT = 0x7FFFFFFF
PIPE_SIZE = 1 << 20  # bytes; Linux's default limit for unprivileged processes


class Channel:
    """Many writers, many readers; items are pickled objects."""

    def __init__(self) -> None:
        self._reader, self._writer = CONTEXT.Pipe(duplex=False)
        self._rlock = CONTEXT.Lock()
        self._wlock = CONTEXT.Lock()
        widen(self._writer.fileno())

    def put(self, item: Any) -> None:
        self.put_pickled(pickle.dumps(item, protocol=PROTOCOL))

    def put_pickled(self, data: bytes) -> None:
        """Write an item pickled by the caller (:meth:`get` unpickles it)."""
        with self._wlock:
            self._writer.send_bytes(data)

    def put_many(self, items: list[Any]) -> None:
        """Write several items with one system call: one wake-up of the readers."""
        pickled = [pickle.dumps(item, protocol=PROTOCOL) for item in items]
        with self._wlock:
            if all(len(data) <= FRAME_LIMIT for data in pickled):
                frames = b"".join(HEADER.pack(len(data)) + data for data in pickled)
                write_all(self._writer.fileno(), frames)
            else:
                for data in pickled:
                    self._writer.send_bytes(data)

    def get(self, timeout: float | None = None) -> Any:
        """The next item; ``queue.Empty`` if none arrives within ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._rlock.acquire(True, timeout):
            raise queue.Empty
        try:
            if deadline is not None and not self._reader.poll(
                max(0.0, deadline - time.monotonic())
            ):
                raise queue.Empty
            data = self._reader.recv_bytes()
        finally:
            self._rlock.release()
        return pickle.loads(data)

    def get_nowait(self) -> Any:
        return self.get(timeout=0)


def widen(fd: int) -> None:
    """Give the pipe a larger buffer (Linux), so that writers block less often."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or above pipe-max-size
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Relay:
    """Writes to a channel from a thread of its own, in order, so that the caller never
    blocks on a full pipe."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.pending: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.sent = 0
        self.written = 0

    def put(self, item: Any) -> None:
        self.sent += 1
        self.pending.put(item)
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self.forward, name="taskq-relay", daemon=True)
            self.thread.start()

    def forward(self) -> None:
        while True:
            self.channel.put(self.pending.get())
            self.written += 1

    def flush(self, timeout: float) -> bool:
        """Wait until everything put so far is written; False if that took too long."""
        deadline = time.monotonic() + timeout
        while self.written < self.sent and time.monotonic() < deadline:
            time.sleep(0.002)
        return self.written >= self.sent
