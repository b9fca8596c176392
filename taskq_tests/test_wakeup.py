"""Push wake-ups of the ORM broker: datagrams on SQLite's host, LISTEN/NOTIFY on PostgreSQL."""

from __future__ import annotations

import sys
import uuid

import pytest

from taskq.brokers import wakeup
from taskq.brokers.wakeup import REPROBE, SLOTS, DatagramListener, DatagramWaker

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="abstract-namespace sockets are Linux's"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def names() -> tuple[str, str]:
    return f"/tmp/{uuid.uuid4().hex}.sqlite3", "default"  # a database nobody else uses


def test_a_wake_up_reaches_every_listener_of_the_database_and_queue() -> None:
    database, queue = names()
    listeners = [DatagramListener(database, queue) for _ in range(3)]
    other = DatagramListener(database, "another-queue")
    waker = DatagramWaker(database, queue)
    try:
        waker.wake()
        assert [listener.wait(1) for listener in listeners] == [True, True, True]
        assert [listener.wait(0) for listener in listeners] == [False] * 3  # drained
        assert other.wait(0) is False
    finally:
        waker.close()
        for listener in [*listeners, other]:
            listener.close()


def test_listeners_beyond_the_slots_poll_instead() -> None:
    database, queue = names()
    listeners = [DatagramListener(database, queue) for _ in range(SLOTS + 1)]
    try:
        assert [listener.sock is not None for listener in listeners] == [True] * SLOTS + [False]
        assert listeners[-1].wait(0.01) is False  # it sleeps out its poll
    finally:
        for listener in listeners:
            listener.close()


def test_empty_slots_are_skipped_for_a_moment_then_probed_again(monkeypatch) -> None:
    database, queue = names()
    clock = Clock()
    waker = DatagramWaker(database, queue, clock=clock)
    sent = []
    real_socket = wakeup.socket.socket

    class Counting(real_socket):
        def sendto(self, data, address):
            sent.append(address)
            return super().sendto(data, address)

    monkeypatch.setattr(wakeup.socket, "socket", Counting)
    first = DatagramListener(database, queue)  # slot 0
    try:
        waker.wake()
        assert len(sent) == SLOTS  # a full probe: seven empty slots refused
        sent.clear()
        waker.wake()
        assert sent == [waker.names[0]]  # within REPROBE: only the bound slot
        late = DatagramListener(database, queue)  # binds slot 1 in that moment
        waker.wake()
        assert late.wait(0) is False  # skipped: it polls meanwhile
        clock.now += REPROBE
        sent.clear()
        waker.wake()
        assert len(sent) == SLOTS
        assert late.wait(0) is True  # found by the next probe
        assert first.wait(0) is True
        late.close()
    finally:
        waker.close()
        first.close()


@pytest.mark.django_db(transaction=True)
def test_an_enqueue_wakes_a_waiting_broker_once_committed() -> None:
    """SQLite: a datagram; PostgreSQL: NOTIFY, delivered by the commit."""
    from django.db import transaction

    from taskq.brokers import get_broker
    from taskq.tasks import async_task

    waiting = get_broker()
    try:
        waiting.wait(0)  # listening from now on
        assert waiting.pushes
        with transaction.atomic():
            async_task("taskq_tests.jobs.add", 1, 1)
            assert waiting.listener.wait(0.2) is False  # not before the commit
        assert waiting.listener.wait(5) is True
    finally:
        waiting.close()


@pytest.mark.django_db(transaction=True)
def test_wake_rouses_the_waiting_pushers_of_the_queue_without_an_enqueue() -> None:
    """A stopping cluster wakes its own Pusher this way (SQLite: a datagram; PostgreSQL:
    a NOTIFY); nothing is queued by it."""
    from taskq.brokers import get_broker
    from taskq.models import OrmQ

    waiting = get_broker()
    try:
        waiting.wait(0)  # listening from now on
        assert waiting.listener.wait(0) is False
        get_broker().wake()
        assert waiting.listener.wait(5) is True
        assert waiting.listener.wait(0) is False  # one wake-up, drained
    finally:
        waiting.close()
    assert not OrmQ.objects.exists()
