"""qclean and clean_old_tasks(): what each flag removes, dry runs, and bad arguments."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from django.core import signing as django_signing
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from taskq import cleanup, signing
from taskq.brokers import get_broker
from taskq.conf import get_config
from taskq.models import Failure, OrmQ, Schedule, Success, Task
from taskq.tasks import async_task, clean_old_tasks, schedule
from taskq_tests import clusters

pytestmark = pytest.mark.django_db(transaction=True)


def make_task(
    *, success: bool = True, age: timedelta = timedelta(0), group: str | None = None
) -> Task:
    stopped = timezone.now() - age
    return Task.objects.create(
        id=os.urandom(16).hex(),
        name="t",
        func="taskq_tests.jobs.add",
        group=group,
        started=stopped - timedelta(seconds=1),
        stopped=stopped,
        success=success,
    )


def ages(model: Any) -> list[int]:
    """The ages in hours of the rows left, newest first."""
    now = timezone.now()
    return [round((now - row.stopped).total_seconds() / 3600) for row in model.objects.all()]


def qclean(*args: str, **options: Any) -> list[str]:
    out = io.StringIO()
    call_command("qclean", *args, stdout=out, **options)
    return out.getvalue().splitlines()


def count(lines: list[str], label: str) -> int:
    [found] = [text for text in lines if text.startswith(label)]
    return int(found.split()[1])


def tamper(task_id: str) -> OrmQ:
    row = OrmQ.objects.get(task_ident=task_id)
    row.payload = row.payload[:-3] + ("AAA" if not row.payload.endswith("AAA") else "BBB")
    row.save()
    return row


def snapshot() -> dict[str, Any]:
    return {
        "tasks": sorted(Task.objects.values_list("id", "success")),
        "schedules": sorted(Schedule.objects.values_list("id", flat=True)),
        "queue": sorted(OrmQ.objects.values_list("id", "payload", "owner")),
    }


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("12h", 43200),
        ("7d", 604800),
        ("2w", 1209600),
        ("1d12h", 129600),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert cleanup.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["7x", "", "7", "d", "-1d", "1.5h", "7 days"])
def test_parse_duration_refuses_malformed_values(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        cleanup.parse_duration(text)


def test_qclean_deletes_successes_beyond_save_limit(settings) -> None:
    settings.Q_CLUSTER = {"name": "tests", "save_limit": 3}
    for hours in (5, 1, 4, 2, 3):
        make_task(age=timedelta(hours=hours))
    failure = make_task(success=False, age=timedelta(days=30))
    lines = qclean()
    assert count(lines, "Successes") == 2
    assert ages(Success) == [1, 2, 3]
    assert list(Failure.objects.all()) == [failure]  # never touched without --failures
    assert "failures are kept; --failures cleans them" in "\n".join(lines)


def test_qclean_save_limit_per_group(settings) -> None:
    settings.Q_CLUSTER = {"name": "tests", "save_limit": 2, "save_limit_per": "group"}
    for hours in (1, 2, 3):
        make_task(age=timedelta(hours=hours), group="a")
        make_task(age=timedelta(hours=hours))
    make_task(group="b")
    assert count(qclean(), "Successes") == 2
    groups = sorted(Success.objects.values_list("group", flat=True), key=lambda g: g or "")
    assert groups == [None, None, "a", "a", "b"]
    assert Success.objects.filter(stopped__lt=timezone.now() - timedelta(hours=2.5)).count() == 0


def test_qclean_save_limit_zero_keeps_every_success(settings) -> None:
    settings.Q_CLUSTER = {"name": "tests", "save_limit": 0}
    for hours in range(5):
        make_task(age=timedelta(hours=hours))
    assert count(qclean(), "Successes") == 0
    assert Success.objects.count() == 5


def test_qclean_keep_overrides_save_limit(settings) -> None:
    settings.Q_CLUSTER = {"name": "tests", "save_limit": 0}
    for hours in range(1, 6):
        make_task(age=timedelta(hours=hours))
    assert count(qclean("--keep", "2"), "Successes") == 3
    assert ages(Success) == [1, 2]
    assert count(qclean("--keep", "0"), "Successes") == 2
    assert Success.objects.count() == 0


def test_qclean_older_than_also_deletes_old_successes_once(settings) -> None:
    settings.Q_CLUSTER = {"name": "tests", "save_limit": 2}
    for hours in (1, 2, 3 * 24, 10 * 24):
        make_task(age=timedelta(hours=hours))
    # the 10-day-old one is too old; of the rest, the 3-day-old one is beyond save_limit
    assert count(qclean("--older-than", "7d", "--dry-run"), "Successes") == 2
    assert count(qclean("--older-than", "7d"), "Successes") == 2
    assert ages(Success) == [1, 2]
    assert count(qclean("--older-than", "90m"), "Successes") == 1
    assert ages(Success) == [1]


def test_qclean_failures_follow_the_same_rules_with_the_flag(settings) -> None:
    settings.Q_CLUSTER = {"name": "tests", "save_limit": 3}
    for hours in (1, 2, 3, 4, 30 * 24):
        make_task(success=False, age=timedelta(hours=hours))
    assert count(qclean(), "Failures") == 0
    assert Failure.objects.count() == 5
    lines = qclean("--failures", "--older-than", "2w")
    assert count(lines, "Failures") == 2
    assert ages(Failure) == [1, 2, 3]
    assert count(qclean("--failures", "--keep", "1"), "Failures") == 2
    assert ages(Failure) == [1]


def test_qclean_deletes_spent_once_schedules_only() -> None:
    spent = Schedule.objects.create(func="taskq_tests.jobs.add", repeats=0)
    Schedule.objects.create(func="taskq_tests.jobs.add", repeats=-1)
    Schedule.objects.create(func="taskq_tests.jobs.add", repeats=2)
    Schedule.objects.create(func="taskq_tests.jobs.add", repeats=0, schedule_type="D")
    assert count(qclean(), "Schedules") == 1
    assert not Schedule.objects.filter(pk=spent.pk).exists()
    assert Schedule.objects.count() == 3


def test_qclean_turns_unreadable_queue_rows_into_failures() -> None:
    good = async_task("taskq_tests.jobs.add", 1, 2)
    tampered_id = async_task("taskq_tests.jobs.add", 3, 4, task_name="tampered")
    tampered = tamper(tampered_id)
    foreign = django_signing.dumps(
        {"id": "f" * 32, "name": "foreign", "func": "taskq_tests.jobs.add", "args": (1, 1)},
        key="some-other-secret",
        salt="tests",
        serializer=signing.PickleSerializer,
    )
    foreign_pk = get_broker().enqueue(foreign)
    claimed_id = async_task("taskq_tests.jobs.add", 5, 6)
    claimed = tamper(claimed_id)
    OrmQ.objects.filter(pk=claimed.pk).update(owner="c" * 32, token="t" * 32, attempt=1)

    lines = qclean()
    assert count(lines, "Unreadable") == 2
    assert "2 queued tasks became failures (removed from the queue)" in lines[-1]
    assert sorted(OrmQ.objects.values_list("task_ident", flat=True)) == sorted([good, claimed_id])
    failure = Failure.objects.get(id=tampered_id)  # found under the id async_task returned
    assert failure.name == "tampered"
    assert failure.func == "taskq_tests.jobs.add"
    assert failure.cluster == "tests"
    assert failure.attempt_count == 0  # never started
    assert failure.result.startswith("Package refused, never run: InvalidSignature: bad signature")
    assert "qclean" in failure.result
    assert failure.started <= failure.stopped
    other = Failure.objects.exclude(id=tampered.task_ident).get()
    assert other.name == f"unreadable-{foreign_pk}"
    assert other.func == "<unreadable package>"
    assert "Package refused, never run" in other.result
    assert count(qclean(), "Unreadable") == 0


def test_qclean_dry_run_changes_nothing_and_counts_what_a_run_would_do(settings) -> None:
    settings.Q_CLUSTER = {"name": "tests", "save_limit": 1}
    for hours in (1, 2, 3):
        make_task(age=timedelta(hours=hours))
    for days in (1, 20):
        make_task(success=False, age=timedelta(days=days))
    Schedule.objects.create(func="taskq_tests.jobs.add", repeats=0)
    tamper(async_task("taskq_tests.jobs.add", 1, 2))
    before = snapshot()
    dry = qclean("--failures", "--older-than", "1w", "--dry-run")
    assert snapshot() == before
    assert dry[0] == "Dry run: nothing was changed."
    assert dry[1].endswith("would be deleted")
    assert dry[-1] == "Unreadable  1 queued task would become a failure (removed from the queue)"
    wet = qclean("--failures", "--older-than", "1w")
    assert "Dry run" not in "\n".join(wet)
    expected = {"Successes": 2, "Failures": 1, "Schedules": 1, "Unreadable": 1}
    for label, number in expected.items():
        assert count(dry, label) == number, dry
        assert count(wet, label) == number, wet
    assert snapshot() != before


@pytest.mark.parametrize(
    "args",
    [
        ("--older-than", "7x"),
        ("--older-than", "seven days"),
        ("--keep", "-1"),
        ("--keep", "many"),
    ],
)
def test_qclean_bad_arguments_are_usage_errors(args: tuple[str, str]) -> None:
    make_task()
    with pytest.raises(CommandError, match=args[1]):
        qclean(*args)
    assert Task.objects.count() == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [({"older_than": "7x"}, "is not a duration"), ({"keep": -3}, "not a number of rows")],
)
def test_qclean_bad_keyword_options_of_call_command(options: dict[str, Any], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        qclean(**options)


def test_qclean_keyword_options_of_call_command() -> None:
    make_task(age=timedelta(days=10))
    make_task()
    assert count(qclean(older_than="1w"), "Successes") == 1
    assert count(qclean(older_than=timedelta(seconds=0), keep=5), "Successes") == 1
    assert Success.objects.count() == 0


def test_qclean_bad_argument_on_the_command_line_prints_the_usage() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "django", "qclean", "--older-than", "7x"],
        env=clusters.cluster_env(),
        cwd=clusters.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("usage: ")
    assert "--older-than DURATION" in done.stderr
    assert "'7x' is not a duration" in done.stderr
    assert done.stdout == ""


def test_clean_old_tasks_does_the_default_clean(settings) -> None:
    settings.Q_CLUSTER = {"name": "tests", "save_limit": 1}
    make_task(age=timedelta(hours=1))
    make_task(age=timedelta(hours=2))
    failure = make_task(success=False, age=timedelta(days=300))
    Schedule.objects.create(func="taskq_tests.jobs.add", repeats=0)
    assert clean_old_tasks() == {
        "successes": 1,
        "failures": 0,
        "schedules": 1,
        "unreadable": 0,
        "failures_cleaned": False,
        "dry_run": False,
    }
    assert ages(Success) == [1]
    assert list(Failure.objects.all()) == [failure]


def test_clean_old_tasks_can_be_scheduled_and_run_as_a_task(settings) -> None:
    settings.Q_CLUSTER = {"name": "tests", "save_limit": 2}
    row = schedule("taskq.tasks.clean_old_tasks", schedule_type="D", name="clean")
    assert (row.func, row.schedule_type) == ("taskq.tasks.clean_old_tasks", "D")
    for hours in (1, 2, 3, 4):
        make_task(age=timedelta(hours=hours))
    task_id = async_task("taskq.tasks.clean_old_tasks", sync=True)
    assert Task.objects.get(id=task_id).result["successes"] == 2
    assert ages(Success) == [0, 1, 2]  # its own result, and the two newest it kept


def test_clean_refuses_a_negative_keep() -> None:
    with pytest.raises(ValueError, match="keep must be 0 or more"):
        cleanup.clean(get_config(), keep=-1)
