"""The cluster's roles driven through ``step()`` in this process: no subprocesses, no sleeps."""

from __future__ import annotations

import logging
import os
import select
import time

import pytest
from django.db import OperationalError

from taskq.brokers import get_broker
from taskq.cluster.channel import Doorbell
from taskq.cluster.monitor import LINGER, STOP, Monitor
from taskq.cluster.packages import open_package
from taskq.cluster.pusher import Pusher
from taskq.cluster.sentinel import LEAVING_GRACE, Phase, Sentinel
from taskq.cluster.state import Shared, WorkerState, running
from taskq.cluster.worker import Exit, Worker
from taskq.conf import get_config, replace
from taskq.messages import TaskOutcome
from taskq.models import Cluster, Failure, OrmQ, Success, Task
from taskq.tasks import async_task

pytestmark = pytest.mark.django_db(transaction=True)


def roles(**changes):
    config = replace(get_config(), poll=0.01, **changes)
    shared = Shared.create(config.workers, config.prefetch)
    broker = get_broker(config=config)
    pusher = Pusher(config, broker, shared, "cluster-a")
    worker = Worker(config, shared, shared.slots[0], config.queue_key)
    monitor = Monitor(config, broker, shared)
    return config, shared, pusher, worker, monitor


def drain(queue) -> list:
    items = []
    while True:
        try:
            items.append(queue.get(timeout=0.2))
        except Exception:
            return items


def test_pusher_claims_no_more_than_queue_limit() -> None:
    for i in range(5):
        async_task("taskq_tests.jobs.add", i, 1)
    _config, shared, pusher, *_ = roles(workers=1, queue_limit=2, bulk=10)
    assert pusher.step() == 2
    assert pusher.step() == 0  # both permits are held until the monitor records
    items = opened(drain(shared.task_queue))
    assert [message.args for message, _ in items] == [(0, 1), (1, 1)]
    assert OrmQ.objects.filter(owner="cluster-a").count() == 2


def test_pusher_claims_as_soon_as_a_worker_takes_a_task() -> None:
    for i in range(6):
        async_task("taskq_tests.jobs.add", i, 1)
    _config, _shared, pusher, worker, _monitor = roles(workers=2, queue_limit=4)
    assert pusher.step() == 4
    assert worker.step(wait=1) is True  # one task started: one permit free
    assert pusher.step() == 1  # claimed for that one, with three still queued
    assert pusher.take_permits(4, wait=0.01) == 0  # none free: gives up after ``wait``
    assert OrmQ.objects.filter(owner="cluster-a").count() == 5


def opened(deliveries: list) -> list:
    """The (message, delivery) pairs a worker would run."""
    return [open_package(d, salt=get_config().name) for d in deliveries]


def test_the_pusher_hands_over_packages_as_stored() -> None:
    task_id = async_task("taskq_tests.jobs.add", 2, 3)
    _config, shared, pusher, *_ = roles()
    pusher.step()
    (delivery,) = drain(shared.task_queue)
    assert delivery.payload == OrmQ.objects.get().payload  # serialised once, at enqueue
    ((message, stripped),) = opened([delivery])
    assert (message.id, message.args) == (task_id, (2, 3))
    assert stripped.payload == ""  # the worker keeps no copy of the package


def test_an_unreadable_package_goes_to_the_monitor_as_a_failure() -> None:
    get_broker().enqueue("not-a-signed-package")
    _config, shared, pusher, worker, monitor = roles()
    assert pusher.step() == 1
    assert worker.step(wait=1) is True
    assert running(worker.slot) is None  # never ran
    assert shared.permits.get_value() == 4  # and holds no permit
    (outcome,) = drain(shared.result_queue)
    assert isinstance(outcome, TaskOutcome)
    assert "Package refused, never run" in outcome.result
    monitor.pending.append(outcome)
    monitor.flush()
    assert OrmQ.objects.count() == 0
    assert "bad signature" in Failure.objects.get().result


