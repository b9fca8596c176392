"""Produce the Django-Q2 1.11.1 fixture databases used by ``test_compat_migration.py``.

This script is run by hand, never by the test suite: it needs the real Django-Q2
from PyPI, which taskq does not depend on. To re-run it (from the repository root)::

    python3.11 -m venv /tmp/djq2venv
    /tmp/djq2venv/bin/pip install "django==5.2.*" "django-q2==1.11.1" croniter "psycopg[binary]"
    /tmp/djq2venv/bin/python taskq_tests/compat/make_fixture.py

It writes, next to this file:

- ``djangoq2_1_11_1.sqlite3``: a SQLite database migrated by Django-Q2, with rows;
- ``djangoq2_1_11_1_postgres.sql``: the same on PostgreSQL, as a plain SQL dump
  (``pg_dump --no-owner --no-privileges --column-inserts``, with pg_dump's
  ``\\restrict`` lines removed so that any client can execute it);
- ``expected.json``: every row as Django-Q2's models see it (format in
  ``rowdump.py``). Both databases hold identical values; if a future run finds
  otherwise, the PostgreSQL values go to ``expected_postgres.json``.

The PostgreSQL server is a throwaway one (``taskq_tests/pgserver.py``, server
binaries from ``/usr/lib/postgresql/*/bin``). ``--only sqlite`` skips it.

The rows are written with Django-Q2's own code (``async_task``, its worker and
monitor functions, ``schedule``, its scheduler, its ORM broker) under a fake clock and
fixed task ids, so every run produces the same values:

- ``django_q_task``: two successes run in sync mode (``math.hypot(3, 4)`` in group
  ``g1``; ``datetime.timedelta(days=1, hours=2)`` named ``custom-name``) and one
  failure (``math.sqrt(-1)`` in group ``g1``), delivered twice through the ORM broker
  as a cluster would, so ``attempt_count`` is 2;
- ``django_q_ormq``: the failed task, still there and leased (Django-Q2's default
  ``max_attempts = 0`` redelivers failures forever), two queued tasks (one with
  ``group``, ``hook``, ``timeout`` and a keyword argument), one that the scheduler
  enqueued for the ``nightly`` schedule, and one queued for cluster ``priority``;
- ``django_q_schedule``: daily ``nightly`` (already run once by the scheduler), cron
  ``morning``, once ``report-once`` with ``intended_date_kwarg`` and ``q_options``,
  every-15-minutes ``every-15`` for cluster ``priority``, and an unnamed monthly one
  written as the admin would (``args`` typed as ``2, 8``, ``kwargs`` NULL);
- ``django_migrations``: Django-Q2's 0001-0019 (with fixed ``applied`` times).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SQLITE_NAME = "djangoq2_1_11_1.sqlite3"
PG_DUMP_NAME = "djangoq2_1_11_1_postgres.sql"
EXPECTED_NAME = "expected.json"
EXPECTED_PG_NAME = "expected_postgres.json"

SECRET_KEY = "taskq-compat-fixture-secret"
CLUSTER_NAME = "compat"
UTC = dt.UTC
MIGRATED_AT = dt.datetime(2024, 4, 30, 18, 0, 0, 0, tzinfo=UTC)
DURATION = dt.timedelta(seconds=1.5)  # how long every task "runs" on the fake clock


def at(hour: int, minute: int, second: int = 0, micro: int = 0, day: int = 1) -> dt.datetime:
    return dt.datetime(2024, 5, day, hour, minute, second, micro, tzinfo=UTC)


# --------------------------------------------------------------------------------------
# The parent: runs one child per backend, dumps PostgreSQL, writes the outputs.


def run_child(backend: str, json_out: Path, extra: list[str], env: dict | None = None) -> dict:
    command = [sys.executable, __file__, "--child", backend, "--json", str(json_out), *extra]
    subprocess.run(command, check=True, env={**os.environ, **(env or {})})
    return json.loads(json_out.read_text())


def clean_dump(text: str) -> str:
    # pg_dump >= 15.14 brackets the dump in psql meta-commands with a random key.
    return "".join(
        line for line in text.splitlines(keepends=True) if not re.match(r"\\(un)?restrict\b", line)
    )


def make_postgres(work: Path) -> dict:
    sys.path.insert(0, str(REPO))
    from taskq_tests.pgserver import PostgresServer

    with PostgresServer() as server:
        values = run_child("postgres", work / "postgres.json", [], env=server.env)
        dump = subprocess.run(
            [
                str(server.bindir / "pg_dump"),
                "--no-owner",
                "--no-privileges",
                "--column-inserts",
                "-h",
                server.host,
                "-p",
                str(server.port),
                "-U",
                server.user,
                server.name,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    (HERE / PG_DUMP_NAME).write_text(clean_dump(dump))
    return values


def write_json(path: Path, values: dict) -> None:
    path.write_text(json.dumps(values, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def parent(only: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="djq2-fixture-") as tmp:
        work = Path(tmp)
        results = {}
        if only in (None, "sqlite"):
            db_path = HERE / SQLITE_NAME
            db_path.unlink(missing_ok=True)
            results["sqlite"] = run_child(
                "sqlite", work / "sqlite.json", ["--sqlite", str(db_path)]
            )
            write_json(HERE / EXPECTED_NAME, results["sqlite"])
        if only in (None, "postgres"):
            results["postgres"] = make_postgres(work)
            expected_path = HERE / EXPECTED_NAME
            if not expected_path.exists():
                write_json(expected_path, results["postgres"])
            elif json.loads(expected_path.read_text()) == results["postgres"]:
                (HERE / EXPECTED_PG_NAME).unlink(missing_ok=True)
                print("PostgreSQL rows are identical to the SQLite rows: one expected.json.")
            else:
                write_json(HERE / EXPECTED_PG_NAME, results["postgres"])
                print(f"PostgreSQL rows differ from the SQLite rows: see {EXPECTED_PG_NAME}.")
    print(f"Wrote fixtures to {HERE}")


# --------------------------------------------------------------------------------------
# The child: configures Django with Django-Q2, migrates, writes rows, dumps them.


class FakeClock:
    """Stands in for ``django.utils.timezone.now``; moved by hand."""

    def __init__(self) -> None:
        self.now = MIGRATED_AT

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, when: dt.datetime) -> None:
        self.now = when


CLOCK = FakeClock()


def configure(backend: str, sqlite_path: str | None) -> None:
    import django
    from django.conf import settings

    if backend == "sqlite":
        database = {"ENGINE": "django.db.backends.sqlite3", "NAME": sqlite_path}
    else:
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ["TASKQ_PG_HOST"],
            "PORT": os.environ["TASKQ_PG_PORT"],
            "USER": os.environ["TASKQ_PG_USER"],
            "PASSWORD": os.environ.get("TASKQ_PG_PASSWORD", ""),
            "NAME": os.environ["TASKQ_PG_NAME"],
        }
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_q"],
        DATABASES={"default": database},
        SECRET_KEY=SECRET_KEY,
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        Q_CLUSTER={"name": CLUSTER_NAME, "orm": "default", "sync": False},
    )
    django.setup()


def make_deterministic() -> None:
    """Fake clock for every ``timezone.now()`` and signing timestamp; fixed task ids."""
    import django_q.tasks
    from django.core import signing
    from django.utils import timezone
    from django_q.humanhash import humanize
    from django_q.signals import pre_execute

    timezone.now = CLOCK
    signing.TimestampSigner.timestamp = lambda self: signing.b62_encode(int(CLOCK().timestamp()))

    ids = random.Random(20240501)

    def fixed_uuid():
        digest = uuid.UUID(int=ids.getrandbits(128), version=4).hex
        return humanize(digest), digest

    django_q.tasks.uuid = fixed_uuid

    def task_takes_a_while(sender, func, task, **kwargs):
        CLOCK.set(CLOCK() + DURATION)

    pre_execute.connect(task_takes_a_while, weak=False, dispatch_uid="compat-fixture-clock")


def migrate() -> None:
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    call_command("migrate", verbosity=0, interactive=False)
    # Fixed, distinct ``applied`` times, in the order the migrations ran.
    Migration = MigrationRecorder(connection).Migration
    for position, record in enumerate(Migration.objects.order_by("id")):
        Migration.objects.filter(id=record.id).update(
            applied=MIGRATED_AT + dt.timedelta(milliseconds=10 * position)
        )


def deliver_once(broker) -> None:
    """What a cluster does with one queued task: pusher, worker, monitor (in process)."""
    from multiprocessing import Value

    from django_q.monitor import monitor
    from django_q.queues import Queue
    from django_q.signing import SignedPackage
    from django_q.worker import worker

    ((ack_id, payload),) = broker.dequeue()
    task = SignedPackage.loads(payload)
    task["ack_id"] = ack_id
    task_queue, result_queue = Queue(), Queue()
    task_queue.put(task)
    task_queue.put("STOP")
    worker(task_queue, result_queue, Value("f", -1))
    result_queue.put("STOP")
    monitor(result_queue, broker)
    for queue in (task_queue, result_queue):
        queue.close()
        queue.join_thread()


def write_rows() -> None:
    from django_q.brokers import get_broker
    from django_q.models import Schedule
    from django_q.scheduler import scheduler
    from django_q.tasks import async_task, schedule

    broker = get_broker()

    # Finished tasks, run in sync mode: saved as the monitor saves them.
    CLOCK.set(at(9, 0, 0, 250000))
    async_task("math.hypot", 3, 4, group="g1", sync=True)
    CLOCK.set(at(9, 1))
    async_task("datetime.timedelta", days=1, hours=2, task_name="custom-name", sync=True)

    # A failure, delivered twice through the ORM broker (lease = Conf.RETRY = 60 s).
    CLOCK.set(at(9, 2, 0, 500000))
    async_task("math.sqrt", -1, group="g1")
    CLOCK.set(at(9, 2, 1))
    deliver_once(broker)
    CLOCK.set(at(9, 3, 30))
    deliver_once(broker)

    # Queued tasks.
    CLOCK.set(at(9, 5))
    async_task("math.pow", 2, 10)
    CLOCK.set(at(9, 5, 10, 123456))
    async_task("builtins.round", 3.14159, ndigits=2, group="g2", hook="math.isfinite", timeout=30)

    # Schedules.
    CLOCK.set(at(9, 6))
    schedule(
        "math.copysign",
        2,
        -1,
        name="nightly",
        hook="math.fabs",
        schedule_type=Schedule.DAILY,
        repeats=-1,
        next_run=at(2, 0),
    )
    schedule("math.floor", 7.5, name="morning", schedule_type=Schedule.CRON, cron="0 8 * * *")
    schedule(
        "reports.tasks.build_report",
        "eu",
        name="report-once",
        schedule_type=Schedule.ONCE,
        next_run=at(6, 30, day=2),
        intended_date_kwarg="report_date",
        q_options={"timeout": 30, "group": "reports"},
    )
    schedule(
        "math.fabs",
        -3,
        name="every-15",
        hook="math.isfinite",
        schedule_type=Schedule.MINUTES,
        minutes=15,
        repeats=5,
        cluster="priority",
        next_run=at(9, 20),
    )
    Schedule.objects.create(
        func="math.pow",
        args="2, 8",
        kwargs=None,
        schedule_type=Schedule.MONTHLY,
        next_run=dt.datetime(2024, 6, 1, tzinfo=UTC),
    )

    # The scheduler runs the one schedule that is due ("nightly").
    CLOCK.set(at(9, 10))
    scheduler(broker)

    # A task for another cluster's queue.
    CLOCK.set(at(9, 12))
    async_task("math.fabs", -1, cluster="priority")


def child(backend: str, sqlite_path: str | None, json_out: str) -> None:
    sys.path.insert(0, str(HERE))
    configure(backend, sqlite_path)
    make_deterministic()
    migrate()
    write_rows()

    from django.db import connection
    from django_q.models import Failure, OrmQ, Schedule, Success, Task
    from rowdump import dump_all

    values = dump_all(
        Task=Task,
        Success=Success,
        Failure=Failure,
        Schedule=Schedule,
        OrmQ=OrmQ,
        connection=connection,
    )
    connection.close()
    if backend == "sqlite":
        import sqlite3

        with sqlite3.connect(sqlite_path) as db:
            db.execute("VACUUM")
    write_json(Path(json_out), values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="make one fixture only")
    parser.add_argument("--child", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)
    parser.add_argument("--sqlite", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.sqlite, args.json)
    else:
        if shutil.which("runuser") is None and os.geteuid() == 0 and args.only != "sqlite":
            sys.exit("runuser is needed to run PostgreSQL as root")
        parent(args.only)


if __name__ == "__main__":
    main()
