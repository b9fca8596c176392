"""Composing tasks: ``async_iter``, ``async_chain``, and ``Iter``, ``Chain``, ``AsyncTask``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from .brokers import Broker
from .conf import get_config
from .enqueue import (
    async_task,
    build_message,
    check_cached,
    enqueue_chain,
    split_options,
    submit,
    unpack_link,
)
from .exceptions import InvalidTask
from .models import Task
from .results import count_group, fetch, fetch_group, result, result_group


def async_iter(func: Callable[..., Any] | str, args_iter: Iterable[Any], **kwargs: Any) -> str:
    """One task per item of ``args_iter``; when all finish, one Task with the returned id
    holds the list of their results, in input order."""
    config = get_config()
    options, kwargs = split_options(kwargs)
    broker = options.pop("broker", None)
    sync = bool(options.pop("sync", False))
    items = [item if isinstance(item, tuple) else (item,) for item in args_iter]
    if not items:
        raise InvalidTask("async_iter needs at least one item in args_iter")
    iter_group = uuid.uuid4().hex
    base = uuid.uuid4().hex[:24]
    iter_cached = check_cached(options.pop("cached", False))
    options.update(group=iter_group, iter_count=len(items), iter_cached=iter_cached or None)
    messages = [
        build_message(func, args, dict(kwargs), options, config, task_id=f"{base}{i:08x}")
        for i, args in enumerate(items)
    ]
    for message in messages:
        submit(message, broker=broker, sync=sync, config=config)
    return iter_group


def async_chain(
    chain: list[Any],
    group: str | None = None,
    cached: bool | int = False,
    sync: bool = False,
    broker: Broker | None = None,
) -> str:
    """Run the tasks of ``chain`` one after the other; returns the chain's group id."""
    config = get_config()
    if not chain:
        raise InvalidTask("async_chain needs at least one task")
    for link in chain:  # refuse a bad link now, not after its predecessors ran
        func, args, kwargs = unpack_link(link)
        options, kwargs = split_options(dict(kwargs))
        build_message(func, args, kwargs, options, config)
    group = group or uuid.uuid4().hex
    enqueue_chain(
        list(chain),
        group=group,
        cached=check_cached(cached),
        sync=sync,
        broker=broker,
        config=config,
    )
    return group


class Iter:
    """An ``async_iter`` built up item by item."""

    def __init__(
        self,
        func: Callable[..., Any] | str | None = None,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        cached: bool | int = False,
        sync: bool = False,
        broker: Broker | None = None,
    ) -> None:
        self.func = func
        self.args = list(args or [])
        self.kwargs = dict(kwargs or {})
        self.cached = cached
        self.sync = sync
        self.broker = broker
        self.id = ""
        self.started = False

    def append(self, *args: Any) -> int:
        self.started = False
        self.args.append(args)
        return self.length()

    def run(self) -> str:
        options = {**self.kwargs, "cached": self.cached, "sync": self.sync}
        if self.broker is not None:
            options["broker"] = self.broker
        self.id = async_iter(self.func, self.args, **options)
        self.started = True
        return self.id

    def result(self, wait: int = 0) -> Any:
        return result(self.id, wait=wait, cached=bool(self.cached)) if self.started else None

    def fetch(self, wait: int = 0) -> Task | None:
        return fetch(self.id, wait=wait, cached=bool(self.cached)) if self.started else None

    def length(self) -> int:
        return len(self.args)


class Chain:
    """Tasks that run one after the other."""

    def __init__(
        self,
        chain: list[Any] | None = None,
        group: str | None = None,
        cached: bool | int = False,
        sync: bool = False,
        broker: Broker | None = None,
    ) -> None:
        self.chain = list(chain or [])
        self.group = group or ""
        self.cached = cached
        self.sync = sync
        self.broker = broker
        self.started = False

    def append(self, func: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> int:
        self.chain.append((func, args, kwargs))
        self.started = False
        return self.length()

    def run(self) -> str:
        self.group = async_chain(
            self.chain,
            group=self.group or None,
            cached=self.cached,
            sync=self.sync,
            broker=self.broker,
        )
        self.started = True
        return self.group

    def result(self, wait: int = 0) -> list[Any] | None:
        if not self.started:
            return None
        return result_group(self.group, wait=wait, count=self.length(), cached=bool(self.cached))

    def fetch(self, failures: bool = True, wait: int = 0) -> list[Task] | None:
        if not self.started:
            return None
        return fetch_group(
            self.group, failures=failures, wait=wait, count=self.length(), cached=bool(self.cached)
        )

    def current(self) -> int | None:
        """How many tasks of the chain have finished."""
        return count_group(self.group, cached=bool(self.cached)) if self.started else None

    def length(self) -> int:
        return len(self.chain)


class AsyncTask:
    """A task as an object: set options, ``run()`` it, then read its result."""

    def __init__(self, func: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> None:
        self.func = func
        self.args = args
        options, self.kwargs = split_options(dict(kwargs))
        self.options = options
        self.id = ""
        self.started = False

    def option(name: str, default: Any = None) -> property:
        def get(self: AsyncTask) -> Any:
            return self.options.get(name, default)

        def set_(self: AsyncTask, value: Any) -> None:
            self.started = False
            self.options[name] = value

        return property(get, set_)

    broker = option("broker")
    sync = option("sync", False)
    save = option("save")
    hook = option("hook")
    group = option("group")
    cached = option("cached", False)
    del option

    def run(self) -> str:
        self.id = async_task(self.func, *self.args, q_options=dict(self.options), **self.kwargs)
        self.started = True
        return self.id

    def result(self, wait: int = 0) -> Any:
        return result(self.id, wait=wait, cached=bool(self.cached)) if self.started else None

    def fetch(self, wait: int = 0) -> Task | None:
        return fetch(self.id, wait=wait, cached=bool(self.cached)) if self.started else None

    def result_group(
        self, failures: bool = False, wait: int = 0, count: int | None = None
    ) -> list[Any] | None:
        if not (self.started and self.group):
            return None
        return result_group(
            self.group, failures=failures, wait=wait, count=count, cached=bool(self.cached)
        )

    def fetch_group(
        self, failures: bool = True, wait: int = 0, count: int | None = None
    ) -> list[Task] | None:
        if not (self.started and self.group):
            return None
        return fetch_group(
            self.group, failures=failures, wait=wait, count=count, cached=bool(self.cached)
        )
