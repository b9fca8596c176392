"""taskq.backends: Django's tasks framework on taskq, checked through the framework's API.

Runs where the framework is installed: Django 6 (``django.tasks``), or Django 5.2 with
the ``django-tasks`` backport. The settings configure ``TASKS["default"]`` with taskq's
backend and the queues ``default`` and ``emails``.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core import checks
from django.test import override_settings
from django.utils import timezone

backends = pytest.importorskip("taskq.backends", reason="Django's tasks framework is not installed")

from taskq import signing  # noqa: E402
from taskq.backends_framework import (  # noqa: E402
    FRAMEWORK,
    InvalidTask,
    Task,
    TaskResultDoesNotExist,
    TaskResultMismatch,
    TaskResultStatus,
    task,
    task_backends,
    task_enqueued,
    task_finished,
    task_started,
)
from taskq.backends_results import task_error  # noqa: E402
from taskq.conf import get_config  # noqa: E402
from taskq.models import OrmQ  # noqa: E402
from taskq.models import Task as TaskRow  # noqa: E402
from taskq.tasks import async_task  # noqa: E402
from taskq_tests import clusters, framework_tasks, jobs  # noqa: E402

TaskqBackend = backends.TaskqBackend
TaskqTask = backends.TaskqTask
IMMEDIATE = {"default": {"BACKEND": f"{FRAMEWORK}.backends.immediate.ImmediateBackend"}}


def tasks_setting(**alias: Any) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "taskq.backends.TaskqBackend",
            "QUEUES": ["default", "emails"],
            **alias,
        }
    }


def payload(result_id: str) -> dict[str, Any]:
    row = OrmQ.objects.get(task_ident=result_id)
    return signing.loads(row.payload, salt=get_config().name)


SIGNALS = {"enqueued": task_enqueued, "started": task_started, "finished": task_finished}


@contextmanager
def signals_seen() -> Iterator[list[tuple[str, str, str]]]:
    """``(signal, result id, status)`` for each framework signal sent in this process."""
    seen: list[tuple[str, str, str]] = []

    def receiver(sender: Any, signal: Any, task_result: Any, **kwargs: Any) -> None:
        assert sender is TaskqBackend
        name = next(name for name, s in SIGNALS.items() if s is signal)
        seen.append((name, task_result.id, str(task_result.status)))

    for signal in SIGNALS.values():
        signal.connect(receiver)
    try:
        yield seen
    finally:
        for signal in SIGNALS.values():
            signal.disconnect(receiver)


def read_signal_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# Configuration and validation --------------------------------------------------------


def test_backend_is_the_configured_default_and_supports_everything() -> None:
    backend = task_backends["default"]
    assert isinstance(backend, TaskqBackend)
    assert backend.supports_defer
    assert backend.supports_priority
    assert backend.supports_get_result
    assert backend.supports_async_task
    assert backend.queues == {"default", "emails"}
    assert framework_tasks.add.get_backend() is backend


def test_task_decorator_keyword_arguments_become_taskq_options() -> None:
    assert isinstance(framework_tasks.add, TaskqTask)
    assert framework_tasks.sleeps.timeout == 1
    assert framework_tasks.fails_first_attempt.max_attempts == 2
    made = task(group="reports", hook="taskq_tests.jobs.hook")(framework_tasks.not_a_task)
    assert (made.group, made.hook, made.timeout) == ("reports", "taskq_tests.jobs.hook", None)


@pytest.mark.parametrize(
    "options",
    [{"timeout": -1}, {"max_attempts": -1}, {"group": ""}, {"hook": 3}, {"timeout": True}],
)
def test_invalid_taskq_options_are_refused_when_the_task_is_defined(options) -> None:
    with pytest.raises(InvalidTask):
        task(**options)(framework_tasks.not_a_task)


def test_framework_validation_refuses_unknown_queues_and_bad_priorities() -> None:
    with pytest.raises(InvalidTask, match="Queue 'nope' is not valid for backend"):
        framework_tasks.add.using(queue_name="nope")
    with pytest.raises(InvalidTask, match="priority"):
        framework_tasks.add.using(priority=101)
    with pytest.raises(InvalidTask, match="aware"):
        framework_tasks.add.using(run_after=datetime(2030, 1, 1))
    with pytest.raises(InvalidTask, match="module level"):
        task(lambda: None)


@pytest.mark.skipif(not hasattr(Task, "_reconstruct"), reason="Task pickles from Django 6.1")
def test_a_taskq_task_pickles_with_its_options() -> None:
    copy = pickle.loads(pickle.dumps(framework_tasks.sleeps))
    assert copy == framework_tasks.sleeps
    assert copy.timeout == 1


def test_system_checks_report_bad_options_and_queue_names() -> None:
    backend = TaskqBackend(
        "bad",
        {"QUEUES": ["default", "x" * 101], "OPTIONS": {"timout": 5, "max_attempts": -2}},
    )
    problems = {(p.id, p.hint) for p in backend.check()}
    assert ("taskq.W101", "Did you mean 'timeout'?") in problems
    assert {p[0] for p in problems} == {"taskq.W101", "taskq.E101", "taskq.E102"}
    hook = TaskqBackend("hook", {"OPTIONS": {"hook": "taskq_tests.jobs.nothing_here"}})
    assert [p.id for p in hook.check()] == ["taskq.E101"]
    assert TaskqBackend("good", {"OPTIONS": {"hook": "taskq_tests.jobs.hook"}}).check() == []


@pytest.mark.django_db
@override_settings(TASKS=tasks_setting(OPTIONS={"timeout": 0}))
def test_system_checks_run_the_backend_check() -> None:
    ids = [problem.id for problem in checks.run_checks()]
    assert "taskq.E101" in ids


# Enqueueing ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_enqueue_stores_a_ready_taskq_task() -> None:
    with signals_seen() as seen:
        result = framework_tasks.add.enqueue(1, 2)
    assert seen == [("enqueued", result.id, "READY")]
    assert result.status == TaskResultStatus.READY
    assert len(result.id) == 32
    assert (result.args, result.kwargs) == ([1, 2], {})
    assert result.backend == "default"
    assert abs((timezone.now() - result.enqueued_at).total_seconds()) < 5
    assert (result.started_at, result.finished_at, result.last_attempted_at) == (None,) * 3
    assert (result.attempts, result.worker_ids, result.errors) == (0, [], [])
    with pytest.raises(ValueError, match="not finished"):
        result.return_value
    row = OrmQ.objects.get(task_ident=result.id)
    assert (row.key, row.priority, row.owner) == ("tests", 0, None)
    assert row.task_func == backends.RUNNER
    assert row.task_name == "taskq_tests.framework_tasks.add"
    fetched = framework_tasks.add.get_result(result.id)
    assert fetched.status == TaskResultStatus.READY
    assert fetched.enqueued_at == result.enqueued_at
    assert fetched.task == result.task


@pytest.mark.django_db
def test_a_task_that_its_module_path_does_not_name_is_refused_at_enqueue() -> None:
    unreachable = task(framework_tasks.not_a_task)  # the module holds the function
    with pytest.raises(InvalidTask, match="is not a task of Django's tasks framework"):
        unreachable.enqueue()
    assert not OrmQ.objects.exists()


@pytest.mark.django_db
def test_aenqueue_and_aget_result() -> None:
    result = async_to_sync(framework_tasks.add.aenqueue)(2, 2)
    assert OrmQ.objects.filter(task_ident=result.id).exists()
    fetched = async_to_sync(framework_tasks.add.aget_result)(result.id)
    assert fetched.status == TaskResultStatus.READY
    async_to_sync(fetched.arefresh)()
    assert fetched.args == [2, 2]


@pytest.mark.django_db
def test_priority_and_run_after_reach_the_queue_row() -> None:
    later = timezone.now() + timedelta(hours=1)
    by_date = framework_tasks.add.using(priority=7, run_after=later).enqueue(1, 1)
    row = OrmQ.objects.get(task_ident=by_date.id)
    assert (row.priority, row.lock) == (7, later)
    assert by_date.task.run_after == later
    before = timezone.now()
    by_delta = framework_tasks.add.using(priority=-100, run_after=timedelta(minutes=5))
    result = by_delta.enqueue(1, 1)
    row = OrmQ.objects.get(task_ident=result.id)
    assert row.priority == -100
    assert before + timedelta(minutes=5) <= row.lock <= timezone.now() + timedelta(minutes=5)
    assert result.task.run_after == row.lock
    assert framework_tasks.add.get_result(result.id).task.run_after == row.lock


@pytest.mark.django_db
def test_queue_name_is_the_cluster_name() -> None:
    email = framework_tasks.send_email.enqueue("a@example.com")
    default = framework_tasks.send_email.using(queue_name="default").enqueue("b@example.com")
    assert OrmQ.objects.get(task_ident=email.id).key == "emails"
    assert OrmQ.objects.get(task_ident=default.id).key == "tests"
    assert framework_tasks.send_email.get_result(email.id).task.queue_name == "emails"


@pytest.mark.django_db
def test_arguments_are_what_json_gives_back() -> None:
    result = framework_tasks.echo.enqueue((1, 2), {"k": (3,)}, key={1: b"x"})
    assert result.args == [[1, 2], {"k": [3]}]
    assert result.kwargs == {"key": {"1": "x"}}
    assert payload(result.id)["args"][0]["args"] == [[1, 2], {"k": [3]}]


@pytest.mark.django_db
@pytest.mark.parametrize("argument", [datetime(2030, 1, 1), {1, 2}, object(), b"\xff"])
def test_an_argument_json_cannot_hold_is_refused_with_the_framework_error(argument) -> None:
    with override_settings(TASKS=IMMEDIATE), pytest.raises((TypeError, ValueError)) as framework:
        framework_tasks.echo.enqueue(argument)
    with pytest.raises(framework.type, match=str(framework.value)):
        framework_tasks.echo.enqueue(argument)
    assert not OrmQ.objects.exists()


@pytest.mark.django_db
@override_settings(
    TASKS=tasks_setting(
        OPTIONS={"timeout": 5, "group": "g", "max_attempts": 3, "hook": "taskq_tests.jobs.hook"}
    )
)
def test_options_and_task_keyword_arguments_reach_the_taskq_message() -> None:
    message = payload(framework_tasks.add.enqueue(1, 2).id)
    assert (message["timeout"], message["group"], message["max_attempts"]) == (5, "g", 3)
    assert (message["hook"], message["save"]) == ("taskq_tests.jobs.hook", True)
    message = payload(framework_tasks.sleeps.enqueue(0).id)  # @task(timeout=1) wins
    assert (message["timeout"], message["max_attempts"]) == (1, 3)


@pytest.mark.django_db
def test_get_result_refuses_unknown_ids_and_other_tasks() -> None:
    backend = task_backends["default"]
    plain = async_task("taskq_tests.jobs.add", 1, 1)
    for result_id in ("nope", "0" * 32, plain, 42):
        with pytest.raises(TaskResultDoesNotExist):
            backend.get_result(result_id)
    result = framework_tasks.add.enqueue(1, 1)
    with pytest.raises(TaskResultMismatch):
        framework_tasks.echo.get_result(result.id)


# Sync mode ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@override_settings(
    Q_CLUSTER={"name": "tests", "sync": True},
    TASKS=tasks_setting(OPTIONS={"hook": "taskq_tests.jobs.hook", "group": "g"}),
)
def test_sync_mode_runs_the_task_in_the_caller_like_the_immediate_backend() -> None:
    with signals_seen() as seen:
        result = framework_tasks.add.enqueue(2, 3)
        failed = framework_tasks.fail.enqueue("kaput")
    assert (result.status, result.return_value, result.attempts) == ("SUCCESSFUL", 5, 1)
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.worker_ids == ["tests"]
    assert failed.status == TaskResultStatus.FAILED
    assert failed.errors[0].exception_class is ValueError
    assert seen == [
        ("enqueued", result.id, "READY"),
        ("started", result.id, "RUNNING"),
        ("finished", result.id, "SUCCESSFUL"),
        ("enqueued", failed.id, "READY"),
        ("started", failed.id, "RUNNING"),
        ("finished", failed.id, "FAILED"),
    ]
    assert [hooked.id for hooked in jobs.HOOK_CALLS] == [result.id, failed.id]
    assert TaskRow.objects.get(id=result.id).group == "g"
    assert not OrmQ.objects.exists()


# Real clusters ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.cluster
def test_a_cluster_runs_framework_tasks_and_get_result_reads_taskq_records(tmp_path) -> None:
    ft = framework_tasks
    added = ft.add.enqueue(1, 2)
    failed = ft.fail.enqueue("kaput")
    chained = ft.fail_custom.enqueue()
    awaited = ft.async_add.enqueue(2, 3)
    context = ft.context_info.enqueue()
    bad_return = ft.returns_a_set.enqueue()
    later = ft.add.using(run_after=timedelta(hours=1)).enqueue(0, 0)
    log = tmp_path / "signals"
    done = clusters.run_once(extra_env={"TASKQ_TEST_SIGNAL_LOG": str(log)})
    assert done.returncode == 0, done.stdout + done.stderr

    added.refresh()
    assert added.status == TaskResultStatus.SUCCESSFUL
    assert added.return_value == 3
    assert added.enqueued_at <= added.started_at <= added.finished_at
    assert added.last_attempted_at == added.started_at
    assert (added.attempts, added.worker_ids, added.errors) == (1, ["tests"], [])

    failed.refresh()
    assert failed.status == TaskResultStatus.FAILED
    assert failed.is_finished
    with pytest.raises(ValueError, match="failed"):
        failed.return_value
    [error] = failed.errors
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    assert error.traceback.startswith("Traceback (most recent call last):")
    assert error.traceback.rstrip().endswith("ValueError: kaput")
    assert "raise ValueError(message)" in error.traceback

    [error] = ft.fail_custom.get_result(chained.id).errors
    assert error.exception_class_path == "taskq_tests.framework_tasks.TaskFailure"
    assert error.exception_class is ft.TaskFailure
    assert "KeyError: 'cause'" in error.traceback

    assert ft.async_add.get_result(awaited.id).return_value == 5
    assert ft.context_info.get_result(context.id).return_value == {
        "id": context.id,
        "attempt": 1,
        "status": "RUNNING",
        "worker_ids": ["tests"],
    }
    [error] = ft.returns_a_set.get_result(bad_return.id).errors
    assert error.exception_class_path == "builtins.TypeError"
    assert ft.add.get_result(later.id).status == TaskResultStatus.READY

    lines = read_signal_log(log)
    assert {line["pid"] for line in lines}.isdisjoint({os.getpid()})
    by_id: dict[str, list[tuple[str, str]]] = {}
    for line in lines:
        by_id.setdefault(line["id"], []).append((line["signal"], line["status"]))
    assert by_id[added.id] == [("started", "RUNNING"), ("finished", "SUCCESSFUL")]
    assert by_id[failed.id] == [("started", "RUNNING"), ("finished", "FAILED")]
    assert later.id not in by_id
    assert [line["errors"] for line in lines if line["id"] == chained.id] == [
        [],
        ["taskq_tests.framework_tasks.TaskFailure"],
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.cluster
def test_retries_timeouts_and_max_attempts_from_options() -> None:
    ft = framework_tasks
    retried = ft.fails_first_attempt.enqueue()  # @task(max_attempts=2)
    timed_out = ft.sleeps.enqueue(10)  # @task(timeout=1)
    with override_settings(TASKS=tasks_setting(OPTIONS={"max_attempts": 3})):
        exhausted = ft.fail.enqueue("again")
    done = clusters.run_once()
    assert done.returncode == 0, done.stdout + done.stderr

    retried.refresh()
    assert (retried.status, retried.return_value) == ("SUCCESSFUL", 2)
    assert (retried.attempts, retried.worker_ids) == (2, ["tests", "tests"])
    exhausted.refresh()
    assert (exhausted.status, exhausted.attempts) == ("FAILED", 3)
    timed_out.refresh()
    assert timed_out.status == TaskResultStatus.FAILED
    [error] = timed_out.errors
    assert error.exception_class_path == "taskq.exceptions.TaskTimeout"
    assert error.exception_class.__name__ == "TaskTimeout"


@pytest.mark.django_db(transaction=True)
@pytest.mark.cluster
def test_higher_priority_runs_first(tmp_path) -> None:
    path = tmp_path / "ledger"
    for tag, priority in (("low", -50), ("mid", 0), ("high", 50), ("top", 100)):
        framework_tasks.ledger.using(priority=priority).enqueue(str(path), tag)
    done = clusters.run_once(workers=1)
    assert done.returncode == 0, done.stdout + done.stderr
    assert path.read_text().split() == ["top", "high", "mid", "low"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.cluster
def test_a_queue_name_runs_on_the_cluster_of_that_name() -> None:
    result = framework_tasks.send_email.enqueue("a@example.com")
    done = clusters.run_once()  # serves the default queue only
    assert done.returncode == 0, done.stdout + done.stderr
    assert framework_tasks.send_email.get_result(result.id).status == TaskResultStatus.READY
    done = clusters.run_once("--cluster-name", "emails")
    assert done.returncode == 0, done.stdout + done.stderr
    result.refresh()
    assert (result.return_value, result.worker_ids) == ("sent to a@example.com", ["emails"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.cluster
def test_a_claimed_task_is_running() -> None:
    result = framework_tasks.waits.enqueue(1.5)
    cluster = clusters.start()
    try:

        def running() -> Any:
            result.refresh()
            return result.status == TaskResultStatus.RUNNING

        clusters.wait_until(running, 30, "the task to be claimed")
        row = OrmQ.objects.get(task_ident=result.id)
        assert result.last_attempted_at == result.started_at == row.claimed
        assert (result.attempts, result.worker_ids) == (1, ["tests"])
        with pytest.raises(ValueError, match="not finished"):
            result.return_value

        def finished() -> Any:
            result.refresh()
            return result.is_finished

        clusters.wait_until(finished, 30, "the task to finish")
    finally:
        out = clusters.stop(cluster)
    assert result.return_value == 1.5, out


# Failures as text -----------------------------------------------------------------------


def stored_failure(exc: BaseException) -> str:
    """What taskq stores for a task that raised ``exc``."""
    from taskq.execution import failure_text

    return failure_text(exc)


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_task_error_of_a_builtin_a_chained_and_a_multiline_exception() -> None:
    error = task_error(stored_failure(raised(ValueError("a : b\nTraceback x"))))
    assert error.exception_class_path == "builtins.ValueError"
    assert error.traceback.startswith("Traceback (most recent call last):")
    try:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise framework_tasks.TaskFailure("outer") from exc
    except framework_tasks.TaskFailure as exc:
        error = task_error(stored_failure(exc))
    assert error.exception_class_path == "taskq_tests.framework_tasks.TaskFailure"
    assert "KeyError: 'inner'" in error.traceback
    unraised_cause = raised(RuntimeError("outer"))
    unraised_cause.__cause__ = OSError("never raised")
    error = task_error(stored_failure(unraised_cause))
    assert error.exception_class_path == "builtins.RuntimeError"


def test_task_error_of_an_exception_group_and_of_failures_without_a_traceback() -> None:
    group = raised(ExceptionGroup("several", [ValueError("one"), TypeError("two")]))
    assert task_error(stored_failure(group)).exception_class_path == "builtins.ExceptionGroup"
    timed_out = task_error("Task timed out: the task ran past its timeout")
    assert timed_out.exception_class_path == "taskq.exceptions.TaskTimeout"
    lost = task_error("Worker died: worker died (exit code -9)")
    assert lost.exception_class_path == "taskq.exceptions.TaskqError"
    assert lost.traceback == "Worker died: worker died (exit code -9)"
