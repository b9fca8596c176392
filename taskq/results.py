"""Reading results: by task id or name, by group, from the database or the cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache import caches

from . import signing
from .brokers import Broker, get_broker
from .conf import get_config
from .models import Failure, Task
from .outcomes import cache_key, cached_task

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None], wait: int, done: Callable[[T], bool] = bool
) -> T | None:
    """Call ``probe`` until ``done(value)`` or ``wait`` milliseconds pass (``-1``: forever)."""
    deadline = None if wait < 0 else time.monotonic() + wait / 1000
    pause = 0.005
    while True:
        value = probe()
        if value is not None and done(value):
            return value
        if deadline is not None and time.monotonic() >= deadline:
            return value
        remaining = 0.25 if deadline is None else max(0.0, deadline - time.monotonic())
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.1)


def cached_package(task_id: str, broker: Broker) -> dict[str, Any] | None:
    config = get_config()
    raw = caches[config.cache].get(cache_key(broker.list_key, task_id))
    return None if raw is None else signing.loads(raw, salt=config.name)


def fetch(
    task_id: str, wait: int = 0, cached: bool = False, broker: Broker | None = None
) -> Task | None:
    """The finished :class:`Task` with this id or name, or ``None``."""
    if cached:
        broker = broker or get_broker()

        def probe() -> Task | None:
            package = cached_package(task_id, broker)
            return cached_task(package) if package else None

        return wait_for(probe, wait)
    return wait_for(lambda: Task.get_task(task_id), wait)


def result(task_id: str, wait: int = 0, cached: bool = False, broker: Broker | None = None) -> Any:
    """The return value of a finished task (its error text if it failed), or ``None``."""
    task = fetch(task_id, wait=wait, cached=cached, broker=broker)
    return task.result if task is not None else None


def cached_group(group_id: str, broker: Broker) -> list[Task]:
    config = get_config()
    cache = caches[config.cache]
    keys = cache.get(cache_key(broker.list_key, f"{group_id}:keys")) or []
    tasks = []
    for raw in cache.get_many(keys).values():
        tasks.append(cached_task(signing.loads(raw, salt=config.name)))
    return tasks


def fetch_group(
    group_id: str,
    failures: bool = True,
    wait: int = 0,
    count: int | None = None,
    cached: bool = False,
    broker: Broker | None = None,
) -> list[Task]:
    """The finished tasks of a group (without failures when ``failures=False``)."""

    def probe() -> list[Task]:
        if cached:
            tasks = cached_group(group_id, broker or get_broker())
            return [t for t in tasks if failures or t.success]
        return list(Task.get_task_group(group_id, failures=failures).order_by("stopped", "id"))

    enough: Callable[[list[Task]], bool] = (lambda tasks: len(tasks) >= count) if count else bool
    return wait_for(probe, wait, enough) or []


def result_group(
    group_id: str,
    failures: bool = False,
    wait: int = 0,
    count: int | None = None,
    cached: bool = False,
    broker: Broker | None = None,
) -> list[Any]:
    """The results of a group's finished tasks (successes only unless ``failures=True``)."""
    tasks = fetch_group(
        group_id, failures=failures, wait=wait, count=count, cached=cached, broker=broker
    )
    return [task.result for task in tasks]


def count_group(
    group_id: str, failures: bool = False, cached: bool = False, broker: Broker | None = None
) -> int:
    """Finished tasks in a group; with ``failures=True`` only the failed ones."""
    if cached:
        tasks = cached_group(group_id, broker or get_broker())
        return sum(1 for t in tasks if not t.success) if failures else len(tasks)
    if failures:
        return Failure.objects.filter(group=group_id).count()
    return Task.objects.filter(group=group_id).count()


def delete_group(
    group_id: str, tasks: bool = False, cached: bool = False, broker: Broker | None = None
) -> Any:
    """Remove the group label from its tasks, or with ``tasks=True`` the tasks themselves."""
    if cached:
        broker = broker or get_broker()
        cache = caches[get_config().cache]
        group_key = cache_key(broker.list_key, f"{group_id}:keys")
        keys = cache.get(group_key) or []
        if tasks:
            cache.delete_many(keys)
        cache.delete(group_key)
        return len(keys)
    return Task.delete_group(group_id, objects=tasks)


def delete_cached(task_id: str, broker: Broker | None = None) -> bool:
    """Remove a cached result."""
    broker = broker or get_broker()
    return bool(caches[get_config().cache].delete(cache_key(broker.list_key, task_id)))


def queue_size(broker: Broker | None = None) -> int:
    """Tasks waiting in the broker."""
    return (broker or get_broker()).queue_size()
