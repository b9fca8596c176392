"""Task ids: Django-Q2's format, time-ordered; names hashed from the whole id."""

from __future__ import annotations

import re
import uuid

import pytest

from taskq.ids import new_task_id, task_name
from taskq.models import Task
from taskq.tasks import async_task, fetch

HEX32 = re.compile(r"[0-9a-f]{32}")
MS = 1_000_000  # nanoseconds


def test_an_id_is_32_hex_digits_that_read_as_a_version_7_uuid() -> None:
    task_id = new_task_id()
    assert HEX32.fullmatch(task_id)
    parsed = uuid.UUID(task_id)
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert parsed.hex == task_id


def test_the_first_twelve_digits_are_the_time_in_milliseconds() -> None:
    now_ns = 1_796_300_000_123 * MS + 456_789
    assert int(new_task_id(now_ns)[:12], 16) == 1_796_300_000_123


def test_ids_sort_by_time_and_differ_within_a_millisecond() -> None:
    times = [1_796_300_000_000 * MS + step * MS for step in range(50)]
    ids = [new_task_id(t) for t in times]
    assert ids == sorted(ids)
    same_moment = {new_task_id(times[0]) for _ in range(1000)}
    assert len(same_moment) == 1000  # 74 random bits each


def test_names_are_four_words_that_do_not_follow_the_time() -> None:
    moment = 1_796_300_000_000 * MS
    names = [task_name(new_task_id(moment)) for _ in range(50)]
    assert all(len(name.split("-")) == 4 for name in names)
    for position in range(4):  # the time in the ids is shared; no word position is
        assert len({name.split("-")[position] for name in names}) > 1
    assert task_name("0" * 32) == task_name("0" * 32)  # a hash: the same id, the same name


@pytest.mark.django_db
def test_async_task_gives_a_time_ordered_id_and_its_name() -> None:
    first = async_task("taskq_tests.jobs.add", 1, 2, sync=True)
    second = async_task("taskq_tests.jobs.add", 2, 2, sync=True)
    assert first < second or first[:12] == second[:12]  # the same millisecond: random order
    row = Task.objects.get(id=first)
    assert row.name == task_name(first)
    assert fetch(second).result == 4


@pytest.mark.django_db
def test_django_q2_ids_and_taskq_ids_live_side_by_side() -> None:
    legacy = uuid.uuid4().hex  # how Django-Q2 made its ids
    async_task("taskq_tests.jobs.add", 1, 1, q_options={"task_name": "legacy", "sync": True})
    Task.objects.filter(name="legacy").update(id=legacy)
    async_task("taskq_tests.jobs.add", 1, 2, sync=True)
    assert fetch(legacy).result == 2
    assert Task.objects.count() == 2
