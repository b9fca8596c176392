"""``schedule()``: create a validated :class:`~taskq.models.Schedule`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.utils import timezone

from . import schedules
from .exceptions import InvalidTask
from .execution import import_func
from .messages import func_repr
from .models import Schedule


def literal_text(value: Any, what: str) -> str:
    """``repr(value)``, refused unless it reads back as the same Python literal."""
    text = repr(value)
    try:
        parsed = schedules.parse_kwargs(text) if what == "kwargs" else schedules.parse_args(text)
    except ValueError:
        parsed = None
    if parsed != value:
        raise ValidationError({what: f"{what} must be Python literals (numbers, strings, "
                                     f"lists, dicts, ...), not {text}"})  # fmt: skip
    return text


def schedule(
    func: Any,
    *args: Any,
    name: str | None = None,
    hook: Any = None,
    schedule_type: str = Schedule.ONCE,
    minutes: int | None = None,
    repeats: int = -1,
    next_run: datetime | None = None,
    cron: str | None = None,
    cluster: str | None = None,
    intended_date_kwarg: str | None = None,
    q_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Schedule:
    """Create a schedule; raises ``ValidationError`` (nothing saved) on bad input and
    ``IntegrityError`` when a schedule with ``name`` exists."""
    func_path = func if isinstance(func, str) else func_repr(func)
    try:
        import_func(func_path)
    except Exception as exc:
        raise ValidationError({"func": f"{func_path!r} does not import to a callable: {exc}"}) from exc
    if hook is not None and not isinstance(hook, str):
        hook = func_repr(hook)
    if q_options is not None:
        if not isinstance(q_options, dict):
            raise InvalidTask(f"q_options must be a dict, not {type(q_options).__name__}")
        kwargs["q_options"] = q_options
    if name and Schedule.objects.filter(name=name).exists():
        raise IntegrityError(f"A schedule named {name!r} already exists.")
    row = Schedule(
        name=name, func=func_path, hook=hook, args=literal_text(args, "args"),
        kwargs=literal_text(kwargs, "kwargs"), schedule_type=schedule_type, minutes=minutes,
        repeats=repeats, next_run=next_run or timezone.now(), cron=cron, cluster=cluster,
        intended_date_kwarg=intended_date_kwarg,
    )  # fmt: skip
    row.full_clean()
    row.save()
    return row


def schedule_task(row: Schedule, *, intended: datetime | None = None) -> str:
    """Enqueue one run of ``row`` now and record its task id; ``next_run`` is left alone.

    The task's group is the schedule's name (or its id), ``q_options`` inside the
    stored kwargs become the task's options, and ``intended_date_kwarg`` receives the
    occurrence's time (``intended``, default: ``next_run``).
    """
    from .enqueue import async_task

    args = schedules.parse_args(row.args)
    kwargs = schedules.parse_kwargs(row.kwargs)
    q_options = dict(kwargs.pop("q_options", None) or {})
    if row.intended_date_kwarg:
        kwargs[row.intended_date_kwarg] = (intended or row.next_run or timezone.now()).isoformat()
    q_options.setdefault("group", row.name or str(row.pk))
    if row.hook:
        q_options.setdefault("hook", row.hook)
    if row.cluster:
        q_options.setdefault("cluster", row.cluster)
    task_id = async_task(row.func, *args, q_options=q_options, **kwargs)
    Schedule.objects.filter(pk=row.pk).update(task=task_id)
    row.task = task_id
    return task_id
