"""Opening a claimed package in the worker that runs it.

The Pusher hands a worker the claimed :class:`Delivery` with its signed package as
stored, so that each task is serialised once (at enqueue) and the signature check and
unpickling run in the workers, side by side, rather than in the one Pusher. A package
that fails its signature check or cannot be unpickled is never run: it becomes a failed
outcome that says why.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import datetime

from taskq import signing
from taskq.exceptions import InvalidSignature
from taskq.messages import Delivery, TaskMessage, TaskOutcome

logger = logging.getLogger(__name__)


def open_package(
    delivery: Delivery, *, salt: str, now: datetime
) -> tuple[TaskMessage, Delivery] | TaskOutcome:
    """The task to run and its delivery (without the package, which is no longer
    needed), or a failed outcome for a package that must never run."""
    try:
        task = signing.loads(delivery.payload, salt=salt)
        return TaskMessage.from_dict(task), replace(delivery, payload="")
    except InvalidSignature as exc:
        logger.error("refused a queued package: ack_id=%s reason=%s", delivery.ack_id, exc)
        return poisoned(delivery, str(exc), now)


def poisoned(delivery: Delivery, reason: str, now: datetime) -> TaskOutcome:
    """A failed outcome for a package that must never run."""
    message = TaskMessage(
        id=uuid.uuid4().hex,
        name=f"unreadable-{delivery.ack_id}",
        func="<unreadable package>",
        started=now,
        ack_failure=True,
    )
    return TaskOutcome.failure(
        message,
        f"Package refused, never run: {reason}",
        now=now,
        attempt=delivery.attempt,
        delivery=delivery,
    )
