"""taskq's records read as the framework's ``TaskResult``.

A task of Django's tasks framework is a taskq task whose function is the runner
(:func:`taskq.backends.run_django_task`) and whose one argument is a *call*: a dict
with the framework task's ``module_path``, its JSON arguments and how it was enqueued.

- a queue row nobody claimed is READY (again READY between attempts);
- a queue row claimed by a cluster is RUNNING, attempted when it was claimed;
- a result row is SUCCESSFUL or FAILED: ``finished_at`` is ``stopped``, ``enqueued_at``
  is ``started`` (Django-Q2's meaning), the attempt's start is the ``attempted_at`` the
  runner wrote into the saved call, and the error is read from the failure text.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.utils.module_loading import import_string

from .backends_framework import (
    InvalidTask,
    Task,
    TaskError,
    TaskResult,
    TaskResultStatus,
)
from .models import OrmQ
from .models import Task as TaskRow

RUNNER = "taskq.backends.run_django_task"
# The header of a traceback at the top level of a failure text: a plain exception's,
# or an exception group's (whose lines then carry a "  | " margin).
HEADER = re.compile(r"^(?:  \+ Exception Group )?Traceback \(most recent call last\):$")
# Where the error message ends and the traceback begins in a stored failure.
SPLIT = re.compile(r" : ((?:  \+ Exception Group )?Traceback \(most recent call last\):)$", re.M)
MARGIN = "  | "
TIMED_OUT = "Task timed out"
TIMEOUT_CLASS = "taskq.exceptions.TaskTimeout"
# A failure that did not come from the task's own exception: its worker died, its
# cluster died, its package could not be read or its return value could not be pickled.
LOST_CLASS = "taskq.exceptions.TaskqError"


def load_task(call: dict[str, Any]) -> Task:
    """The framework ``Task`` a call names, with the options it was enqueued with."""
    path = call["task"]
    task = import_string(path)
    if not isinstance(task, Task):
        raise InvalidTask(f"{path!r} is not a task of Django's tasks framework")
    return task.using(
        priority=call["priority"],
        queue_name=call["queue_name"],
        run_after=call["run_after"],
        backend=call["backend"],
    )


def build_result(
    task: Task,
    call: dict[str, Any],
    status: TaskResultStatus,
    *,
    attempts: int,
    worker_id: str,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    errors: list[TaskError] | None = None,
    enqueued_at: datetime | None = None,
) -> TaskResult:
    """A ``TaskResult``; ``worker_ids`` names the cluster once per attempt."""
    return TaskResult(
        task=task,
        id=call["id"],
        status=status,
        enqueued_at=enqueued_at or call["enqueued_at"],
        started_at=started_at,
        finished_at=finished_at,
        last_attempted_at=started_at,
        args=call["args"],
        kwargs=call["kwargs"],
        backend=call["backend"],
        errors=errors or [],
        worker_ids=[worker_id] * attempts,
    )


def call_of(args: Any) -> dict[str, Any] | None:
    """The call in a runner task's arguments, or None when they hold none."""
    if isinstance(args, list | tuple) and len(args) == 1 and isinstance(args[0], dict):
        return args[0] if "task" in args[0] and "id" in args[0] else None
    return None


def result_from_queue(row: OrmQ) -> TaskResult | None:
    """READY or RUNNING, from a queue row; None when the row is no framework task."""
    package = row.task
    call = call_of(package.get("args")) if package.get("func") == RUNNER else None
    if call is None:
        return None
    claimed = row.owner is not None
    return build_result(
        load_task(call),
        call,
        TaskResultStatus.RUNNING if claimed else TaskResultStatus.READY,
        attempts=row.attempt,
        worker_id=row.key,
        started_at=row.claimed if claimed else None,
        enqueued_at=package.get("started"),
    )


def result_from_row(row: TaskRow) -> TaskResult | None:
    """SUCCESSFUL or FAILED, from a result row; None when the row is no framework task."""
    call = call_of(row.args) if row.func == RUNNER else None
    if call is None:
        return None
    result = build_result(
        load_task(call),
        call,
        TaskResultStatus.SUCCESSFUL if row.success else TaskResultStatus.FAILED,
        attempts=max(row.attempt_count, 1),
        worker_id=row.cluster or call["queue"],
        started_at=call.get("attempted_at"),
        finished_at=row.stopped,
        errors=[] if row.success else [task_error(row.result)],
        enqueued_at=row.started,
    )
    if row.success:
        object.__setattr__(result, "_return_value", row.result)
    return result


def task_error(failure: Any) -> TaskError:
    """The framework's ``TaskError`` for a failure taskq stored as ``"<error> : <traceback>"``."""
    text = "" if failure is None else str(failure)
    if text.startswith(TIMED_OUT):
        return TaskError(exception_class_path=TIMEOUT_CLASS, traceback=text)
    split = SPLIT.search(text)
    traceback = text[split.start(1) :] if split else text
    path = raised_class_path(traceback) or LOST_CLASS
    return TaskError(exception_class_path=path, traceback=traceback)


def raised_class_path(text: str) -> str | None:
    """The dotted path of the exception a formatted traceback ends with.

    The exception's line is the first line of the last top-level traceback block that
    is not indented (frames and source lines are): ``module.Class: message``, where
    Python leaves out the module for built-in exceptions.
    """
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if HEADER.match(line)]
    if not starts:
        return None
    group = lines[starts[-1]].startswith("  +")
    for line in lines[starts[-1] + 1 :]:
        if group:
            if not line.startswith(MARGIN):
                return None
            line = line[len(MARGIN) :]
        if line and not line[0].isspace():
            name = line.split(":", 1)[0]
            if not re.fullmatch(r"[\w.]+", name):
                return None
            return name if "." in name else f"builtins.{name}"
    return None
