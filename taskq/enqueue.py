"""``async_task()`` and the checks that refuse bad input before anything is written."""

from __future__ import annotations

import logging
import math
import pickle
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from . import signals, signing
from .brokers import Broker, get_broker
from .conf import ClusterConfig, get_config
from .errorreporters import reporter_callback
from .exceptions import InvalidTask
from .execution import execute, import_func
from .ids import new_task_id, task_name
from .messages import TaskMessage, func_repr
from .outcomes import record

logger = logging.getLogger(__name__)

# Options async_task understands, in kwargs (Django-Q2's way) or inside q_options.
OPTIONS = frozenset(
    {
        "hook",
        "group",
        "timeout",
        "save",
        "sync",
        "cached",
        "ack_failure",
        "cluster",
        "task_name",
        "broker",
        "priority",
        "run_after",
        "max_attempts",
        "iter_count",
        "iter_cached",
        "chain",
    }
)
PRIORITY_RANGE = range(-100, 101)


def split_options(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate taskq's options from the function's keyword arguments."""
    if "q_options" in kwargs:
        q_options = kwargs.pop("q_options")
        if not isinstance(q_options, dict):
            raise InvalidTask(f"q_options must be a dict, not {type(q_options).__name__}")
        unknown = sorted(set(q_options) - OPTIONS)
        if unknown:
            raise InvalidTask(
                f"unknown option(s) in q_options: {', '.join(unknown)}; "
                f"valid options are {', '.join(sorted(OPTIONS))}"
            )
        return dict(q_options), kwargs
    options = {key: kwargs.pop(key) for key in list(kwargs) if key in OPTIONS}
    return options, kwargs


def check_callable(value: Any, what: str) -> Any:
    """A dotted path that imports to a callable, or a picklable callable."""
    if isinstance(value, str):
        try:
            import_func(value)
        except Exception as exc:
            raise InvalidTask(f"{what} {value!r} does not import to a callable: {exc}") from exc
        return value
    if not callable(value):
        raise InvalidTask(f"{what} must be a dotted path or a callable, not {value!r}")
    if getattr(value, "__name__", "") == "<lambda>" or "<locals>" in getattr(
        value, "__qualname__", ""
    ):
        raise InvalidTask(
            f"{what} {func_repr(value)!r} cannot be imported by a worker; "
            "use a module-level function or its dotted path"
        )
    return value


def check_timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidTask(f"timeout must be a positive number of seconds, not {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidTask(f"timeout must be a finite number of seconds, not {value!r}")
    return value


def check_priority(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value not in PRIORITY_RANGE:
        raise InvalidTask(f"priority must be an int from -100 to 100, not {value!r}")
    return value


def check_run_after(value: Any, now: datetime) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return now + value
    if not isinstance(value, datetime):
        raise InvalidTask(f"run_after must be a datetime or a timedelta, not {value!r}")
    if settings.USE_TZ and timezone.is_naive(value):
        raise InvalidTask(f"run_after must be an aware datetime when USE_TZ is on, not {value!r}")
    return value


def check_max_attempts(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidTask(f"max_attempts must be an int >= 0 (0 = unlimited), not {value!r}")
    return value


def check_cached(value: Any, what: str = "cached") -> bool | int:
    if value is None:
        return False
    if isinstance(value, bool) or (isinstance(value, int) and value > 0):
        return value
    raise InvalidTask(f"{what} must be True, False or a positive number of seconds, not {value!r}")


def check_name(value: Any, what: str, limit: int = 100) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidTask(
            f"{what} must be a non-empty str of at most {limit} characters, not {value!r}"
        )
    return value


def build_message(
    func: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: dict[str, Any],
    config: ClusterConfig,
    *,
    task_id: str | None = None,
) -> TaskMessage:
    """A checked :class:`TaskMessage`; raises :class:`InvalidTask` naming the bad value."""
    now = timezone.now()
    task_id = task_id or new_task_id()
    hook = options.get("hook")
    message = TaskMessage(
        id=task_id,
        name=check_name(options.get("task_name"), "task_name") or task_name(task_id),
        func=check_callable(func, "func"),
        args=tuple(args),
        kwargs=kwargs,
        started=now,
        hook=None if hook is None else check_callable(hook, "hook"),
        group=check_name(options.get("group"), "group"),
        timeout=check_timeout(options.get("timeout")),
        cluster=check_name(options.get("cluster"), "cluster"),
        save=options.get("save"),
        cached=check_cached(options.get("cached", False)),
        ack_failure=bool(options.get("ack_failure", False)),
        chain=options.get("chain"),
        iter_count=options.get("iter_count"),
        iter_cached=options.get("iter_cached"),
        priority=check_priority(options.get("priority")),
        run_after=check_run_after(options.get("run_after"), now),
        max_attempts=check_max_attempts(options.get("max_attempts")),
    )
    return message


def package(message: TaskMessage, config: ClusterConfig) -> str:
    """Serialise and sign a message; refuses values that cannot be pickled."""
    try:
        return signing.dumps(message.to_dict(), salt=config.name, compress=config.compress)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise InvalidTask(f"the task's arguments cannot be serialised: {exc}") from exc


def submit(
    message: TaskMessage,
    *,
    broker: Broker | None = None,
    sync: bool = False,
    config: ClusterConfig | None = None,
) -> str:
    """Send a checked message to its broker, or run it here in sync mode."""
    config = config or get_config()
    payload = package(message, config)
    if broker is None:
        broker = get_broker(message.cluster or None, config=config)
    if signals.pre_enqueue.has_listeners(signals.SENDER):
        signals.pre_enqueue.send(sender=signals.SENDER, task=message.to_dict())
    if sync or config.sync:
        run_sync(signing.loads(payload, salt=config.name), broker, config)
        return message.id
    broker.enqueue(
        payload,
        priority=message.priority,
        run_after=message.run_after,
        task_id=message.id,
        name=message.name,
        func=message.func_name,
    )
    logger.debug("enqueued task_id=%s queue=%s", message.id, broker.list_key)
    return message.id


def run_sync(task: dict[str, Any], broker: Broker, config: ClusterConfig) -> None:
    """Run a task in the caller with the worker's and the monitor's code; re-raise its error."""
    message = TaskMessage.from_dict(task)
    outcome = execute(
        message, cluster=broker.list_key, on_error=reporter_callback(config.error_reporter)
    )
    done = record([outcome], broker, config)
    for finished in done.chains:
        enqueue_next_link(finished, broker=broker, sync=True, config=config)
    if outcome.error is not None:
        raise outcome.error


def enqueue_next_link(
    finished: TaskMessage, *, broker: Broker | None, sync: bool, config: ClusterConfig
) -> str | None:
    """Enqueue the next task of a chain after ``finished``."""
    if not finished.chain:
        return None
    return enqueue_chain(
        finished.chain,
        group=finished.group,
        cached=finished.cached,
        sync=sync,
        broker=broker,
        config=config,
    )


def enqueue_chain(
    chain: list[Any],
    *,
    group: str | None,
    cached: bool | int,
    sync: bool,
    broker: Broker | None,
    config: ClusterConfig,
) -> str:
    """Enqueue the first link of ``chain``; the rest travels with it."""
    first, rest = chain[0], list(chain[1:])
    func, args, kwargs = unpack_link(first)
    options, kwargs = split_options(dict(kwargs))
    options.update(group=group, cached=cached, chain=rest or None)
    message = build_message(func, args, kwargs, options, config)
    return submit(message, broker=broker, sync=sync, config=config)


def unpack_link(link: Any) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """A chain link is ``func``, ``(func,)``, ``(func, args)`` or ``(func, args, kwargs)``."""
    if isinstance(link, str) or callable(link):
        return link, (), {}
    if not isinstance(link, list | tuple) or not 1 <= len(link) <= 3:
        raise InvalidTask(f"a chain link must be (func, args, kwargs), not {link!r}")
    func = link[0]
    args = link[1] if len(link) > 1 else ()
    kwargs = link[2] if len(link) > 2 else {}
    if not isinstance(args, list | tuple):
        args = (args,)
    if not isinstance(kwargs, dict):
        raise InvalidTask(f"a chain link's kwargs must be a dict, not {kwargs!r}")
    return func, tuple(args), dict(kwargs)


def async_task(func: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> str:
    """Queue ``func(*args, **kwargs)`` for a cluster; returns the task id.

    Options (``hook``, ``group``, ``timeout``, ``save``, ``sync``, ``cached``,
    ``ack_failure``, ``cluster``, ``task_name``, ``broker``, ``priority``,
    ``run_after``, ``max_attempts``) come from the keyword arguments, or, when
    ``q_options`` is given, only from it.
    """
    config = get_config()
    options, kwargs = split_options(kwargs)
    broker = options.pop("broker", None)
    sync = bool(options.pop("sync", False))
    message = build_message(func, args, kwargs, options, config)
    return submit(message, broker=broker, sync=sync, config=config)
