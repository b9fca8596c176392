"""What the monitoring tools show: cluster health, queue sizes, result counts, settings.

Everything here reads what the broker and the result table hold and turns it into
plain values; nothing writes. Cluster status comes from the broker's heartbeat rows
(``Broker.clusters()``), so every process sees every cluster, whatever the cache.

A cluster is *stale* when its last heartbeat is older than three heartbeat
intervals, and *dead* when it is older than ``retry``: its tasks are delivered again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, F, Q
from django.utils import timezone

from . import __version__
from .brokers import Broker, get_broker
from .brokers.orm import OrmBroker
from .conf import ClusterConfig
from .models import OrmQ, Schedule, Task

OK = "ok"
STALE = "stale"
DEAD = "dead"
STALE_BEATS = 3  # heartbeats a cluster may miss before it counts as stale
RECENT = timedelta(hours=24)
SECRET_KEYS = ("password", "pass", "secret", "token")


def health(age: float, config: ClusterConfig) -> str:
    """``ok``, ``stale`` or ``dead`` for a heartbeat ``age`` seconds old."""
    if age > config.retry:
        return DEAD
    if age > STALE_BEATS * config.heartbeat:
        return STALE
    return OK


def duration(seconds: float | None) -> str:
    """``42s``, ``5m 07s``, ``1h 02m`` or ``3d 04h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def mib(kib: float | None) -> str:
    """KiB as ``12.3 MiB``; ``-`` when unknown."""
    return "-" if not kib else f"{kib / 1024:.1f} MiB"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStatus:
    """One worker process of a cluster, as of its cluster's last heartbeat."""

    index: int  # 1-based position in the pool
    pid: int | None  # None while the worker is being replaced
    rss: int  # KiB
    done: int  # tasks this worker process has run
    task_id: str | None  # the task it is running, if any
    task_name: str | None
    running: float | None  # seconds the current task has run


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterStatus:
    """One cluster's heartbeat row, with its health and times worked out."""

    id: str
    name: str  # the queue it serves
    host: str
    pid: int
    state: str  # starting, running, stopping, stopped
    health: str  # ok, stale, dead
    age: float  # seconds since its last heartbeat (database clock)
    uptime: float  # seconds since it started (until its last heartbeat when dead)
    workers: tuple[WorkerStatus, ...]
    held: int  # tasks it claimed that wait in it for a worker (as the cluster reports it)
    processed: int  # outcomes recorded since it started
    failed: int  # of which failures
    rejected: int  # late outcomes refused because the claim was rescued
    rss: int  # KiB, the whole cluster

    @property
    def alive(self) -> bool:
        return self.health != DEAD

    @property
    def busy(self) -> int:
        return sum(1 for worker in self.workers if worker.task_id)

    @property
    def pool(self) -> int:
        """Worker processes that are up."""
        return sum(1 for worker in self.workers if worker.pid)

    @property
    def workers_rss(self) -> int:
        return sum(worker.rss for worker in self.workers)


def as_timestamp(value: Any) -> float | None:
    """A worker's ``since``: Unix time (as written), a datetime or its ISO text."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        if timezone.is_naive(value):
            value = timezone.make_aware(value, UTC)
        return value.timestamp()
    return None


def cluster_status(row: dict[str, Any], config: ClusterConfig) -> ClusterStatus:
    """A :class:`ClusterStatus` from a row of ``Broker.clusters()``."""
    age = float(row.get("age") or 0.0)
    state = health(age, config)
    heartbeat: datetime = row["heartbeat"]
    now = heartbeat.timestamp() + age  # the broker's clock when the row was read
    started: datetime = row.get("started") or heartbeat
    uptime = (heartbeat - started).total_seconds() + (age if state != DEAD else 0.0)
    workers = []
    for index, worker in enumerate(row.get("workers") or [], start=1):
        since = as_timestamp(worker.get("since"))
        task_id = worker.get("task_id") or None
        workers.append(
            WorkerStatus(
                index=index,
                pid=worker.get("pid") or None,
                rss=int(worker.get("rss") or 0),
                done=int(worker.get("done") or 0),
                task_id=task_id,
                task_name=worker.get("task_name") or None,
                running=max(0.0, now - since) if task_id and since else None,
            )
        )
    return ClusterStatus(
        id=str(row["id"]),
        name=row.get("name") or "",
        host=row.get("host") or "?",
        pid=int(row.get("pid") or 0),
        state=row.get("state") or "unknown",
        health=state,
        age=age,
        uptime=max(0.0, uptime),
        workers=tuple(workers),
        held=int(row.get("held") or 0),
        processed=int(row.get("processed") or 0),
        failed=int(row.get("failed") or 0),
        rejected=int(row.get("rejected") or 0),
        rss=int(row.get("rss") or 0),
    )


def host_memory(path: str = "/proc/meminfo") -> tuple[int, int] | None:
    """``(available, total)`` KiB of memory on this host (Linux), or None where unknown."""
    values: dict[str, int] = {}
    try:
        with open(path) as meminfo:
            for line in meminfo:
                key, _, rest = line.partition(":")
                if key in ("MemAvailable", "MemTotal"):
                    values[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if len(values) < 2:
        return None
    return values["MemAvailable"], values["MemTotal"]


def clusters(broker: Broker, config: ClusterConfig) -> list[ClusterStatus]:
    """Every cluster the broker knows, dead ones included (until they are pruned)."""
    return [cluster_status(row, config) for row in broker.clusters()]


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStatus:
    key: str  # the queue: a cluster name
    queued: int  # waiting to be claimed, delayed ones included
    ready: int  # of which may be claimed now
    claimed: int  # claimed by a cluster and not yet done (running or waiting for a worker)

    @property
    def delayed(self) -> int:
        return max(0, self.queued - self.ready)


def queue_keys(broker: Broker, config: ClusterConfig, names: set[str]) -> set[str]:
    """This project's queue, the queues of ``names``, and any queue that holds tasks."""
    keys = {config.queue_key, *names}
    if isinstance(broker, OrmBroker):
        table = OrmQ.objects.using(broker.alias).order_by()
        keys.update(table.values_list("key", flat=True).distinct())
    return keys


