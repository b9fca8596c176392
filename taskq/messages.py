"""The values that travel between processes: :class:`TaskMessage` and :class:`TaskOutcome`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# Keys of Django-Q2's task dict that map onto TaskMessage fields.
MESSAGE_KEYS = (
    "id",
    "name",
    "func",
    "args",
    "kwargs",
    "started",
    "hook",
    "group",
    "timeout",
    "cluster",
    "save",
    "cached",
    "ack_failure",
    "chain",
    "iter_count",
    "iter_cached",
    "priority",
    "run_after",
    "max_attempts",
)


FALSE_DEFAULTS = ("cached", "ack_failure", "priority")


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskMessage:
    """One task as enqueued. ``to_dict()`` is Django-Q2's task dict."""

    id: str
    name: str
    func: Any  # dotted path or a picklable module-level callable
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    started: datetime | None = None  # when it was enqueued (Django-Q2's meaning)
    hook: Any = None
    group: str | None = None
    timeout: float | None = None
    cluster: str | None = None
    save: bool | None = None
    cached: bool | int = False
    ack_failure: bool = False
    chain: list[Any] | None = None
    iter_count: int | None = None
    iter_cached: bool | int | None = None
    priority: int = 0
    run_after: datetime | None = None
    max_attempts: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys, kept as they came

    @classmethod
    def from_dict(cls, task: dict[str, Any]) -> TaskMessage:
        known = {k: task[k] for k in MESSAGE_KEYS if k in task and task[k] is not None}
        known.setdefault("name", task.get("id", ""))
        known["args"] = tuple(known.get("args", ()))
        known["kwargs"] = dict(known.get("kwargs", {}))
        extra = {k: v for k, v in task.items() if k not in MESSAGE_KEYS}
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        task: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "func": self.func,
            "args": self.args,
            "kwargs": self.kwargs,
            "started": self.started,
        }
        for key in MESSAGE_KEYS[6:]:
            value = getattr(self, key)
            if value is None or (key in FALSE_DEFAULTS and not value):
                continue
            task[key] = value
        task.update(self.extra)
        return task

    def replace(self, **changes: Any) -> TaskMessage:
        return dataclasses.replace(self, **changes)

    def __reduce__(self) -> tuple[Any, ...]:  # faster than the slots dataclass default
        return rebuild, (TaskMessage, fields_of(self, MESSAGE_FIELDS, MESSAGE_TIMES))

    @property
    def func_name(self) -> str:
        return func_repr(self.func)

    @property
    def hook_name(self) -> str | None:
        return None if self.hook is None else func_repr(self.hook)


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """A claimed task: what the broker needs to acknowledge or release it."""

    ack_id: Any
    token: str | None
    attempt: int
    payload: str

    def __reduce__(self) -> tuple[Any, ...]:
        return make_delivery, (self.ack_id, self.token, self.attempt, self.payload)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskOutcome:
    """What running a task produced; recorded by :func:`taskq.outcomes.record`."""

    message: TaskMessage
    success: bool
    result: Any
    started: datetime  # when execution started
    stopped: datetime
    attempt: int = 1
    delivery: Delivery | None = None
    cluster: str | None = None
    timed_out: bool = False
    worker_pid: int | None = None
    error: BaseException | None = None  # sync mode only: the exception the task raised

    def __reduce__(self) -> tuple[Any, ...]:
        return rebuild, (TaskOutcome, fields_of(self, OUTCOME_FIELDS, OUTCOME_TIMES))

    @classmethod
    def failure(
        cls,
        message: TaskMessage,
        result: str,
        *,
        now: datetime,
        attempt: int,
        delivery: Delivery | None,
        cluster: str | None = None,
        timed_out: bool = False,
    ) -> TaskOutcome:
        """A failure the cluster records for a task that did not (or could not) report."""
        return cls(
            message=message,
            success=False,
            result=result,
            started=now,
            stopped=now,
            attempt=attempt,
            delivery=delivery,
            cluster=cluster,
            timed_out=timed_out,
        )


def func_repr(func: Any) -> str:
    """``module.qualname`` of a callable, or the string itself."""
    if isinstance(func, str):
        return func
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if module and qualname:
        return f"{module}.{qualname}"
    return repr(func)


def fields_of(obj: Any, names: tuple[str, ...], times: tuple[int, ...]) -> tuple[Any, ...]:
    """The field values of a message or outcome, its UTC times as integers."""
    values = [getattr(obj, name) for name in names]
    for index in times:
        value = values[index]
        if type(value) is datetime and value.tzinfo is UTC:
            values[index] = (value - EPOCH) // MICROSECOND
    return tuple(values)


def rebuild(cls: type, values: tuple[Any, ...]) -> Any:
    """Unpickle a :class:`TaskMessage` or :class:`TaskOutcome` from its field values
    (set one by one: twice as fast as the frozen dataclass's keyword ``__init__``).

    A UTC time travels as microseconds since the epoch: pickling an aware ``datetime``
    (its ``tzinfo`` reduced anew in each) cost more than the rest of an outcome."""
    is_message = cls is TaskMessage
    names = MESSAGE_FIELDS if is_message else OUTCOME_FIELDS
    obj = object.__new__(cls)
    for name, value in zip(names, values, strict=True):
        SET(obj, name, value)
    for index in MESSAGE_TIMES if is_message else OUTCOME_TIMES:
        value = values[index]
        if type(value) is int:
            SET(obj, names[index], EPOCH + timedelta(microseconds=value))
    return obj


def make_delivery(ack_id: Any, token: str | None, attempt: int, payload: str) -> Delivery:
    """Unpickle a :class:`Delivery` (faster than the frozen dataclass's ``__init__``)."""
    obj = object.__new__(Delivery)
    SET(obj, "ack_id", ack_id)
    SET(obj, "token", token)
    SET(obj, "attempt", attempt)
    SET(obj, "payload", payload)
    return obj


SET = object.__setattr__  # frozen dataclasses refuse their own __setattr__
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
MESSAGE_FIELDS = tuple(f.name for f in dataclasses.fields(TaskMessage))
OUTCOME_FIELDS = tuple(f.name for f in dataclasses.fields(TaskOutcome))
MESSAGE_TIMES = tuple(MESSAGE_FIELDS.index(name) for name in ("started", "run_after"))
OUTCOME_TIMES = tuple(OUTCOME_FIELDS.index(name) for name in ("started", "stopped"))
