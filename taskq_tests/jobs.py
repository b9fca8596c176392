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


def size(data: bytes) -> int:
    """The length of a (large) argument: a small result for a big payload."""
    return len(data)


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


def ledger(path: str, tag: str, seconds: float = 0.0) -> str:
    """Append start/end lines (tag, pid) to a ledger file that survives kills."""
    with open(path, "a") as f:
        f.write(f"start {tag} {os.getpid()}\n")
    time.sleep(seconds)
    with open(path, "a") as f:
        f.write(f"end {tag} {os.getpid()}\n")
    return tag


def ledger_kill_self(path: str, tag: str) -> None:
    """Record a start, then kill this worker process (as the OOM killer would)."""
    import signal

    with open(path, "a") as f:
        f.write(f"start {tag} {os.getpid()}\n")
    os.kill(os.getpid(), signal.SIGKILL)


def hard_exit() -> None:
    os._exit(1)


def busy_loop(seconds: float) -> None:
    """Ignores SIGALRM-raised exceptions, as C code would."""
    import signal

    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    end = time.time() + seconds
    while time.time() < end:
        pass


def spawn_child() -> int:
    """Start a child process from inside a task (needs daemonize_workers=False)."""
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(0.01,))
    child.start()
    child.join()
    return child.exitcode


def segfault() -> None:
    import ctypes

    ctypes.string_at(0)


class Unpicklable:
    """Unpickling it raises: a payload that passes its signature but cannot be read."""

    def __reduce__(self):
        return (fail, ("cannot be unpickled",))
