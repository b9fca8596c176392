"""A failure that repeats is logged once in full, then briefly now and then, then its end."""

from __future__ import annotations

import logging

from taskq.cluster.trouble import Trouble

logger = logging.getLogger("taskq.tests.trouble")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fail(trouble: Trouble, message: str = "connection refused\nIs the server running?") -> None:
    try:
        raise OSError(message)
    except OSError:
        trouble.failed()


def test_an_outage_reads_as_a_traceback_a_few_reminders_and_a_recovery(caplog) -> None:
    clock = Clock()
    trouble = Trouble(logger, "heartbeat failed", every=30, clock=clock)
    with caplog.at_level(logging.WARNING, logger="taskq.tests.trouble"):
        for _ in range(480):  # a minute of failures, eight a second
            fail(trouble)
            clock.now += 0.125
        trouble.succeeded()
        trouble.succeeded()  # said once
    records = caplog.records
    assert [r.levelname for r in records] == ["ERROR", "ERROR", "WARNING"]
    first, reminder, recovered = records
    assert first.getMessage() == "heartbeat failed"
    assert first.exc_info is not None  # the traceback, once
    assert reminder.exc_info is None
    assert reminder.getMessage() == (
        "heartbeat failed: still failing after 30 s and 241 attempts: OSError: connection refused"
    )
    assert (
        recovered.getMessage()
        == "heartbeat failed: working again after 60 s and 480 failed attempts"
    )


def test_a_new_failure_after_a_recovery_gets_its_traceback_again(caplog) -> None:
    clock = Clock()
    trouble = Trouble(logger, "claim failed; retrying", clock=clock)
    with caplog.at_level(logging.WARNING, logger="taskq.tests.trouble"):
        fail(trouble)
        trouble.succeeded()
        fail(trouble)
    assert [r.exc_info is not None for r in caplog.records] == [True, False, True]
    assert caplog.records[1].getMessage().startswith("claim failed: working again")
