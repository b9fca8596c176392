"""Schedules: :func:`schedule` creates one, :func:`run_due` fires the due ones.

Each schedule is fired in its own transaction, which claims the occurrence and enqueues
its task together. The claim is a compare-and-set on ``(next_run, repeats)``, taken
after ``SELECT ... FOR UPDATE SKIP LOCKED`` where the database has it (PostgreSQL,
MySQL 8, MariaDB 10.6) and inside SQLite's immediate transaction elsewhere. A cluster
that reads a schedule another cluster has just fired matches no row and enqueues
nothing, so each occurrence is enqueued at most once across any number of clusters.
With the ORM broker on the schedules' database, a crash between the claim and the
enqueue rolls both back: the occurrence is fired again by the next pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, router, transaction
from django.db.models import Q
from django.utils import timezone

from . import schedules
from .brokers import Broker, get_broker
from .conf import ClusterConfig, get_config
from .enqueue import OPTIONS, build_message, split_options, submit
from .exceptions import InvalidTask
from .execution import import_func
from .ids import new_task_id, task_name
from .messages import TaskMessage, func_repr
from .models import Schedule, Task

logger = logging.getLogger(__name__)

CATCH_UP_LIMIT = 100  # most occurrences of one schedule enqueued in one pass
DUE_LIMIT = 500  # most schedules fired in one pass; the rest wait for the next one


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


def importable(path: Any, what: str) -> str:
    """The dotted path of ``path``, refused unless it imports to a callable."""
    path = path if isinstance(path, str) else func_repr(path)
    try:
        import_func(path)
    except Exception as exc:
        raise ValidationError({what: f"{path!r} does not import to a callable: {exc}"}) from exc
    return path


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
    func_path = importable(func, "func")
    hook_path = None if hook is None else importable(hook, "hook")
    if q_options is not None:
        if not isinstance(q_options, dict):
            raise InvalidTask(f"q_options must be a dict, not {type(q_options).__name__}")
        unknown = sorted(set(q_options) - OPTIONS - {"broker_name"})
        if unknown:
            raise InvalidTask(f"unknown option(s) in q_options: {', '.join(unknown)}")
        kwargs["q_options"] = q_options
    row = Schedule(
        name=name,
        func=func_path,
        hook=hook_path,
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
    using = router.db_for_write(Schedule)
    with transaction.atomic(using=using):  # immediate on SQLite: one creator at a time
        if name and Schedule.objects.using(using).filter(name=name).exists():
            raise IntegrityError(f"A schedule named {name!r} already exists.")
        row.full_clean()
        row.save(using=using)
    return row


def task_message(
    row: Schedule, intended: datetime, config: ClusterConfig, *, task_id: str | None = None
) -> TaskMessage:
    """The task of one occurrence, with Django-Q2's options: the schedule's ``hook`` and
    ``cluster`` win over ``q_options``, the group is ``q_options``' or the schedule's
    name (else its id), and ``intended_date_kwarg`` gets ``intended`` in ISO format."""
    args = schedules.parse_args(row.args)
    kwargs = schedules.parse_kwargs(row.kwargs)
    q_options = kwargs.pop("q_options", None) or {}
    if not isinstance(q_options, dict):
        raise InvalidTask(f"q_options must be a dict, not {q_options!r}")
    q_options = dict(q_options)
    broker_name = q_options.pop("broker_name", None)  # Django-Q2's old name for cluster
    q_options.pop("sync", None)  # a schedule's task goes to a queue
    if row.intended_date_kwarg:
        kwargs[row.intended_date_kwarg] = intended.isoformat()
    if row.hook:
        q_options["hook"] = row.hook
    q_options["cluster"] = row.cluster or q_options.get("cluster", broker_name)
    q_options.setdefault("group", row.name or str(row.pk))
    options, kwargs = split_options({**kwargs, "q_options": q_options})
    return build_message(row.func, args, kwargs, options, config, task_id=task_id)


def schedule_task(row: Schedule, *, intended: datetime | None = None) -> str:
    """Enqueue one run of ``row`` now and record its task id; ``next_run`` is left alone
    (the admin's "run now"). ``intended`` defaults to ``next_run``."""
    config = get_config()
    message = task_message(row, intended or row.next_run or timezone.now(), config)
    task_id = submit(message, config=config)
    Schedule.objects.filter(pk=row.pk).update(task=task_id)
    row.task = task_id
    return task_id


def serves(row: Schedule, config: ClusterConfig) -> bool:
    """A schedule with ``cluster`` runs on that cluster only; one without, on ``name``'s."""
    return (row.cluster or config.name) == config.queue_key


def served_by(config: ClusterConfig) -> Q:
    """The schedules :func:`serves` says this cluster runs, as a filter."""
    mine = Q(cluster=config.queue_key)
    if config.queue_key == config.name:
        mine |= Q(cluster__isnull=True) | Q(cluster="")
    return mine


def following_run(row: Schedule, config: ClusterConfig, now: datetime) -> datetime | None:
    """The run after ``row.next_run``, counted from its anchor; without catch-up, the
    first one after ``now``."""
    previous = row.next_run or now
    return schedules.next_run(
        row.schedule_type,
        anchor=row.anchor or previous,
        after=previous if config.catch_up else max(previous, now),
        tz=ZoneInfo(config.zone),
        minutes=row.minutes,
        cron=row.cron,
    )


@dataclass(frozen=True, slots=True)
class Firing:
    """What firing a schedule at ``now`` does: the runs to enqueue, then the row's state."""

    runs: list[datetime] = field(default_factory=list)
    next_run: datetime | None = None
    repeats: int = -1
    delete: bool = False


def plan(row: Schedule, config: ClusterConfig, now: datetime, limit: int) -> Firing:
    """The runs of ``row`` due at ``now`` (at most ``limit``, at most ``repeats``)."""
    if row.next_run is None or row.next_run > now or row.repeats == 0:
        return Firing()
    repeats = max(row.repeats, -1)  # Django-Q2 fixes "broken numbers" below -1 so
    if row.schedule_type == Schedule.ONCE and not row.cron:
        # a spent once-schedule is deleted, unless it had repeats: then it is kept, done
        return Firing([row.next_run], row.next_run, repeats=0, delete=repeats < 0)
    runs, following = schedules.due_runs(
        Schedule.CRON if row.cron else row.schedule_type,
        anchor=row.anchor or row.next_run,
        next_run=row.next_run,
        now=now,
        tz=ZoneInfo(config.zone),
        minutes=row.minutes,
        cron=row.cron,
        catch_up=config.catch_up,
        limit=min(limit, repeats) if repeats > 0 else limit,
    )
    if repeats > 0:
        repeats -= len(runs)
    if following is None:  # a cron expression with no match left: done
        return Firing(runs, runs[-1], repeats=0)
    return Firing(runs, following, repeats=repeats)


def fire(
    row: Schedule,
    config: ClusterConfig,
    now: datetime,
    *,
    broker: Broker | None = None,
    limit: int = CATCH_UP_LIMIT,
) -> list[str]:
    """Enqueue the due occurrences of ``row`` (as read, maybe stale) unless another
    cluster just did; returns the ids of the tasks enqueued.

    Occurrences that cannot become a task (a function that no longer imports, stored
    arguments that are not literals) are spent all the same and recorded as one failed
    task, so a broken schedule shows in the admin instead of failing every pass.
    """
    using = router.db_for_write(Schedule)
    broker = broker if broker is not None else get_broker(config=config)
    broker_db = getattr(broker, "alias", using)  # the ORM broker's: enqueue in the same commit
    with transaction.atomic(using=using), transaction.atomic(using=broker_db):
        current = claim(row, using)
        if current is None:
            return []
        firing = plan(current, config, now, limit)
        if not firing.runs:
            return []
        try:
            messages = [
                task_message(current, run, config, task_id=new_task_id()) for run in firing.runs
            ]
        except ValueError as exc:  # InvalidTask, or text that is not a literal
            messages, failure = [], failure_row(current, firing, exc, now)
        else:
            failure = None
        last = failure.id if failure is not None else messages[-1].id
        if not spend(current, firing, last, using):
            return []
        if failure is not None:
            failure.save(using=router.db_for_write(Task), force_insert=True)
            logger.error("schedule id=%s: %s", current.pk, failure.result)
            return []
        brokers = {broker.list_key: broker}
        for message in messages:
            key = message.cluster or config.queue_key
            if key not in brokers:
                brokers[key] = get_broker(key, config=config)
            submit(message, broker=brokers[key], config=config)
    logger.info(
        "schedule id=%s (%s) enqueued %s task(s); next run %s",
        current.pk,
        current.name or current.func,
        len(messages),
        firing.next_run,
    )
    return [message.id for message in messages]


def claim(row: Schedule, using: str) -> Schedule | None:
    """``row`` as it is now, locked, if nobody fired it since it was read."""
    rows = Schedule.objects.using(using).filter(
        pk=row.pk, next_run=row.next_run, repeats=row.repeats
    )
    if connections[using].features.has_select_for_update_skip_locked:
        rows = rows.select_for_update(skip_locked=True)
    return rows.first()


def spend(row: Schedule, firing: Firing, task_id: str, using: str) -> bool:
    """The compare-and-set that claims the occurrences: false if another cluster won."""
    rows = Schedule.objects.using(using).filter(
        pk=row.pk, next_run=row.next_run, repeats=row.repeats
    )
    if firing.delete:
        return rows.delete()[0] > 0
    changed = rows.update(
        next_run=firing.next_run,
        repeats=firing.repeats,
        anchor=row.anchor or row.next_run,
        task=task_id,
    )
    return changed > 0


def failure_row(row: Schedule, firing: Firing, error: Exception, now: datetime) -> Task:
    task_id = new_task_id()
    runs = ", ".join(run.isoformat() for run in firing.runs[:3])
    more = f" and {len(firing.runs) - 3} more" if len(firing.runs) > 3 else ""
    return Task(
        id=task_id,
        name=task_name(task_id),
        func=row.func[:256],
        hook=row.hook,
        args=None,
        kwargs=None,
        result=f"schedule {row.name or row.pk!s} could not enqueue its run(s) at {runs}{more}: "
        f"{error} (args={row.args!r}, kwargs={row.kwargs!r})",
        group=(row.name or str(row.pk))[:100],
        started=now,
        stopped=now,
        success=False,
        attempt_count=0,
        cluster=row.cluster,
    )


def database_now(using: str) -> datetime:
    """The database's clock on PostgreSQL; the host's elsewhere (SQLite shares it)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0].astimezone(UTC)


def run_due(
    config: ClusterConfig, broker: Broker | None = None, now: datetime | None = None
) -> list[str]:
    """Fire every schedule this cluster serves that is due at ``now`` (default: the
    database's clock); returns the ids of the tasks enqueued."""
    using = router.db_for_write(Schedule)
    now = now or database_now(using)
    due = (
        Schedule.objects.using(using)
        .due(now)
        .filter(served_by(config))
        .order_by("next_run", "pk")[:DUE_LIMIT]
    )
    fired: list[str] = []
    for row in list(due):
        try:
            fired += fire(row, config, now, broker=broker)
        except Exception:
            logger.exception("schedule id=%s (%s) could not be run", row.pk, row.func)
    return fired
