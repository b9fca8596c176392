"""Sync mode runs a task through the worker's and the monitor's code."""

from __future__ import annotations

import pytest
from django.test import override_settings

from taskq import signals
from taskq.models import Failure, OrmQ, Success, Task
from taskq.tasks import async_task, fetch, result
from taskq_tests import jobs

pytestmark = pytest.mark.django_db(transaction=True)


def test_sync_success_is_saved_like_a_cluster_would() -> None:
    task_id = async_task("taskq_tests.jobs.add", 2, 3, sync=True, group="g")
    task = Success.objects.get(id=task_id)
    assert task.result == 5
    assert task.args == (2, 3)
    assert task.kwargs == {}
    assert task.group == "g"
    assert task.func == "taskq_tests.jobs.add"
    assert task.attempt_count == 1
    assert task.stopped >= task.started
    assert result(task_id) == 5
    assert fetch(task_id).name == task.name
    assert result(task.name) == 5
    assert OrmQ.objects.count() == 0


def test_sync_failure_is_recorded_then_raised() -> None:
    with pytest.raises(ValueError, match="kaput"):
        async_task("taskq_tests.jobs.fail", "kaput", sync=True, task_name="failing")
    task = Failure.objects.get(name="failing")
    assert task.success is False
    assert "kaput" in task.result
    assert "Traceback" in task.result


@override_settings(Q_CLUSTER={"name": "tests", "sync": True})
def test_sync_setting_runs_every_task_in_the_caller() -> None:
    task_id = async_task("taskq_tests.jobs.add", 1, 1)
    assert result(task_id) == 2


def test_hook_is_called_with_the_saved_task() -> None:
    task_id = async_task("taskq_tests.jobs.add", 1, 2, hook=jobs.hook, sync=True)
    assert [t.id for t in jobs.HOOK_CALLS] == [task_id]
    assert jobs.HOOK_CALLS[0].result == 3


def test_signals_fire_in_order() -> None:
    seen = []

    def on(name):
        def receiver(sender, **kwargs):
            seen.append((name, sender, kwargs["task"]["id"]))

        return receiver

    receivers = {
        s: on(n)
        for n, s in [
            ("pre_enqueue", signals.pre_enqueue),
            ("pre_execute", signals.pre_execute),
            ("post_execute_in_worker", signals.post_execute_in_worker),
            ("post_execute", signals.post_execute),
        ]
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver)
    try:
        task_id = async_task("taskq_tests.jobs.add", 1, 2, sync=True)
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver)
    assert [s[0] for s in seen] == [
        "pre_enqueue",
        "pre_execute",
        "post_execute_in_worker",
        "post_execute",
    ]
    assert all(s[1] == "django_q" and s[2] == task_id for s in seen)


def test_save_false_keeps_a_success_out_of_the_database() -> None:
    task_id = async_task("taskq_tests.jobs.add", 1, 2, save=False, sync=True)
    assert not Task.objects.filter(id=task_id).exists()


@override_settings(Q_CLUSTER={"name": "tests", "save_limit": -1})
def test_save_limit_minus_one_keeps_no_success_but_keeps_failures() -> None:
    ok = async_task("taskq_tests.jobs.add", 1, 2, sync=True)
    with pytest.raises(ValueError, match="boom"):
        async_task("taskq_tests.jobs.fail", sync=True)
    assert not Task.objects.filter(id=ok).exists()
    assert Failure.objects.count() == 1


def test_cached_result_goes_to_the_cache_not_the_database() -> None:
    task_id = async_task("taskq_tests.jobs.add", 4, 4, cached=True, sync=True)
    assert not Task.objects.filter(id=task_id).exists()
    assert result(task_id, cached=True) == 8
    assert fetch(task_id, cached=True).success is True
