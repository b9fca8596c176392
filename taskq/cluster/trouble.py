"""Logging a failure that repeats, such as every heartbeat while the database is down.

The first failure is logged with its traceback; while it goes on, one line at most
every ``REPEAT`` seconds says how long and how many attempts; when the operation works
again, one line says so. A database outage of a minute then reads as three entries per
loop instead of a traceback every guard cycle.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

REPEAT = 30.0  # seconds between the lines that say a failure goes on


class Trouble:
    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        every: float = REPEAT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what
        self.every = every
        self.clock = clock
        self.since: float | None = None
        self.attempts = 0
        self.last_said = 0.0

    def failed(self) -> None:
        """Call from the ``except`` block that caught the failure."""
        now = self.clock()
        self.attempts += 1
        if self.since is None:
            self.since = self.last_said = now
            self.logger.exception("%s", self.what)
            return
        if now - self.last_said >= self.every:
            self.last_said = now
            exc = sys.exc_info()[1]
            self.logger.error(
                "%s: still failing after %.0f s and %s attempts: %s: %s",
                self.what,
                now - self.since,
                self.attempts,
                type(exc).__name__,
                str(exc).strip().split("\n")[0],
            )

    def succeeded(self) -> None:
        """Call when the operation worked; says so once after a failure."""
        if self.since is None:
            return
        self.logger.warning(
            "%s: working again after %.0f s and %s failed attempts",
            self.what.split(";")[0],
            self.clock() - self.since,
            self.attempts,
        )
        self.since = None
        self.attempts = 0
