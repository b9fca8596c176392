"""Render every Django-Q table row as JSON-ready values, through a set of models.

Shared by ``make_fixture.py`` (run with Django-Q2's models, it writes
``expected.json``) and ``read_rows.py`` (run with taskq's models after ``migrate``),
so that both sides describe rows in exactly the same format.

Format, per table (rows ordered by primary key):

- ``tasks``: every ``Task`` field. ``args``, ``kwargs`` and ``result`` are
  ``{"repr": repr(value the model returns), "raw": text stored in the column}``.
- ``successes`` / ``failures``: the ids the ``Success`` / ``Failure`` proxies list.
- ``schedules``: every ``Schedule`` field (``args`` and ``kwargs`` are plain text).
- ``ormq``: ``id``, ``key``, ``payload`` (raw text), ``lock``, ``task`` (the decoded
  package: ``{key: repr(value)}``) and the results of the methods ``func()``,
  ``task_id()``, ``name()``, ``group()``, ``args()``, ``kwargs()`` (repr).
- ``django_migrations``: ``[name, applied]`` of every ``django_q`` row.

Datetimes are ISO 8601 in UTC. Standard library and Django only.
"""

from __future__ import annotations

import datetime as dt

TASK_FIELDS = (
    "id",
    "name",
    "func",
    "hook",
    "group",
    "started",
    "stopped",
    "success",
    "attempt_count",
    "cluster",
)
PICKLED_TASK_FIELDS = ("args", "kwargs", "result")
SCHEDULE_FIELDS = (
    "id",
    "name",
    "func",
    "hook",
    "args",
    "kwargs",
    "schedule_type",
    "minutes",
    "repeats",
    "next_run",
    "cron",
    "task",
    "cluster",
    "intended_date_kwarg",
)
ORMQ_METHODS = ("func", "task_id", "name", "group", "args", "kwargs")


def plain(value):
    """A JSON value for a column value: datetimes as ISO in UTC, the rest as is."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the settings must have USE_TZ = True")
        return value.astimezone(dt.UTC).isoformat()
    return value


def _raw_pickles(connection) -> dict[str, tuple]:
    qn = connection.ops.quote_name
    sql = "SELECT {}, {}, {}, {} FROM {}".format(
        qn("id"), qn("args"), qn("kwargs"), qn("result"), qn("django_q_task")
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return {row[0]: row[1:] for row in cursor.fetchall()}


def dump_tasks(Task, connection) -> list[dict]:
    raw = _raw_pickles(connection)
    rows = []
    for task in Task.objects.order_by("id"):
        row = {field: plain(getattr(task, field)) for field in TASK_FIELDS}
        for position, field in enumerate(PICKLED_TASK_FIELDS):
            row[field] = {"repr": repr(getattr(task, field)), "raw": raw[task.id][position]}
        rows.append(row)
    return rows


def dump_schedules(Schedule) -> list[dict]:
    return [
        {field: plain(getattr(schedule, field)) for field in SCHEDULE_FIELDS}
        for schedule in Schedule.objects.order_by("id")
    ]


def dump_ormq(OrmQ) -> list[dict]:
    rows = []
    for queued in OrmQ.objects.order_by("id"):
        package = queued.task() if callable(queued.task) else queued.task
        row = {
            "id": queued.id,
            "key": queued.key,
            "payload": queued.payload,
            "lock": plain(queued.lock),
            "task": {key: repr(value) for key, value in sorted(package.items())},
        }
        for method in ORMQ_METHODS:
            row[f"{method}()"] = repr(getattr(queued, method)())
        rows.append(row)
    return rows


def dump_migrations(connection) -> list[list]:
    from django.db.migrations.recorder import MigrationRecorder

    records = MigrationRecorder(connection).migration_qs.filter(app="django_q").order_by("id")
    return [[record.name, plain(record.applied)] for record in records]


def dump_all(*, Task, Success, Failure, Schedule, OrmQ, connection) -> dict:
    return {
        "tasks": dump_tasks(Task, connection),
        "successes": sorted(Success.objects.values_list("id", flat=True)),
        "failures": sorted(Failure.objects.values_list("id", flat=True)),
        "schedules": dump_schedules(Schedule),
        "ormq": dump_ormq(OrmQ),
        "django_migrations": dump_migrations(connection),
    }
