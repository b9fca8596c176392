"""Print, as JSON, every Django-Q row read through taskq's models, then try taskq on it.

Run by ``test_compat_migration.py`` in a subprocess, after ``migrate``, with
``DJANGO_SETTINGS_MODULE=taskq_tests.compat.settings``::

    python -m taskq_tests.compat.read_rows OUTPUT.json

It writes ``{"rows": ..., "checks": ...}`` to OUTPUT.json (not to stdout, which
logging may share). ``rows`` has the format of ``rowdump.py``
(the same as ``expected.json``). ``checks`` holds what taskq's public API says about
those rows, and a task enqueued through taskq into the migrated database; each check
is ``{"value": ...}`` or ``{"error": "..."}``, so that one failure hides nothing else.
It runs last and changes the database (it adds one queued task).
"""

from __future__ import annotations

import json
import sys
import traceback


def check(checks: dict, name: str, compute) -> None:
    try:
        checks[name] = {"value": compute()}
    except Exception:
        checks[name] = {"error": traceback.format_exc()}


def fresh_enqueue(OrmQ) -> dict:
    from taskq.tasks import async_task

    task_id = async_task("math.floor", 2.5)
    matches = [queued for queued in OrmQ.objects.order_by("id") if queued.task_id() == task_id]
    if len(matches) != 1:
        raise AssertionError(f"{len(matches)} queue rows carry the new task id {task_id!r}")
    queued = matches[0]
    return {
        "task_id": task_id,
        "queue_row_id": queued.id,
        "key": queued.key,
        "lock_is_set": queued.lock is not None,
        "func()": repr(queued.func()),
        "args()": repr(queued.args()),
        "kwargs()": repr(queued.kwargs()),
        "rows_after": OrmQ.objects.count(),
    }


def main() -> None:
    import django

    django.setup()

    from django.db import connection

    from taskq.models import Failure, OrmQ, Schedule, Success, Task
    from taskq_tests.compat.rowdump import dump_all

    rows = dump_all(
        Task=Task,
        Success=Success,
        Failure=Failure,
        Schedule=Schedule,
        OrmQ=OrmQ,
        connection=connection,
    )

    from taskq import tasks

    checks: dict = {}
    task_rows = rows["tasks"]
    check(checks, "result_by_id", lambda: {t["id"]: repr(tasks.result(t["id"])) for t in task_rows})
    check(
        checks,
        "result_by_name",
        lambda: {t["name"]: repr(tasks.result(t["name"])) for t in task_rows},
    )
    check(
        checks,
        "fetch_by_id",
        lambda: {t["id"]: repr(getattr(tasks.fetch(t["id"]), "name", None)) for t in task_rows},
    )
    groups = sorted({t["group"] for t in task_rows if t["group"]})
    check(checks, "count_group", lambda: {g: tasks.count_group(g) for g in groups})
    check(
        checks,
        "count_group_failures",
        lambda: {g: tasks.count_group(g, failures=True) for g in groups},
    )
    check(checks, "fresh_enqueue", lambda: fresh_enqueue(OrmQ))
    check(checks, "queue_size", lambda: tasks.queue_size())

    with open(sys.argv[1], "w", encoding="utf-8") as out:
        json.dump({"rows": rows, "checks": checks}, out, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
