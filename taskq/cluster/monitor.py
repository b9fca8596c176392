"""The Monitor: the single writer of results.

It drains the result queue in batches, records each batch (results written and queue
rows removed in one transaction, hooks, signals), enqueues the next link of chains,
and prunes successes beyond ``save_limit`` now and
then with one delete instead of on every save.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable

from django.db import close_old_connections

from taskq.brokers import Broker
from taskq.conf import ClusterConfig
from taskq.enqueue import enqueue_next_link
from taskq.maintenance import prune_successes
from taskq.messages import TaskOutcome
from taskq.outcomes import record

from .state import Shared
from .trouble import Trouble

logger = logging.getLogger(__name__)

BATCH = 500  # most outcomes recorded in one transaction
LINGER = 0.010  # under load: seconds to gather more outcomes once one arrived
PRUNE_EVERY = 10.0  # seconds between save_limit prunings


class Stop:
    """Put on the result queue to make the Monitor flush and leave."""


STOP = Stop()


class Monitor:
    def __init__(
        self,
        config: ClusterConfig,
        broker: Broker,
        shared: Shared,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.broker = broker
        self.shared = shared
        self.clock = clock
        self.pending: list[TaskOutcome] = []
        self.busy = False  # the last batch had company: batch the next one a little
        self.stopping = False
        self.last_prune = clock()
        self.saved_since_prune = 0
        self.trouble = Trouble(logger, "could not record outcomes; retrying")

    def collect(self, wait: float) -> None:
        """Add outcomes from the result queue to the pending batch.

        Idle, the first outcome is recorded at once. Busy (the last batch had company),
        the Monitor sleeps ``LINGER`` seconds after the first outcome and then takes all
        that arrived meanwhile: one wake-up per batch rather than one per outcome. The
        channel is read in chunks of many outcomes (:meth:`Channel.get_many`).
        """
        try:
            for item in self.shared.result_queue.get_many(BATCH, timeout=wait):
                self.take(item)
        except queue.Empty:
            return
        if self.busy and not self.stopping:
            time.sleep(LINGER)
        while len(self.pending) < BATCH and not self.stopping:
            try:
                for item in self.shared.result_queue.get_many(BATCH - len(self.pending), 0):
                    self.take(item)
            except queue.Empty:
                return

    def take(self, item: object) -> None:
        if isinstance(item, Stop):
            self.stopping = True
        else:
            self.pending.append(item)

    def flush(self) -> int:
        """Record the pending batch; on a database error keep it for the next try."""
        if not self.pending:
            return 0
        batch = self.pending
        self.busy = len(batch) > 1
        done = record(batch, self.broker, self.config)
        self.pending = []
        self.shared.processed.value += len(batch) - len(done.retried) - len(done.rejected)
        self.shared.failed.value += done.failed
        self.shared.rejected.value += len(done.rejected)
        self.saved_since_prune += len(done.saved)
        for finished in done.chains:
            try:
                enqueue_next_link(finished, broker=None, sync=False, config=self.config)
            except Exception:
                logger.exception(
                    "could not enqueue the next link of chain group=%s", finished.group
                )
        for outcome in batch:
            log_outcome(outcome)
        return len(batch)

    def step(self, wait: float = 0.1) -> int:
        self.collect(wait)
        count = self.flush()
        if self.saved_since_prune and self.clock() - self.last_prune > PRUNE_EVERY:
            prune_successes(self.config)
            self.last_prune = self.clock()
            self.saved_since_prune = 0
        return count

    def run(self) -> None:
        while not (self.stopping and not self.pending):
            try:
                self.step()
                self.trouble.succeeded()
            except Exception:
                self.trouble.failed()
                close_old_connections()
                time.sleep(1.0)


def log_outcome(outcome: TaskOutcome) -> None:
    message = outcome.message
    if outcome.success:
        logger.info("processed %s task_id=%s name=%s", message.func_name, message.id, message.name)
    else:
        logger.error(
            "failed %s task_id=%s name=%s attempt=%s: %s",
            message.func_name,
            message.id,
            message.name,
            outcome.attempt,
            str(outcome.result).split("\n")[0],
        )
