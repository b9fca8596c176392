"""Starting child processes: fork, die with the parent, ignore terminal signals, pin CPUs."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from django.db import connections

from .state import CONTEXT

logger = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent (the Sentinel) dies."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: children notice a dead parent themselves
        pass


def child_setup(cpus: list[int] | None) -> None:
    """First thing in every child: the Sentinel alone handles SIGINT and SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    die_with_parent()
    if cpus and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, cpus)
        except OSError:
            logger.warning("could not pin pid=%s to cpus %s", os.getpid(), cpus)


def bootstrap(target: Callable[[], Any], cpus: list[int] | None) -> None:
    child_setup(cpus)
    try:
        target()
    finally:
        connections.close_all()


def spawn(
    name: str, target: Callable[[], Any], *, daemon: bool = True, cpus: list[int] | None = None
) -> Any:
    """Fork a child process running ``target()``; database connections are not shared."""
    connections.close_all()
    process = CONTEXT.Process(target=bootstrap, args=(target, cpus), name=name, daemon=daemon)
    process.start()
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
