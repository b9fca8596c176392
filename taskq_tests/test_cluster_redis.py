"""The cluster on the Redis broker: its roles in this process, then real ``qcluster``
subprocesses (RELIABILITY.md cases, 14 above all). Results go to the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from django.core import signing as django_signing

from taskq import signing
from taskq.brokers import get_broker
from taskq.cluster.monitor import Monitor
from taskq.cluster.pusher import Pusher
from taskq.cluster.state import Shared
from taskq.cluster.worker import Worker
from taskq.conf import get_config, replace
from taskq.models import Cluster, Failure, Success, Task
from taskq.tasks import (
    async_chain,
    async_iter,
    async_task,
    count_group,
    delete_cached,
    delete_group,
    fetch,
    result,
    result_group,
)
from taskq_tests import clusters, redisserver
from taskq_tests.clusters import read_ledger, starts, wait_until

redis = pytest.importorskip("redis")

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


@pytest.fixture(autouse=True)
def redis_url(settings) -> str:
    url = redisserver.url_or_skip()
    redisserver.delete_keys(url)
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": url}
    return url


def empty(broker=None) -> bool:
    broker = broker or get_broker()
    return broker.queue_size() == 0 and broker.lock_size() == 0


# The roles in this process ------------------------------------------------------------


def run_roles(**changes) -> None:
    """Pusher, one Worker and the Monitor on the Redis broker until the queue is empty."""
    config = replace(get_config(), poll=0.01, **changes)
    shared = Shared.create(config.workers, config.prefetch)
    pusher = Pusher(config, get_broker(config=config), shared, "cluster-a")
    worker = Worker(config, shared, shared.slots[0], config.queue_key)
    monitor = Monitor(config, get_broker(config=config), shared)
    for _ in range(100):
        pusher.step()
        while worker.step(wait=0.05):
            pass
        monitor.step(wait=0.05)
        if empty(pusher.broker) and shared.permits.get_value() == config.prefetch:
            return
    raise AssertionError("the roles did not empty the queue")


def test_results_go_to_the_database_and_the_task_leaves_redis() -> None:
    task_id = async_task("taskq_tests.jobs.add", 2, 3)
    run_roles()
    assert Success.objects.get(id=task_id).result == 5
    assert empty()


def test_cached_results_are_stored_in_the_cache_not_the_database() -> None:
    one = async_task("taskq_tests.jobs.add", 1, 2, cached=True, group="g")
    two = async_task("taskq_tests.jobs.add", 3, 4, cached=60, group="g")
    bad = async_task("taskq_tests.jobs.fail", "no", cached=True, group="g")
    run_roles()
    assert Task.objects.count() == 0
    assert result(one, cached=True) == 3
    assert fetch(two, cached=True).result == 7
    assert "no" in fetch(bad, cached=True).result
    assert sorted(result_group("g", cached=True)) == [3, 7]
    assert count_group("g", cached=True) == 3
    assert count_group("g", failures=True, cached=True) == 1
    assert delete_cached(one) is True
    assert result(one, cached=True) is None
    assert delete_group("g", tasks=True, cached=True) == 3
    assert result(two, cached=True) is None


@pytest.mark.parametrize("cached", [False, True])
def test_async_iter_collates_in_input_order(cached) -> None:
    iter_id = async_iter("taskq_tests.jobs.add", [(i, i) for i in range(6)], cached=cached)
    run_roles()
    assert result(iter_id, cached=cached) == [0, 2, 4, 6, 8, 10]


def test_chains_run_their_links_in_order() -> None:
    group = async_chain([("taskq_tests.jobs.add", (1, 2)), ("taskq_tests.jobs.add", (3, 4))])
    run_roles()
    assert sorted(result_group(group)) == [3, 7]


def test_a_failing_task_is_delivered_max_attempts_times() -> None:
    task_id = async_task("taskq_tests.jobs.fail", "again", q_options={"max_attempts": 3})
    run_roles()
    assert Failure.objects.get(id=task_id).attempt_count == 3
    assert empty()


def test_a_tampered_package_is_recorded_as_a_failure_and_never_run(redis_url) -> None:
    async_task("taskq_tests.jobs.add", 1, 1)
    client = redis.Redis.from_url(redis_url)
    (key,) = client.keys("taskq:tests:t:*")
    client.hset(key, "payload", client.hget(key, "payload")[:-3] + b"AAA")
    client.close()
    run_roles()
    assert "Package refused, never run" in Failure.objects.get().result
    assert Success.objects.count() == 0
    assert empty()


# Real clusters ------------------------------------------------------------------------

cluster_test = pytest.mark.cluster


def command(*args: str, **q_cluster) -> subprocess.CompletedProcess[str]:
    """A management command in a process of its own, configured like the clusters."""
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        env=clusters.cluster_env(**q_cluster),
        cwd=clusters.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def start(redis_url: str, *args: str, **q_cluster):
    return clusters.start(*args, redis=redis_url, **q_cluster)


@cluster_test
def test_run_once_processes_everything_and_exits_zero(redis_url) -> None:
    ids = [async_task("taskq_tests.jobs.add", i, 1) for i in range(30)]
    failing = async_task("taskq_tests.jobs.fail", "bad")
    group = async_chain([("taskq_tests.jobs.add", (1, 2)), ("taskq_tests.jobs.add", (3, 4))])
    iter_id = async_iter("taskq_tests.jobs.add", [(1, 1), (2, 2), (3, 3)])
    done = clusters.run_once(redis=redis_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [result(i) for i in ids] == [i + 1 for i in range(30)]
    assert Failure.objects.get(id=failing).attempt_count == 1
    assert sorted(Task.objects.filter(group=group).values_list("result", flat=True)) == [3, 7]
    assert result(iter_id) == [2, 4, 6]
    assert empty()
    assert get_broker().clusters() == []  # a stopped cluster removes its status


@cluster_test
def test_cluster_status_lives_in_redis_not_the_database(redis_url) -> None:
    cluster = start(redis_url, workers=2)
    try:

        def full_pool():
            rows = get_broker().clusters()
            return rows and sum(1 for w in rows[0]["workers"] if w["pid"]) == 2 and rows[0]

        row = wait_until(full_pool, 30, "the cluster's status in Redis")
        assert row["pid"] == cluster.pid
        assert row["state"] == "running"
        assert row["age"] < 5
        assert Cluster.objects.count() == 0
        info = command("qinfo", redis=redis_url)
        assert info.returncode == 0, info.stderr
        clusters_line = next(x for x in info.stdout.splitlines() if x.startswith("Clusters"))
        assert clusters_line.split()[:3] == ["Clusters", "1", "running"], info.stdout
        assert "Redis" in info.stdout
        assert command("qinfo", "--ids", redis=redis_url).stdout.split() == [row["id"]]
        monitor = command("qmonitor", "--run-once", redis=redis_url)
        assert monitor.returncode == 0, monitor.stderr
        assert row["id"] in monitor.stdout
    finally:
        out = clusters.stop(cluster)
    assert cluster.returncode == 0, out
    assert get_broker().clusters() == []


@cluster_test
def test_an_idle_cluster_wakes_at_once_when_a_task_is_enqueued(redis_url) -> None:
    cluster = start(redis_url, workers=1, poll=5)
    try:
        assert result(async_task("taskq_tests.jobs.add", 0, 0), wait=30_000) == 0
        latencies = []
        for i in range(3):
            time.sleep(3.0)  # idle: a sleeping pusher would now pause for 2.56 s
            began = time.monotonic()
            assert result(async_task("taskq_tests.jobs.add", i, 1), wait=10_000) == i + 1
            latencies.append(time.monotonic() - began)
    finally:
        out = clusters.stop(cluster)
    assert max(latencies) < 0.3, (latencies, out)  # a pusher that slept would miss this


@cluster_test
def test_a_task_longer_than_retry_runs_once_while_its_cluster_lives(redis_url, tmp_path) -> None:
    path = tmp_path / "ledger"
    task_id = async_task("taskq_tests.jobs.ledger", str(path), "long", 4.0)
    cluster = start(redis_url, retry=1.5, timeout=None, heartbeat=0.3)
    try:
        wait_until(lambda: Success.objects.filter(id=task_id).exists(), 30, "the long task")
    finally:
        out = clusters.stop(cluster)
    assert starts(path, "long") == 1, out
    assert cluster.returncode == 0, out


@cluster_test
def test_sigkill_of_a_worker_mid_task_is_retried_then_failed(redis_url, tmp_path) -> None:
    path = tmp_path / "ledger"
    doomed = async_task("taskq_tests.jobs.ledger_kill_self", str(path), "doomed")
    cluster = start(redis_url, max_attempts=2, workers=2)
    try:
        failure = wait_until(lambda: Failure.objects.filter(id=doomed).first(), 30, "failure row")
        assert failure.attempt_count == 2
        assert "Worker died" in failure.result
        assert result(async_task("taskq_tests.jobs.add", 20, 22), wait=20_000) == 42

        def full_pool() -> bool:
            rows = get_broker().clusters()
            return bool(rows) and sum(1 for w in rows[0]["workers"] if w["pid"]) == 2

        wait_until(full_pool, 20, "the pool back at 2 workers")
    finally:
        out = clusters.stop(cluster)
    assert starts(path, "doomed") == 2, out
    assert empty()


@cluster_test
def test_sigkill_of_whole_clusters_loses_nothing(redis_url, tmp_path) -> None:
    path = tmp_path / "ledger"
    ids = [async_task("taskq_tests.jobs.ledger", str(path), f"t{i}", 0.3) for i in range(30)]
    options = {"retry": 2, "heartbeat": 0.3, "max_attempts": 4, "timeout": None}
    for needed in (4, 12):  # kill twice, each time with tasks running
        doomed = start(redis_url, workers=2, **options)
        try:
            wait_until(lambda n=needed: len(read_ledger(path)) >= n, 30, "tasks to start")
        finally:
            clusters.kill_group(doomed)
    last = start(redis_url, workers=4, **options)
    try:
        wait_until(lambda: Success.objects.filter(id__in=ids).count() == len(ids), 60, "all")
    finally:
        out = clusters.stop(last)
    assert empty(), out
    ended = {tag for kind, tag, _ in read_ledger(path) if kind == "end"}
    assert ended == {f"t{i}" for i in range(30)}


@cluster_test
def test_sigterm_finishes_running_tasks_and_releases_the_rest(redis_url, tmp_path) -> None:
    path = tmp_path / "ledger"
    for i in range(60):
        async_task("taskq_tests.jobs.ledger", str(path), f"t{i}", 1.5)
    cluster = start(redis_url, workers=4, timeout=10, retry=20)
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
    assert broker.clusters() == []


@cluster_test
def test_a_second_signal_stops_at_once(redis_url, tmp_path) -> None:
    path = tmp_path / "ledger"
    async_task("taskq_tests.jobs.ledger", str(path), "slow", 30)
    cluster = start(redis_url, workers=1, timeout=60, retry=90)
    wait_until(lambda: starts(path, "slow") == 1, 30, "the slow task")
    cluster.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    out = clusters.stop(cluster, signal.SIGINT, timeout=10)
    assert cluster.returncode != 0, out
    assert get_broker().lock_size() == 1  # comes back after retry, via the heartbeat


@cluster_test
def test_a_paused_clusters_late_result_is_rejected(redis_url, tmp_path) -> None:
    path = tmp_path / "ledger"
    task_id = async_task("taskq_tests.jobs.ledger", str(path), "paused", 3.0)
    options = {"retry": 1.5, "heartbeat": 0.3, "max_attempts": 3, "timeout": None}
    paused = start(redis_url, workers=1, **options)
    other = None
    try:
        wait_until(lambda: starts(path, "paused") == 1, 30, "the first start")
        os.killpg(paused.pid, signal.SIGSTOP)
        other = start(redis_url, workers=1, **options)
        wait_until(lambda: Success.objects.filter(id=task_id).exists(), 30, "the rerun")
        os.killpg(paused.pid, signal.SIGCONT)
        wait_until(lambda: "late result rejected" in clusters.output(paused), 30, "rejection")
    finally:
        os.killpg(paused.pid, signal.SIGCONT)
        out = clusters.stop(paused)
        if other is not None:
            out += clusters.stop(other)
    assert starts(path, "paused") == 2, out
    assert Task.objects.filter(id=task_id).count() == 1
    assert Success.objects.get(id=task_id).attempt_count == 2
    assert empty()


@cluster_test
def test_tampered_and_foreign_packages_are_recorded_and_never_run(redis_url, tmp_path) -> None:
    path = tmp_path / "ledger"
    async_task("taskq_tests.jobs.ledger", str(path), "tampered")
    client = redis.Redis.from_url(redis_url)
    (key,) = client.keys("taskq:tests:t:*")
    client.hset(key, "payload", client.hget(key, "payload")[:-3] + b"AAA")
    client.close()
    foreign = django_signing.dumps(
        {"id": "f" * 32, "name": "foreign", "func": "taskq_tests.jobs.ledger", "args": ()},
        key="some-other-secret",
        salt="tests",
        serializer=signing.PickleSerializer,
    )
    get_broker().enqueue(foreign)
    done = clusters.run_once(redis=redis_url)
    assert done.returncode == 0, done.stdout + done.stderr
    failures = list(Failure.objects.all())
    assert len(failures) == 2
    assert all("Package refused, never run" in f.result for f in failures)
    assert read_ledger(path) == []
    assert empty()


@cluster_test
def test_cluster_option_routes_tasks_to_that_cluster_only(redis_url) -> None:
    mine = async_task("taskq_tests.jobs.add", 1, 1, cluster="special")
    other = async_task("taskq_tests.jobs.add", 2, 2)
    done = clusters.run_once("--cluster-name", "special", redis=redis_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert result(mine) == 2
    assert result(other) is None
    assert get_broker().queue_size() == 1
    assert empty(get_broker("special"))


@cluster_test
def test_two_clusters_on_one_queue_run_each_task_exactly_once(redis_url, tmp_path) -> None:
    path = tmp_path / "ledger"
    for i in range(400):
        async_task("taskq_tests.jobs.ledger", str(path), f"t{i}")
    a = start(redis_url, workers=2, bulk=10, save_limit=0)
    b = start(redis_url, workers=2, bulk=10, save_limit=0)
    try:
        wait_until(lambda: Success.objects.count() == 400, 120, "400 results")
    finally:
        clusters.stop(a)
        clusters.stop(b)
    tags = [tag for kind, tag, _ in read_ledger(path) if kind == "start"]
    assert len(tags) == 400
    assert len(set(tags)) == 400
    assert empty()


@cluster_test
def test_the_cluster_resumes_after_a_redis_outage(settings) -> None:
    server = redisserver.RedisServer(persist=True).start()
    cluster = None
    try:
        settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": server.url}
        before = [async_task("taskq_tests.jobs.sleep", 1.0) for _ in range(4)]
        cluster = start(server.url, workers=2, retry=60, heartbeat=0.3)
        wait_until(lambda: get_broker().lock_size() > 0, 30, "claimed tasks")
        with server.down():
            with pytest.raises(redis.ConnectionError):
                async_task("taskq_tests.jobs.add", 1, 1)  # never reports success
            time.sleep(2.0)
        after = [async_task("taskq_tests.jobs.add", i, 1) for i in range(5)]
        wait_until(lambda: Success.objects.filter(id__in=before + after).count() == 9, 60, "all")
        assert cluster.poll() is None
    finally:
        out = clusters.stop(cluster) if cluster is not None else ""
        server.stop()
    assert [result(i) for i in after] == [i + 1 for i in range(5)], out
    assert Task.objects.count() == 9
