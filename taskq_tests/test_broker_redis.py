"""The Redis broker against a real redis-server: claims, fenced acks, rescue, status."""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import (
    invariant,
    run_state_machine_as_test,
)

from taskq.brokers import get_broker
from taskq.brokers.redis import RedisBroker
from taskq.exceptions import ConfigurationError
from taskq.messages import Delivery
from taskq.tasks import async_task
from taskq_tests import redisserver
from taskq_tests.brokermodel import OWNERS, BrokerModel, heartbeat

redis = pytest.importorskip("redis")

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


@pytest.fixture(autouse=True)
def redis_url(settings) -> str:
    url = redisserver.url_or_skip()
    redisserver.delete_keys(url)
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": url}
    return url


@pytest.fixture
def conn(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def enqueue(n: int, **options) -> list[str]:
    return [async_task("taskq_tests.jobs.add", i, 1, **options) for i in range(n)]


def task_ids(conn, deliveries) -> list[str]:
    return [conn.hget(f"taskq:tests:t:{d.ack_id}", "task_id") for d in deliveries]


def server_now(conn) -> float:
    seconds, micros = conn.time()
    return seconds + micros / 1e6


def test_settings_select_the_redis_broker(settings, redis_url) -> None:
    assert isinstance(get_broker(), RedisBroker)
    settings.Q_CLUSTER = {"name": "tests", "redis": {"host": "127.0.0.1", "port": 1}}
    broker = get_broker("other")
    assert isinstance(broker, RedisBroker)
    assert broker.list_key == "other"


@pytest.mark.parametrize(
    "backend", ["django_redis.cache.RedisCache", "django.core.cache.backends.redis.RedisCache"]
)
def test_django_redis_alias_uses_the_caches_connection(settings, redis_url, backend) -> None:
    if backend.startswith("django_redis"):
        pytest.importorskip("django_redis")
    settings.CACHES = {
        **settings.CACHES,
        "redis": {"BACKEND": backend, "LOCATION": redis_url},
        "mem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    settings.Q_CLUSTER = {"name": "tests", "django_redis": "redis"}
    broker = get_broker()
    assert isinstance(broker, RedisBroker)
    broker.enqueue("payload")
    assert get_broker().queue_size() == 1
    (delivery,) = broker.claim("a", 1)
    assert broker.ack_many([delivery]) == {(delivery.ack_id, delivery.token)}
    broker.close()  # the cache's connection is not ours to close
    caches["redis"].set("k", 1)
    assert caches["redis"].get("k") == 1
    settings.Q_CLUSTER = {"name": "tests", "django_redis": "mem"}
    with pytest.raises(ConfigurationError, match="not a Redis cache"):
        get_broker().ping()


def test_a_missing_redis_package_is_a_configuration_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.delitem(sys.modules, "taskq.brokers.redis")
    with pytest.raises(ConfigurationError, match=r"taskq\[redis\]"):
        get_broker()


def test_claim_takes_a_batch_and_marks_owner_token_and_attempt(conn) -> None:
    enqueue(5)
    broker = get_broker()
    batch = broker.claim("owner-a", 3)
    assert len(batch) == 3
    assert len({d.token for d in batch}) == 1
    assert all(d.attempt == 1 for d in batch)
    assert all(isinstance(d.ack_id, int) and len(str(d.ack_id)) <= 64 for d in batch)
    assert conn.smembers("taskq:tests:held:owner-a") == {str(d.ack_id) for d in batch}
    assert conn.hget(f"taskq:tests:t:{batch[0].ack_id}", "owner") == "owner-a"
    assert broker.queue_size() == 2
    assert broker.lock_size() == 3
    assert [d.ack_id for d in batch] == sorted(d.ack_id for d in batch)


def test_claim_never_takes_a_claimed_task_twice() -> None:
    enqueue(4)
    broker = get_broker()
    first = {d.ack_id for d in broker.claim("a", 3)}
    second = {d.ack_id for d in broker.claim("b", 3)}
    assert len(second) == 1
    assert not first & second
    assert broker.claim("c", 3) == []
    assert broker.claim("c", 0) == []


def test_racing_claimers_never_share_a_task() -> None:
    enqueue(300)
    seen: list[int] = []

    def claimer(owner: str) -> None:
        broker = get_broker()
        while batch := broker.claim(owner, 7):
            seen.extend(d.ack_id for d in batch)

    threads = [threading.Thread(target=claimer, args=(f"c{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(seen) == 300
    assert len(set(seen)) == 300


def test_priority_then_enqueue_order(conn) -> None:
    low = async_task("taskq_tests.jobs.add", 1, 1, priority=-5)
    plain = async_task("taskq_tests.jobs.add", 1, 1)
    high = async_task("taskq_tests.jobs.add", 1, 1, priority=50)
    plain2 = async_task("taskq_tests.jobs.add", 1, 1)
    top = async_task("taskq_tests.jobs.add", 1, 1, priority=100)
    bottom = async_task("taskq_tests.jobs.add", 1, 1, priority=-100)
    batch = get_broker().claim("a", 10)
    assert task_ids(conn, batch) == [top, high, plain, plain2, low, bottom]


def test_run_after_is_not_delivered_before_its_time(conn) -> None:
    async_task("taskq_tests.jobs.add", 1, 1, run_after=timedelta(hours=1))
    due = async_task("taskq_tests.jobs.add", 1, 1, run_after=timezone.now() - timedelta(seconds=1))
    soon = async_task("taskq_tests.jobs.add", 1, 1, run_after=timedelta(seconds=0.5), priority=9)
    broker = get_broker()
    assert task_ids(conn, broker.claim("a", 10)) == [due]
    assert broker.queue_size() == 2
    assert broker.ready_size() == 0
    time.sleep(0.6)
    assert broker.ready_size() == 1
    assert task_ids(conn, broker.claim("a", 10)) == [soon]  # promoted to the ready set


def test_claim_only_reads_its_own_queue() -> None:
    async_task("taskq_tests.jobs.add", 1, 1, cluster="other")
    assert get_broker().claim("a", 10) == []
    assert get_broker().queue_size() == 0
    assert get_broker("other").queue_size() == 1
    assert len(get_broker("other").claim("a", 10)) == 1


def test_ack_many_is_fenced_by_the_claim_token(conn) -> None:
    enqueue(3)
    broker = get_broker()
    batch = broker.claim("a", 3)
    stale = batch[0]
    assert broker.release([stale]) == 1  # rescued...
    again = broker.claim("b", 1)[0]  # ...and claimed by someone else
    assert again.ack_id == stale.ack_id
    assert again.token != stale.token
    acked = broker.ack_many(batch)
    assert acked == {(d.ack_id, d.token) for d in batch[1:]}
    assert conn.keys("taskq:tests:t:*") == [f"taskq:tests:t:{stale.ack_id}"]
    assert broker.ack_many([again]) == {(again.ack_id, again.token)}
    assert conn.keys("taskq:tests:t:*") == []
    assert broker.lock_size() == 0
    assert conn.smembers("taskq:tests:owners") == set()


def test_inside_a_transaction_the_ack_waits_for_the_commit(conn) -> None:
    enqueue(2)
    broker = get_broker()
    first, second = broker.claim("a", 2)
    with transaction.atomic():
        assert broker.ack_many([first]) == {(first.ack_id, first.token)}
        assert broker.lock_size() == 2  # still held until the results are committed
    assert broker.lock_size() == 1
    with pytest.raises(RuntimeError):
        ack_then_fail(broker, second)
    assert broker.lock_size() == 1  # rolled back: still claimed, acked again later
    assert broker.claimed_payload(second.ack_id, second.token) == second.payload


def ack_then_fail(broker: RedisBroker, delivery: Delivery) -> None:
    with transaction.atomic():
        assert broker.ack_many([delivery]) == {(delivery.ack_id, delivery.token)}
        raise RuntimeError("the results could not be saved")


def test_an_ack_that_fails_after_the_commit_is_sent_again(conn, monkeypatch) -> None:
    enqueue(2)
    broker = get_broker()
    first, second = broker.claim("a", 2)
    real_run = broker.run

    def down(name, *args):
        if name == "ack":
            raise redis.ConnectionError("down")
        return real_run(name, *args)

    monkeypatch.setattr(broker, "run", down)
    with transaction.atomic():
        broker.ack_many([first])
    assert broker.unsent_acks == [str(first.ack_id), first.token]
    monkeypatch.setattr(broker, "run", real_run)
    assert broker.ack_many([second]) == {(second.ack_id, second.token)}
    assert broker.unsent_acks == []
    assert broker.lock_size() == 0


def test_release_returns_tasks_and_keeps_the_attempt_count() -> None:
    enqueue(1)
    broker = get_broker()
    first = broker.claim("a", 1)
    assert broker.release(first) == 1
    assert broker.release(first) == 0  # the token changed hands: fenced
    second = broker.claim("a", 1)
    assert second[0].attempt == 2
    assert broker.release([]) == 0


def test_abandon_gives_back_what_a_lost_claim_took_with_its_attempt_uncounted(conn) -> None:
    enqueue(3)
    broker = get_broker()
    lost = broker.claim("a", 2, token="lost")
    kept = broker.claim("a", 1, token="kept")
    assert broker.abandon("a", "lost") == 2
    assert broker.abandon("a", "lost") == 0
    assert conn.smembers("taskq:tests:held:a") == {str(kept[0].ack_id)}
    again = broker.claim("b", 5)
    assert [d.ack_id for d in again] == [d.ack_id for d in lost]  # in their old order
    assert all(d.attempt == 1 for d in again)  # the lost claim's attempt was uncounted


def test_release_with_delay_holds_the_task_back(conn) -> None:
    enqueue(1)
    broker = get_broker()
    broker.release(broker.claim("a", 1), delay=3600)
    assert broker.claim("a", 1) == []
    assert broker.queue_size() == 1
    ((_, score),) = conn.zrange("taskq:tests:q:tests:delayed", 0, -1, withscores=True)
    assert score > server_now(conn) + 3000


def test_orphans_are_the_tasks_of_clusters_without_a_recent_heartbeat(conn) -> None:
    enqueue(4)
    broker = get_broker()
    heartbeat(broker, "alive")
    heartbeat(broker, "dead")
    conn.zadd("taskq:tests:clusters", {"dead": server_now(conn) - 120})
    broker.claim("alive", 1)
    dead = broker.claim("dead", 1)
    unknown = broker.claim("never-heartbeat", 1)
    broker.dequeue()  # claimed by this broker's own owner id: not an orphan to it
    orphans = broker.orphans(retry=60)
    assert {o.ack_id for o in orphans} == {dead[0].ack_id, unknown[0].ack_id}
    assert {o.token for o in orphans} == {dead[0].token, unknown[0].token}
    assert {o.attempt for o in orphans} == {1}
    assert all(o.payload for o in orphans)
    assert broker.release(orphans) == 2
    assert broker.queue_size() == 2
    assert broker.orphans(retry=60) == []
    assert broker.prune_clusters(60) == 1
    assert [c["id"] for c in broker.clusters()] == ["alive"]


def test_a_cluster_holding_tasks_is_not_pruned(conn) -> None:
    enqueue(1)
    broker = get_broker()
    heartbeat(broker, "dead")
    conn.zadd("taskq:tests:clusters", {"dead": server_now(conn) - 120})
    broker.claim("dead", 1)
    assert broker.prune_clusters(60) == 0
    broker.release(broker.orphans(60))
    assert broker.prune_clusters(60) == 1


def test_clusters_report_status_heartbeat_and_age(conn) -> None:
    broker = get_broker()
    heartbeat(broker, "c1")
    (status,) = broker.clusters()
    assert status["id"] == "c1"
    assert status["host"] == "h"
    assert status["workers"][0]["pid"] == 7
    assert status["held"] == 0
    assert timezone.is_aware(status["started"])
    assert abs((status["heartbeat"] - timezone.now()).total_seconds()) < 5
    assert 0 <= status["age"] < 5
    assert 60 < conn.ttl("taskq:tests:cluster:c1") <= 200  # kept for 2 * retry + 3 heartbeats
    broker.remove_cluster("c1")
    assert broker.clusters() == []


def test_a_cluster_whose_status_expired_is_not_listed(conn) -> None:
    broker = get_broker()
    heartbeat(broker, "c1")
    conn.delete("taskq:tests:cluster:c1")
    assert broker.clusters() == []


def test_dequeue_and_acknowledge_keep_django_q2s_api(conn) -> None:
    enqueue(2)
    broker = get_broker()
    ((ack_id, payload),) = broker.dequeue()
    assert isinstance(payload, str)
    broker.acknowledge(ack_id)
    assert broker.queue_size() == 1
    broker.fail(broker.dequeue()[0][0])
    assert broker.lock_size() == 0
    enqueue(2)
    async_task("taskq_tests.jobs.add", 1, 1, run_after=timedelta(hours=1))
    broker.claim("x", 1)
    assert broker.purge_queue() == 3
    assert broker.queue_size() == broker.lock_size() == 0
    assert conn.keys("taskq:tests:t:*") == []
    assert conn.smembers("taskq:tests:held:x") == set()
    enqueue(1)
    assert broker.delete_queue() == 1
    assert broker.ping() is True
    assert broker.info().startswith("Redis ")


def test_delete_removes_a_task_waiting_delayed_or_claimed(conn) -> None:
    enqueue(2)
    async_task("taskq_tests.jobs.add", 1, 1, run_after=timedelta(hours=1))
    broker = get_broker()
    claimed = broker.claim("a", 1)[0]
    waiting = int(conn.zrange("taskq:tests:q:tests:ready", 0, 0)[0])
    delayed = int(conn.zrange("taskq:tests:q:tests:delayed", 0, 0)[0])
    for ack_id in (claimed.ack_id, waiting, delayed):
        broker.delete(ack_id)
    broker.delete(12345)  # gone already: nothing happens
    assert broker.queue_size() == broker.lock_size() == 0
    assert conn.keys("taskq:tests:t:*") == []
    assert conn.smembers("taskq:tests:owners") == set()


def test_claimed_payload_and_parse_ack_id() -> None:
    enqueue(1)
    broker = get_broker()
    (delivery,) = broker.claim("a", 1)
    assert broker.parse_ack_id(str(delivery.ack_id)) == delivery.ack_id
    assert broker.claimed_payload(delivery.ack_id, delivery.token) == delivery.payload
    assert broker.claimed_payload(delivery.ack_id, "other") is None
    assert broker.claimed_payload(999999, delivery.token) is None


def test_wait_returns_as_soon_as_a_task_is_enqueued() -> None:
    broker = get_broker()
    began = time.monotonic()
    broker.wait(0.3)
    assert 0.25 < time.monotonic() - began < 2
    timer = threading.Timer(0.2, lambda: get_broker().enqueue("payload"))
    timer.start()
    began = time.monotonic()
    broker.wait(10)
    assert time.monotonic() - began < 2
    timer.join()
    assert len(broker.claim("a", 5)) == 1
    began = time.monotonic()
    broker.wait(0.2)  # the claim that came up short cleared stale wake-ups
    assert time.monotonic() - began > 0.15


def test_wake_returns_a_waiting_broker_without_an_enqueue() -> None:
    broker = get_broker()
    timer = threading.Timer(0.2, lambda: get_broker().wake())
    timer.start()
    began = time.monotonic()
    broker.wait(10)
    assert time.monotonic() - began < 5
    timer.join()
    assert broker.claim("a", 5) == []  # nothing was queued by it
    for _ in range(200):  # wake-ups with no listener are capped, as an enqueue's are
        broker.wake()
    assert broker.connection.llen(broker.key("wake")) <= 64


def claim_in_child(broker: RedisBroker, queue) -> None:
    queue.put([d.payload for d in broker.claim("child", 5)])


def test_a_forked_child_makes_its_own_connection() -> None:
    broker = get_broker()
    broker.enqueue("from-parent")
    assert broker.ping()  # the parent's connection exists before the fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=claim_in_child, args=(broker, queue))
    child.start()
    assert queue.get(timeout=10) == ["from-parent"]
    child.join(timeout=10)
    assert child.exitcode == 0
    assert broker.lock_size() == 1
    broker.close()
    assert broker.ping()  # reconnects after close()


def test_an_unreachable_server_raises_on_enqueue(settings) -> None:
    settings.Q_CLUSTER = {"name": "tests", "redis": "redis://127.0.0.1:1/0"}
    with pytest.raises(redis.ConnectionError):
        async_task("taskq_tests.jobs.add", 1, 1)


def test_release_and_ack_tolerate_unknown_tasks() -> None:
    broker = get_broker()
    ghost = Delivery(ack_id=424242, token="t", attempt=1, payload="")
    assert broker.release([ghost]) == 0
    assert broker.ack_many([ghost]) == set()
    assert broker.ack_many([]) == set()


def test_the_admin_shows_the_clusters_that_heartbeat_in_redis(admin_client) -> None:
    heartbeat(get_broker(), "c0ffee")
    enqueue(2)
    page = admin_client.get(reverse("admin:django_q_cluster_changelist"))
    assert page.status_code == 200
    (row,) = page.context["clusters"]
    assert row["id"] == "c0ffee"
    assert row["health"] == "ok"
    assert 'id="cluster-c0ffee"' in page.content.decode()
    assert {q["key"]: q["waiting"] for q in page.context["queues"]} == {"tests": 2}


class RedisBrokerModel(BrokerModel):
    """The model of ``brokermodel.py`` on Redis, with each owner's held set checked."""

    def clean(self) -> None:
        redisserver.delete_keys(redisserver.server_url())
        self.client = redis.Redis.from_url(redisserver.server_url(), decode_responses=True)

    def teardown(self) -> None:
        self.client.close()

    def kill(self, owner: str) -> None:
        if owner in self.alive:
            self.client.zadd("taskq:tests:clusters", {owner: server_now(self.client) - 600})

    @invariant()
    def sizes_and_claims_match_the_model(self) -> None:
        self.check_sizes()
        for owner in OWNERS:
            held = {
                i for i, t in self.tasks.items() if t["state"] == "claimed" and t["owner"] == owner
            }
            assert {int(i) for i in self.client.smembers(f"taskq:tests:held:{owner}")} == held
        for ack_id, task in self.tasks.items():
            if task["state"] == "claimed":
                assert self.broker.claimed_payload(ack_id, task["token"]) == "p"


def test_the_broker_matches_its_model_under_random_operations() -> None:
    run_state_machine_as_test(
        RedisBrokerModel,
        settings=hypothesis_settings(
            max_examples=40, stateful_step_count=40, deadline=None, derandomize=True, database=None
        ),
    )
