"""What the cluster's processes share: queues, counters, the stop flag and worker slots.

Each worker has a slot in shared memory where it publishes the task it is running,
so the Sentinel can time it out, and settle its task at once if the worker dies.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from taskq.messages import Delivery

from .channel import CONTEXT, Channel, Doorbell
from .writelock import WriteLock


class WorkerState(IntEnum):
    IDLE = 0
    BUSY = 1
    STOPPED = 2
    LEFT = 3  # its process is exiting, with no task: the slot may take a new worker


class WorkerSlot(ctypes.Structure):
    _fields_ = (
        ("pid", ctypes.c_int),
        ("state", ctypes.c_int),
        ("task_id", ctypes.c_char * 32),
        ("task_name", ctypes.c_char * 100),
        ("ack_id", ctypes.c_char * 64),
        ("token", ctypes.c_char * 32),
        ("attempt", ctypes.c_int),
        ("since", ctypes.c_double),  # time.time() when the task started
        ("deadline", ctypes.c_double),  # time.time() after which it has timed out; 0 = none
        ("done", ctypes.c_longlong),  # tasks this worker process has run
    )


def text(value: Any, size: int) -> bytes:
    return str(value).encode()[:size]


def publish(
    slot: WorkerSlot, *, task_id: str, name: str, delivery: Delivery | None, timeout: float | None
) -> None:
    """Called by a worker before it runs a task."""
    now = time.time()
    slot.task_id = text(task_id, 32)
    slot.task_name = text(name, 100)
    slot.ack_id = text(delivery.ack_id, 64) if delivery else b""
    slot.token = text(delivery.token or "", 32) if delivery else b""
    slot.attempt = delivery.attempt if delivery else 1
    slot.since = now
    slot.deadline = now + timeout if timeout else 0.0
    slot.state = WorkerState.BUSY


def clear(slot: WorkerSlot) -> None:
    """Called by a worker after its outcome is on the result queue."""
    slot.state = WorkerState.IDLE
    slot.task_id = b""
    slot.ack_id = b""
    slot.deadline = 0.0


def running(slot: WorkerSlot) -> dict[str, Any] | None:
    """The task a slot is running, or None."""
    if slot.state != WorkerState.BUSY or not (slot.task_id or slot.ack_id):
        return None
    return {
        "task_id": slot.task_id.decode(),
        "task_name": slot.task_name.decode(),
        "ack_id": slot.ack_id.decode(),
        "token": slot.token.decode() or None,
        "attempt": slot.attempt,
        "since": slot.since,
        "deadline": slot.deadline,
    }


@dataclass
class Shared:
    """Everything the cluster's processes share, created before they are forked."""

    task_queue: Channel  # (message, delivery) from the Pusher to the Workers
    result_queue: Channel  # outcomes from the Workers (and Pusher, Sentinel) to the Monitor
    stop: Any  # Event: stop claiming and starting tasks
    permits: Any  # BoundedSemaphore: tasks claimed and not yet started ≤ queue_limit
    slots: Any  # array of WorkerSlot
    write_lock: WriteLock  # the Pusher's and Monitor's turns to write (SQLite)
    departures: Doorbell  # rung by a worker that leaves: the Sentinel replaces it at once
    processed: Any
    failed: Any
    rejected: Any

    @classmethod
    def create(cls, workers: int, prefetch: int) -> Shared:
        return cls(
            task_queue=Channel(),
            result_queue=Channel(),
            stop=CONTEXT.Event(),
            permits=CONTEXT.BoundedSemaphore(prefetch),
            slots=CONTEXT.RawArray(WorkerSlot, workers),
            write_lock=WriteLock(),
            departures=Doorbell(),
            processed=CONTEXT.RawValue(ctypes.c_longlong, 0),
            failed=CONTEXT.RawValue(ctypes.c_longlong, 0),
            rejected=CONTEXT.RawValue(ctypes.c_longlong, 0),
        )
