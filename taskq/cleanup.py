"""``qclean`` and ``clean_old_tasks()``: old results, spent schedules, unreadable queue rows.

By default :func:`clean` deletes the successes beyond ``save_limit`` (per
``save_limit_per``), the once-schedules that are spent (type ``O``, ``repeats == 0``),
and turns queued tasks whose package cannot be read into failure rows that say why.
``older_than`` also deletes the successes that stopped before that age; ``failures``
applies the same rules to failures, which are never touched otherwise.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import router, transaction
from django.db.models import QuerySet
from django.utils import timezone

from .conf import ClusterConfig, get_config
from .ids import new_task_id
from .maintenance import beyond_limit
from .models import Failure, OrmQ, Schedule, Success, Task

logger = logging.getLogger(__name__)

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION = re.compile(r"(?:\d+[smhdw])+")
UNREADABLE_FUNC = "<unreadable package>"


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``12h``, ``7d``, ``2w`` (or combined: ``1d12h``) as a timedelta."""
    value = text.strip().lower()
    if not DURATION.fullmatch(value):
        raise ValueError(
            f"{text!r} is not a duration: give a number and a unit (s, m, h, d or w), "
            "as in 90s, 30m, 12h, 7d or 2w"
        )
    seconds = sum(int(n) * UNITS[unit] for n, unit in re.findall(r"(\d+)([smhdw])", value))
    return timedelta(seconds=seconds)


def kept_count(save_limit: int) -> int | None:
    """``save_limit`` as a count of rows to keep: ``None`` keeps all (0), ``0`` none (-1)."""
    if save_limit == 0:
        return None
    return max(0, save_limit)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cleaned:
    """How many rows of each kind were removed (or would be, in a dry run)."""

    successes: int = 0
    failures: int = 0
    schedules: int = 0  # spent once-schedules
    unreadable: int = 0  # queued tasks whose package cannot be read, now failure rows
    failures_cleaned: bool = False  # whether failures were considered at all
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def expired(
    rows: QuerySet[Any], *, keep: int | None, per: str | None, cutoff: datetime | None
) -> list[QuerySet[Any]]:
    """The parts of ``rows`` to delete: older than ``cutoff``, and beyond ``keep`` per ``per``.

    The count rule is applied to what the age rule leaves, so no row is counted twice.
    """
    doomed = []
    if cutoff is not None:
        doomed.append(rows.filter(stopped__lt=cutoff))
        rows = rows.filter(stopped__gte=cutoff)
    if keep is None:
        return doomed
    if keep == 0:
        return [*doomed, rows]
    groups = [rows]
    if per:
        values = rows.order_by().values_list(per, flat=True).distinct()
        groups = [rows.filter(**{per: value}) for value in values]
    doomed.extend(beyond_limit(group, keep) for group in groups if group.count() > keep)
    return doomed


def remove(parts: list[QuerySet[Any]], dry_run: bool) -> int:
    if dry_run:
        return sum(part.count() for part in parts)
    return sum(part.delete()[0] for part in parts)


def unreadable(config: ClusterConfig) -> list[tuple[OrmQ, str]]:
    """Unclaimed queue rows whose package cannot be read, with the reason."""
    rows = OrmQ.objects.using(config.orm).filter(owner__isnull=True).order_by("id")
    found = []
    for row in rows.iterator(chunk_size=500):
        task = row.task
        if str(task.get("id", "")).startswith("*") and "error" in task:
            found.append((row, f"{task['id'][1:]}: {task['error']}"))
    return found


def record_unreadable(row: OrmQ, reason: str, config: ClusterConfig, now: datetime) -> bool:
    """Replace the queue row by a failure row; False if a cluster claimed it meanwhile."""
    results = router.db_for_write(Task)
    with transaction.atomic(using=config.orm), transaction.atomic(using=results):
        queue = OrmQ.objects.using(config.orm)
        if not queue.filter(pk=row.pk, owner__isnull=True).delete()[0]:
            return False
        task_id = row.task_ident
        if not task_id or Task.objects.filter(id=task_id).exists():
            task_id = new_task_id()
        Task.objects.create(
            id=task_id,
            name=(row.task_name or f"unreadable-{row.pk}")[:100],
            func=row.task_func or UNREADABLE_FUNC,
            args=(),
            kwargs={},
            result=f"Package refused, never run: {reason} (removed from the queue by qclean)",
            cluster=row.key,
            started=min(row.lock, now) if row.lock else now,
            stopped=now,
            success=False,
            attempt_count=row.attempt,
        )
    return True


def clean(
    config: ClusterConfig,
    *,
    older_than: timedelta | None = None,
    failures: bool = False,
    keep: int | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Cleaned:
    """Clean up; ``keep`` (newest rows kept, 0 = none) overrides ``save_limit``."""
    if keep is not None and keep < 0:
        raise ValueError(f"keep must be 0 or more, not {keep!r}")
    now = now or timezone.now()
    cutoff = now - older_than if older_than is not None else None
    count = kept_count(config.save_limit) if keep is None else keep
    rules = {"keep": count, "per": config.save_limit_per, "cutoff": cutoff}
    successes = remove(expired(Success.objects.all(), **rules), dry_run)
    failed = remove(expired(Failure.objects.all(), **rules), dry_run) if failures else 0
    spent = Schedule.objects.filter(schedule_type=Schedule.ONCE, repeats=0)
    schedules = spent.count() if dry_run else spent.delete()[0]
    bad = unreadable(config)  # after the failures: the rows it makes are new
    recorded = len(bad) if dry_run else sum(record_unreadable(*item, config, now) for item in bad)
    cleaned = Cleaned(
        successes=successes,
        failures=failed,
        schedules=schedules,
        unreadable=recorded,
        failures_cleaned=failures,
        dry_run=dry_run,
    )
    logger.info(
        "cleaned successes=%s failures=%s schedules=%s unreadable=%s dry_run=%s",
        successes,
        failed,
        schedules,
        recorded,
        dry_run,
    )
    return cleaned


def report(cleaned: Cleaned) -> list[str]:
    """One labelled line per kind, as ``qclean`` prints them."""
    dry = cleaned.dry_run
    deleted = "would be deleted" if dry else "deleted"
    failures = (
        f"{cleaned.failures} {deleted}"
        if cleaned.failures_cleaned
        else "0 (failures are kept; --failures cleans them)"
    )
    one = cleaned.unreadable == 1
    tasks = "queued task" if one else "queued tasks"
    became = ("would become" if dry else "became") + (" a failure" if one else " failures")
    lines = ["Dry run: nothing was changed."] if dry else []
    lines += [
        f"Successes   {cleaned.successes} {deleted}",
        f"Failures    {failures}",
        f"Schedules   {cleaned.schedules} {deleted} (spent once-schedules)",
        f"Unreadable  {cleaned.unreadable} {tasks} {became} (removed from the queue)",
    ]
    return lines


def clean_old_tasks() -> dict[str, Any]:
    """``qclean`` with its defaults, as a task: ``schedule("taskq.tasks.clean_old_tasks", ...)``.

    Returns the counts, which become the task's result.
    """
    return clean(get_config()).as_dict()
