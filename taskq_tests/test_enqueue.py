"""async_task: options, validation that refuses bad input with nothing written."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from taskq import signing
from taskq.brokers import get_broker
from taskq.conf import get_config
from taskq.exceptions import InvalidTask
from taskq.models import OrmQ, Schedule
from taskq.tasks import async_task, queue_size
from taskq_tests import jobs

pytestmark = pytest.mark.django_db(transaction=True)


def queued() -> dict:
    row = OrmQ.objects.get()
    return signing.loads(row.payload, salt=get_config().name)


def test_async_task_returns_a_hex_id_and_queues_one_row() -> None:
    task_id = async_task("taskq_tests.jobs.add", 2, 3)
    assert len(task_id) == 32
    int(task_id, 16)
    row = OrmQ.objects.get()
    assert row.key == "tests"
    assert row.task_ident == task_id
    assert row.task_func == "taskq_tests.jobs.add"
    assert row.owner is None
    task = queued()
    assert task["id"] == task_id
    assert task["func"] == "taskq_tests.jobs.add"
    assert task["args"] == (2, 3)
    assert task["name"].count("-") == 3
    assert queue_size() == 1


def test_async_task_accepts_a_module_level_callable() -> None:
    async_task(jobs.add, 1, 1)
    assert queued()["func"] is jobs.add
    assert OrmQ.objects.get().task_func == "taskq_tests.jobs.add"


def test_options_in_kwargs_are_taken_out_of_the_functions_kwargs() -> None:
    async_task("taskq_tests.jobs.echo", 1, group="g", hook="taskq_tests.jobs.hook", timeout=5, x=1)
    task = queued()
    assert task["group"] == "g"
    assert task["hook"] == "taskq_tests.jobs.hook"
    assert task["timeout"] == 5
    assert task["kwargs"] == {"x": 1}


def test_with_q_options_every_other_kwarg_goes_to_the_function() -> None:
    async_task("taskq_tests.jobs.echo", group="mine", q_options={"group": "queue-group"})
    task = queued()
    assert task["group"] == "queue-group"
    assert task["kwargs"] == {"group": "mine"}


def test_task_name_and_priority_and_cluster() -> None:
    async_task("taskq_tests.jobs.add", 1, 2, task_name="adder", priority=7, cluster="other")
    row = OrmQ.objects.get()
    assert row.key == "other"
    assert row.priority == 7
    assert row.task_name == "adder"


def test_run_after_timedelta_sets_the_lock() -> None:
    before = timezone.now()
    async_task("taskq_tests.jobs.add", 1, 2, run_after=timedelta(minutes=5))
    lock = OrmQ.objects.get().lock
    assert before + timedelta(minutes=5) <= lock <= timezone.now() + timedelta(minutes=5)


def test_enqueue_inside_atomic_appears_only_on_commit() -> None:
    with transaction.atomic():
        async_task("taskq_tests.jobs.add", 1, 2)
        assert OrmQ.objects.count() == 1  # same connection sees it
    assert OrmQ.objects.count() == 1


def test_enqueue_rolled_back_never_exists() -> None:
    def enqueue_then_fail() -> None:
        with transaction.atomic():
            async_task("taskq_tests.jobs.add", 1, 2)
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError, match="roll back"):
        enqueue_then_fail()
    assert OrmQ.objects.count() == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: async_task("taskq_tests.jobs.nope"), "does not import to a callable"),
        (lambda: async_task("no_such_module.func"), "does not import to a callable"),
        (lambda: async_task("taskq_tests.jobs.not_callable"), "does not import to a callable"),
        (lambda: async_task(lambda: 1), "cannot be imported by a worker"),
        (lambda: async_task(42), "must be a dotted path or a callable"),
        (lambda: async_task("taskq_tests.jobs.echo", lambda: 1), "cannot be serialised"),
        (lambda: async_task("taskq_tests.jobs.add", q_options={"grup": 1}), "unknown option"),
        (lambda: async_task("taskq_tests.jobs.add", q_options=[1]), "q_options must be a dict"),
        (lambda: async_task("taskq_tests.jobs.add", timeout=0), "timeout must be a positive"),
        (lambda: async_task("taskq_tests.jobs.add", timeout=-1), "timeout must be a positive"),
        (lambda: async_task("taskq_tests.jobs.add", timeout="5"), "timeout must be a positive"),
        (lambda: async_task("taskq_tests.jobs.add", timeout=True), "timeout must be a positive"),
        (lambda: async_task("taskq_tests.jobs.add", priority=101), "priority must be an int"),
        (lambda: async_task("taskq_tests.jobs.add", priority=1.5), "priority must be an int"),
        (lambda: async_task("taskq_tests.jobs.add", priority=True), "priority must be an int"),
        (lambda: async_task("taskq_tests.jobs.add", run_after=datetime(2030, 1, 1)), "aware"),
        (lambda: async_task("taskq_tests.jobs.add", run_after="soon"), "run_after must be"),
        (lambda: async_task("taskq_tests.jobs.add", hook="taskq_tests.jobs.nope"), "hook"),
        (lambda: async_task("taskq_tests.jobs.add", max_attempts=-1), "max_attempts"),
        (lambda: async_task("taskq_tests.jobs.add", cached="yes"), "cached must be"),
        (lambda: async_task("taskq_tests.jobs.add", group=""), "group must be"),
    ],
)
def test_bad_input_is_refused_with_nothing_written(call, message: str) -> None:
    with pytest.raises(InvalidTask, match=message) as info:
        call()
    assert isinstance(info.value, ValueError)
    assert OrmQ.objects.count() == 0
    assert Schedule.objects.count() == 0


def test_get_broker_uses_the_cluster_name() -> None:
    assert get_broker().list_key == "tests"
    assert get_broker("other").list_key == "other"