def queue_status(broker: Broker, keys: set[str]) -> list[QueueStatus]:
    """Sizes of each queue in ``keys``, through the broker's own counts."""
    result = []
    for key in sorted(keys):
        queue = get_broker(key, config=broker.config)
        result.append(
            QueueStatus(
                key=key,
                queued=queue.queue_size(),
                ready=queue.ready_size(),
                claimed=queue.lock_size(),
            )
        )
    return result


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """Everything ``qinfo`` and ``qmonitor`` show, read at one moment."""

    broker: str  # what the broker says it is
    clusters: list[ClusterStatus]
    queues: list[QueueStatus]
    successes: int
    failures: int
    recent_successes: int  # stopped within the last 24 hours
    recent_failures: int
    average: float | None  # mean stopped - started of the recent successes, in seconds
    schedules: int
    active_schedules: int  # not paused and with runs left

    @property
    def running(self) -> list[ClusterStatus]:
        """The clusters that are not dead."""
        return [cluster for cluster in self.clusters if cluster.alive]

    @property
    def queued(self) -> int:
        return sum(queue.queued for queue in self.queues)

    @property
    def ready(self) -> int:
        return sum(queue.ready for queue in self.queues)

    @property
    def claimed(self) -> int:
        return sum(queue.claimed for queue in self.queues)


def task_counts(now: datetime) -> dict[str, Any]:
    """Successes and failures, in all and recently, and the recent mean time, in one query."""
    since = now - RECENT
    recent = Q(stopped__gte=since)
    counts = Task.objects.order_by().aggregate(
        successes=Count("pk", filter=Q(success=True)),
        failures=Count("pk", filter=Q(success=False)),
        recent_successes=Count("pk", filter=Q(success=True) & recent),
        recent_failures=Count("pk", filter=Q(success=False) & recent),
        average=Avg(F("stopped") - F("started"), filter=Q(success=True) & recent),
    )
    average = counts.pop("average")
    counts["average"] = average.total_seconds() if average is not None else None
    return counts


def summary(config: ClusterConfig, now: datetime | None = None) -> Summary:
    """Read the clusters, the queues, the results and the schedules."""
    broker = get_broker(config=config)
    rows = clusters(broker, config)
    keys = queue_keys(broker, config, {row.name for row in rows})
    schedules = Schedule.objects.order_by().aggregate(
        total=Count("pk"),
        active=Count("pk", filter=Q(next_run__isnull=False) & ~Q(repeats=0)),
    )
    return Summary(
        broker=broker.info(),
        clusters=rows,
        queues=queue_status(broker, keys),
        **task_counts(now or timezone.now()),
        schedules=schedules["total"],
        active_schedules=schedules["active"],
    )


def config_lines(config: ClusterConfig) -> list[str]:
    """The effective settings: every ``Q_CLUSTER`` key, then the values derived from them."""
    lines = [f"taskq {__version__}"]
    for field in dataclasses.fields(config):
        lines.append(f"{field.name}: {hide_secrets(getattr(config, field.name))!r}")
    lines.append(f"queue (cluster name served): {config.queue_key!r}")
    lines.append(f"effective queue_limit: {config.prefetch!r}")
    lines.append(f"effective time_zone: {config.zone!r}")
    return lines


def hide_secrets(value: Any) -> Any:
    """Passwords in a ``redis`` dict or URL replaced by ``***``."""
    if isinstance(value, dict):
        return {
            k: "***" if any(s in str(k).lower() for s in SECRET_KEYS) and v else hide_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, str) and "://" in value and "@" in value:
        scheme, _, rest = value.partition("://")
        credentials, _, host = rest.rpartition("@")
        user = credentials.partition(":")[0]
        return f"{scheme}://{user}:***@{host}" if ":" in credentials else value
    return value
