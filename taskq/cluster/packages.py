"""Opening a claimed package in the worker that runs it.

The Pusher hands a worker the claimed :class:`Delivery` with its signed package as
stored, so that each task is serialised once (at enqueue) and the signature check and
unpickling run in the workers, side by side, rather than in the one Pusher. A package
that fails its signature check or cannot be unpickled is never run: it becomes a failed
outcome that says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from django.utils import timezone

from taskq import signing
from taskq.exceptions import InvalidSignature
from taskq.ids import new_task_id
from taskq.messages import Delivery, TaskMessage, TaskOutcome, make_delivery

logger = logging.getLogger(__name__)


def read_message(payload: str, salt: str) -> TaskMessage:
    """The task in a signed package; raises :class:`InvalidSignature` for a package that
    fails its signature check or cannot be unpickled."""
    return TaskMessage.from_dict(signing.loads(payload, salt=salt))


def message_or_none(payload: str, salt: str) -> TaskMessage | None:
    try:
        return read_message(payload, salt)
    except Exception:
        return None


def open_package(
    delivery: Delivery, *, salt: str, clock: Callable[[], datetime] = timezone.now
) -> tuple[TaskMessage, Delivery] | TaskOutcome:
    """The task to run and its delivery (without the package, which is no longer
    needed), or a failed outcome for a package that must never run."""
    try:
        message = read_message(delivery.payload, salt)
    except InvalidSignature as exc:
        logger.error("refused a queued package: ack_id=%s reason=%s", delivery.ack_id, exc)
        return poisoned(delivery, str(exc), clock())
    return message, make_delivery(delivery.ack_id, delivery.token, delivery.attempt, "")


def poisoned(delivery: Delivery, reason: str, now: datetime) -> TaskOutcome:
    """A failed outcome for a package that must never run."""
    message = TaskMessage(
        id=new_task_id(),
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
