"""What becomes of tasks whose runner is gone: a worker that died or was killed, or a
whole cluster whose heartbeat stopped.

The Sentinel calls these. A dead worker's task becomes a failed outcome for the Monitor
to record (and retry, per ``max_attempts``); a dead cluster's claims go back to the
queue, or are recorded as failed once their attempts are used up.
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from taskq.brokers import Broker
from taskq.conf import ClusterConfig
from taskq.ids import new_task_id
from taskq.messages import Delivery, TaskMessage, TaskOutcome
from taskq.outcomes import record

from .packages import message_or_none, read_message

logger = logging.getLogger(__name__)


def lost_worker_outcome(
    task: dict[str, Any],
    reason: str,
    broker: Broker,
    config: ClusterConfig,
    *,
    timed_out: bool = False,
) -> TaskOutcome:
    """The failure of the task a dead worker was running (``task``: its slot's
    :func:`~taskq.cluster.state.running` view)."""
    logger.error("task_id=%s lost its worker: %s", task["task_id"], reason)
    ack_id = broker.parse_ack_id(task["ack_id"]) if task["ack_id"] else None
    delivery = (
        None
        if ack_id is None
        else Delivery(ack_id=ack_id, token=task["token"], attempt=task["attempt"], payload="")
    )
    message = recover_message(task, delivery, broker, config)
    result = f"Task timed out: {reason}" if timed_out else f"Worker died: {reason}"
    return TaskOutcome.failure(
        message,
        result,
        now=timezone.now(),
        attempt=task["attempt"],
        delivery=delivery,
        cluster=config.queue_key,
        timed_out=timed_out,
    )


def recover_message(
    task: dict[str, Any], delivery: Delivery | None, broker: Broker, config: ClusterConfig
) -> TaskMessage:
    """The task a dead worker held, read back from its queue row where that still can
    be; else what the worker's slot says of it."""
    payload = None
    if delivery is not None:
        try:
            payload = broker.claimed_payload(delivery.ack_id, delivery.token)
        except Exception:
            logger.exception("could not read back task_id=%s", task["task_id"])
    if payload:
        try:
            return read_message(payload, config.name)
        except Exception:
            logger.exception("could not decode task_id=%s", task["task_id"])
    task_id = task["task_id"] or new_task_id()  # died before it read the package
    return TaskMessage(id=task_id, name=task["task_name"], func="<unknown>")


def rescue_orphans(broker: Broker, config: ClusterConfig) -> None:
    """Give back the tasks of clusters whose heartbeat stopped, or fail them if spent;
    raises if the broker cannot be reached."""
    orphans = broker.orphans(config.retry)
    if not orphans:
        broker.prune_clusters(config.retry)
        return
    spent, again = [], []
    for delivery in orphans:
        message = message_or_none(delivery.payload, config.name)
        limit = config.max_attempts
        if message is not None and message.max_attempts is not None:
            limit = message.max_attempts
        if message is not None and limit and delivery.attempt >= limit:
            spent.append(lost_cluster_outcome(message, delivery, config.queue_key))
        else:
            again.append(delivery)
    released = broker.release(again)
    if spent:
        record(spent, broker, config)
    logger.warning(
        "rescued %s tasks of dead clusters; %s failed (attempts used up)", released, len(spent)
    )


def lost_cluster_outcome(message: TaskMessage, delivery: Delivery, cluster: str) -> TaskOutcome:
    return TaskOutcome.failure(
        message,
        f"Cluster died while running the task; attempts used up ({delivery.attempt})",
        now=timezone.now(),
        attempt=delivery.attempt,
        delivery=delivery,
        cluster=cluster,
    )