def test_worker_runs_a_task_and_monitor_records_and_acknowledges_it() -> None:
    task_id = async_task("taskq_tests.jobs.add", 2, 3)
    config, shared, pusher, worker, monitor = roles()
    pusher.step()
    assert worker.step(wait=1) is True
    assert running(worker.slot) is None
    assert worker.slot.state == WorkerState.IDLE
    assert monitor.step(wait=1) == 1
    assert Success.objects.get(id=task_id).result == 5
    assert OrmQ.objects.count() == 0
    assert shared.processed.value == 1
    assert shared.permits.get_value() == config.prefetch


def test_a_failing_task_comes_back_until_max_attempts() -> None:
    task_id = async_task("taskq_tests.jobs.fail", "again", max_attempts=3)
    _config, _shared, pusher, worker, monitor = roles()
    for attempt in (1, 2, 3):
        assert pusher.step() == 1
        worker.step(wait=1)
        monitor.step(wait=1)
        if attempt < 3:
            assert OrmQ.objects.get().attempt == attempt
            assert not Failure.objects.exists()
    failure = Failure.objects.get(id=task_id)
    assert failure.attempt_count == 3
    assert OrmQ.objects.count() == 0


def test_ack_failure_records_the_first_failure() -> None:
    async_task("taskq_tests.jobs.fail", max_attempts=5, ack_failure=True)
    _config, _shared, pusher, worker, monitor = roles()
    pusher.step()
    worker.step(wait=1)
    monitor.step(wait=1)
    assert Failure.objects.get().attempt_count == 1
    assert OrmQ.objects.count() == 0


def test_a_late_result_from_a_rescued_claim_is_rejected_and_logged(caplog) -> None:
    task_id = async_task("taskq_tests.jobs.add", 1, 1)
    _config, shared, pusher, worker, monitor = roles()
    pusher.step()
    ((message, stale),) = opened([shared.task_queue.get(timeout=1)])
    broker = get_broker()
    broker.release([stale])  # its cluster was presumed dead...
    (fresh,) = broker.claim("cluster-b", 1)  # ...and another cluster took the task
    outcome = worker.run_one(message, stale)  # the stale executor finishes anyway
    monitor.pending.append(drain(shared.result_queue)[0])
    with caplog.at_level(logging.WARNING):
        monitor.flush()
    assert "late result rejected" in caplog.text
    assert shared.rejected.value == 1
    assert not Success.objects.filter(id=task_id).exists()
    assert OrmQ.objects.get().token == fresh.token
    assert outcome.success


def test_sentinel_settles_the_task_of_a_dead_worker() -> None:
    task_id = async_task("taskq_tests.jobs.add", 1, 1, max_attempts=1)
    sentinel = Sentinel(replace(get_config(), workers=1))
    (delivery,) = sentinel.broker.claim(sentinel.id, 1)
    task = {
        "task_id": task_id,
        "task_name": "n",
        "ack_id": str(delivery.ack_id),
        "token": delivery.token,
        "attempt": 1,
        "since": 0.0,
        "deadline": 0.0,
    }
    sentinel.settle(task, "worker died (exit code -9)")
    outcome = sentinel.shared.result_queue.get(timeout=1)
    assert outcome.message.id == task_id
    assert outcome.message.func == "taskq_tests.jobs.add"
    monitor = Monitor(sentinel.config, sentinel.broker, sentinel.shared)
    monitor.pending.append(outcome)
    monitor.flush()
    failure = Failure.objects.get(id=task_id)
    assert "Worker died" in failure.result
    assert OrmQ.objects.count() == 0


def test_sentinel_rescues_orphans_and_fails_spent_ones() -> None:
    again = async_task("taskq_tests.jobs.add", 1, 1, max_attempts=2)
    spent = async_task("taskq_tests.jobs.add", 2, 2, max_attempts=1)
    broker = get_broker()
    broker.claim("a-dead-cluster", 2)
    sentinel = Sentinel(replace(get_config(), workers=1))
    sentinel.rescue_orphans()
    assert OrmQ.objects.get().task_ident == again
    assert OrmQ.objects.get().owner is None
    assert "attempts used up" in Failure.objects.get(id=spent).result


