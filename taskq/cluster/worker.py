"""A Worker runs tasks from the task queue and puts their outcomes on the result queue.

It opens each claimed package itself (signature check, unpickling; see
:mod:`taskq.cluster.packages`) and never touches the broker. A task past its timeout
gets :class:`TaskTimeout` raised inside it (SIGALRM); if it does not stop, the Sentinel
kills the process. The worker leaves after ``recycle`` tasks or above ``max_rss`` and
the Sentinel replaces it.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import signal
from dataclasses import replace
from enum import Enum
from types import FrameType

from django.db import close_old_connections

from taskq import signals
from taskq.conf import ClusterConfig
from taskq.errorreporters import reporter_callback
from taskq.exceptions import TaskTimeout
from taskq.execution import execute
from taskq.messages import Delivery, TaskMessage, TaskOutcome

from .packages import open_package
from .processes import rss_of
from .state import Shared, WorkerSlot, WorkerState, clear, publish

logger = logging.getLogger(__name__)

OPENING = "(opening its package)"  # the slot's task name before the package is read


class Leave:
    """Put on the task channel by a stopping Sentinel, one per worker: a worker waiting
    for a task wakes and leaves at once instead of at the end of its wait."""


LEAVE = Leave()


class Exit(Enum):
    """Why a worker's loop ended."""

    STOPPED = "stopped"
    RECYCLE = "recycled"
    MAX_RSS = "max_rss"
    TIMED_OUT = "timed_out"


def on_alarm(signum: int, frame: FrameType | None) -> None:
    raise TaskTimeout("the task ran past its timeout")


class Worker:
    def __init__(
        self, config: ClusterConfig, shared: Shared, slot: WorkerSlot, cluster: str
    ) -> None:
        self.config = config
        self.shared = shared
        self.slot = slot
        self.cluster = cluster
        self.done = 0
        self.timed_out = False
        self.on_error = None

    def setup(self) -> None:
        signal.signal(signal.SIGALRM, on_alarm)
        self.slot.pid = os.getpid()
        self.on_error = reporter_callback(self.config.error_reporter)
        signals.post_spawn.send(sender=signals.SENDER, proc_name=f"worker-{os.getpid()}")

    def step(self, wait: float = 0.5) -> bool:
        """Run one task if one arrives within ``wait`` seconds; True if one ran."""
        try:
            item = self.shared.task_queue.get(timeout=wait)
        except queue.Empty:
            return False
        if isinstance(item, Leave):  # no task, and no permit to give back
            return False
        self.shared.permits.release()  # no longer held: the Pusher may claim another
        # the slot names the claim while the package is opened: if this process dies
        # meanwhile, the Sentinel settles the task as it would a running one
        publish(self.slot, task_id="", name=OPENING, delivery=item, timeout=None)
        opened = open_package(item, salt=self.config.name)
        if isinstance(opened, TaskOutcome):  # never run: straight to the Monitor
            self.shared.result_queue.put(opened)
            clear(self.slot)
        else:
            self.run_one(*opened)
        return True

    def run_one(self, message: TaskMessage, delivery: Delivery | None) -> TaskOutcome:
        timeout = message.timeout if message.timeout is not None else self.config.timeout
        publish(
            self.slot, task_id=message.id, name=message.name, delivery=delivery, timeout=timeout
        )
        close_old_connections()
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            outcome = execute(
                message,
                attempt=delivery.attempt if delivery else 1,
                delivery=delivery,
                cluster=self.cluster,
                worker_pid=os.getpid(),
                on_error=self.on_error,
            )
        finally:
            if timeout:
                signal.setitimer(signal.ITIMER_REAL, 0)
        self.slot.deadline = 0.0  # done: never killed for its timeout while it writes
        self.shared.result_queue.put_pickled(serialize(outcome))
        self.timed_out = outcome.timed_out
        clear(self.slot)
        self.done += 1
        self.slot.done = self.done
        return outcome

    def exit_reason(self) -> Exit | None:
        if self.timed_out:  # the interrupted task may have left the process in a bad state
            return Exit.TIMED_OUT
        if self.shared.stop.is_set():
            return Exit.STOPPED
        if self.config.recycle and self.done >= self.config.recycle:
            return Exit.RECYCLE
        if self.config.max_rss and rss_of(os.getpid()) > self.config.max_rss:
            return Exit.MAX_RSS
        return None

    def leave(self) -> None:
        """Hand the slot back before the process exits: the Sentinel starts the
        replacement at once instead of waiting for this process to end (tearing down a
        process's memory takes a few milliseconds). Nothing runs here any more."""
        self.slot.state = WorkerState.LEFT
        self.shared.departures.ring()

    def run(self) -> Exit:
        self.setup()
        while True:
            reason = self.exit_reason()
            if reason is not None:
                logger.debug(
                    "worker %s leaves: %s after %s tasks", os.getpid(), reason.value, self.done
                )
                self.leave()
                return reason
            self.step()


def serialize(outcome: TaskOutcome) -> bytes:
    """The outcome pickled once for the result queue, without the exception object; a
    return value that cannot be pickled turns the outcome into a failure that says so."""
    if outcome.error is not None:
        outcome = replace(outcome, error=None)
    try:
        return pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        failed = replace(
            outcome,
            success=False,
            result=f"The task's return value cannot be pickled: {type(exc).__name__}: {exc}",
        )
        return pickle.dumps(failed, protocol=pickle.HIGHEST_PROTOCOL)
