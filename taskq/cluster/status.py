"""The status a cluster writes with each heartbeat (read by the admin, qinfo, qmonitor)."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

from .processes import rss_of
from .state import running

if TYPE_CHECKING:
    from .sentinel import Sentinel


def cluster_status(sentinel: Sentinel) -> dict[str, Any]:
    """One row of ``taskq_cluster``: who this cluster is and what it is doing."""
    workers = []
    total_rss = rss_of(os.getpid())
    for index, process in enumerate(sentinel.workers):
        slot = sentinel.shared.slots[index]
        pid = process.pid if process is not None else None
        rss = rss_of(pid) if pid else 0
        total_rss += rss
        task = running(slot)
        workers.append(
            {
                "pid": pid,
                "rss": rss,
                "done": slot.done,
                "task_id": task["task_id"] if task else None,
                "task_name": task["task_name"] if task else None,
                "since": task["since"] if task else None,
            }
        )
    for process in (sentinel.pusher, sentinel.monitor):
        if process is not None and process.pid:
            total_rss += rss_of(process.pid)
    held = sentinel.config.prefetch - sentinel.shared.permits.get_value()
    return {
        "id": sentinel.id,
        "name": sentinel.config.queue_key,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "state": sentinel.phase.value,
        "started": sentinel.started,
        "workers": workers,
        "held": held,
        "processed": sentinel.shared.processed.value,
        "failed": sentinel.shared.failed.value,
        "rejected": sentinel.shared.rejected.value,
        "rss": total_rss,
    }
