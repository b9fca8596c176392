"""Task functions the tests enqueue."""

from __future__ import annotations

import os
import time
from typing import Any

HOOK_CALLS: list[Any] = []


def add(a: int, b: int) -> int:
    return a + b


def echo(*args: Any, **kwargs: Any) -> Any:
    return {"args": args, "kwargs": kwargs}


def fail(message: str = "boom") -> None:
    raise ValueError(message)


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def pid() -> int:
    return os.getpid()


def hook(task: Any) -> None:
    HOOK_CALLS.append(task)


def exit_worker() -> None:
    raise SystemExit(3)


not_callable = 42
