"""taskq.scheduler: creating schedules, firing them exactly once, and bad input.

Firing is driven with ``run_due(config, now=...)`` on the test database (no processes,
no sleeps); the last test runs real ``qcluster`` processes (RELIABILITY.md case 11).
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from taskq import signing
from taskq.brokers.orm import OrmBroker
from taskq.conf import ClusterConfig, get_config, replace
from taskq.exceptions import InvalidTask
from taskq.models import Cluster, Failure, OrmQ, Schedule, Task
from taskq.scheduler import (
    CATCH_UP_LIMIT,
    fire,
    following_run,
    run_due,
    schedule,
    schedule_task,
    serves,
)
from taskq.tasks import async_task
from taskq_tests import clusters
from taskq_tests.clusters import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

T = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)
AMS = ZoneInfo("Europe/Amsterdam")


def config(**changes: Any) -> ClusterConfig:
    return replace(get_config(), **changes)


def queued(**filters: Any) -> list[dict[str, Any]]:
    """The task dicts in the queue, in the order they were enqueued."""
    rows = OrmQ.objects.filter(**filters).order_by("id")
    return [signing.loads(row.payload, salt=get_config().name) for row in rows]


def intended(key: str = "when") -> list[str]:
    return [task["kwargs"][key] for task in queued()]


def make(**fields: Any) -> Schedule:
    fields.setdefault("func", "taskq_tests.jobs.echo")
    fields.setdefault("intended_date_kwarg", "when")
    return Schedule.objects.create(**fields)


def fresh(row: Schedule) -> Schedule:
    return Schedule.objects.get(pk=row.pk)


def fire_at_next_run(row: Schedule, cfg: ClusterConfig | None = None) -> Schedule:
    """Fire ``row`` exactly at its next run; return it as it is then."""
    assert run_due(cfg or config(), now=fresh(row).next_run)
    return fresh(row)


# schedule(): creating ------------------------------------------------------------------


def test_schedule_saves_a_validated_row_anchored_at_next_run() -> None:
    row = schedule(
        "taskq_tests.jobs.add",
        1,
        2,
        name="adder",
        schedule_type="D",
        next_run=T,
        hook="taskq_tests.jobs.hook",
        q_options={"timeout": 30},
    )
    got = fresh(row)
    assert (got.args, got.kwargs) == ("(1, 2)", "{'q_options': {'timeout': 30}}")
    assert (got.next_run, got.anchor, got.repeats) == (T, T, -1)
    assert got.hook == "taskq_tests.jobs.hook"


def test_schedule_with_a_callable_stores_its_dotted_path() -> None:
    from taskq_tests import jobs

    row = schedule(jobs.add, 1, 2, hook=jobs.hook)
    assert (row.func, row.hook) == ("taskq_tests.jobs.add", "taskq_tests.jobs.hook")


def test_cron_schedule_starts_at_its_first_match_from_next_run() -> None:
    row = schedule("taskq_tests.jobs.add", 1, 2, cron="0 8 * * *", schedule_type="D")
    now = timezone.now()
    assert row.schedule_type == "C"
    assert now < row.next_run <= now + timedelta(days=1)
    assert (row.next_run.hour, row.next_run.minute) == (8, 0)
    start = datetime(2040, 1, 31, 7, tzinfo=UTC)
    later = schedule("taskq_tests.jobs.add", cron="0 8 * * *", next_run=start)
    assert later.next_run == datetime(2040, 1, 31, 8, tzinfo=UTC)  # not before next_run


BAD_INPUT = [
    ({"cron": "61 * * * *"}, "cron", r"invalid cron expression '61 \* \* \* \*'"),
    ({"cron": "0 0 31 2 *"}, "cron", "never matches a date"),
    ({"schedule_type": "I"}, "minutes", r"minutes must be at least 1 .* got None"),
    ({"schedule_type": "I", "minutes": 0}, "minutes", "minutes must be at least 1"),
    ({"schedule_type": "D", "minutes": -5}, "minutes", "must not be negative, got -5"),
    ({"schedule_type": "X"}, "schedule_type", r"unknown schedule type 'X'; expected one of O"),
    ({"func": "taskq_tests.jobs.gone"}, "func", "does not import to a callable"),
    ({"func": "taskq_tests.jobs.not_callable"}, "func", "does not import to a callable"),
    ({"hook": "taskq_tests.jobs.gone"}, "hook", "does not import to a callable"),
    ({"intended_date_kwarg": "not a name"}, "intended_date_kwarg", "valid keyword"),
    ({"intended_date_kwarg": "class"}, "intended_date_kwarg", "valid keyword"),
    ({"args": (object(),)}, "args", "args must be Python literals"),
    ({"kwargs": {"x": object()}}, "kwargs", "kwargs must be Python literals"),
]


@pytest.mark.parametrize(("values", "field", "message"), BAD_INPUT)
def test_schedule_refuses_bad_input_and_saves_nothing(
    values: dict[str, Any], field: str, message: str
) -> None:
    values = dict(values)
    func = values.pop("func", "taskq_tests.jobs.echo")
    args = values.pop("args", ())
    kwargs = values.pop("kwargs", {})
    with pytest.raises(ValidationError) as info:
        schedule(func, *args, **values, **kwargs)
    errors = info.value.message_dict
    assert field in errors, errors
    assert any(re.search(message, text) for text in errors[field]), errors
    assert Schedule.objects.count() == 0


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("args", "open('x')", "args \"open('x')\" is not a Python literal: only literals"),
        ("args", "1, 2)", "is not a Python literal: invalid syntax"),
        ("kwargs", "x=y", "kwargs 'x=y' is neither a dict literal nor keyword arguments"),
        ("kwargs", "[1]", "not a dict with string keys"),
    ],
)
def test_stored_argument_text_must_be_a_python_literal(field: str, text: str, message: str) -> None:
    row = Schedule(func="taskq_tests.jobs.echo", **{field: text})
    with pytest.raises(ValidationError) as info:
        row.full_clean()
    assert message in info.value.message_dict[field][0]
    assert Schedule.objects.count() == 0


def test_admin_form_shows_the_literal_error_on_the_field() -> None:
    User.objects.create_superuser("admin", password="x")
    client = Client()
    client.login(username="admin", password="x")
    data = {
        "name": "",
        "func": "taskq_tests.jobs.add",
        "hook": "",
        "args": "1, two",
        "kwargs": "x=os.system",
        "schedule_type": "D",
        "minutes": "",
        "repeats": "-1",
        "next_run_0": "2030-01-02",
        "next_run_1": "03:04:05",
        "cron": "",
        "cluster": "",
        "intended_date_kwarg": "",
    }
    response = client.post(reverse("admin:django_q_schedule_add"), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "args '1, two' is not a Python literal" in errors["args"][0]
    assert "kwargs 'x=os.system' is neither a dict literal" in errors["kwargs"][0]
    assert Schedule.objects.count() == 0


def test_a_duplicate_name_raises_integrity_error() -> None:
    schedule("taskq_tests.jobs.add", 1, 2, name="nightly", schedule_type="D")
    with pytest.raises(IntegrityError, match="A schedule named 'nightly' already exists"):
        schedule("taskq_tests.jobs.add", 3, 4, name="nightly", schedule_type="H")
    assert Schedule.objects.count() == 1
    other = Schedule(func="taskq_tests.jobs.add", name="nightly")
    with pytest.raises(ValidationError, match="already exists"):
        other.full_clean()  # the admin's form shows it on the name field


def test_schedule_refuses_bad_q_options() -> None:
    with pytest.raises(InvalidTask, match=r"unknown option\(s\) in q_options: colour"):
        schedule("taskq_tests.jobs.add", q_options={"colour": "red"})
    with pytest.raises(InvalidTask, match="q_options must be a dict"):
        schedule("taskq_tests.jobs.add", q_options=[("timeout", 1)])
    assert Schedule.objects.count() == 0


# run_due: firing -----------------------------------------------------------------------


def test_a_due_schedule_fires_once_and_steps_from_its_previous_run() -> None:
    row = make(schedule_type="D", next_run=T)
    later = T + timedelta(hours=5)  # late: the next run is still counted from T
    ids = run_due(config(), now=later)
    assert len(ids) == 1
    got = fresh(row)
    assert got.next_run == T + timedelta(days=1)
    assert got.task == ids[0]
    assert [t["id"] for t in queued()] == ids
    assert run_due(config(), now=later) == []  # the same pass again: nothing


def test_a_schedule_not_yet_due_is_left_alone() -> None:
    row = make(schedule_type="D", next_run=T)
    assert run_due(config(), now=T - timedelta(seconds=1)) == []
    assert fresh(row).next_run == T
    assert OrmQ.objects.count() == 0


def test_paused_and_spent_schedules_never_fire() -> None:
    make(schedule_type="D", next_run=T)
    Schedule.objects.update(next_run=None)  # paused
    make(schedule_type="H", next_run=T, repeats=0)  # spent
    assert run_due(config(), now=T + timedelta(days=9)) == []


def test_catch_up_runs_every_missed_occurrence_after_downtime() -> None:
    row = make(schedule_type="H", next_run=T)
    ids = run_due(config(catch_up=True), now=T + timedelta(hours=5, minutes=30))
    assert len(ids) == 6
    assert intended() == [(T + timedelta(hours=n)).isoformat() for n in range(6)]
    got = fresh(row)
    assert got.next_run == T + timedelta(hours=6)
    assert got.task == ids[-1]


def test_without_catch_up_runs_once_and_jumps_to_the_next_future_time() -> None:
    row = make(schedule_type="H", next_run=T)
    ids = run_due(config(catch_up=False), now=T + timedelta(hours=5, minutes=30))
    assert len(ids) == 1
    assert intended() == [T.isoformat()]  # the missed occurrence it stands for
    assert fresh(row).next_run == T + timedelta(hours=6)


def test_cron_without_catch_up_jumps_to_the_first_future_match() -> None:
    row = make(cron="*/15 * * * *")
    Schedule.objects.filter(pk=row.pk).update(next_run=T)
    run_due(config(catch_up=False), now=T + timedelta(days=2, minutes=7))
    assert intended() == [T.isoformat()]
    assert fresh(row).next_run == T + timedelta(days=2, minutes=15)


def test_cron_with_catch_up_runs_every_missed_match() -> None:
    row = make(cron="*/15 * * * *")
    Schedule.objects.filter(pk=row.pk).update(next_run=T)
    run_due(config(catch_up=True), now=T + timedelta(minutes=50))
    assert intended() == [(T + timedelta(minutes=m)).isoformat() for m in (0, 15, 30, 45)]
    assert fresh(row).next_run == T + timedelta(minutes=60)


def test_catch_up_is_capped_per_pass_and_finishes_over_the_next_passes() -> None:
    row = make(schedule_type="I", minutes=1, next_run=T)
    now = T + timedelta(minutes=249, seconds=30)  # 250 missed runs
    counts = [len(run_due(config(), now=now)) for _ in range(4)]
    assert counts == [CATCH_UP_LIMIT, CATCH_UP_LIMIT, 250 - 2 * CATCH_UP_LIMIT, 0]
    assert intended() == [(T + timedelta(minutes=n)).isoformat() for n in range(250)]
    assert fresh(row).next_run == T + timedelta(minutes=250)


def test_seconds_cron_runs_every_second() -> None:
    row = schedule(
        "taskq_tests.jobs.echo", cron="* * * * * *", intended_date_kwarg="when", name="tick"
    )
    start = row.next_run
    assert start.microsecond == 0
    assert timezone.now() < start <= timezone.now() + timedelta(seconds=1)
    run_due(config(), now=start + timedelta(seconds=9, milliseconds=500))
    assert intended() == [(start + timedelta(seconds=n)).isoformat() for n in range(10)]
    assert fresh(row).next_run == start + timedelta(seconds=10)


def test_repeats_count_down_and_a_spent_schedule_stays_with_zero() -> None:
    row = make(schedule_type="H", next_run=T, repeats=5)
    run_due(config(), now=T)
    assert fresh(row).repeats == 4
    run_due(config(), now=T + timedelta(hours=9))  # catch-up stops at the last repeat
    got = fresh(row)
    assert got.repeats == 0
    assert len(queued()) == 5
    assert got.next_run == T + timedelta(hours=5)
    assert run_due(config(), now=T + timedelta(days=9)) == []


def test_repeats_below_minus_one_mean_forever() -> None:
    row = make(schedule_type="H", next_run=T, repeats=-7)
    run_due(config(), now=T)
    assert fresh(row).repeats == -1


def test_a_once_schedule_is_deleted_after_it_fired() -> None:
    make(schedule_type="O", next_run=T)
    assert len(run_due(config(), now=T + timedelta(days=3))) == 1
    assert intended() == [T.isoformat()]
    assert Schedule.objects.count() == 0


def test_a_once_schedule_with_positive_repeats_is_kept_as_done() -> None:
    row = make(schedule_type="O", next_run=T, repeats=3)
    ids = run_due(config(), now=T)
    got = fresh(row)
    assert (got.repeats, got.next_run, got.task) == (0, T, ids[0])
    assert run_due(config(), now=T + timedelta(days=1)) == []


def test_monthly_from_the_31st_clamps_and_comes_back() -> None:
    row = make(schedule_type="M", next_run=T)
    runs = [fire_at_next_run(row).next_run for _ in range(4)]
    assert [run.date().isoformat() for run in runs] == [
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
        "2026-05-31",
    ]
    assert fresh(row).anchor == T


def test_daily_through_the_spring_gap_comes_back_to_its_time() -> None:
    amsterdam = config(time_zone="Europe/Amsterdam")
    row = make(schedule_type="D", next_run=datetime(2026, 3, 27, 2, 30, tzinfo=AMS))
    walls = [fire_at_next_run(row, amsterdam).next_run.astimezone(AMS) for _ in range(3)]
    assert [w.strftime("%m-%d %H:%M") for w in walls] == [
        "03-28 02:30",
        "03-29 03:00",
        "03-30 02:30",
    ]


def test_a_django_q2_row_without_anchor_takes_its_next_run_when_first_fired() -> None:
    row = make(schedule_type="M", next_run=T)
    Schedule.objects.filter(pk=row.pk).update(anchor=None)
    got = fire_at_next_run(row)
    assert (got.anchor, got.next_run) == (T, datetime(2026, 2, 28, 9, tzinfo=UTC))
    assert fire_at_next_run(row).next_run == datetime(2026, 3, 31, 9, tzinfo=UTC)


def test_saving_a_new_timetable_re_anchors_it_and_other_edits_keep_the_anchor() -> None:
    row = make(schedule_type="M", next_run=T)
    fire_at_next_run(row)  # next run Feb 28, anchor Jan 31
    got = fresh(row)
    got.args = "1, 2"
    got.next_run = got.next_run.replace(microsecond=0)  # as the admin's form sends it back
    got.save()
    assert fresh(row).anchor == T
    got.next_run = datetime(2026, 3, 10, 7, tzinfo=UTC)  # edited: counted from here now
    got.save()
    assert fresh(row).anchor == datetime(2026, 3, 10, 7, tzinfo=UTC)
    assert fire_at_next_run(row).next_run == datetime(2026, 4, 10, 7, tzinfo=UTC)
    got = fresh(row)
    got.schedule_type = "W"
    got.save(update_fields=["schedule_type"])
    assert fresh(row).anchor == got.next_run


def test_rows_read_with_deferred_fields_load_and_save_without_re_anchoring() -> None:
    row = make(schedule_type="M", next_run=T)
    Schedule.objects.filter(pk=row.pk).update(next_run=datetime(2026, 2, 28, 9, tzinfo=UTC))
    partial = Schedule.objects.only("id", "args").get(pk=row.pk)
    partial.args = "1, 2"
    partial.save(update_fields=["args"])
    got = fresh(row)
    assert (got.args, got.anchor) == ("1, 2", T)


def test_a_new_cron_expression_moves_next_run_to_its_first_match() -> None:
    row = schedule("taskq_tests.jobs.add", cron="0 8 * * *")
    row = fresh(row)
    row.cron = "30 9 * * *"
    row.save()
    assert (fresh(row).next_run.hour, fresh(row).next_run.minute) == (9, 30)
    Schedule.objects.filter(pk=row.pk).update(next_run=None)  # paused stays paused
    row = fresh(row)
    row.cron = "0 10 * * *"
    row.save()
    assert fresh(row).next_run is None


def test_calculate_next_run_and_following_run_count_from_the_anchor() -> None:
    row = make(schedule_type="M", next_run=T)
    Schedule.objects.filter(pk=row.pk).update(next_run=datetime(2026, 2, 28, 9, tzinfo=UTC))
    row = fresh(row)
    assert row.calculate_next_run() == datetime(2026, 3, 31, 9, tzinfo=UTC)
    assert following_run(row, config(), T) == datetime(2026, 3, 31, 9, tzinfo=UTC)
    late = datetime(2026, 6, 5, tzinfo=UTC)
    assert following_run(row, config(catch_up=False), late) == datetime(2026, 6, 30, 9, tzinfo=UTC)


# what the task gets ----------------------------------------------------------------------


def test_cluster_routing_only_the_named_cluster_fires_it_and_gets_its_task() -> None:
    special = make(schedule_type="D", next_run=T, cluster="special")
    plain = make(schedule_type="D", next_run=T)
    default, other = config(), config(cluster_name="special")
    assert serves(plain, default)
    assert not serves(special, default)
    assert serves(special, other)
    assert not serves(plain, other)
    assert len(run_due(default, now=T)) == 1
    assert fresh(special).next_run == T
    assert len(run_due(other, now=T)) == 1
    assert sorted(OrmQ.objects.values_list("key", flat=True)) == ["special", "tests"]
    assert queued(key="special")[0]["cluster"] == "special"


def test_q_options_hook_and_group_as_django_q2() -> None:
    make(
        schedule_type="D",
        next_run=T,
        name="report",
        hook="taskq_tests.jobs.hook",
        kwargs="{'timeout': 3, 'q_options': {'timeout': 30, 'priority': 5, "
        "'hook': 'math.floor', 'cluster': 'elsewhere'}}",
    )
    run_due(config(), now=T)
    (task,) = queued()
    assert task["kwargs"] == {"timeout": 3, "when": T.isoformat()}  # the function's own
    assert (task["timeout"], task["priority"]) == (30, 5)
    assert task["hook"] == "taskq_tests.jobs.hook"  # the schedule's hook wins, as in Django-Q2
    assert task["group"] == "report"
    assert (task["cluster"], OrmQ.objects.get().key) == ("elsewhere", "elsewhere")


def test_group_is_the_name_else_the_id_unless_q_options_has_one() -> None:
    unnamed = make(schedule_type="D", next_run=T)
    make(schedule_type="D", next_run=T, kwargs="q_options={'group': 'mine'}")
    run_due(config(), now=T)
    assert sorted(task["group"] for task in queued()) == sorted([str(unnamed.pk), "mine"])


def test_intended_date_is_the_occurrence_in_django_q2s_iso_format() -> None:
    moment = datetime(2026, 3, 1, 6, 30, 15, 250000, tzinfo=UTC)
    make(schedule_type="W", next_run=moment, intended_date_kwarg="report_date")
    run_due(config(), now=moment + timedelta(minutes=3))
    assert queued()[0]["kwargs"] == {"report_date": "2026-03-01T06:30:15.250000+00:00"}


def test_a_schedule_that_cannot_make_its_task_records_a_failure_and_moves_on() -> None:
    broken = make(schedule_type="H", next_run=T, func="taskq_tests.jobs.gone", name="broken")
    Schedule.objects.filter(pk=broken.pk).update(args="open('x')")
    good = make(schedule_type="H", next_run=T)
    ids = run_due(config(), now=T + timedelta(hours=2))
    assert len(ids) == 3  # the good schedule's runs at T, T+1h, T+2h
    assert intended() == [(T + timedelta(hours=n)).isoformat() for n in range(3)]
    failure = Failure.objects.get()
    assert fresh(broken).task == failure.id
    assert fresh(broken).next_run == fresh(good).next_run == T + timedelta(hours=3)
    assert failure.group == "broken"
    assert "could not enqueue its run(s)" in failure.result
    assert "not a Python literal" in failure.result
    assert fresh(broken).success() is False


def test_admin_run_now_is_an_extra_run_that_leaves_the_occurrence_alone() -> None:
    row = make(schedule_type="D", next_run=T)
    now = T - timedelta(minutes=1)
    extra = schedule_task(fresh(row), intended=now)
    assert fresh(row).next_run == T
    ids = run_due(config(), now=T)
    assert len(ids) == 1
    assert intended() == [now.isoformat(), T.isoformat()]
    assert fresh(row).task == ids[0] != extra


# exactly once --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"schedule_type": "D"},
        {"schedule_type": "H", "repeats": 4},
        {"schedule_type": "O"},
        {"schedule_type": "O", "repeats": 2},
        {"cron": "* * * * * *"},
    ],
)
def test_two_clusters_firing_the_same_stale_row_enqueue_one_task(fields: dict[str, Any]) -> None:
    row = make(**fields)
    Schedule.objects.filter(pk=row.pk).update(next_run=T)
    stale = fresh(row)  # what both clusters read
    first = fire(stale, config(), T + timedelta(seconds=1, milliseconds=500))
    second = fire(stale, config(), T + timedelta(seconds=1, milliseconds=500))
    assert len(first) >= 1
    assert second == []
    assert OrmQ.objects.count() == len(first)


def test_a_row_changed_since_it_was_read_is_not_fired() -> None:
    row = make(schedule_type="D", next_run=T)
    stale = fresh(row)
    Schedule.objects.filter(pk=row.pk).update(next_run=None)  # paused in the admin meanwhile
    assert fire(stale, config(), T) == []
    assert OrmQ.objects.count() == 0


class RefusingBroker(OrmBroker):
    """An ORM broker whose enqueue fails after the occurrence was claimed."""

    def enqueue(self, payload: str, **kwargs: Any) -> int:
        super().enqueue(payload, **kwargs)
        raise RuntimeError("the broker went away")


def test_a_failed_enqueue_rolls_the_claim_back_and_the_next_pass_fires_it() -> None:
    row = make(schedule_type="H", next_run=T)
    cfg = config()
    assert run_due(cfg, RefusingBroker(config=cfg), now=T) == []
    assert (fresh(row).next_run, OrmQ.objects.count()) == (T, 0)
    assert len(run_due(cfg, now=T)) == 1
    assert fresh(row).next_run == T + timedelta(hours=1)


def test_run_due_defaults_to_the_database_clock() -> None:
    now = timezone.now()
    due = make(schedule_type="D", next_run=now - timedelta(seconds=1))
    make(schedule_type="D", next_run=now + timedelta(minutes=5))
    assert len(run_due(config())) == 1
    assert fresh(due).next_run == now - timedelta(seconds=1) + timedelta(days=1)


@pytest.mark.postgres
def test_skip_locked_passes_over_a_schedule_another_cluster_is_firing() -> None:
    row = make(schedule_type="D", next_run=T)
    locked, release = threading.Event(), threading.Event()

    def other_cluster() -> None:
        with transaction.atomic():
            Schedule.objects.select_for_update().get(pk=row.pk)
            locked.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=other_cluster)
    thread.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        assert run_due(config(), now=T) == []  # not blocked, not fired
        assert time.monotonic() - started < 2
    finally:
        release.set()
        thread.join()
    assert len(run_due(config(), now=T)) == 1


# real clusters -------------------------------------------------------------------------


def enqueued_runs(group: str) -> dict[str, tuple[datetime, datetime]]:
    """Every task of ``group`` ever enqueued (run or still queued): id -> (intended, enqueued)."""
    found = {}
    for task in Task.objects.filter(group=group):
        found[task.id] = (datetime.fromisoformat(task.kwargs["when"]), task.started)
    for row in OrmQ.objects.all():
        task = signing.loads(row.payload, salt=get_config().name)
        if task.get("group") == group:
            found[task["id"]] = (datetime.fromisoformat(task["kwargs"]["when"]), task["started"])
    return found


@pytest.mark.slow
@pytest.mark.cluster
def test_three_clusters_enqueue_each_occurrence_of_a_one_second_schedule_exactly_once() -> None:
    """RELIABILITY.md case 11: three clusters, a busy queue, one cluster SIGKILLed and
    replaced; every second is enqueued once. Prints the firing delay (enqueue - intended)."""
    for i in range(3000):  # a busy queue: the workers never run dry
        async_task("taskq_tests.jobs.sleep", 0.05, task_name=f"busy-{i}")
    options = {"workers": 2, "guard_cycle": 0.5, "schedule_interval": 1.0, "retry": 60}
    running = [clusters.start(**options) for _ in range(3)]
    try:
        wait_until(lambda: Cluster.objects.count() == 3, 60, "three clusters up")
        tick = schedule(
            "taskq_tests.jobs.echo", cron="* * * * * *", name="tick", intended_date_kwarg="when"
        )
        wait_until(lambda: len(enqueued_runs("tick")) >= 8, 60, "the schedule to fire")
        clusters.kill_group(running.pop(0))  # SIGKILL, perhaps mid-transaction
        running.append(clusters.start(**options))
        wait_until(lambda: len(enqueued_runs("tick")) >= 25, 60, "25 occurrences")
        busy = OrmQ.objects.filter(task_name__startswith="busy-").count()
    finally:
        outputs = "\n".join(clusters.stop(process) for process in running)
    runs = enqueued_runs("tick")
    times = sorted(when for when, _ in runs.values())
    assert len(times) == len(set(times)), "an occurrence was enqueued twice"
    assert times == [tick.next_run + timedelta(seconds=n) for n in range(len(times))], outputs
    assert fresh(tick).next_run == times[-1] + timedelta(seconds=1)  # none skipped
    delays = sorted((enqueued - when).total_seconds() for when, enqueued in runs.values())
    print(
        f"\nfiring delay of a 1-second schedule on {connection.vendor}, 3 clusters, "
        f"{busy} busy tasks still queued: {len(delays)} occurrences, max {delays[-1]:.3f}s, "
        f"p50 {statistics.median(delays):.3f}s, p95 {delays[int(len(delays) * 0.95) - 1]:.3f}s"
    )
    assert busy > 0, "the queue ran dry: the delay was not measured under load"
    assert delays[0] >= 0
    assert delays[-1] < 5, delays
