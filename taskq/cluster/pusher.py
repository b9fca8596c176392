"""The Pusher: claims batches from the broker and hands them to the workers.

It never holds more than ``queue_limit`` tasks that have not started (a permit per
task, given back by the worker that takes it): each claim is sized to that free
capacity. It claims again at once while there is work, and
backs off to ``poll`` when the queue is idle. A package that fails its signature check
or cannot be unpickled is never run: the worker that opens it records why
(:mod:`taskq.cluster.packages`).
"""

from __future__ import annotations

import logging
import uuid

from django.db import close_old_connections

from taskq.brokers import Broker
from taskq.conf import ClusterConfig

from .state import Shared
from .trouble import Trouble

logger = logging.getLogger(__name__)

MIN_PAUSE = 0.005
PUSHED_POLL = 1.0  # seconds between polls of an idle queue that has push wake-ups


class Pusher:
    def __init__(
        self, config: ClusterConfig, broker: Broker, shared: Shared, cluster_id: str
    ) -> None:
        self.config = config
        self.broker = broker
        self.shared = shared
        self.cluster_id = cluster_id
        self.pause = MIN_PAUSE
        self.abandoned: list[str] = []  # tokens of claims whose answer was lost
        self.trouble = Trouble(logger, "claim failed; retrying")

    def take_permits(self, wanted: int, wait: float) -> int:
        """Up to ``wanted`` permits: blocks up to ``wait`` seconds for the first one, then
        takes those that are free at that moment.

        The Pusher claims as soon as a worker has taken a task, rather than waiting to
        gather a larger claim: with ``queue_limit`` at ``workers * 2`` there are only a
        few tasks queued, and on SQLite a claim may wait for the Monitor's write, so a
        claim that waits for company lets the workers run dry.
        """
        if not self.shared.permits.acquire(timeout=wait):
            return 0
        taken = 1
        while taken < wanted and self.shared.permits.acquire(block=False):
            taken += 1
        return taken

    def give_back(self, count: int) -> None:
        for _ in range(count):
            self.shared.permits.release()

    def step(self) -> int:
        """Claim once and queue what was claimed; returns how many tasks were claimed."""
        self.give_back_abandoned()
        permits = self.take_permits(max(self.config.bulk, self.config.prefetch), self.config.poll)
        if not permits:
            return 0
        if self.shared.stop.is_set():  # woken by the stop (the Sentinel gave permits back)
            self.give_back(permits)
            return 0
        token = uuid.uuid4().hex
        try:
            deliveries = self.broker.claim(self.cluster_id, permits, token)
        except Exception:
            # the claim may have happened with its answer lost: give it back first thing
            self.abandoned.append(token)
            self.give_back(permits)
            raise
        self.give_back(permits - len(deliveries))
        if deliveries:  # the workers open the packages: each task is unpickled once
            self.shared.task_queue.put_many(deliveries)
        return len(deliveries)

    def give_back_abandoned(self) -> None:
        """Release what the claims whose answer was lost took; raises while the broker
        is still unreachable (the tokens are kept for the next try)."""
        while self.abandoned:
            released = self.broker.abandon(self.cluster_id, self.abandoned[0])
            if released:
                logger.warning("gave back %s tasks of a claim whose answer was lost", released)
            self.abandoned.pop(0)

    def run(self) -> None:
        """Claim until told to stop; adaptive polling between claims."""
        while not self.shared.stop.is_set():
            try:
                claimed = self.step()
                self.trouble.succeeded()
            except Exception:
                self.trouble.failed()
                close_old_connections()
                self.broker.close()
                self.sleep(1.0)
                continue
            if claimed:
                self.pause = MIN_PAUSE
                continue
            self.idle(self.pause)
            # with a push wake-up the poll is only a safety net (and for run_after)
            limit = max(self.config.poll, PUSHED_POLL) if self.broker.pushes else self.config.poll
            self.pause = min(self.pause * 2, limit)

    def idle(self, seconds: float) -> None:
        """Wait for new work: the broker's push wake-up where it has one, else a sleep."""
        try:
            self.broker.wait(seconds)
        except Exception:
            logger.exception("waiting for work failed")
            self.sleep(seconds)

    def sleep(self, seconds: float) -> None:
        self.shared.stop.wait(seconds)
