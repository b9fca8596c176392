"""The Django-Q2-compatible public API: ``from taskq.tasks import async_task, result, ...``."""

from __future__ import annotations

from .cleanup import clean_old_tasks
from .composition import AsyncTask, Chain, Iter, async_chain, async_iter
from .enqueue import async_task
from .results import (
    count_group,
    delete_cached,
    delete_group,
    fetch,
    fetch_group,
    queue_size,
    result,
    result_group,
)
from .scheduler import schedule

__all__ = [
    "AsyncTask",
    "Chain",
    "Iter",
    "async_chain",
    "async_iter",
    "async_task",
    "clean_old_tasks",
    "count_group",
    "delete_cached",
    "delete_group",
    "fetch",
    "fetch_group",
    "queue_size",
    "result",
    "result_group",
    "schedule",
]
