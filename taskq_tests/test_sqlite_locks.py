"""RELIABILITY 10: an SQLite lock storm.

Three processes enqueue, two clusters drain, and another process takes SQLite's write
lock for two seconds at a time, longer than the busy timeout everyone is given here
(one second). Enqueues that time out raise (the enqueuers try again: nothing they were
told was accepted may be lost); the clusters' loops meet "database is locked" on
claims, acknowledgements and heartbeats, and must log, wait and carry on: no process
dies, every accepted task runs once, and both clusters stop cleanly.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest
from django.db import connection

from taskq.dbfeatures import settle_sqlite_json_support
from taskq.models import Cluster, Failure, OrmQ, Success
from taskq.tasks import async_task

from . import clusters
from .clusters import ROOT, read_ledger, wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite only"),
]

BUSY_TIMEOUT = {"TASKQ_SQLITE_TIMEOUT": "1"}
PER_ENQUEUER = 60
ENQUEUER = """
import sys, time
import django
django.setup()
from django.db import OperationalError
from taskq.tasks import async_task
ledger, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
refused = 0
for i in range(count):
    while True:
        try:
            print(async_task("taskq_tests.jobs.ledger", ledger, f"{name}-{i}"), flush=True)
            break
        except OperationalError as exc:  # not accepted: try again
            assert "locked" in str(exc), exc
            refused += 1
            time.sleep(0.05)
    time.sleep(0.01)
print(f"refused {refused}", file=sys.stderr)
"""


def hold_write_lock(database: str, seconds: float, times: int) -> None:
    locker = sqlite3.connect(database, timeout=30, isolation_level=None)
    try:
        for _ in range(times):
            locker.execute("BEGIN EXCLUSIVE")
            time.sleep(seconds)
            locker.execute("COMMIT")
            time.sleep(0.5)
    finally:
        locker.close()


def where_are(accepted: list[str], *running: subprocess.Popen[str]) -> str:
    """What became of the accepted tasks that have no result: their queue rows, the
    clusters' heartbeats and the clusters' logs (for a failure that happens rarely)."""
    done = set(Success.objects.filter(id__in=accepted).values_list("id", flat=True))
    missing = [task_id for task_id in accepted if task_id not in done]
    rows = list(
        OrmQ.objects.filter(task_ident__in=missing).values(
            "id", "task_ident", "owner", "attempt", "lock", "claimed"
        )
    )
    beats = list(Cluster.objects.values("id", "heartbeat"))
    logs = "\n".join(f"--- cluster pid {p.pid}:\n{clusters.output(p)}" for p in running)
    return (
        f"{len(missing)} of {len(accepted)} without a result; queue rows: {rows}\n"
        f"failures: {list(Failure.objects.filter(id__in=missing).values('id', 'result'))}\n"
        f"heartbeats: {beats}\n{logs}"
    )


def test_a_lock_storm_loses_nothing_and_kills_no_loop(tmp_path) -> None:
    ledger = tmp_path / "ledger"
    env = clusters.cluster_env(BUSY_TIMEOUT)
    first = clusters.start(extra_env=BUSY_TIMEOUT, workers=2)
    second = clusters.start(extra_env=BUSY_TIMEOUT, workers=2)
    enqueuers = [
        subprocess.Popen(
            [sys.executable, "-c", ENQUEUER, str(ledger), f"e{n}", str(PER_ENQUEUER)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    logs = ""
    try:
        time.sleep(1)  # the clusters are up and the enqueuers have begun
        hold_write_lock(connection.settings_dict["NAME"], seconds=2, times=3)
        accepted = []
        for enqueuer in enqueuers:
            out, err = enqueuer.communicate(timeout=120)
            assert enqueuer.returncode == 0, err[-3000:]
            accepted += out.split()
        assert len(accepted) == 3 * PER_ENQUEUER
        try:
            wait_until(
                lambda: Success.objects.filter(id__in=accepted).count() == len(accepted),
                90,
                "every accepted task",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{where_are(accepted, first, second)}") from None
    finally:
        for enqueuer in enqueuers:
            if enqueuer.poll() is None:
                enqueuer.kill()
                enqueuer.communicate()
        for process in (first, second):
            logs += clusters.stop(process, timeout=30)
    assert first.returncode == 0, logs
    assert second.returncode == 0, logs
    assert "locked" in logs  # the storm reached the clusters' loops...
    assert "restarting it" not in logs  # ...and none of their processes died of it
    tags = [tag for kind, tag, _ in read_ledger(ledger) if kind == "start"]
    assert sorted(tags) == sorted(f"e{n}-{i}" for n in range(3) for i in range(PER_ENQUEUER))
    assert OrmQ.objects.count() == 0


def test_a_cluster_started_while_the_database_is_locked_starts_and_runs(tmp_path) -> None:
    """A cluster started while another process holds the write lock: its system checks
    must not read the lock as "SQLite does not support JSONFields" (fields.E180), and it
    claims nothing before its first heartbeat is written, which must wait for the lock."""
    ledger = tmp_path / "ledger"
    task_id = async_task("taskq_tests.jobs.ledger", str(ledger), "late")
    locker = sqlite3.connect(connection.settings_dict["NAME"], timeout=30, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    locked = True
    process = clusters.start("--run-once", extra_env={"TASKQ_SQLITE_TIMEOUT": "0.2"})
    try:
        wait_until(
            lambda: "heartbeat failed" in clusters.output(process) or process.poll() is not None,
            60,
            "the cluster's first heartbeat to meet the lock",
        )
        assert process.poll() is None, clusters.output(process)
        assert read_ledger(ledger) == []
        locker.execute("COMMIT")
        locked = False
        process.wait(timeout=60)
    finally:
        if locked:
            locker.execute("COMMIT")
        locker.close()
        logs = clusters.stop(process, timeout=10)
    assert process.returncode == 0, logs
    assert "E180" not in logs
    assert Success.objects.get(id=task_id).result == "late"
    assert [kind for kind, _, _ in read_ledger(ledger)] == ["start", "end"]


def test_json_support_is_found_out_without_the_write_lock() -> None:
    """Django's own probe runs in a transaction, which with IMMEDIATE transactions waits
    for the write lock and reads a timeout as "no JSON"; taskq's takes no lock."""
    features = connection.features
    features.__dict__.pop("supports_json_field", None)
    locker = sqlite3.connect(connection.settings_dict["NAME"], timeout=30, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        settle_sqlite_json_support()  # a probe that needed the lock would say "no"
    finally:
        locker.execute("COMMIT")
        locker.close()
    assert features.__dict__["supports_json_field"] is True
