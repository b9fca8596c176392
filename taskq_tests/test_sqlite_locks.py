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

from taskq.models import OrmQ, Success

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
        wait_until(
            lambda: Success.objects.filter(id__in=accepted).count() == len(accepted),
            90,
            "every accepted task",
        )
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
