"""Recording a batch: the fenced acknowledgement and the result rows, together.

On PostgreSQL these run through the one-statement path (delete and upsert in one
round trip); on SQLite through the transaction of two statements. Both must agree.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from taskq import signing
from taskq.brokers import get_broker
from taskq.conf import get_config
from taskq.execution import execute
from taskq.messages import TaskMessage, TaskOutcome
from taskq.models import OrmQ, Task
from taskq.outcomes import record
from taskq.taskrows import ack_and_write_one_statement, can_ack_and_write
from taskq.tasks import async_task

pytestmark = pytest.mark.django_db(transaction=True)


def run_claimed(owner: str, count: int) -> list[TaskOutcome]:
    config = get_config()
    outcomes = []
    for delivery in get_broker().claim(owner, count):
        message = TaskMessage.from_dict(signing.loads(delivery.payload, salt=config.name))
        outcomes.append(
            execute(message, attempt=delivery.attempt, delivery=delivery, cluster="c", worker_pid=1)
        )
    return outcomes


def test_a_batch_saves_the_confirmed_and_rejects_the_rescued() -> None:
    ids = [async_task("taskq_tests.jobs.add", i, 1) for i in range(3)]
    outcomes = run_claimed("cluster-a", 3)
    broker = get_broker()
    stale = outcomes[1].delivery
    broker.release([stale])  # presumed dead, then claimed by another cluster
    (fresh,) = broker.claim("cluster-b", 1)
    done = record(outcomes, broker, get_config())
    assert sorted(o.message.id for o in done.saved) == sorted([ids[0], ids[2]])
    assert [o.message.id for o in done.rejected] == [ids[1]]
    assert set(Task.objects.values_list("id", flat=True)) == {ids[0], ids[2]}
    assert Task.objects.get(id=ids[2]).result == 3
    assert list(OrmQ.objects.values_list("token", flat=True)) == [fresh.token]


def test_a_failure_is_overwritten_and_a_success_kept() -> None:
    task_id = async_task("taskq_tests.jobs.add", 2, 2)
    (outcome,) = run_claimed("cluster-a", 1)
    earlier = timezone.now() - timedelta(minutes=1)
    Task.objects.create(
        id=task_id, name="x", func="f", started=earlier, stopped=earlier, success=False
    )
    record([outcome], get_broker(), get_config())
    row = Task.objects.get(id=task_id)
    assert row.success
    assert row.result == 4
    # a second, failed outcome of the same task never replaces the success
    failed = TaskOutcome.failure(
        outcome.message, "late", now=timezone.now(), attempt=2, delivery=None
    )
    record([failed], get_broker(), get_config())
    assert Task.objects.get(id=task_id).result == 4


def test_rows_not_to_save_are_acknowledged_only() -> None:
    kept = async_task("taskq_tests.jobs.add", 1, 1)
    unsaved = async_task("taskq_tests.jobs.add", 1, 2, save=False)
    done = record(run_claimed("cluster-a", 2), get_broker(), get_config())
    assert [o.message.id for o in done.saved] == [kept]
    assert list(Task.objects.values_list("id", flat=True)) == [kept]
    assert not Task.objects.filter(id=unsaved).exists()
    assert OrmQ.objects.count() == 0


def test_the_one_statement_path_is_for_postgresql_with_claims() -> None:
    async_task("taskq_tests.jobs.add", 1, 1)
    outcomes = run_claimed("cluster-a", 1)
    deliveries = [o.delivery for o in outcomes]
    expected = connection.vendor == "postgresql"
    assert can_ack_and_write("default", deliveries, outcomes) is expected
    assert not can_ack_and_write("other", deliveries, outcomes)  # results elsewhere
    assert not can_ack_and_write("default", [], outcomes)
    unclaimed = TaskOutcome.failure(
        outcomes[0].message, "x", now=timezone.now(), attempt=1, delivery=None
    )
    assert not can_ack_and_write("default", deliveries, [*outcomes, unclaimed])


def test_every_column_survives_the_batch_whatever_its_text() -> None:
    """Names, groups and results with quotes, braces, backslashes, commas, NULLs and
    non-ASCII text come back as they went in, beside a row whose optional columns are
    all empty (on PostgreSQL the values travel as arrays)."""
    awkward = "a \"quoted\", {braced} \\ back\\slash; 'single' NULL ünïcode ✓"
    plain = async_task("taskq_tests.jobs.add", 1, 2)
    odd = async_task(
        "taskq_tests.jobs.add", awkward, "!", task_name=awkward[:100], group='{g}, \\ "x"'
    )
    done = record(run_claimed("cluster-a", 2), get_broker(), get_config())
    assert len(done.saved) == 2
    row = Task.objects.get(id=odd)
    assert (row.name, row.group, row.result) == (awkward[:100], '{g}, \\ "x"', awkward + "!")
    assert row.args == (awkward, "!")
    empty = Task.objects.get(id=plain)
    assert (empty.group, empty.hook, empty.result, empty.success) == (None, None, 3, True)
    assert OrmQ.objects.count() == 0


def test_a_batch_of_one_is_written_only_if_its_claim_is_still_held() -> None:
    """An idle cluster records one outcome at a time (on PostgreSQL through the statement
    of one row): a rescued claim's late outcome writes nothing and removes nothing."""
    task_id = async_task("taskq_tests.jobs.add", 2, 3)
    (late,) = run_claimed("cluster-a", 1)
    broker = get_broker()
    broker.release([late.delivery])  # presumed dead, then claimed by another cluster
    (fresh,) = run_claimed("cluster-b", 1)
    done = record([late], broker, get_config())
    assert (done.saved, [o.message.id for o in done.rejected]) == ([], [task_id])
    assert not Task.objects.exists()
    assert list(OrmQ.objects.values_list("token", flat=True)) == [fresh.delivery.token]
    done = record([fresh], broker, get_config())
    assert [o.message.id for o in done.saved] == [task_id]
    assert Task.objects.get(id=task_id).result == 5
    assert not OrmQ.objects.exists()


def test_every_column_survives_a_batch_of_one_whatever_its_text() -> None:
    awkward = "a \"quoted\", {braced} \\ back\\slash; 'single' NULL ünïcode ✓"
    task_id = async_task(
        "taskq_tests.jobs.add", awkward, "!", task_name=awkward[:100], group='{g}, \\ "x"'
    )
    (outcome,) = run_claimed("cluster-a", 1)
    done = record([outcome], get_broker(), get_config())
    assert len(done.saved) == 1
    row = Task.objects.get(id=task_id)
    assert (row.name, row.group, row.result) == (awkward[:100], '{g}, \\ "x"', awkward + "!")
    assert (row.args, row.success, row.attempt_count, row.cluster) == ((awkward, "!"), True, 1, "c")
    assert row.started == outcome.message.started
    assert row.stopped == outcome.stopped
    assert OrmQ.objects.count() == 0


def test_the_statement_of_one_row_fences_by_claim_and_casts_each_value() -> None:
    sql = ack_and_write_one_statement("default").sql
    assert "unnest" not in sql
    assert "WHERE id = %s::" in sql
    assert "AND token = %s::text" in sql
    assert sql.count("%s") == 2 + 13
