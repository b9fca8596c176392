"""Messages, deliveries and outcomes cross the cluster's pipes pickled: they must come
back equal, times included to the microsecond and in the time zone they left in."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone

import pytest

from taskq.messages import Delivery, TaskMessage, TaskOutcome

UTC_TIME = datetime(2026, 12, 3, 13, 45, 12, 123456, tzinfo=UTC)
TIMES = [
    UTC_TIME,
    datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=UTC),  # before the epoch
    datetime(2026, 12, 3, 13, 45, 12, 999999),  # naive (USE_TZ = False)
    datetime(2026, 12, 3, 14, 45, tzinfo=timezone(timedelta(hours=1), "CET")),
    None,
]


def round_trip(value: object) -> object:
    return pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


@pytest.mark.parametrize("when", TIMES)
def test_a_message_comes_back_equal_with_its_times(when: datetime | None) -> None:
    message = TaskMessage(
        id="01a23bec8b057ebb8f2a65c56a10cefc",
        name="lotus-frost-geyser-lagoon",
        func="math.floor",
        args=(1.5,),
        kwargs={"k": [1, 2]},
        started=when,
        run_after=when,
        group="g",
        chain=[("math.floor", (2.5,), {})],
        extra={"unknown_key": 1},
    )
    back = round_trip(message)
    assert back == message
    assert isinstance(back, TaskMessage)
    for field in ("started", "run_after"):
        got = getattr(back, field)
        assert got == when
        assert (got.tzinfo if got else None) == (when.tzinfo if when else None)
        assert type(got) is type(when)


@pytest.mark.parametrize("when", TIMES[:4])
def test_an_outcome_comes_back_equal_with_its_delivery(when: datetime) -> None:
    message = TaskMessage(id="a" * 32, name="n", func="math.floor", started=when)
    delivery = Delivery(ack_id=1234, token="ab" * 16, attempt=2, payload="")
    outcome = TaskOutcome(
        message=message,
        success=True,
        result={"answer": 42},
        started=when,
        stopped=when + timedelta(microseconds=7),
        attempt=2,
        delivery=delivery,
        cluster="bench",
        worker_pid=99,
    )
    back = round_trip(outcome)
    assert back == outcome
    assert back.stopped - back.started == timedelta(microseconds=7)
    assert back.started.tzinfo == when.tzinfo
    assert round_trip(delivery) == delivery
    assert isinstance(back.delivery, Delivery)


def test_a_utc_time_travels_as_an_integer() -> None:
    """The compact form that makes an outcome cheap to pickle (docs/benchmark.md)."""
    message = TaskMessage(id="a" * 32, name="n", func="f", started=UTC_TIME)
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    assert b"datetime" not in data
    assert round_trip(message).started == UTC_TIME
