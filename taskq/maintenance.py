"""Keeping the result table small: ``save_limit`` pruning with one delete per group."""

from __future__ import annotations

from django.db.models import QuerySet

from .conf import ClusterConfig
from .models import Success


def beyond_limit(successes: QuerySet[Success], keep: int) -> QuerySet[Success]:
    """The successes of ``successes`` older than its newest ``keep``."""
    kept = successes.order_by("-stopped").values("pk")[:keep]
    return successes.exclude(pk__in=list(kept.values_list("pk", flat=True)))


def prune_successes(config: ClusterConfig, keep: int | None = None, dry_run: bool = False) -> int:
    """Delete successes beyond ``keep`` (default ``save_limit``), per ``save_limit_per``."""
    keep = config.save_limit if keep is None else keep
    if keep == 0:
        return 0
    if keep < 0:
        doomed = Success.objects.all()
        return doomed.count() if dry_run else doomed.delete()[0]
    per = config.save_limit_per
    groups = [Success.objects.all()]
    if per:
        values = Success.objects.order_by().values_list(per, flat=True).distinct()
        groups = [Success.objects.filter(**{per: value}) for value in values]
    removed = 0
    for successes in groups:
        if successes.count() <= keep:
            continue
        doomed = beyond_limit(successes, keep)
        removed += doomed.count() if dry_run else doomed.delete()[0]
    return removed
