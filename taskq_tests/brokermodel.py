"""A model of a broker for stateful property tests: random enqueue / claim / ack /
release / abandon / heartbeat / death / rescue / delete sequences, each result compared with what
the model expects. ``test_broker_orm_model.py`` and ``test_broker_redis.py`` subclass it
with their own set-up, cluster death and invariants."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from taskq.brokers import get_broker
from taskq.messages import Delivery

OWNERS = ("a", "b", "c")


def heartbeat(broker: Any, cluster_id: str) -> None:
    """A heartbeat as a cluster of one idle worker writes it."""
    broker.heartbeat(
        {
            "id": cluster_id,
            "name": "tests",
            "host": "h",
            "pid": 1,
            "state": "running",
            "started": timezone.now(),
            "workers": [{"pid": 7, "task_id": None, "since": None, "rss": 1, "done": 0}],
        }
    )


class BrokerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clean()
        self.broker = get_broker()
        self.tasks: dict[Any, dict] = {}  # id -> state, priority, attempt, owner, token
        self.claims: list[tuple[str, Delivery]] = []  # every claim ever made, stale too
        self.alive: set[str] = set()

    def clean(self) -> None:
        """Empty the broker before each example."""
        raise NotImplementedError

    def kill(self, owner: str) -> None:
        """Make ``owner``'s heartbeat old enough for its tasks to be orphans."""
        raise NotImplementedError

    def ready_order(self) -> list[Any]:
        ready = [i for i, t in self.tasks.items() if t["state"] == "ready"]
        return sorted(ready, key=lambda i: (-self.tasks[i]["priority"], i))

    def current(self, delivery: Delivery) -> bool:
        task = self.tasks.get(delivery.ack_id)
        return task is not None and task["state"] == "claimed" and task["token"] == delivery.token

    def make_ready(self, ack_id: Any, *, delayed: bool = False) -> None:
        state = "delayed" if delayed else "ready"
        self.tasks[ack_id].update(state=state, owner=None, token=None)

    @precondition(lambda self: self.claims)
    @rule(data=st.data())
    def abandon(self, data) -> None:
        """Everything the claim's token still holds comes back, attempt uncounted."""
        owner, delivery = data.draw(st.sampled_from(self.claims))
        held = [
            i
            for i, t in self.tasks.items()
            if t["state"] == "claimed" and t["owner"] == owner and t["token"] == delivery.token
        ]
        assert self.broker.abandon(owner, delivery.token) == len(held)
        for ack_id in held:
            self.make_ready(ack_id)
            self.tasks[ack_id]["attempt"] -= 1

    @rule(priority=st.integers(-2, 2), delayed=st.booleans())
    def enqueue(self, priority: int, delayed: bool) -> None:
        run_after = timezone.now() + timedelta(hours=1) if delayed else None
        ack_id = self.broker.enqueue("p", priority=priority, run_after=run_after)
        assert ack_id not in self.tasks
        self.tasks[ack_id] = {
            "state": "delayed" if delayed else "ready",
            "priority": priority,
            "attempt": 0,
            "owner": None,
            "token": None,
        }

    @rule(owner=st.sampled_from(OWNERS), count=st.integers(1, 4))
    def claim(self, owner: str, count: int) -> None:
        expected = self.ready_order()[:count]
        batch = self.broker.claim(owner, count)
        assert [d.ack_id for d in batch] == expected
        for delivery in batch:
            task = self.tasks[delivery.ack_id]
            task.update(state="claimed", owner=owner, token=delivery.token)
            task["attempt"] += 1
            assert delivery.attempt == task["attempt"]
            assert delivery.payload == "p"
        self.claims += [(owner, d) for d in batch]

    @precondition(lambda self: self.claims)
    @rule(data=st.data())
    def ack(self, data) -> None:
        _owner, delivery = data.draw(st.sampled_from(self.claims))
        expected = {(delivery.ack_id, delivery.token)} if self.current(delivery) else set()
        assert self.broker.ack_many([delivery]) == expected
        if expected:
            del self.tasks[delivery.ack_id]

    @precondition(lambda self: self.claims)
    @rule(data=st.data(), delayed=st.booleans(), unstarted=st.booleans())
    def release(self, data, delayed: bool, unstarted: bool) -> None:
        _owner, delivery = data.draw(st.sampled_from(self.claims))
        current = self.current(delivery)
        delay = 3600 if delayed else 0
        assert self.broker.release([delivery], delay=delay, unstarted=unstarted) == int(current)
        if current:
            self.make_ready(delivery.ack_id, delayed=delayed)
            if unstarted:  # a task that never started gives its attempt back
                self.tasks[delivery.ack_id]["attempt"] -= 1

    @rule(owner=st.sampled_from(OWNERS))
    def heartbeat(self, owner: str) -> None:
        heartbeat(self.broker, owner)
        self.alive.add(owner)

    @rule(owner=st.sampled_from(OWNERS))
    def die(self, owner: str) -> None:
        self.kill(owner)
        self.alive.discard(owner)

    @rule()
    def rescue(self) -> None:
        orphans = self.broker.orphans(retry=60)
        expected = {
            i
            for i, t in self.tasks.items()
            if t["state"] == "claimed" and t["owner"] not in self.alive
        }
        assert {o.ack_id for o in orphans} == expected
        assert self.broker.release(orphans) == len(expected)
        for ack_id in expected:
            self.make_ready(ack_id)

    @precondition(lambda self: self.tasks)
    @rule(data=st.data())
    def delete(self, data) -> None:
        ack_id = data.draw(st.sampled_from(sorted(self.tasks)))
        self.broker.delete(ack_id)
        del self.tasks[ack_id]

    def counts(self) -> dict[str, int]:
        states = [t["state"] for t in self.tasks.values()]
        return {state: states.count(state) for state in ("ready", "delayed", "claimed")}

    def check_sizes(self) -> None:
        counts = self.counts()
        assert self.broker.queue_size() == counts["ready"] + counts["delayed"]
        assert self.broker.ready_size() == counts["ready"]
        assert self.broker.lock_size() == counts["claimed"]
