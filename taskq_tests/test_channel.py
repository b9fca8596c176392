"""The cluster's plumbing: the task and result channels, the Sentinel's relay, and the
write lock the cluster's processes take turns on."""

from __future__ import annotations

import os
import queue
import signal
import threading
import time

import pytest

from taskq.cluster.channel import CHUNK, CONTEXT, Channel, Relay
from taskq.cluster.writelock import WriteLock


def test_items_arrive_in_order_and_unpickled() -> None:
    channel = Channel()
    channel.put({"a": 1})
    channel.put_many([("task", 1), ("task", 2), ("task", 3)])
    channel.put_pickled(b"\x80\x05K\x07.")  # pickle of 7, made by the caller
    assert [channel.get(timeout=1) for _ in range(5)] == [
        {"a": 1},
        ("task", 1),
        ("task", 2),
        ("task", 3),
        7,
    ]


def test_get_times_out_with_queue_empty() -> None:
    channel = Channel()
    started = time.monotonic()
    with pytest.raises(queue.Empty):
        channel.get(timeout=0.05)
    assert time.monotonic() - started >= 0.04
    with pytest.raises(queue.Empty):
        channel.get_nowait()


def test_items_larger_than_the_pipe_pass_while_a_reader_reads() -> None:
    channel = Channel()
    big = [b"x" * (3 << 20), b"y" * (2 << 20)]  # more than the 1 MiB pipe holds
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.extend(channel.get(5) for _ in range(3)))
    reader.start()
    channel.put_many(big)
    channel.put(b"small")
    reader.join(10)
    assert received == [*big, b"small"]


def test_many_processes_read_each_item_once() -> None:
    channel, results = Channel(), Channel()

    def read() -> None:
        while True:
            item = channel.get(timeout=5)
            if item is None:
                return
            results.put(item)

    readers = [CONTEXT.Process(target=read) for _ in range(3)]
    for process in readers:
        process.start()
    for start in range(0, 300, 10):
        channel.put_many(list(range(start, start + 10)))
    for _ in readers:
        channel.put(None)
    got = sorted(results.get(timeout=5) for _ in range(300))
    for process in readers:
        process.join(5)
    assert got == list(range(300))


def test_get_many_takes_what_is_in_the_pipe_in_order() -> None:
    channel = Channel()
    items = [("outcome", n, "x" * (n % 7) * 100) for n in range(400)]  # ~120 KiB: two chunks
    channel.put_many(items)
    got: list[object] = []
    while len(got) < len(items):
        taken = channel.get_many(150, timeout=1)
        assert 1 <= len(taken) <= 150 + 200  # stops reading once past the limit
        got.extend(taken)
    assert got == items
    with pytest.raises(queue.Empty):
        channel.get_many(10, timeout=0.02)


def test_get_many_completes_frames_cut_by_a_chunk() -> None:
    channel = Channel()
    big = b"b" * (CHUNK * 3 + 5)  # longer than a chunk: read to its end, then the rest
    items = [b"a" * (CHUNK - 3), big, "after"]  # the second header straddles the chunk
    channel.put_many(items)
    got: list[object] = []
    while len(got) < 3:
        got.extend(channel.get_many(100, timeout=1))
    assert got == items


def test_get_many_and_get_share_a_pipe_frame_by_frame() -> None:
    channel, results = Channel(), Channel()

    def read(bulk: bool) -> None:
        while True:
            taken = channel.get_many(7, timeout=5) if bulk else [channel.get(timeout=5)]
            for item in taken:
                if item is None:
                    return
                results.put(item)

    readers = [CONTEXT.Process(target=read, args=(n % 2 == 0,)) for n in range(4)]
    for process in readers:
        process.start()
    for start in range(0, 2000, 50):
        channel.put_many([(n, "p" * (n % 300)) for n in range(start, start + 50)])
    for _ in range(12):  # more stops than readers: a bulk reader may take several
        channel.put(None)
    got = sorted(results.get(timeout=5)[0] for _ in range(2000))
    for process in readers:
        process.join(5)
    assert got == list(range(2000))


def test_a_reader_learns_that_the_writers_are_gone() -> None:
    channel = Channel()
    channel.put("last")
    channel._writer.close()
    assert channel.get_many(10, timeout=1) == ["last"]
    with pytest.raises(EOFError):
        channel.get_many(10, timeout=1)


def test_the_relay_writes_in_order_without_blocking_the_caller() -> None:
    channel = Channel()
    relay = Relay(channel)
    blob = b"z" * (600 << 10)  # two of them fill the pipe: the relay's thread waits, not us
    started = time.monotonic()
    for item in (blob, blob, blob, "last"):
        relay.put(item)
    assert time.monotonic() - started < 1.0
    assert not relay.flush(timeout=0.05)  # nobody reads yet
    assert [channel.get(timeout=5) for _ in range(4)] == [blob, blob, blob, "last"]
    assert relay.flush(timeout=5)


def test_the_write_lock_excludes_other_processes() -> None:
    lock = WriteLock()
    ready, release = CONTEXT.Event(), CONTEXT.Event()

    def hold() -> None:
        with lock:
            ready.set()
            release.wait(5)

    holder = CONTEXT.Process(target=hold)
    holder.start()
    assert ready.wait(5)
    took: list[float] = []
    waiter = threading.Thread(target=lambda: (lock.__enter__(), took.append(time.monotonic())))
    waiter.start()
    time.sleep(0.1)
    assert not took  # still held by the other process
    released_at = time.monotonic()
    release.set()
    waiter.join(5)
    assert took
    assert took[0] >= released_at
    lock.__exit__(None, None, None)
    holder.join(5)


def test_the_write_lock_of_a_killed_holder_is_free() -> None:
    lock = WriteLock()
    ready = CONTEXT.Event()

    def hold_forever() -> None:
        with lock:
            ready.set()
            time.sleep(60)

    holder = CONTEXT.Process(target=hold_forever)
    holder.start()
    assert ready.wait(5)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(5)
    done = threading.Event()

    def take() -> None:
        with lock:
            done.set()

    threading.Thread(target=take, daemon=True).start()
    assert done.wait(5)
