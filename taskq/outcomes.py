"""``record()``: save a batch of outcomes, acknowledge them, run hooks and send signals.

The Monitor and sync mode both call it, so a result saved in sync mode is the same
row a cluster would save. The queue rows are removed in the same transaction as the
results are written, fenced by their claim token; an outcome whose claim was rescued
and taken by someone else since is dropped and counted as rejected.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import caches
from django.db import router, transaction

from . import signals, signing
from .brokers import Broker
from .brokers.orm import OrmBroker
from .conf import ClusterConfig
from .execution import resolve
from .messages import TaskMessage, TaskOutcome
from .models import Task
from .taskrows import ack_and_write, can_ack_and_write, encode_rows, task_row, write_outcomes

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Recorded:
    """What :func:`record` did: rows saved, retries released, late results rejected."""

    saved: list[TaskOutcome] = field(default_factory=list)  # their Task rows were written
    retried: list[TaskOutcome] = field(default_factory=list)
    rejected: list[TaskOutcome] = field(default_factory=list)
    chains: list[TaskMessage] = field(default_factory=list)  # finished links with more to run

    @property
    def failed(self) -> int:
        return sum(1 for outcome in self.saved if not outcome.success)


def should_retry(outcome: TaskOutcome, config: ClusterConfig) -> bool:
    if outcome.success or outcome.delivery is None:
        return False
    if outcome.message.ack_failure or config.ack_failures:
        return False
    limit = outcome.message.max_attempts
    limit = config.max_attempts if limit is None else limit
    return limit == 0 or outcome.attempt < limit


def should_save(outcome: TaskOutcome, config: ClusterConfig) -> bool:
    if not outcome.success or outcome.message.iter_count:
        return True
    save = outcome.message.save
    return config.save_limit >= 0 if save is None else bool(save)


def record(outcomes: Sequence[TaskOutcome], broker: Broker, config: ClusterConfig) -> Recorded:
    """Save, acknowledge and announce a batch of outcomes."""
    done = Recorded()
    final = []
    for outcome in first_per_claim(outcomes, done.rejected):
        (done.retried if should_retry(outcome, config) else final).append(outcome)
    cached = [o for o in final if o.message.cached]
    stored = [o for o in final if not o.message.cached]
    candidates = [o for o in stored if should_save(o, config)]
    # encoded before the transaction: the write lock is held for the statements alone
    encoded = encode_rows(candidates)
    claimed = [o.delivery for o in final if o.delivery is not None]
    if isinstance(broker, OrmBroker) and can_ack_and_write(broker.alias, claimed, candidates):
        acked = ack_and_write(claimed, candidates, encoded)
        accepted = confirmed(stored + cached, acked, done.rejected)
        done.saved = only(candidates, accepted)
    else:
        results_db = router.db_for_write(Task)
        with (
            broker.serialized(),
            transaction.atomic(using=getattr(broker, "alias", results_db)),
            transaction.atomic(using=results_db, savepoint=False),
        ):
            acked = broker.ack_many(claimed) if claimed else set()
            accepted = confirmed(stored + cached, acked, done.rejected)
            done.saved = only(candidates, accepted)
            write_outcomes(done.saved, encoded)
    if done.retried:  # after the acks: a retry never undoes another outcome's ack
        broker.release([o.delivery for o in done.retried if o.delivery is not None])
    for outcome in done.rejected:
        logger.warning(
            "late result rejected: task_id=%s attempt=%s (its claim was rescued)",
            outcome.message.id,
            outcome.attempt,
        )
    for outcome in accepted:
        if outcome.message.cached:
            save_cached(outcome, broker, config)
        announce(outcome)
        if outcome.message.chain:
            done.chains.append(outcome.message)
    for group in {o.message.group: o.message for o in accepted if o.message.iter_count}.items():
        collate_iter(group[1], broker, config)
    return done


def confirmed(
    outcomes: list[TaskOutcome], acked: set[tuple[Any, Any]], rejected: list[TaskOutcome]
) -> list[TaskOutcome]:
    """The outcomes whose claim the acknowledgement confirmed (or that had none); the
    others go to ``rejected``."""
    accepted = []
    for outcome in outcomes:
        d = outcome.delivery
        if d is None or (d.ack_id, d.token) in acked:
            accepted.append(outcome)
        else:
            rejected.append(outcome)
    return accepted


def only(outcomes: list[TaskOutcome], among: list[TaskOutcome]) -> list[TaskOutcome]:
    """Those of ``outcomes`` that are in ``among`` (by identity)."""
    kept = {id(o) for o in among}
    return [o for o in outcomes if id(o) in kept]


def first_per_claim(
    outcomes: Sequence[TaskOutcome], rejected: list[TaskOutcome]
) -> list[TaskOutcome]:
    """One outcome per claim: when a worker's result and the Sentinel's settlement of the
    same claim meet in one batch (the worker died just after its task returned), the
    success wins and the other is rejected."""
    chosen: dict[tuple[Any, Any], TaskOutcome] = {}
    result = []
    for outcome in outcomes:
        d = outcome.delivery
        if d is None:
            result.append(outcome)
            continue
        key = (d.ack_id, d.token)
        if key not in chosen:
            chosen[key] = outcome
        elif outcome.success and not chosen[key].success:
            rejected.append(chosen[key])
            chosen[key] = outcome
        else:
            rejected.append(outcome)
    return result + list(chosen.values())


def collate_iter(message: TaskMessage, broker: Broker, config: ClusterConfig) -> Task | None:
    """When every task of an ``async_iter`` group is saved, make the one result Task.

    Item ids sort in input order, so the collated result list is in input order too.
    """
    items = Task.objects.filter(group=message.group).order_by("id")
    if message.iter_count is None or items.count() < message.iter_count:
        return None
    rows = list(items)
    collated = Task(
        id=message.group,
        name=message.group,
        func=message.func_name[:256],
        hook=message.hook_name,
        args=[row.args for row in rows],
        kwargs=message.kwargs,
        result=[row.result for row in rows],
        group=None,
        started=min(r.started for r in rows),
        stopped=max(r.stopped for r in rows),
        success=all(r.success for r in rows),
        attempt_count=1,
        cluster=rows[-1].cluster,
    )
    if message.iter_cached:
        package = {
            "id": collated.id,
            "name": collated.name,
            "func": message.func,
            "hook": message.hook,
            "args": collated.args,
            "kwargs": collated.kwargs,
            "result": collated.result,
            "success": collated.success,
            "started": collated.started,
            "stopped": collated.stopped,
        }
        timeout = None if message.iter_cached is True else int(message.iter_cached)
        caches[config.cache].set(
            cache_key(broker.list_key, collated.id),
            signing.dumps(package, salt=config.name),
            timeout,
        )
    else:
        Task.objects.bulk_create([collated], ignore_conflicts=True)
    items.delete()
    return collated


def announce(outcome: TaskOutcome) -> None:
    """Call the result hook with the Task and send ``post_execute``; neither may lose the
    result."""
    message = outcome.message
    if message.hook:
        try:
            resolve(message.hook)(task_row(outcome))
        except Exception:
            logger.exception(
                "result hook failed: task_id=%s hook=%s", message.id, message.hook_name
            )
    if not signals.post_execute.has_listeners(signals.SENDER):
        return
    package = message.to_dict()
    package.update(result=outcome.result, success=outcome.success, stopped=outcome.stopped)
    try:
        signals.post_execute.send(sender=signals.SENDER, task=package)
    except Exception:
        logger.exception("post_execute receiver failed: task_id=%s", message.id)


def cache_key(list_key: str, key: str) -> str:
    return f"{list_key}:{key}"


def save_cached(outcome: TaskOutcome, broker: Broker, config: ClusterConfig) -> None:
    """Store a result in the cache (``cached=True`` or a timeout in seconds)."""
    message = outcome.message
    timeout = None if message.cached is True else int(message.cached)
    cache = caches[config.cache]
    package = message.to_dict()
    package.update(result=outcome.result, success=outcome.success, stopped=outcome.stopped)
    package["started"] = message.started or outcome.started
    package["attempt_count"] = outcome.attempt
    package["cluster"] = outcome.cluster or message.cluster
    cache.set(
        cache_key(broker.list_key, message.id), signing.dumps(package, salt=config.name), timeout
    )
    if message.group:
        group_key = cache_key(broker.list_key, f"{message.group}:keys")
        keys: list[str] = cache.get(group_key) or []
        keys.append(cache_key(broker.list_key, message.id))
        cache.set(group_key, keys, timeout)


def cached_task(package: Any) -> Task:
    """A (not saved) :class:`Task` built from a cached result package."""
    return Task(
        id=package["id"],
        name=package["name"],
        func=TaskMessage.from_dict(package).func_name,
        hook=package.get("hook") and TaskMessage.from_dict(package).hook_name,
        args=package["args"],
        kwargs=package["kwargs"],
        result=package.get("result"),
        group=package.get("group"),
        started=package["started"],
        stopped=package["stopped"],
        success=package.get("success", True),
        attempt_count=package.get("attempt_count", 1),
        cluster=package.get("cluster"),
    )
