"""Real clusters (``qcluster`` subprocesses) against the test database: RELIABILITY.md cases."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from django.core import signing as django_signing
from django.db import connection

from taskq import signing
from taskq.brokers import get_broker
from taskq.models import Cluster, Failure, OrmQ, Success, Task
from taskq.tasks import async_chain, async_iter, async_task, result
from taskq_tests import clusters
from taskq_tests.clusters import read_ledger, starts, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.cluster]


def test_run_once_processes_everything_and_exits_zero() -> None:
    ids = [async_task("taskq_tests.jobs.add", i, 1) for i in range(30)]
    failing = async_task("taskq_tests.jobs.fail", "bad")
    group = async_chain([("taskq_tests.jobs.add", (1, 2)), ("taskq_tests.jobs.add", (3, 4))])
    iter_id = async_iter("taskq_tests.jobs.add", [(1, 1), (2, 2), (3, 3)])
    done = clusters.run_once()
    assert done.returncode == 0, done.stdout + done.stderr
    assert [result(i) for i in ids] == [i + 1 for i in range(30)]
    assert Failure.objects.get(id=failing).attempt_count == 1
    assert sorted(Task.objects.filter(group=group).values_list("result", flat=True)) == [3, 7]
    assert result(iter_id) == [2, 4, 6]
    assert OrmQ.objects.count() == 0
    assert Cluster.objects.count() == 0  # a stopped cluster removes its heartbeat row


def test_a_task_longer_than_retry_runs_once_while_its_cluster_lives(tmp_path) -> None:
    path = tmp_path / "ledger"
    task_id = async_task("taskq_tests.jobs.ledger", str(path), "long", 4.0)
    cluster = clusters.start(retry=1.5, timeout=None, heartbeat=0.3)
    try:
        wait_until(lambda: Success.objects.filter(id=task_id).exists(), 30, "the long task")
    finally:
        out = clusters.stop(cluster)
    assert starts(path, "long") == 1, out
    assert cluster.returncode == 0, out


def test_sigkill_of_a_worker_mid_task_is_retried_then_failed_and_the_pool_recovers(
    tmp_path,
) -> None:
    path = tmp_path / "ledger"
    doomed = async_task("taskq_tests.jobs.ledger_kill_self", str(path), "doomed")
    cluster = clusters.start(max_attempts=2, workers=2)
    try:
        failure = wait_until(lambda: Failure.objects.filter(id=doomed).first(), 30, "failure row")
        assert failure.attempt_count == 2
        assert "Worker died" in failure.result
        after = async_task("taskq_tests.jobs.add", 20, 22)
        assert result(after, wait=20_000) == 42

        def full_pool() -> bool:
            row = Cluster.objects.first()
            return row is not None and sum(1 for w in row.workers if w["pid"]) == 2

        wait_until(full_pool, 20, "the pool back at 2 workers")
    finally:
        out = clusters.stop(cluster)
    assert starts(path, "doomed") == 2, out


def test_sigkill_of_the_whole_cluster_loses_nothing(tmp_path) -> None:
    path = tmp_path / "ledger"
    ids = [async_task("taskq_tests.jobs.ledger", str(path), f"t{i}", 0.3) for i in range(24)]
    first = clusters.start(workers=2, retry=2, heartbeat=0.3, max_attempts=3, timeout=None)
    try:
        wait_until(lambda: len(read_ledger(path)) >= 4, 30, "tasks to start")
    finally:
        clusters.kill_group(first)
    second = clusters.start(workers=4, retry=2, heartbeat=0.3, max_attempts=3, timeout=None)
    try:
        wait_until(lambda: Success.objects.filter(id__in=ids).count() == len(ids), 60, "all tasks")
    finally:
        out = clusters.stop(second)
    assert OrmQ.objects.count() == 0, out
    ended = {tag for kind, tag, _ in read_ledger(path) if kind == "end"}
    assert ended == {f"t{i}" for i in range(24)}


def test_sigterm_finishes_running_tasks_and_releases_the_rest_at_once(tmp_path) -> None:
    path = tmp_path / "ledger"
    for i in range(60):
        async_task("taskq_tests.jobs.ledger", str(path), f"t{i}", 1.5)
    cluster = clusters.start(workers=4, timeout=10, retry=20)
    wait_until(lambda: sum(1 for k, *_ in read_ledger(path) if k == "start") >= 4, 30, "4 running")
    began = time.monotonic()
    out = clusters.stop(cluster, signal.SIGTERM, timeout=20)
    assert cluster.returncode == 0, out
    assert time.monotonic() - began < 10 + 5
    ledger = read_ledger(path)
    started = {tag for kind, tag, _ in ledger if kind == "start"}
    ended = {tag for kind, tag, _ in ledger if kind == "end"}
    assert started == ended  # every running task finished
    assert Success.objects.count() == len(ended)
    broker = get_broker()
    assert broker.lock_size() == 0  # nothing left claimed
    assert broker.ready_size() == 60 - len(ended)  # the rest is claimable at once
    assert not OrmQ.objects.filter(attempt__gt=0).exists()  # and no attempt was spent on it
    assert Cluster.objects.count() == 0


def test_a_second_signal_stops_at_once(tmp_path) -> None:
    path = tmp_path / "ledger"
    async_task("taskq_tests.jobs.ledger", str(path), "slow", 30)
    cluster = clusters.start(workers=1, timeout=60, retry=90)
    wait_until(lambda: starts(path, "slow") == 1, 30, "the slow task")
    cluster.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    out = clusters.stop(cluster, signal.SIGINT, timeout=10)
    assert cluster.returncode != 0, out
    assert get_broker().lock_size() == 1  # comes back after retry, via the heartbeat


def test_tampered_and_foreign_packages_are_recorded_and_never_run(tmp_path, settings) -> None:
    path = tmp_path / "ledger"
    async_task("taskq_tests.jobs.ledger", str(path), "tampered")
    row = OrmQ.objects.get()
    row.payload = row.payload[:-3] + ("AAA" if not row.payload.endswith("AAA") else "BBB")
    row.save()
    foreign = django_signing.dumps(
        {
            "id": "f" * 32,
            "name": "foreign",
            "func": "taskq_tests.jobs.ledger",
            "args": (str(path), "foreign"),
            "kwargs": {},
        },
        key="some-other-secret",
        salt="tests",
        serializer=signing.PickleSerializer,
    )
    get_broker().enqueue(foreign)
    done = clusters.run_once()
    assert done.returncode == 0, done.stdout + done.stderr
    failures = list(Failure.objects.all())
    assert len(failures) == 2
    assert all("Package refused, never run" in f.result for f in failures)
    assert read_ledger(path) == []
    assert OrmQ.objects.count() == 0


def test_packages_signed_with_a_fallback_key_still_run(tmp_path) -> None:
    old = django_signing.dumps(
        {
            "id": "a" * 32,
            "name": "rotated",
            "func": "taskq_tests.jobs.add",
            "args": (1, 2),
            "kwargs": {},
        },
        key="the-old-secret",
        salt="tests",
        serializer=signing.PickleSerializer,
    )
    get_broker().enqueue(old)
    env_done = clusters.run_once(extra_env={"TASKQ_TEST_SECRET_KEY_FALLBACKS": "the-old-secret"})
    assert env_done.returncode == 0, env_done.stdout + env_done.stderr
    assert result("a" * 32) == 3


def test_timeouts_fail_the_task_and_replace_the_worker() -> None:
    soft = async_task("taskq_tests.jobs.sleep", 10, timeout=0.5)
    hard = async_task("taskq_tests.jobs.busy_loop", 10, timeout=0.5)
    ok = async_task("taskq_tests.jobs.add", 1, 1)
    done = clusters.run_once(workers=2, retry=30, timeout=None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "timed out" in Failure.objects.get(id=soft).result
    assert "timed out" in Failure.objects.get(id=hard).result
    assert result(ok) == 2


def test_tasks_that_crash_their_worker_are_recorded() -> None:
    exit_task = async_task("taskq_tests.jobs.hard_exit")
    system_exit = async_task("taskq_tests.jobs.exit_worker")
    fine = [async_task("taskq_tests.jobs.add", i, i) for i in range(5)]
    done = clusters.run_once()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Worker died" in Failure.objects.get(id=exit_task).result
    assert "SystemExit" in Failure.objects.get(id=system_exit).result or Failure.objects.get(
        id=system_exit
    ).result.startswith("3")
    assert [result(i) for i in fine] == [i + i for i in range(5)]


def test_cluster_option_routes_tasks_to_that_cluster_only() -> None:
    mine = async_task("taskq_tests.jobs.add", 1, 1, cluster="special")
    other = async_task("taskq_tests.jobs.add", 2, 2)
    done = clusters.run_once("--cluster-name", "special")
    assert done.returncode == 0, done.stdout + done.stderr
    assert result(mine) == 2
    assert result(other) is None
    assert OrmQ.objects.get().task_ident == other


@pytest.mark.postgres
def test_two_clusters_on_one_queue_run_each_task_exactly_once(tmp_path) -> None:
    path = tmp_path / "ledger"
    for i in range(2000):
        async_task("taskq_tests.jobs.ledger", str(path), f"t{i}")
    a = clusters.start(workers=2, bulk=20, save_limit=0)
    b = clusters.start(workers=2, bulk=20, save_limit=0)
    try:
        wait_until(lambda: Success.objects.count() == 2000, 180, "2000 results")
    finally:
        clusters.stop(a)
        clusters.stop(b)
    tags = [tag for kind, tag, _ in read_ledger(path) if kind == "start"]
    assert len(tags) == 2000
    assert len(set(tags)) == 2000


def test_daemonize_workers_false_lets_a_task_start_child_processes() -> None:
    daemonic = async_task("taskq_tests.jobs.spawn_child")
    done = clusters.run_once()
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "daemonic processes are not allowed to have children"
        in Failure.objects.get(id=daemonic).result
    )
    free = async_task("taskq_tests.jobs.spawn_child")
    done = clusters.run_once(daemonize_workers=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert result(free) == 0


def test_a_stopped_cluster_loses_its_task_to_another_and_its_late_result_is_rejected(
    tmp_path,
) -> None:
    path = tmp_path / "ledger"
    task_id = async_task("taskq_tests.jobs.ledger", str(path), "frozen", 2.0)
    config = {"retry": 1.5, "timeout": None, "heartbeat": 0.3, "max_attempts": 3}
    first = clusters.start(workers=1, **config)
    second = None
    try:
        wait_until(lambda: starts(path, "frozen") == 1, 30, "the task to start")
        os.killpg(first.pid, signal.SIGSTOP)  # the whole cluster freezes, heartbeat too
        second = clusters.start(workers=1, **config)
        wait_until(lambda: Success.objects.filter(id=task_id).exists(), 30, "the rescued run")
        os.killpg(first.pid, signal.SIGCONT)
        wait_until(lambda: Cluster.objects.filter(rejected__gte=1).exists(), 30, "the rejection")
    finally:
        os.killpg(first.pid, signal.SIGCONT)
        out = clusters.stop(first)
        if second is not None:
            out += clusters.stop(second)
    assert starts(path, "frozen") == 2
    assert Task.objects.filter(id=task_id).count() == 1
    assert "late result rejected" in out


def test_signal_storms_never_hang() -> None:
    cluster = clusters.start(workers=2)
    time.sleep(0.2)  # still importing Django: Python raises KeyboardInterrupt, or, when it
    cluster.send_signal(signal.SIGINT)  # lands in an import callback, prints and drops it
    try:
        cluster.wait(timeout=15)
    except subprocess.TimeoutExpired:  # dropped: the cluster runs, and the next signal works
        clusters.stop(cluster, signal.SIGINT, timeout=20)
    busy = clusters.start(workers=2)
    async_task("taskq_tests.jobs.sleep", 2)
    time.sleep(1)
    for _ in range(3):
        busy.send_signal(signal.SIGTERM)
    clusters.stop(busy, signal.SIGTERM, timeout=20)


def test_a_hundred_crashing_tasks_leave_the_cluster_working() -> None:
    crashes = [async_task("taskq_tests.jobs.segfault") for _ in range(40)]
    crashes += [async_task("taskq_tests.jobs.hard_exit") for _ in range(30)]
    crashes += [async_task("taskq_tests.jobs.exit_worker") for _ in range(30)]
    fine = [async_task("taskq_tests.jobs.add", i, 1) for i in range(20)]
    done = clusters.run_once(limit=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert Failure.objects.filter(id__in=crashes).count() == 100
    assert [result(i) for i in fine] == [i + 1 for i in range(20)]


def test_poison_payloads_become_failures_and_healthy_tasks_flow(tmp_path) -> None:
    broker = get_broker()
    package = signing.dumps  # a payload signed correctly that unpickling breaks on
    from taskq_tests.jobs import Unpicklable

    broker.enqueue(package({"id": "b" * 32, "boom": Unpicklable()}, salt="tests"))
    gone = package(
        {
            "id": "c" * 32,
            "name": "gone",
            "func": "taskq_tests.jobs.removed_since",
            "args": (),
            "kwargs": {},
        },
        salt="tests",
    )
    broker.enqueue(gone)
    big = async_task("taskq_tests.jobs.echo", "x" * 5_000_000)  # and a 5 MB result
    huge = async_task("taskq_tests.jobs.size", os.urandom(50 * 1024 * 1024))  # 50 MB
    ok = async_task("taskq_tests.jobs.add", 1, 2)
    done = clusters.run_once()
    assert done.returncode == 0, done.stdout + done.stderr
    reasons = [f.result for f in Failure.objects.all()]
    assert any("cannot be unpickled" in r for r in reasons)
    assert "removed_since" in Failure.objects.get(id="c" * 32).result
    assert len(result(big)["args"][0]) == 5_000_000
    assert result(huge) == 50 * 1024 * 1024
    assert result(ok) == 3
    assert OrmQ.objects.count() == 0


def test_recycling_and_stopping_do_not_wait_for_the_guard_cycle() -> None:
    # one worker that leaves after every task, and a guard cycle far longer than the
    # test: each replacement, and the stop, must happen when the event does
    ids = [async_task("taskq_tests.jobs.add", i, 1) for i in range(4)]
    process = clusters.start(workers=1, recycle=1, guard_cycle=60)
    try:
        wait_until(
            lambda: Success.objects.filter(id__in=ids).count() == 4,
            timeout=30,
            what="4 tasks through 4 generations of workers",
        )
    finally:
        out = clusters.stop(process, timeout=20)
    assert len({t.result for t in Task.objects.filter(id__in=ids)}) == 4, out


def terminate_cluster_connections() -> int:
    """Kill every other session on the test database, as a failover or a proxy would."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.postgres
def test_killed_database_connections_lose_nothing_and_run_nothing_twice(tmp_path) -> None:
    # RELIABILITY 9: connections die mid-claim, mid-ack and mid-heartbeat, again and again
    path = tmp_path / "ledger"
    ids = [async_task("taskq_tests.jobs.ledger", str(path), f"t{i}", 0.01) for i in range(200)]
    process = clusters.start(workers=2, save_limit=0)
    killed = 0
    try:
        wait_until(lambda: Success.objects.exists(), 30, "the first result")
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            killed += terminate_cluster_connections()
            time.sleep(0.1)
        wait_until(
            lambda: Success.objects.filter(id__in=ids).count() == len(ids),
            60,
            "every task after the connections were killed",
        )
    finally:
        out = clusters.stop(process)
    assert killed > 0
    tags = [tag for kind, tag, _ in read_ledger(path) if kind == "start"]
    assert sorted(tags) == sorted(f"t{i}" for i in range(200)), out
    assert OrmQ.objects.count() == 0
