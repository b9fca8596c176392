"""A database written by real Django-Q2 1.11.1 becomes a taskq database with ``migrate``.

The fixtures in ``taskq_tests/compat/`` were produced by ``make_fixture.py`` with
Django-Q2 from PyPI: a finished task, a failure, schedules and queued tasks (see its
docstring). For each database (SQLite always; PostgreSQL when ``TASKQ_TEST_DB`` is
``postgres``) the test copies the fixture, runs taskq's ``migrate`` on it and reads
every row back through taskq's models, comparing with ``expected.json`` (the values
Django-Q2's own models read).

``sqlite-0018`` is the same SQLite database without the ``django_migrations`` row of
Django-Q2's migration 0019, which changes no column (only help texts and verbose
names; ``sqlmigrate`` prints no SQL for it): exactly what a database last migrated by
Django-Q2 releases before 1.11 (0018 dates from March 2024) looks like. Those users
must be able to switch too.

Everything runs in subprocesses with ``taskq_tests.compat.settings``, so the test
database of pytest-django is left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COMPAT = REPO / "taskq_tests" / "compat"
SQLITE_FIXTURE = COMPAT / "djangoq2_1_11_1.sqlite3"
PG_FIXTURE = COMPAT / "djangoq2_1_11_1_postgres.sql"
SETTINGS = "taskq_tests.compat.settings"
TIMEOUT = 300

DJANGO_Q2_MIGRATIONS = [
    "0001_initial",
    "0002_auto_20150630_1624",
    "0003_auto_20150708_1326",
    "0004_auto_20150710_1043",
    "0005_auto_20150718_1506",
    "0006_auto_20150805_1817",
    "0007_ormq",
    "0008_auto_20160224_1026",
    "0009_auto_20171009_0915",
    "0010_auto_20200610_0856",
    "0011_auto_20200628_1055",
    "0012_auto_20200702_1608",
    "0013_task_attempt_count",
    "0014_schedule_cluster",
    "0015_alter_schedule_schedule_type",
    "0016_schedule_intended_date_kwarg",
    "0017_task_cluster_alter",
    "0018_task_success_index",
    "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more",
]


def expected_for(backend: str) -> dict:
    specific = COMPAT / f"expected_{backend}.json"
    path = specific if specific.exists() else COMPAT / "expected.json"
    return json.loads(path.read_text())


def compat_env(database_env: dict[str, str]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("TASKQ_COMPAT_SQLITE", "TASKQ_COMPAT_PG_NAME", "Q_CLUSTER_NAME")
    }
    env.update(database_env)
    env["DJANGO_SETTINGS_MODULE"] = SETTINGS
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_python(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def describe(proc: subprocess.CompletedProcess) -> str:
    command = " ".join(proc.args[1:])
    return (
        f"`{command}` exited with {proc.returncode}\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )


def migrate_and_read(env: dict[str, str], workdir: Path) -> dict:
    """``migrate``, ``migrate --check``, ``showmigrations django_q``, then read_rows."""
    migrate = run_python(env, "-m", "django", "migrate", "--noinput", "-v", "1")
    if migrate.returncode != 0:
        pytest.fail(f"migrate failed on the Django-Q2 database:\n{describe(migrate)}")
    check = run_python(env, "-m", "django", "migrate", "--check")
    show = run_python(env, "-m", "django", "showmigrations", "django_q")
    output = workdir / "read_rows.json"
    reader = run_python(env, "-m", "taskq_tests.compat.read_rows", str(output))
    if reader.returncode != 0 or not output.exists():
        pytest.fail(f"reading the migrated rows through taskq failed:\n{describe(reader)}")
    return {"migrate": migrate, "check": check, "show": show, **json.loads(output.read_text())}


def postgres_connect(dbname: str):
    psycopg = pytest.importorskip("psycopg")
    return psycopg.connect(
        host=os.environ.get("TASKQ_PG_HOST", "127.0.0.1"),
        port=os.environ.get("TASKQ_PG_PORT", "5432"),
        user=os.environ.get("TASKQ_PG_USER", "postgres"),
        password=os.environ.get("TASKQ_PG_PASSWORD", ""),
        dbname=dbname,
        autocommit=True,
    )


def migrated_sqlite(workdir: Path) -> dict:
    database = workdir / "djangoq2.sqlite3"
    shutil.copyfile(SQLITE_FIXTURE, database)
    return migrate_and_read(compat_env({"TASKQ_COMPAT_SQLITE": str(database)}), workdir)


def migrated_sqlite_0018(workdir: Path) -> dict:
    database = workdir / "djangoq2_at_0018.sqlite3"
    shutil.copyfile(SQLITE_FIXTURE, database)
    with contextlib.closing(sqlite3.connect(database)) as conn, conn:
        deleted = conn.execute(
            "DELETE FROM django_migrations WHERE app = 'django_q' AND name = ?",
            (DJANGO_Q2_MIGRATIONS[-1],),
        ).rowcount
    assert deleted == 1
    return migrate_and_read(compat_env({"TASKQ_COMPAT_SQLITE": str(database)}), workdir)


def migrated_postgres(workdir: Path) -> dict:
    if os.environ.get("TASKQ_TEST_DB", "sqlite") != "postgres":
        pytest.skip("PostgreSQL tests run with TASKQ_TEST_DB=postgres")
    maintenance_db = os.environ.get("TASKQ_PG_NAME", "postgres")
    name = f"taskq_compat_{uuid.uuid4().hex[:12]}"
    with postgres_connect(maintenance_db) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with postgres_connect(name) as conn:
            # A plain dump without COPY blocks or psql meta-commands: one simple query.
            conn.execute(PG_FIXTURE.read_text())
        return migrate_and_read(compat_env({"TASKQ_COMPAT_PG_NAME": name}), workdir)
    finally:
        with postgres_connect(maintenance_db) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        "sqlite-0018",  # a Django-Q2 <= 1.10 database: its last migration is 0018
        pytest.param("postgres", marks=pytest.mark.postgres),
    ],
)
def migrated(request, tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp(f"compat-{request.param}")
    make = {
        "sqlite": migrated_sqlite,
        "sqlite-0018": migrated_sqlite_0018,
        "postgres": migrated_postgres,
    }[request.param]
    result = make(workdir)
    result["expected"] = expected_for("postgres" if request.param == "postgres" else "sqlite")
    if request.param == "sqlite-0018":
        result["expected"]["django_migrations"] = result["expected"]["django_migrations"][:-1]
    return result


def test_migrate_leaves_no_migration_unapplied(migrated):
    assert migrated["check"].returncode == 0, describe(migrated["check"])
    show = migrated["show"]
    assert show.returncode == 0, describe(show)
    listed = [line.strip() for line in show.stdout.splitlines() if line.strip().startswith("[")]
    assert listed, describe(show)
    assert all(line.startswith("[X]") for line in listed), show.stdout


def test_django_q2_migration_records_are_kept(migrated):
    expected = migrated["expected"]["django_migrations"]
    assert [name for name, _ in expected] == DJANGO_Q2_MIGRATIONS[: len(expected)]
    actual = dict(migrated["rows"]["django_migrations"])
    for name, applied in expected:
        assert actual.get(name) == applied, f"django_migrations row django_q.{name}"


def test_tasks_read_back_with_the_same_values(migrated):
    expected = migrated["expected"]["tasks"]
    actual = migrated["rows"]["tasks"]
    assert [t["id"] for t in actual] == [t["id"] for t in expected]
    for want, got in zip(expected, actual, strict=True):
        assert got == want, f"task {want['id']} ({want['name']})"


def test_success_and_failure_proxies(migrated):
    assert migrated["rows"]["successes"] == migrated["expected"]["successes"]
    assert migrated["rows"]["failures"] == migrated["expected"]["failures"]


def test_schedules_read_back_with_the_same_values(migrated):
    expected = migrated["expected"]["schedules"]
    actual = migrated["rows"]["schedules"]
    assert [s["id"] for s in actual] == [s["id"] for s in expected]
    for want, got in zip(expected, actual, strict=True):
        assert got == want, f"schedule {want['id']} ({want['name']})"


def test_queued_django_q2_tasks_decode_with_the_same_values(migrated):
    expected = migrated["expected"]["ormq"]
    # read_rows.py adds one queued task only after reading these.
    actual = migrated["rows"]["ormq"]
    assert [q["id"] for q in actual] == [q["id"] for q in expected]
    for want, got in zip(expected, actual, strict=True):
        assert not got["task"]["id"].startswith("'*"), (
            f"queue row {want['id']} did not decode: {got['task']}"
        )
        assert got == want, f"queue row {want['id']}"


def test_results_and_groups_through_the_api(migrated):
    checks = migrated["checks"]
    expected = migrated["expected"]["tasks"]
    for name in (
        "result_by_id",
        "result_by_name",
        "fetch_by_id",
        "count_group",
        "count_group_failures",
    ):
        assert "error" not in checks[name], checks[name].get("error")
    successes = [t for t in expected if t["success"]]
    assert {t["id"]: checks["result_by_id"]["value"][t["id"]] for t in successes} == {
        t["id"]: t["result"]["repr"] for t in successes
    }
    assert {t["name"]: checks["result_by_name"]["value"][t["name"]] for t in successes} == {
        t["name"]: t["result"]["repr"] for t in successes
    }
    assert checks["fetch_by_id"]["value"] == {t["id"]: repr(t["name"]) for t in expected}
    groups = sorted({t["group"] for t in expected if t["group"]})
    assert checks["count_group"]["value"] == {
        g: sum(1 for t in expected if t["group"] == g) for g in groups
    }
    assert checks["count_group_failures"]["value"] == {
        g: sum(1 for t in expected if t["group"] == g and not t["success"]) for g in groups
    }


def test_taskq_enqueues_into_the_migrated_database(migrated):
    fresh = migrated["checks"]["fresh_enqueue"]
    assert "error" not in fresh, fresh.get("error")
    value = fresh["value"]
    assert len(value["task_id"]) == 32
    assert value["key"] == "compat"
    assert value["func()"] == "'math.floor'"
    assert value["args()"] == "(2.5,)"
    assert value["kwargs()"] == "{}"
    assert value["rows_after"] == len(migrated["expected"]["ormq"]) + 1
    assert value["queue_row_id"] > max(q["id"] for q in migrated["expected"]["ormq"])


def test_queue_size_counts_django_q2_tasks(migrated):
    size = migrated["checks"]["queue_size"]
    assert "error" not in size, size.get("error")
    # Queue "compat" holds Django-Q2's rows 2-4 (ready), row 1 (a failed task whose
    # lease ran out long ago: taskq may count it or not) and the fresh task.
    ready = [q for q in migrated["expected"]["ormq"] if q["key"] == "compat"]
    assert len(ready) <= size["value"] <= len(ready) + 1
