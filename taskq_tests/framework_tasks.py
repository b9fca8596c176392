"""Tasks of Django's tasks framework that ``test_backends.py`` runs on taskq.

With ``TASKQ_TEST_SIGNAL_LOG`` set (as the tests set it for a cluster), the framework's
signals are written to that file, one JSON line each, from whichever process sends them.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from django.dispatch import receiver

from taskq.backends_framework import (
    TaskContext,
    task,
    task_enqueued,
    task_finished,
    task_started,
)


class TaskFailure(Exception):
    pass


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": args, "kwargs": kwargs}


@task
def fail(message: str = "boom") -> None:
    raise ValueError(message)


@task
def fail_custom() -> None:
    try:
        raise KeyError("cause")
    except KeyError as exc:
        raise TaskFailure("wrapped") from exc


@task
def returns_a_set() -> Any:
    return {1, 2}


@task
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0.01)
    return a + b


@task(takes_context=True)
def context_info(context: TaskContext) -> dict[str, Any]:
    result = context.task_result
    return {
        "id": result.id,
        "attempt": context.attempt,
        "status": result.status,
        "worker_ids": result.worker_ids,
    }


@task(takes_context=True, max_attempts=2)
def fails_first_attempt(context: TaskContext) -> int:
    if context.attempt < 2:
        raise RuntimeError(f"attempt {context.attempt}")
    return context.attempt


@task(timeout=1)
def sleeps(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task
def waits(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task(queue_name="emails")
def send_email(to: str) -> str:
    return f"sent to {to}"


@task
def ledger(path: str, tag: str) -> str:
    with open(path, "a") as f:
        f.write(f"{tag}\n")
    return tag


def not_a_task() -> None:
    pass


def signal_log(signal: str, task_result: Any) -> None:
    path = os.environ.get("TASKQ_TEST_SIGNAL_LOG")
    if not path:
        return
    line = {
        "signal": signal,
        "id": task_result.id,
        "status": str(task_result.status),
        "attempts": task_result.attempts,
        "errors": [e.exception_class_path for e in task_result.errors],
        "pid": os.getpid(),
    }
    with Path(path).open("a") as f:
        f.write(json.dumps(line) + "\n")


@receiver(task_enqueued)
def on_enqueued(sender: Any, task_result: Any, **kwargs: Any) -> None:
    signal_log("enqueued", task_result)


@receiver(task_started)
def on_started(sender: Any, task_result: Any, **kwargs: Any) -> None:
    signal_log("started", task_result)


@receiver(task_finished)
def on_finished(sender: Any, task_result: Any, **kwargs: Any) -> None:
    signal_log("finished", task_result)
