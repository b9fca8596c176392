"""A backend of Django's tasks framework that runs ``@task`` functions on taskq clusters.

```python
TASKS = {
    "default": {
        "BACKEND": "taskq.backends.TaskqBackend",
        "QUEUES": ["default", "emails"],      # queue_name -> taskq cluster
        "OPTIONS": {"timeout": 60, "max_attempts": 3},
    }
}
```

``enqueue()`` stores a taskq task whose function is :func:`run_django_task` and whose
argument is a *call* (see :mod:`taskq.backends_results`); a cluster runs it like any
other task, and ``get_result()`` reads taskq's records back as a ``TaskResult``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core import checks
from django.utils import timezone

from . import enqueue as taskq_enqueue
from .backends_framework import (
    DEFAULT_TASK_QUEUE_NAME,
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    json_round_trip,
    task_enqueued,
    task_finished,
    task_started,
)
from .backends_results import (
    RUNNER,
    build_result,
    load_task,
    result_from_queue,
    result_from_row,
)
from .conf import ClusterConfig, get_config
from .exceptions import InvalidTask as TaskqInvalidTask
from .ids import new_task_id
from .messages import TaskMessage
from .models import OrmQ
from .models import Task as TaskRow

__all__ = ["TaskqBackend", "TaskqTask", "run_django_task"]

# taskq's options a backend's OPTIONS and ``@task(...)`` keyword arguments may set.
OPTION_NAMES = ("timeout", "hook", "group", "max_attempts")
TASK_ID = re.compile(r"[0-9a-f]{32}")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TaskqTask(Task):
    """A framework ``Task`` with taskq's options; ``None`` takes the backend's ``OPTIONS``.

    The backend's ``task_class``: on Django 6.1 (and the backport) ``@task(timeout=30,
    max_attempts=3)`` passes these keyword arguments here.
    """

    timeout: float | None = None  # seconds the task may run
    hook: str | Callable[..., Any] | None = None  # called with the finished taskq Task
    group: str | None = None  # taskq group label of the task
    max_attempts: int | None = None  # deliveries of a failing task; 0 = unlimited


def check_option(name: str, value: Any) -> Any:
    """``value`` for taskq's option ``name``; raises taskq's ``InvalidTask``."""
    if name == "timeout":
        return taskq_enqueue.check_timeout(value)
    if name == "max_attempts":
        return taskq_enqueue.check_max_attempts(value)
    if name == "group":
        return taskq_enqueue.check_name(value, "group")
    if value is not None and not isinstance(value, str):  # hook: imported at enqueue
        taskq_enqueue.check_callable(value, "hook")
    return value


class TaskqBackend(BaseTaskBackend):
    """Runs framework tasks on taskq clusters; ``queue_name`` is the cluster's name."""

    task_class = TaskqTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def validate_task(self, task: Task) -> None:
        if isinstance(task.run_after, timedelta):  # the framework's check wants a datetime
            dataclasses.replace(task, run_after=None)  # validated by __post_init__
            return
        super().validate_task(task)
        try:
            taskq_enqueue.check_name(task.queue_name, "queue_name")
            for name in OPTION_NAMES:
                check_option(name, getattr(task, name, None))
        except TaskqInvalidTask as exc:
            raise InvalidTask(str(exc)) from exc

    def options_for(self, task: Task) -> dict[str, Any]:
        """taskq's options for ``task``: its own, else the backend's ``OPTIONS``."""
        options = {name: self.options[name] for name in OPTION_NAMES if name in self.options}
        for name in OPTION_NAMES:
            value = getattr(task, name, None)
            if value is not None:
                options[name] = value
        return options

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        args, kwargs = json_round_trip(args), json_round_trip(kwargs)
        config = get_config()
        now = timezone.now()
        if isinstance(task.run_after, timedelta):
            task = task.using(run_after=now + task.run_after)
        cluster = None if task.queue_name == DEFAULT_TASK_QUEUE_NAME else task.queue_name
        task_id = new_task_id()
        call = {
            "task": task.module_path,
            "id": task_id,
            "args": args,
            "kwargs": kwargs,
            "backend": self.alias,
            "queue_name": task.queue_name,
            "priority": task.priority,
            "run_after": task.run_after,
            "enqueued_at": now,
            "queue": cluster or config.queue_key,
        }
        options = {
            **self.options_for(task),
            "task_name": task.module_path[-100:],
            "cluster": cluster,
            "priority": task.priority,
            "run_after": task.run_after,
            "save": True,  # get_result() needs the result of every task
        }
        message = taskq_enqueue.build_message(RUNNER, (call,), {}, options, config, task_id=task_id)
        message = message.replace(started=now)
        # Loaded by its path, as a worker will load it: one a worker could not find is refused.
        loaded = load_task(call)
        result = build_result(
            loaded, call, TaskResultStatus.READY, attempts=0, worker_id=call["queue"]
        )
        if config.sync:
            return self.run_here(message, result, config)
        taskq_enqueue.submit(message, config=config)
        task_enqueued.send(type(self), task_result=result)
        return result

    def run_here(
        self, message: TaskMessage, result: TaskResult, config: ClusterConfig
    ) -> TaskResult:
        """``Q_CLUSTER["sync"]``: run the task in this process, as ImmediateBackend would."""
        task_enqueued.send(type(self), task_result=result)
        try:
            taskq_enqueue.submit(message, config=config)
        except BaseException as exc:  # the task's own failure is in its result
            ran = TaskRow.objects.filter(id=message.id).exists()
            if not ran or isinstance(exc, KeyboardInterrupt):
                raise
        return self.get_result(message.id)

    def get_result(self, result_id: str) -> TaskResult:
        """The task's state from its queue row while it waits or runs, else from its result.

        The queue row is read first: taskq deletes it in the transaction that saves the
        result, so a task that finishes in between is found by the second query.
        """
        if isinstance(result_id, str) and TASK_ID.fullmatch(result_id):
            queued = OrmQ.objects.using(get_config().orm).filter(task_ident=result_id).first()
            result = result_from_queue(queued) if queued is not None else None
            if result is None:
                row = TaskRow.objects.filter(id=result_id).first()
                result = result_from_row(row) if row is not None else None
            if result is not None:
                return result
        raise TaskResultDoesNotExist(result_id)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        problems: list[checks.CheckMessage] = list(super().check(**kwargs))
        where = f"TASKS[{self.alias!r}]"
        for key, value in self.options.items():
            if key not in OPTION_NAMES:
                close = difflib.get_close_matches(key, OPTION_NAMES, n=1)
                hint = f"Did you mean {close[0]!r}?" if close else f"Use {', '.join(OPTION_NAMES)}."
                msg = f"{where}['OPTIONS'] has the unknown key {key!r}; it is ignored."
                problems.append(checks.Warning(msg, hint=hint, id="taskq.W101"))
                continue
            try:
                if key == "hook" and value is not None:  # a path: does it import?
                    taskq_enqueue.check_callable(value, "hook")
                else:
                    check_option(key, value)
            except TaskqInvalidTask as exc:
                msg = f"{where}['OPTIONS'][{key!r}]: {exc}."
                hint = "See taskq's page on Django's tasks framework."
                problems.append(checks.Error(msg, hint=hint, id="taskq.E101"))
        for queue in sorted(self.queues, key=str):
            try:
                taskq_enqueue.check_name(queue, "a queue name")
            except TaskqInvalidTask as exc:
                msg = f"{where}['QUEUES'] holds {queue!r}, not a taskq cluster name: {exc}."
                hint = "Queue names are cluster names: a str of 1 to 100 characters."
                problems.append(checks.Error(msg, hint=hint, id="taskq.E102"))
        return problems


