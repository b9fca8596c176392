"""Starting child processes: fork, die with the parent, ignore terminal signals, pin CPUs,
and carry a name that ``ps`` and ``top`` show."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from django.db import connections

from .channel import Doorbell
from .state import CONTEXT

logger = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
NAME_SIZE = 15  # bytes of a thread's name on Linux, the terminating NUL aside


def prctl(option: int, argument: Any) -> None:
    """Linux's ``prctl(2)``; elsewhere (no such call) nothing happens."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, argument)


def die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent (the Sentinel) dies; other
    systems' children notice a dead parent themselves."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def name_process(name: str) -> None:
    """Linux: the name ``ps -o comm``, ``top`` and ``/proc/PID/comm`` show for this
    process (``taskq-pusher``, ``taskq-worker-0``, ...) instead of ``python``; the
    command line is left as it is. Cut to 15 bytes, the kernel's limit."""
    prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:NAME_SIZE]))


class SignalWakeup(Doorbell):
    """A doorbell that Python rings whenever a signal arrives (``signal.set_wakeup_fd``):
    a loop that sleeps in ``select``/``wait`` with it wakes on a signal at once."""

    def __init__(self) -> None:
        super().__init__()
        self.previous: int | None = None

    def install(self) -> bool:
        """Only the main thread may; False elsewhere (the loop then wakes on its timeout)."""
        try:
            self.previous = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        except ValueError:
            return False
        return True

    def close(self) -> None:
        if self.previous is not None:
            signal.set_wakeup_fd(self.previous)
            self.previous = None
        super().close()


def child_setup(cpus: list[int] | None, name: str = "") -> None:
    """First thing in every child: the Sentinel alone handles SIGINT and SIGTERM."""
    signal.set_wakeup_fd(-1)  # the Sentinel's: a child's signals must not wake it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    die_with_parent()
    if name:
        name_process(name)
    if cpus and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, cpus)
        except OSError:
            logger.warning("could not pin pid=%s to cpus %s", os.getpid(), cpus)


def bootstrap(target: Callable[[], Any], cpus: list[int] | None, name: str = "") -> None:
    child_setup(cpus, name)
    try:
        target()
    finally:
        connections.close_all()


def spawn(
    name: str, target: Callable[[], Any], *, daemon: bool = True, cpus: list[int] | None = None
) -> Any:
    """Fork a child process running ``target()``; database connections are not shared."""
    connections.close_all()
    process = CONTEXT.Process(target=bootstrap, args=(target, cpus, name), name=name, daemon=daemon)
    gc.freeze()  # the child's collections skip what it inherits: fewer pages copied
    try:
        process.start()
    finally:
        gc.unfreeze()  # the parent's own garbage stays collectable
    return process


def cpus_for(index: int, per_worker: int) -> list[int] | None:
    """The processors worker ``index`` is pinned to (round robin), or None for no pinning."""
    if per_worker <= 0 or not hasattr(os, "sched_getaffinity"):
        return None
    available = sorted(os.sched_getaffinity(0))
    start = index * per_worker
    return [available[(start + i) % len(available)] for i in range(min(per_worker, len(available)))]


def rss_of(pid: int) -> int:
    """Resident memory of a process in KiB (Linux), 0 where unknown."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return 0
