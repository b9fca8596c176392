"""The Redis broker: ``Q_CLUSTER["redis"]`` (``redis.Redis`` arguments or a URL) or
``Q_CLUSTER["django_redis"]`` (the alias of a django-redis or Django ``RedisCache`` cache).

Every state change is one Lua script (see :mod:`taskq.brokers.redis_scripts`), so a
claim moves tasks from the ready set to the claiming cluster's held set atomically,
with a fresh claim token and the attempt counted. Nothing is popped without a
receipt: the tasks of a cluster that stops heartbeating come back after ``retry``.

Results live in the database. Saving them and removing the task from Redis cannot be
one transaction, so the removal waits for the database commit (``on_commit``): a crash
between the two leaves the task claimed, and it is delivered again once its cluster is
presumed dead. The result is never lost; the task may run twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import redis
from django.core.cache import caches
from django.core.serializers.json import DjangoJSONEncoder
from django.db import router, transaction
from django.utils.dateparse import parse_datetime

from taskq.conf import ClusterConfig
from taskq.exceptions import ConfigurationError
from taskq.messages import Delivery
from taskq.models import Task

from .base import Broker
from .redis_scripts import PRELUDE, SCRIPTS, WAKE_KEEP

logger = logging.getLogger(__name__)

MIN_BLOCK = 0.001  # BLPOP treats 0 as "forever"
COUNTERS = ("held", "processed", "failed", "rejected", "rss")  # a status lacking one reads 0


def connect(config: ClusterConfig) -> redis.Redis:
    """A ``redis.Redis`` client from the settings (django-redis's connection if named)."""
    if config.django_redis:
        return cache_connection(config.django_redis)
    if isinstance(config.redis, str):
        return redis.Redis.from_url(config.redis)
    return redis.Redis(**(config.redis or {}))


def cache_connection(alias: str) -> redis.Redis:
    """The Redis client behind a cache: django-redis's, or Django's own ``RedisCache``."""
    cache = caches[alias]
    client = getattr(cache, "client", None)  # django-redis
    if client is not None and hasattr(client, "get_client"):
        return client.get_client(write=True)
    inner = getattr(cache, "_cache", None)  # django.core.cache.backends.redis.RedisCache
    if inner is not None and hasattr(inner, "get_client"):
        return inner.get_client(write=True)
    raise ConfigurationError(
        f"Q_CLUSTER['django_redis'] names the cache {alias!r}, which is not a Redis cache "
        "(django-redis or django.core.cache.backends.redis.RedisCache)."
    )


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def pairs_of(deliveries: Iterable[Delivery]) -> list[str]:
    """``[ack_id, token, ack_id, token, ...]`` as the scripts take them."""
    flat = []
    for delivery in deliveries:
        flat += [str(delivery.ack_id), delivery.token or ""]
    return flat


def fenced(rows: list[Any]) -> set[tuple[int, str | None]]:
    """``{(ack_id, token)}`` from a script's ``[id, token, ...]`` reply."""
    return {(int(rows[i]), text(rows[i + 1]) or None) for i in range(0, len(rows), 2)}


class RedisBroker(Broker):
    """Reliable queues in Redis; results stay in the database (or the cache)."""

    def __init__(self, list_key: str | None = None, config: ClusterConfig | None = None) -> None:
        super().__init__(list_key=list_key, config=config)
        self.prefix = f"taskq:{self.config.name}:"
        self._client: redis.Redis | None = None
        self._pid = 0
        self._scripts: dict[str, Any] = {}
        self._version: str | None = None
        self.unsent_acks: list[str] = []  # acks whose removal failed after the commit

    # connection -------------------------------------------------------------------------
    @property
    def connection(self) -> redis.Redis:
        """The client, created on first use and again in a forked child."""
        if self._client is None or self._pid != os.getpid():
            self._client = connect(self.config)
            self._pid = os.getpid()
            self._scripts = {}
        return self._client

    def run(self, name: str, *args: Any) -> Any:
        client = self.connection
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = client.register_script(PRELUDE + SCRIPTS[name])
        return script(keys=[], args=[self.prefix, *args], client=client)

    def key(self, part: str) -> str:
        return f"{self.prefix}q:{self.list_key}:{part}"

    def close(self) -> None:
        client, self._client, self._scripts = self._client, None, {}
        if client is not None and not self.config.django_redis and self._pid == os.getpid():
            client.connection_pool.disconnect()

    # Django-Q2's API ---------------------------------------------------------------
    def enqueue(
        self,
        payload: str,
        *,
        priority: int = 0,
        run_after: datetime | None = None,
        task_id: str | None = None,
        name: str | None = None,
        func: str | None = None,
    ) -> int:
        priority = max(-100, min(100, int(priority)))
        after = "" if run_after is None else repr(run_after.timestamp())
        args = (self.list_key, priority, after, payload, task_id or "", name or "", func or "")
        return int(self.run("enqueue", *args))

    def delete(self, ack_id: Any) -> None:
        self.run("delete", ack_id)

    def queue_size(self) -> int:
        pipe = self.connection.pipeline(transaction=False)
        pipe.zcard(self.key("ready"))
        pipe.zcard(self.key("delayed"))
        return sum(pipe.execute())

    def lock_size(self) -> int:
        return int(self.connection.scard(self.key("claimed")))

    def ready_size(self) -> int:
        return int(self.run("ready", self.list_key))

    def purge_queue(self) -> int:
        return int(self.run("purge", self.list_key))

    def claimed_payload(self, ack_id: Any, token: str | None) -> str | None:
        held, payload = self.connection.hmget(f"{self.prefix}t:{ack_id}", "token", "payload")
        if held is None or payload is None or text(held) != (token or ""):
            return None
        return text(payload)

    def parse_ack_id(self, text: str) -> int:
        return int(text)

    def ping(self) -> bool:
        return bool(self.connection.ping())

    def info(self) -> str:
        if self._version is None:
            self._version = text(self.connection.info("server")["redis_version"])
        return f"Redis {self._version}"

    # taskq's engine API ---------------------------------------------------------------
    def claim(self, owner: str, count: int, token: str | None = None) -> list[Delivery]:
        if count < 1:
            return []
        token = token or os.urandom(16).hex()
        rows = self.run("claim", self.list_key, count, owner, token)
        return [
            Delivery(
                ack_id=int(rows[i]),
                token=token,
                attempt=int(rows[i + 1]),
                payload=text(rows[i + 2]),
            )
            for i in range(0, len(rows), 3)
        ]

    def ack_many(self, deliveries: Sequence[Delivery]) -> set[tuple[Any, str | None]]:
        """Fence by claim token now; inside a database transaction, remove on its commit.

        ``outcomes.record`` writes the results in the transaction it holds around this
        call, so a task leaves Redis only once its result is committed.
        """
        self.send_unsent_acks()
        flat = pairs_of(deliveries)
        if not flat:
            return set()
        alias = router.db_for_write(Task)
        if not transaction.get_connection(alias).in_atomic_block:
            return fenced(self.run("ack", *flat))
        held = fenced(self.run("held", *flat))
        if held:
            still = [x for ack_id, token in held for x in (str(ack_id), token or "")]
            transaction.on_commit(partial(self.remove_acked, still), using=alias)
        return held

    def remove_acked(self, flat: list[str]) -> None:
        """After the commit: remove the acknowledged tasks (fenced); retried on failure."""
        try:
            self.run("ack", *flat)
        except Exception:
            logger.exception("could not remove %s acknowledged tasks; will retry", len(flat) // 2)
            self.unsent_acks += flat

    def send_unsent_acks(self) -> None:
        if self.unsent_acks:
            flat, self.unsent_acks = self.unsent_acks, []
            self.remove_acked(flat)

    def release(
        self, deliveries: Iterable[Delivery], *, delay: float = 0, unstarted: bool = False
    ) -> int:
        flat = pairs_of(deliveries)
        if not flat:
            return 0
        return int(self.run("release", repr(float(delay)), "1" if unstarted else "0", *flat))

    def abandon(self, owner: str, token: str) -> int:
        return int(self.run("abandon", owner, token))

    def orphans(self, retry: float) -> list[Delivery]:
        rows = self.run("orphans", repr(float(retry)), self.owner_id)
        return [
            Delivery(
                ack_id=int(rows[i]),
                token=text(rows[i + 1]),
                attempt=int(rows[i + 2]),
                payload=text(rows[i + 3]),
            )
            for i in range(0, len(rows), 4)
        ]

    def heartbeat(self, status: dict[str, Any]) -> None:
        keep = int(max(60.0, 2 * self.config.retry + 3 * self.config.heartbeat)) + 1
        self.run("heartbeat", status["id"], json.dumps(status, cls=DjangoJSONEncoder), keep)

    def remove_cluster(self, cluster_id: str) -> None:
        pipe = self.connection.pipeline(transaction=True)
        pipe.zrem(f"{self.prefix}clusters", cluster_id)
        pipe.delete(f"{self.prefix}cluster:{cluster_id}")
        pipe.execute()

    def clusters(self) -> list[dict[str, Any]]:
        rows = self.run("clusters")
        now = int(rows[0]) + int(rows[1]) / 1_000_000
        result = []
        for i in range(2, len(rows), 3):
            if not rows[i + 2]:  # its status expired: long dead
                continue
            beat = float(rows[i + 1])
            status = {"workers": [], **dict.fromkeys(COUNTERS, 0), **json.loads(text(rows[i + 2]))}
            status["id"] = text(rows[i])
            status["heartbeat"] = datetime.fromtimestamp(beat, tz=UTC)
            started = parse_datetime(status.get("started") or "")
            status["started"] = started or status["heartbeat"]
            status["age"] = max(0.0, now - beat)
            result.append(status)
        result.sort(
            key=lambda row: (row.get("name") or "", row.get("host") or "", row.get("pid") or 0)
        )
        return result

    def prune_clusters(self, older_than: float) -> int:
        return int(self.run("prune", repr(float(older_than))))

    @property
    def pushes(self) -> bool:
        return True

    def wake(self) -> None:
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.rpush(self.key("wake"), "1")
            pipe.ltrim(self.key("wake"), -WAKE_KEEP, -1)
            pipe.execute()

    def wait(self, timeout: float) -> None:
        """Block on the queue's wake-up list until a task is enqueued or ``timeout`` passes."""
        with contextlib.suppress(redis.TimeoutError):  # a shorter socket_timeout: just wake
            self.connection.blpop([self.key("wake")], timeout=max(MIN_BLOCK, timeout))
