"""async_iter, async_chain, Iter, Chain and AsyncTask (in sync mode here)."""

from __future__ import annotations

import pytest

from taskq.exceptions import InvalidTask
from taskq.models import OrmQ, Task
from taskq.tasks import (
    AsyncTask,
    Chain,
    Iter,
    async_chain,
    async_iter,
    count_group,
    delete_group,
    fetch_group,
    result,
    result_group,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_async_iter_collates_results_in_input_order() -> None:
    iter_id = async_iter("taskq_tests.jobs.add", [(i, 100) for i in range(12)], sync=True)
    assert result(iter_id) == [i + 100 for i in range(12)]
    assert Task.objects.count() == 1
    assert Task.objects.get().args == [(i, 100) for i in range(12)]


def test_async_iter_wraps_single_arguments() -> None:
    iter_id = async_iter("taskq_tests.jobs.echo", [1, 2], sync=True)
    assert [r["args"] for r in result(iter_id)] == [(1,), (2,)]


def test_async_iter_cached_result() -> None:
    iter_id = async_iter("taskq_tests.jobs.add", [(1, 1), (2, 2)], cached=True, sync=True)
    assert result(iter_id, cached=True) == [2, 4]
    assert Task.objects.count() == 0


def test_async_iter_queued_tasks_carry_the_count() -> None:
    iter_id = async_iter("taskq_tests.jobs.add", [(1, 1), (2, 2)])
    rows = OrmQ.objects.order_by("id")
    assert [r.task["iter_count"] for r in rows] == [2, 2]
    assert {r.task["group"] for r in rows} == {iter_id}


def test_async_chain_runs_links_in_order() -> None:
    group = async_chain(
        [
            ("taskq_tests.jobs.add", (1, 2)),
            ("taskq_tests.jobs.add", (3, 4)),
            ("taskq_tests.jobs.echo", (), {"x": 1}),
        ],
        sync=True,
    )
    assert result_group(group) == [3, 7, {"args": (), "kwargs": {"x": 1}}]
    assert count_group(group) == 3


def test_async_chain_queues_only_the_first_link() -> None:
    async_chain([("taskq_tests.jobs.add", (1, 2)), ("taskq_tests.jobs.add", (3, 4))])
    task = OrmQ.objects.get().task
    assert task["args"] == (1, 2)
    assert task["chain"] == [("taskq_tests.jobs.add", (3, 4))]


def test_a_bad_link_is_refused_before_anything_runs() -> None:
    with pytest.raises(InvalidTask, match="does not import"):
        async_chain([("taskq_tests.jobs.add", (1, 2)), ("taskq_tests.jobs.missing",)])
    assert OrmQ.objects.count() == 0


def test_chain_object() -> None:
    chain = Chain(sync=True)
    chain.append("taskq_tests.jobs.add", 1, 1)
    chain.append("taskq_tests.jobs.add", 2, 2)
    assert chain.length() == 2
    assert chain.result() is None
    chain.run()
    assert chain.result() == [2, 4]
    assert chain.current() == 2
    assert [t.result for t in chain.fetch()] == [2, 4]


def test_iter_object() -> None:
    it = Iter("taskq_tests.jobs.add", sync=True)
    it.append(1, 2)
    it.append(3, 4)
    it.run()
    assert it.result() == [3, 7]
    assert it.fetch().result == [3, 7]


def test_async_task_object() -> None:
    task = AsyncTask("taskq_tests.jobs.add", 20, 22, group="answers")
    task.sync = True
    assert task.group == "answers"
    task.run()
    assert task.result() == 42
    assert task.fetch().group == "answers"
    assert task.result_group() == [42]
    assert [t.id for t in task.fetch_group()] == [task.id]


def test_groups_failures_and_delete() -> None:
    from taskq.tasks import async_task

    async_task("taskq_tests.jobs.add", 1, 1, group="g", sync=True)
    with pytest.raises(ValueError, match="boom"):
        async_task("taskq_tests.jobs.fail", group="g", sync=True)
    assert result_group("g") == [2]
    assert len(result_group("g", failures=True)) == 2
    assert count_group("g") == 2
    assert count_group("g", failures=True) == 1
    assert len(fetch_group("g", failures=False)) == 1
    assert result_group("unknown") == []
    delete_group("g")
    assert count_group("g") == 0
    assert Task.objects.count() == 2


def test_wait_returns_none_after_the_wait_for_an_unknown_task() -> None:
    assert result("0" * 32, wait=30) is None