def test_worker_leaves_after_recycle_tasks() -> None:
    for i in range(3):
        async_task("taskq_tests.jobs.add", i, i)
    _config, _shared, pusher, worker, _monitor = roles(recycle=2)
    pusher.step()
    assert worker.exit_reason() is None
    worker.step(wait=1)
    worker.step(wait=1)
    assert worker.exit_reason().value == "recycled"


def test_a_worker_that_leaves_hands_back_its_slot_and_rings_the_sentinel() -> None:
    async_task("taskq_tests.jobs.add", 1, 1)
    _config, shared, pusher, worker, _monitor = roles(recycle=1)
    pusher.step()
    assert worker.run().value == "recycled"
    assert worker.slot.state == WorkerState.LEFT
    assert running(worker.slot) is None  # nothing for the Sentinel to settle
    assert select.select([shared.departures], [], [], 0)[0] == [shared.departures]
    shared.departures.drain()
    assert select.select([shared.departures], [], [], 0)[0] == []


def test_the_sentinel_replaces_a_worker_that_left_while_its_process_exits(monkeypatch) -> None:
    sentinel = Sentinel(replace(get_config(), workers=1, guard_cycle=30))
    sentinel.phase = Phase.RUNNING
    leaving = Running()
    sentinel.workers[0] = leaving
    started = []

    def start_worker(index: int) -> None:
        started.append(index)
        sentinel.workers[index] = Running()

    monkeypatch.setattr(sentinel, "start_worker", start_worker)
    slot = sentinel.shared.slots[0]
    slot.state = WorkerState.IDLE
    sentinel.guard_workers(100.0)
    assert started == []
    assert sentinel.workers[0] is leaving
    slot.state = WorkerState.LEFT
    sentinel.shared.departures.ring()
    began = time.monotonic()
    sentinel.nap(30)  # the ring ends the nap: no waiting for the guard cycle
    assert time.monotonic() - began < 10
    sentinel.guard_workers(100.0)
    assert started == [0]
    assert sentinel.workers[0] is not leaving
    assert sentinel.leaving == [(leaving, 100.0)]
    sentinel.workers[0].alive = False
    assert sentinel.workers_alive()  # the one that left is still exiting
    leaving.alive = False
    sentinel.reap_leaving(101.0)
    assert sentinel.leaving == []
    assert not sentinel.workers_alive()


def test_a_worker_that_left_and_does_not_exit_is_killed(caplog) -> None:
    sentinel = Sentinel(replace(get_config(), workers=1))
    stuck = Running()
    sentinel.leaving = [(stuck, 0.0)]
    sentinel.reap_leaving(LEAVING_GRACE / 2)
    assert stuck.alive
    assert sentinel.leaving == [(stuck, 0.0)]
    with caplog.at_level(logging.WARNING, logger="taskq.cluster.sentinel"):
        sentinel.reap_leaving(LEAVING_GRACE + 1)
    assert not stuck.alive
    assert "has not exited" in caplog.text
    sentinel.reap_leaving(LEAVING_GRACE + 2)
    assert sentinel.leaving == []


def test_worker_leaves_above_max_rss() -> None:
    _config, _shared, _pusher, worker, _monitor = roles(max_rss=1)
    assert worker.exit_reason().value == "max_rss"


def test_cpu_affinity_pins_each_worker() -> None:
    from taskq.cluster.processes import cpus_for

    available = sorted(os.sched_getaffinity(0))
    assert cpus_for(0, 0) is None
    assert cpus_for(0, 1) == [available[0]]
    assert cpus_for(1, 1) == [available[1 % len(available)]]


def test_a_worker_killed_after_its_task_returned_leaves_one_result() -> None:
    task_id = async_task("taskq_tests.jobs.add", 1, 1, max_attempts=2)
    _config, shared, pusher, worker, monitor = roles()
    pusher.step()
    ((message, delivery),) = opened([shared.task_queue.get(timeout=1)])
    worker.run_one(message, delivery)  # the outcome is on its way to the Monitor...
    real = drain(shared.result_queue)[0]
    sentinel = Sentinel(replace(get_config(), workers=1))
    task = {
        "task_id": task_id,
        "task_name": "n",
        "ack_id": str(delivery.ack_id),
        "token": delivery.token,
        "attempt": 1,
        "since": 0.0,
        "deadline": 0.0,
    }
    sentinel.settle(task, "worker died (exit code -9)")  # ...when the worker is killed
    settled = sentinel.shared.result_queue.get(timeout=1)
    monitor.pending.extend([real, settled])
    monitor.flush()
    assert Task.objects.filter(id=task_id).count() == 1
    assert Success.objects.get(id=task_id).result == 2
    assert shared.rejected.value == 1


