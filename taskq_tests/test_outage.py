"""RELIABILITY 9: the database goes away for 5 s, then for 60 s, under a running cluster.

The test runs a PostgreSQL server of its own (the suite's server is shared by every
test, and this one stops it), a real ``qcluster`` against it, and an enqueuing process
during each outage. What must hold: enqueue raises while the database is down (never a
silent success); the cluster resumes by itself within 10 s of the database's return;
every task runs once and has one result; the queue ends empty.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import clusters
from .clusters import ROOT, read_ledger, wait_until
from .pgserver import PostgresServer

pytestmark = pytest.mark.postgres

TASKS = 120
ENQUEUE = """
import sys
import django
django.setup()
from taskq.tasks import async_task
for i in range(int(sys.argv[2]), int(sys.argv[3])):
    async_task("taskq_tests.jobs.ledger", sys.argv[1], f"t{i}", 0.05)
"""


def environment(server: PostgresServer) -> dict[str, str]:
    env = clusters.cluster_env(workers=2, save_limit=0)
    env.update(server.env)
    return env


def enqueue(
    env: dict[str, str], ledger: Path, start: int, stop: int
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", ENQUEUE, str(ledger), str(start), str(stop)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def count(server: PostgresServer, sql: str) -> int:
    """A count read straight from the server; -1 while it is down."""
    import psycopg

    try:
        with psycopg.connect(
            host=server.host,
            port=server.port,
            user=server.user,
            dbname=server.name,
            connect_timeout=2,
        ) as conn:
            return conn.execute(sql).fetchone()[0]
    except psycopg.OperationalError:
        return -1


def successes(server: PostgresServer) -> int:
    return count(server, "SELECT count(*) FROM django_q_task WHERE success")


def queued(server: PostgresServer) -> int:
    return count(server, "SELECT count(*) FROM django_q_ormq")


def outage(server: PostgresServer, env: dict[str, str], ledger: Path, seconds: float) -> None:
    """Take the database away for ``seconds``; the cluster must record a new result
    within 10 s of its return."""
    server.pause()
    refused = enqueue(env, ledger, 10_000, 10_001)  # must not look like it worked
    assert refused.returncode != 0
    assert "OperationalError" in refused.stderr, refused.stderr[-2000:]
    time.sleep(max(0.0, seconds - 1))  # the refused enqueue took about a second
    server.resume()
    before = successes(server)
    wait_until(lambda: successes(server) > before, 10, "a new result within 10 s")


def test_database_restarts_lose_nothing_and_the_cluster_resumes_by_itself(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    server = own_postgres
    env = environment(server)
    migrate = subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v", "0"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    ledger = tmp_path / "ledger"
    done = enqueue(env, ledger, 0, TASKS)
    assert done.returncode == 0, done.stderr[-2000:]
    with (tmp_path / "qcluster.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "qcluster", "-v", "2"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: successes(server) >= 10, 60, "the first results")
        outage(server, env, ledger, 5)
        progress = successes(server)
        wait_until(lambda: successes(server) >= progress + 10, 60, "results after 5 s")
        outage(server, env, ledger, 60)
        wait_until(lambda: successes(server) == TASKS, 120, "every result")
        assert queued(server) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
    full_log = (tmp_path / "qcluster.log").read_text()
    log = full_log[-5000:]
    assert process.returncode == 0, log
    # each loop logs its failure in full once per outage, not on every attempt
    assert full_log.count("Traceback") <= 30, log
    assert "heartbeat failed: working again after" in full_log
    tags = [tag for kind, tag, _ in read_ledger(ledger) if kind == "start"]
    assert sorted(tags) == sorted(f"t{i}" for i in range(TASKS)), log  # each ran once
