"""The functions the benchmark enqueues; importable by taskq and by Django-Q2."""

from __future__ import annotations

import time


def noop() -> None:
    """The no-op task of W1, W2, W3 and W5."""


def sleep(seconds: float) -> None:
    """The sleeping task of W4."""
    time.sleep(seconds)