def run_django_task(call: dict[str, Any]) -> Any:
    """Run a framework task in a taskq worker (or in sync mode); taskq's task function.

    Sends ``task_started``, calls the function (a coroutine function runs to
    completion), sends ``task_finished`` and returns the JSON form of its return value.
    A failure is re-raised after ``task_finished`` so that taskq records it (and retries
    it per ``max_attempts``). The time this attempt started is written into ``call``:
    taskq saves the task's arguments with its result, and ``get_result()`` reads it there.
    """
    task = load_task(call)
    started = timezone.now()
    call["attempted_at"] = started
    attempt, worker_id = this_attempt(call)
    result = build_result(
        task,
        call,
        TaskResultStatus.RUNNING,
        attempts=attempt,
        worker_id=worker_id,
        started_at=started,
    )
    sender = type(task.get_backend())
    task_started.send(sender=sender, task_result=result)
    try:
        if task.takes_context:
            value = task.call(TaskContext(task_result=result), *result.args, **result.kwargs)
        else:
            value = task.call(*result.args, **result.kwargs)
        value = json_round_trip(value)
    except BaseException as exc:  # a failure is recorded by taskq; the signal goes first
        object.__setattr__(result, "finished_at", timezone.now())
        object.__setattr__(result, "status", TaskResultStatus.FAILED)
        kind = type(exc)
        result.errors.append(
            TaskError(
                exception_class_path=f"{kind.__module__}.{kind.__qualname__}",
                traceback="".join(traceback.format_exception(exc)),
            )
        )
        task_finished.send(sender=sender, task_result=result)
        raise
    object.__setattr__(result, "finished_at", timezone.now())
    object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
    object.__setattr__(result, "_return_value", value)
    task_finished.send(sender=sender, task_result=result)
    return value


def this_attempt(call: dict[str, Any]) -> tuple[int, str]:
    """The attempt being run (1 for the first) and the cluster running it.

    Read from the claimed queue row; without one (sync mode, another broker) it is
    the first attempt, on the queue the task was sent to.
    """
    row = (
        OrmQ.objects.using(get_config().orm)
        .filter(owner__isnull=False, task_ident=call["id"])
        .values_list("attempt", "key")
        .first()
    )
    return (row[0], row[1]) if row is not None else (1, call["queue"])
