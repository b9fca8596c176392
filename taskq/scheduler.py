"""``schedule()``: create a validated :class:`~taskq.models.Schedule`."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import schedules
from .conf import ClusterConfig
from .exceptions import InvalidTask
from .execution import import_func
from .messages import func_repr
from .models import Schedule

logger = logging.getLogger(__name__)


def literal_text(value: Any, what: str) -> str:
    """``repr(value)``, refused unless it reads back as the same Python literal."""
    text = repr(value)
    try:
        parsed = schedules.parse_kwargs(text) if what == "kwargs" else schedules.parse_args(text)
    except ValueError:
        parsed = None
    if parsed != value:
        raise ValidationError(
            {
                what: f"{what} must be Python literals (numbers, strings, "
                f"lists, dicts, ...), not {text}"
            }
        )
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
        raise ValidationError(
            {"func": f"{func_path!r} does not import to a callable: {exc}"}
        ) from exc
    if hook is not None and not isinstance(hook, str):
        hook = func_repr(hook)
    if q_options is not None:
        if not isinstance(q_options, dict):
            raise InvalidTask(f"q_options must be a dict, not {type(q_options).__name__}")
        kwargs["q_options"] = q_options
    if name and Schedule.objects.filter(name=name).exists():
        raise IntegrityError(f"A schedule named {name!r} already exists.")
    row = Schedule(
        name=name,
        func=func_path,
        hook=hook,
        args=literal_text(args, "args"),
        kwargs=literal_text(kwargs, "kwargs"),
        schedule_type=schedule_type,
        minutes=minutes,
        repeats=repeats,
        next_run=next_run or timezone.now(),
        cron=cron,
        cluster=cluster,
        intended_date_kwarg=intended_date_kwarg,
    )
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


def serves(row: Schedule, config: ClusterConfig) -> bool:
    """A schedule with ``cluster`` runs on that cluster only; one without, on ``name``'s."""
    return (row.cluster or config.name) == config.queue_key


def following_run(row: Schedule, config: ClusterConfig, now: datetime) -> datetime | None:
    """The run after ``row.next_run``; without catch-up, the first one after ``now``."""
    previous = row.next_run or now
    after = previous if config.catch_up else max(previous, now)
    return schedules.next_run(
        row.schedule_type,
        anchor=previous,
        after=after,
        tz=ZoneInfo(config.zone),
        minutes=row.minutes,
        cron=row.cron,
    )


def fire(row: Schedule, config: ClusterConfig, now: datetime) -> str | None:
    """Enqueue one occurrence of a due schedule, unless another cluster just did.

    The occurrence is claimed by a compare-and-set on ``next_run`` in the same
    transaction as the enqueue, so each occurrence is enqueued at most once.
    """
    occurrence = row.next_run
    with transaction.atomic():
        claimed = Schedule.objects.filter(pk=row.pk, next_run=occurrence, repeats=row.repeats)
        if row.schedule_type == Schedule.ONCE:
            won = claimed.delete()[0] > 0 if row.repeats < 0 else claimed.update(repeats=0) > 0
        else:
            repeats = row.repeats - 1 if row.repeats > 0 else row.repeats
            won = claimed.update(next_run=following_run(row, config, now), repeats=repeats) > 0
        if not won:
            return None
        return schedule_task(row, intended=occurrence)


def run_due(config: ClusterConfig, broker: Any = None, now: datetime | None = None) -> list[str]:
    """Fire every due schedule this cluster serves; returns the enqueued task ids."""
    now = now or timezone.now()
    fired = []
    for row in Schedule.objects.due(now).order_by("next_run")[:500]:
        if not serves(row, config):
            continue
        try:
            task_id = fire(row, config, now)
        except Exception:
            logger.exception("schedule id=%s (%s) could not be run", row.pk, row.func)
            continue
        if task_id:
            fired.append(task_id)
    return fired