def test_a_claim_whose_answer_was_lost_is_given_back_before_the_next(monkeypatch) -> None:
    for i in range(3):
        async_task("taskq_tests.jobs.add", i, 1)
    _config, shared, pusher, *_ = roles(workers=2)
    real_claim = pusher.broker.claim

    def answer_lost(owner: str, count: int, token: str | None = None) -> list:
        real_claim(owner, count, token)  # the claim happened on the server...
        raise OperationalError("server closed the connection unexpectedly")  # ...unheard

    monkeypatch.setattr(pusher.broker, "claim", answer_lost)
    with pytest.raises(OperationalError):
        pusher.step()
    assert OrmQ.objects.filter(owner="cluster-a").count() == 3  # held by nobody
    assert shared.permits.get_value() == 4  # the permits came back
    monkeypatch.setattr(pusher.broker, "claim", real_claim)
    assert pusher.step() == 3
    items = opened(drain(shared.task_queue))
    assert sorted(message.args for message, _ in items) == [(0, 1), (1, 1), (2, 1)]
    assert [delivery.attempt for _, delivery in items] == [1, 1, 1]  # the lost one uncounted
    assert pusher.abandoned == []


def test_the_monitor_records_at_once_when_idle_and_lingers_when_busy(monkeypatch) -> None:
    config = get_config()
    shared = Shared.create(1, 2)
    monitor = Monitor(config, get_broker(config=config), shared)
    naps = []

    def linger(seconds: float) -> None:  # an outcome arrives while the Monitor sleeps
        naps.append(seconds)
        shared.result_queue.put("arrived meanwhile")

    monkeypatch.setattr("taskq.cluster.monitor.time.sleep", linger)
    shared.result_queue.put("first")
    monitor.collect(wait=1)
    assert (monitor.pending, naps) == (["first"], [])  # idle: recorded at once
    monitor.pending = []
    monitor.busy = True  # the last batch had company
    shared.result_queue.put("a")
    monitor.collect(wait=1)
    assert (monitor.pending, naps) == (["a", "arrived meanwhile"], [LINGER])  # one wake-up
    monitor.pending = []
    shared.result_queue.put(STOP)
    monitor.collect(wait=1)
    assert monitor.stopping
    assert monitor.pending == []


def test_a_worker_that_dies_while_opening_a_package_has_its_task_settled(monkeypatch) -> None:
    task_id = async_task("taskq_tests.jobs.add", 1, 1, max_attempts=1)
    config, _shared, pusher, worker, monitor = roles()
    pusher.step()
    seen = []

    def dies_while_opening(delivery, **kwargs):
        seen.append(running(worker.slot))  # what the Sentinel would find in the slot
        raise SystemExit("killed")

    monkeypatch.setattr("taskq.cluster.worker.open_package", dies_while_opening)
    with pytest.raises(SystemExit):
        worker.step(wait=1)
    (task,) = seen
    claimed = OrmQ.objects.get()
    assert (task["task_id"], task["ack_id"], task["token"]) == ("", str(claimed.id), claimed.token)
    sentinel = Sentinel(replace(config, workers=1))
    sentinel.settle(task, "worker died (exit code -9)")
    monitor.pending.append(sentinel.shared.result_queue.get(timeout=1))
    monitor.flush()
    failure = Failure.objects.get(id=task_id)  # the package was read back for its id
    assert "Worker died" in failure.result
    assert OrmQ.objects.count() == 0


