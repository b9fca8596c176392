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

Reading waits on a ``select.poll`` object kept per process (``Connection.poll`` builds
a selector on every call), and the Monitor takes what the result channel holds in
chunks (:meth:`Channel.get_many`); together they took a 2-worker SQLite drain from
about 3 260 to 3 610 tasks/s (docs/benchmark.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import multiprocessing
import os
import pickle
import queue
import select
import struct
import threading
import time
from typing import Any

CONTEXT = multiprocessing.get_context("fork")
PROTOCOL = pickle.HIGHEST_PROTOCOL
HEADER = struct.Struct("!i")  # how Connection.send_bytes frames a message
LONG_HEADER = struct.Struct("!Q")  # after a header of -1: the length of a frame over 2 GiB
FRAME_LIMIT = 0x7FFFFFFF
PIPE_SIZE = 1 << 20  # bytes; Linux's default limit for unprivileged processes
CHUNK = 1 << 16  # bytes read at a time by get_many


class Channel:
    """Many writers, many readers; items are pickled objects."""

    def __init__(self) -> None:
        self._reader, self._writer = CONTEXT.Pipe(duplex=False)
        self._rlock = CONTEXT.Lock()
        self._wlock = CONTEXT.Lock()
        self._poll: Any = None
        self._poll_pid = 0
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
            if not self.readable(deadline):
                raise queue.Empty
            data = self._reader.recv_bytes()
        finally:
            self._rlock.release()
        return pickle.loads(data)

    def get_nowait(self) -> Any:
        return self.get(timeout=0)

    def get_many(self, limit: int, timeout: float | None = None) -> list[Any]:
        """The items already in the pipe, about ``limit`` at most (at least one): waits
        up to ``timeout`` seconds for the first (``queue.Empty`` if none comes).

        The pipe is read in chunks of many small items at once, a system call for each
        chunk rather than two for each item; a frame cut by the end of a chunk is read
        to its end, so that the next reader starts on a frame."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._rlock.acquire(True, timeout):
            raise queue.Empty
        frames: list[bytes] = []
        try:
            if not self.readable(deadline):
                raise queue.Empty
            fd = self._reader.fileno()
            while len(frames) < limit:
                try:
                    data = read_once(fd, CHUNK)
                except EOFError:
                    if frames:  # those read are kept; the next call raises
                        break
                    raise
                frames.extend(split_frames(fd, data))
                if not self.readable(time.monotonic()):
                    break
        finally:
            self._rlock.release()
        return [pickle.loads(data) for data in frames]

    def readable(self, deadline: float | None) -> bool:
        """Whether the pipe has data (or its writers are gone) by ``deadline``."""
        if self._poll_pid != os.getpid():  # a poll object per process, made on first use
            self._poll = select.poll()
            self._poll.register(self._reader.fileno(), select.POLLIN)
            self._poll_pid = os.getpid()
        if deadline is None:
            return bool(self._poll.poll())
        return bool(self._poll.poll(max(0, math.ceil((deadline - time.monotonic()) * 1000))))


def read_once(fd: int, size: int) -> bytes:
    data = os.read(fd, size)
    if not data:
        raise EOFError("the channel's writers are gone")
    return data


def read_exactly(fd: int, size: int) -> bytes:
    parts = []
    while size:
        part = read_once(fd, min(size, PIPE_SIZE))
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def split_frames(fd: int, data: bytes) -> list[bytes]:
    """The frames in ``data``, the last completed from the pipe if ``data`` cuts it."""
    frames = []
    view = memoryview(data)
    while view:
        if len(view) < HEADER.size:
            view = memoryview(bytes(view) + read_exactly(fd, HEADER.size - len(view)))
        (size,) = HEADER.unpack_from(view)
        view = view[HEADER.size :]
        if size == -1:
            if len(view) < LONG_HEADER.size:
                view = memoryview(bytes(view) + read_exactly(fd, LONG_HEADER.size - len(view)))
            (size,) = LONG_HEADER.unpack_from(view)
            view = view[LONG_HEADER.size :]
        if len(view) >= size:
            frames.append(bytes(view[:size]))
            view = view[size:]
        else:
            frames.append(bytes(view) + read_exactly(fd, size - len(view)))
            view = memoryview(b"")
    return frames


def widen(fd: int) -> None:
    """Give the pipe a larger buffer (Linux), so that writers block less often."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or above pipe-max-size
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Doorbell:
    """A pipe that carries no data, only a wake-up: a loop that waits on :meth:`fileno`
    (``select``, ``multiprocessing.connection.wait``) wakes when any process that holds
    it calls :meth:`ring`. Ringing never blocks; rings before a :meth:`drain` count once."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)

    def ring(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe has rung already
            os.write(self.write_fd, b"\0")

    def fileno(self) -> int:
        return self.read_fd

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.read_fd, 512):
                pass

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.write_fd)


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
