"""The functions the benchmark enqueues; importable by taskq and by Django-Q2."""

from __future__ import annotations

import time


def noop() -> None:
    """The no-op task of W1, W2, W3 and W5."""


def sleep(seconds: float) -> None:
    """The sleeping task of W4."""
    time.sleep(seconds)


def ledger(path: str, number: int, seconds: float) -> None:
    """The task of K1: sleep, then append ``number`` to the ledger file ``path``."""
    time.sleep(seconds)
    with open(path, "a") as ledger_file:  # O_APPEND: one short write, never interleaved
        ledger_file.write(f"{number}\n")