class Running:
    """Stands for a child process that is alive (the Sentinel's spawns, faked)."""

    pid = 0
    exitcode = None

    def __init__(self) -> None:
        self.alive = True
        self.exited = Doorbell()  # never rung: a process that does not exit during a nap

    @property
    def sentinel(self) -> int:
        return self.exited.fileno()

    def is_alive(self) -> bool:
        return self.alive

    def kill(self) -> None:
        self.alive = False

    def join(self, timeout: float | None = None) -> None:
        return None


def test_a_stop_gives_back_what_is_queued_and_dismisses_the_waiting_workers(monkeypatch) -> None:
    """The stopping Sentinel takes the unstarted tasks off the channel (their permits
    back, so a Pusher waiting for one wakes and claims nothing), releases them, then
    puts one LEAVE per worker on the channel: a waiting worker leaves at once."""
    spawned: dict[str, Running] = {}

    def spawn(name: str, target, **kwargs) -> Running:
        spawned[name] = Running()
        return spawned[name]

    monkeypatch.setattr("taskq.cluster.sentinel.spawn", spawn)
    for i in range(5):
        async_task("taskq_tests.jobs.add", i, i)
    sentinel = Sentinel(replace(get_config(), workers=2, queue_limit=3))
    sentinel.start()
    pusher = Pusher(sentinel.config, sentinel.cluster_broker(), sentinel.shared, sentinel.id)
    assert pusher.step() == 3  # the Pusher's claim, on the channel: no permit left
    assert sentinel.shared.permits.get_value() == 0
    spawned["taskq-pusher"].alive = False  # it has seen the stop and left
    sentinel.stop()
    assert sentinel.shared.permits.get_value() == 3
    assert OrmQ.objects.filter(owner__isnull=True, attempt=0).count() == 5  # all back
    assert pusher.step() == 0  # permits free, but stopping: no claim
    assert OrmQ.objects.filter(owner__isnull=True).count() == 5
    worker = Worker(sentinel.config, sentinel.shared, sentinel.shared.slots[0], "q")
    assert worker.step(wait=5) is False  # a LEAVE: no task, no permit given back
    assert worker.step(wait=5) is False
    assert worker.step(wait=0) is False  # nothing else on the channel
    assert worker.exit_reason() is Exit.STOPPED
    assert sentinel.shared.permits.get_value() == 3
    assert not Task.objects.exists()


def test_the_sentinel_claims_only_under_an_id_whose_heartbeat_is_written(monkeypatch) -> None:
    """Claims under an id with no heartbeat look orphaned to the other clusters, which
    would take them back (or fail them) while they run: no Pusher until the heartbeat
    is in the database, at start-up and after a restart under a new id."""
    spawned: dict[str, Running] = {}

    def spawn(name: str, target, **kwargs) -> Running:
        spawned[name] = Running()
        return spawned[name]

    monkeypatch.setattr("taskq.cluster.sentinel.spawn", spawn)
    sentinel = Sentinel(replace(get_config(), workers=1))
    real_heartbeat = sentinel.broker.heartbeat

    def locked(status: dict) -> None:
        raise OperationalError("database is locked")

    monkeypatch.setattr(sentinel.broker, "heartbeat", locked)
    sentinel.start()
    assert sorted(spawned) == ["taskq-monitor", "taskq-worker-0"]
    assert sentinel.pusher is None
    monkeypatch.setattr(sentinel.broker, "heartbeat", real_heartbeat)
    sentinel.step()
    assert sentinel.pusher is spawned["taskq-pusher"]
    assert Cluster.objects.filter(id=sentinel.id).exists()

    first_id = sentinel.id
    spawned.pop("taskq-pusher").alive = False  # the Pusher died: a new id, a new heartbeat
    monkeypatch.setattr(sentinel.broker, "heartbeat", locked)
    sentinel.step()
    assert sentinel.id != first_id
    assert sentinel.pusher is None
    assert "taskq-pusher" not in spawned
    monkeypatch.setattr(sentinel.broker, "heartbeat", real_heartbeat)
    sentinel.last_heartbeat = 0.0  # the next guard cycle's heartbeat is due
    sentinel.step()
    assert sentinel.pusher is spawned["taskq-pusher"]
    assert Cluster.objects.filter(id=sentinel.id).exists()
