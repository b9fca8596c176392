"""The ORM broker: claims, fenced acknowledgements, release, rescue, sizes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from taskq.brokers import get_broker
from taskq.models import Cluster, OrmQ
from taskq.tasks import async_task

from .brokermodel import heartbeat

pytestmark = pytest.mark.django_db(transaction=True)


def enqueue(n: int, **options) -> list[str]:
    return [async_task("taskq_tests.jobs.add", i, 1, **options) for i in range(n)]


def test_claim_takes_a_batch_and_marks_owner_token_and_attempt() -> None:
    enqueue(5)
    broker = get_broker()
    batch = broker.claim("owner-a", 3)
    assert len(batch) == 3
    assert len({d.token for d in batch}) == 1
    assert all(d.attempt == 1 for d in batch)
    rows = OrmQ.objects.filter(owner="owner-a")
    assert rows.count() == 3
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


def test_priority_then_enqueue_order() -> None:
    low = async_task("taskq_tests.jobs.add", 1, 1, priority=-5)
    plain = async_task("taskq_tests.jobs.add", 1, 1)
    high = async_task("taskq_tests.jobs.add", 1, 1, priority=50)
    plain2 = async_task("taskq_tests.jobs.add", 1, 1)
    broker = get_broker()
    order = [OrmQ.objects.get(pk=d.ack_id).task_ident for d in broker.claim("a", 10)]
    assert order == [high, plain, plain2, low]


def test_run_after_is_not_delivered_before_its_time() -> None:
    async_task("taskq_tests.jobs.add", 1, 1, run_after=timedelta(hours=1))
    due = async_task("taskq_tests.jobs.add", 1, 1, run_after=timezone.now() - timedelta(seconds=1))
    broker = get_broker()
    batch = broker.claim("a", 10)
    assert [OrmQ.objects.get(pk=d.ack_id).task_ident for d in batch] == [due]


def test_a_claim_inside_a_transaction_joins_it() -> None:
    async_task("taskq_tests.jobs.add", 1, 1)
    broker = get_broker()

    def claim_then_roll_back() -> None:
        with transaction.atomic():
            assert len(broker.claim("cluster-a", 5)) == 1
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        claim_then_roll_back()
    assert OrmQ.objects.get().owner is None  # the claim was rolled back with the caller
    assert len(broker.claim("cluster-a", 5)) == 1


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own claim path")
def test_a_failed_sqlite_claim_leaves_no_transaction_open() -> None:
    async_task("taskq_tests.jobs.add", 1, 1)
    broker = get_broker()
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TRIGGER refuse BEFORE UPDATE ON django_q_ormq "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
    try:
        with pytest.raises(DatabaseError, match="refused by the test"):
            broker.claim("cluster-a", 5)  # a Django error, as from any query
        assert not connection.connection.in_transaction
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER refuse")
    assert len(broker.claim("cluster-a", 5)) == 1
    assert OrmQ.objects.get().owner == "cluster-a"


def test_claim_only_reads_its_own_queue() -> None:
    async_task("taskq_tests.jobs.add", 1, 1, cluster="other")
    assert get_broker().claim("a", 10) == []
    assert len(get_broker("other").claim("a", 10)) == 1


def test_ack_many_is_fenced_by_the_claim_token() -> None:
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
    assert list(OrmQ.objects.values_list("id", flat=True)) == [stale.ack_id]
    assert broker.ack_many([again]) == {(again.ack_id, again.token)}
    assert OrmQ.objects.count() == 0


def test_release_returns_tasks_and_keeps_the_attempt_count() -> None:
    enqueue(1)
    broker = get_broker()
    first = broker.claim("a", 1)
    broker.release(first)
    second = broker.claim("a", 1)
    assert second[0].attempt == 2


def test_release_of_unstarted_tasks_takes_back_the_attempt() -> None:
    enqueue(1)
    broker = get_broker()
    broker.release(broker.claim("a", 1), unstarted=True)
    assert broker.claim("a", 1)[0].attempt == 1


def test_release_with_delay_sets_the_lock() -> None:
    enqueue(1)
    broker = get_broker()
    broker.release(broker.claim("a", 1), delay=3600)
    assert broker.claim("a", 1) == []


def test_orphans_are_the_tasks_of_clusters_without_a_recent_heartbeat() -> None:
    enqueue(3)
    broker = get_broker()
    heartbeat(broker, "alive")
    heartbeat(broker, "dead")
    Cluster.objects.filter(id="dead").update(heartbeat=timezone.now() - timedelta(seconds=120))
    broker.claim("alive", 1)
    dead = broker.claim("dead", 1)
    unknown = broker.claim("never-heartbeat", 1)
    orphans = broker.orphans(retry=60)
    assert {o.ack_id for o in orphans} == {dead[0].ack_id, unknown[0].ack_id}
    assert broker.release(orphans) == 2
    assert broker.queue_size() == 2
    assert broker.prune_clusters(60) == 1
    assert list(Cluster.objects.values_list("id", flat=True)) == ["alive"]


def test_clusters_report_heartbeat_age() -> None:
    broker = get_broker()
    heartbeat(broker, "c1")
    (status,) = broker.clusters()
    assert status["id"] == "c1"
    assert 0 <= status["age"] < 5
    broker.remove_cluster("c1")
    assert broker.clusters() == []


def test_dequeue_and_acknowledge_keep_django_q2s_api() -> None:
    enqueue(2)
    broker = get_broker()
    ((ack_id, payload),) = broker.dequeue()
    assert isinstance(payload, str)
    broker.acknowledge(ack_id)
    assert broker.queue_size() == 1
    assert broker.purge_queue() == 1
    assert broker.ping() is True
    assert "ORM" in broker.info()
