"""Django's tasks framework, from wherever it is installed.

Django 6 ships it as ``django.tasks``; on Django 5.2 the ``django-tasks`` backport
provides the same API as ``django_tasks`` (its exception for an invalid task is
called ``InvalidTaskError`` there). :mod:`taskq.backends` imports the framework only
from here.
"""

from __future__ import annotations

import json
from typing import Any

try:
    from django.tasks import (
        DEFAULT_TASK_QUEUE_NAME,
        Task,
        TaskContext,
        TaskResult,
        TaskResultStatus,
        task,
        task_backends,
    )
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json

    FRAMEWORK = "django.tasks"
except ImportError:
    try:
        from django_tasks import (
            DEFAULT_TASK_QUEUE_NAME,
            TaskContext,
            TaskResult,
            TaskResultStatus,
            task,
            task_backends,
        )
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import Task, TaskError
        from django_tasks.exceptions import InvalidTaskError as InvalidTask
        from django_tasks.exceptions import TaskResultDoesNotExist, TaskResultMismatch
        from django_tasks.signals import task_enqueued, task_finished, task_started
        from django_tasks.utils import normalize_json
    except ImportError as exc:
        raise ModuleNotFoundError(
            "taskq.backends needs Django's tasks framework: Django 6, or on Django 5.2 "
            "the backport (pip install django-tasks).",
            name="django_tasks",
        ) from exc
    FRAMEWORK = "django_tasks"

__all__ = [
    "DEFAULT_TASK_QUEUE_NAME",
    "FRAMEWORK",
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultMismatch",
    "TaskResultStatus",
    "json_round_trip",
    "normalize_json",
    "task",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]


def json_round_trip(value: Any) -> Any:
    """``value`` as it comes back from JSON; raises the framework's error when it cannot.

    The framework's ``normalize_json`` refuses what JSON cannot hold (``TypeError``);
    the round trip then gives what a backend that stores JSON gives back (tuples become
    lists, dict keys become strings), so task code sees the same values on any backend.
    """
    return json.loads(json.dumps(normalize_json(value)))
