"""``execute()``: the one place a task function is called, by workers and by sync mode."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.utils import timezone
from django.utils.module_loading import import_string

from . import signals
from .exceptions import TaskTimeout
from .messages import Delivery, TaskMessage, TaskOutcome


@lru_cache(maxsize=1024)
def import_func(path: str) -> Callable[..., Any]:
    func = import_string(path)
    if not callable(func):
        raise TypeError(f"{path!r} is not callable")
    return func


def resolve(func: Any) -> Callable[..., Any]:
    """The callable a task names: a dotted path is imported, a callable is used as it is."""
    return import_func(func) if isinstance(func, str) else func


def failure_text(exc: BaseException) -> str:
    """A failure's result as Django-Q2 stores it: the message, then the traceback."""
    return f"{exc} : {''.join(traceback.format_exception(exc))}"


def execute(
    message: TaskMessage,
    *,
    attempt: int = 1,
    delivery: Delivery | None = None,
    cluster: str | None = None,
    worker_pid: int | None = None,
    now: Callable[[], datetime] = timezone.now,
    on_error: Callable[[BaseException], None] | None = None,
) -> TaskOutcome:
    """Run one task and describe what happened; a task's exception becomes a failed outcome."""
    started = now()
    listening = signals.pre_execute.has_listeners(signals.SENDER) or (
        signals.post_execute_in_worker.has_listeners(signals.SENDER)
    )
    task = message.to_dict() if listening else {}
    timed_out = False
    error: BaseException | None = None
    try:
        func = resolve(message.func)
        if listening:
            signals.pre_execute.send(sender=signals.SENDER, func=func, task=task)
        result, success = func(*message.args, **message.kwargs), True
    except TaskTimeout as exc:
        result, success, timed_out, error = f"Task timed out: {exc}", False, True, exc
        report(on_error, exc)
    except (Exception, SystemExit, KeyboardInterrupt) as exc:  # a task may not stop its worker
        result, success, error = failure_text(exc), False, exc
        report(on_error, exc)
    outcome = TaskOutcome(
        message=message,
        success=success,
        result=result,
        started=started,
        stopped=now(),
        attempt=attempt,
        delivery=delivery,
        cluster=cluster,
        timed_out=timed_out,
        worker_pid=worker_pid,
        error=error,
    )
    if not listening:
        return outcome
    task.update(result=result, success=success)
    try:
        signals.post_execute_in_worker.send(sender=signals.SENDER, func=message.func, task=task)
    except Exception:  # a receiver's error must not lose the outcome
        logging.getLogger(__name__).exception("post_execute_in_worker receiver failed")
    return outcome


def report(on_error: Callable[[BaseException], None] | None, exc: BaseException) -> None:
    """Tell the error reporters; called inside the ``except`` block, so exc_info is set."""
    if on_error is None:
        return
    try:
        on_error(exc)
    except Exception:
        logging.getLogger(__name__).exception("error reporting failed")
