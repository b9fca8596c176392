"""The ORM broker: the queue is the ``django_q_ormq`` table on ``Q_CLUSTER["orm"]``.

Claims take a batch in one statement (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, an
immediate transaction on SQLite), mark it with the owner cluster and a claim token, and
count the attempt. Acknowledgements delete by ``(id, token)`` so a late result from a
rescued claim removes nothing. All times compared are the database's clock.
"""

from __future__ import annotations

import atexit
import time
import uuid
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils import timezone

from taskq import prepared
from taskq.messages import Delivery
from taskq.models import Cluster, OrmQ
from taskq.prepared import Statement

from .base import Broker
from .wakeup import CHANNEL, DatagramListener, DatagramWaker, PostgresListener

TABLE = OrmQ._meta.db_table
CLAIM_POSTGRES = Statement(f"""
WITH picked AS MATERIALIZED (
    SELECT id FROM {TABLE}
    WHERE key = %s AND owner IS NULL AND (lock IS NULL OR lock <= now())
    ORDER BY priority DESC, id LIMIT %s FOR UPDATE SKIP LOCKED)
UPDATE {TABLE} AS q SET owner = %s, token = %s, attempt = q.attempt + 1, claimed = now()
FROM picked WHERE q.id = picked.id
RETURNING q.id, q.attempt, q.payload, q.priority
""")
INSERT_COLUMNS = "key, payload, priority, attempt, task_id, name, func, lock"
INSERT_POSTGRES = Statement(f"""
WITH row AS (
    INSERT INTO {TABLE} ({INSERT_COLUMNS})
    VALUES (%s, %s, %s, 0, %s, %s, %s, COALESCE(%s, now()))
    RETURNING id)
SELECT id, pg_notify('{CHANNEL}', %s) FROM row
""")
INSERT_SQLITE = f"""
INSERT INTO {TABLE} ({INSERT_COLUMNS}) VALUES (%s, %s, %s, 0, %s, %s, %s, %s)
"""
WAKERS: dict[tuple[str, str], DatagramWaker] = {}  # one per database and queue, kept


@atexit.register
def close_wakers() -> None:
    """Close the wake-up sockets when the process ends."""
    for waker in WAKERS.values():
        waker.close()


CLAIM_SQLITE = f"""
UPDATE {TABLE} SET owner = %s, token = %s, attempt = attempt + 1, claimed = %s
WHERE id IN (
    SELECT id FROM {TABLE}
    WHERE key = %s AND owner IS NULL AND (lock IS NULL OR lock <= %s)
    ORDER BY priority DESC, id LIMIT %s)
RETURNING id, attempt, payload, priority
"""
CLAIM_SQLITE_DRIVER = CLAIM_SQLITE.replace("%s", "?")  # the sqlite3 module's placeholders


def claim_sqlite(db: Any, params: list[Any]) -> list[tuple[Any, ...]]:
    """The SQLite claim in its own immediate transaction.

    In autocommit (the Pusher's connection) the three statements go straight to the
    driver's connection: Django's transaction bookkeeping was a third of a claim's time.
    Inside a caller's transaction the claim joins it through Django.
    """
    if db.in_atomic_block or not db.get_autocommit():
        with transaction.atomic(using=db.alias, savepoint=False), db.cursor() as cursor:
            cursor.execute(CLAIM_SQLITE, params)
            return cursor.fetchall()
    raw = db.connection
    with db.wrap_database_errors:
        raw.execute("BEGIN IMMEDIATE")
        try:
            rows = raw.execute(CLAIM_SQLITE_DRIVER, params).fetchall()
            raw.execute("COMMIT")
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise
    return rows


class OrmBroker(Broker):
    """The default broker: Django's ORM on the database alias ``Q_CLUSTER["orm"]``."""

    listener: DatagramListener | PostgresListener | None = None

    @property
    def alias(self) -> str:
        return self.config.orm

    @property
    def connection(self) -> Any:
        return connections[self.alias]

    def queue(self) -> Any:
        return OrmQ.objects.using(self.alias).filter(key=self.list_key)

    def now(self) -> datetime:
        """The database's clock (SQLite shares the host's)."""
        if self.connection.vendor == "sqlite":
            return timezone.now()
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT CURRENT_TIMESTAMP")
            return cursor.fetchone()[0]

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
        db = self.connection
        values = [
            self.list_key,
            payload,
            priority,
            task_id,
            name and name[:100],
            func and func[:256],
        ]
        with db.cursor() as cursor:
            if db.vendor == "postgresql":  # lock "due now" on the database's clock; wake pushers
                prepared.execute(db, cursor, INSERT_POSTGRES, [*values, run_after, self.list_key])
                row_id = cursor.fetchone()[0]
            elif db.vendor == "sqlite":
                lock = db.ops.adapt_datetimefield_value(run_after or timezone.now())
                cursor.execute(INSERT_SQLITE, [*values, lock])
                row_id = cursor.lastrowid
                transaction.on_commit(self.waker().wake, using=self.alias)
            else:
                row = OrmQ(
                    key=self.list_key,
                    payload=payload,
                    lock=run_after or Now(),
                    priority=priority,
                    task_ident=task_id,
                    task_name=values[4],
                    task_func=values[5],
                )
                row.save(using=self.alias, force_insert=True)
                row_id = row.pk
        return row_id

    def waker(self) -> DatagramWaker:
        waker = WAKERS.get((self.database_name, self.list_key))
        if waker is None:
            waker = WAKERS[(self.database_name, self.list_key)] = DatagramWaker(
                self.database_name, self.list_key
            )
        return waker

    @property
    def database_name(self) -> str:
        return str(self.connection.settings_dict["NAME"])

    @property
    def pushes(self) -> bool:
        if isinstance(self.listener, DatagramListener):
            return self.listener.sock is not None
        return isinstance(self.listener, PostgresListener)

    def wait(self, timeout: float) -> None:
        """Block until an enqueue wakes this queue (NOTIFY / a datagram), or ``timeout``."""
        if self.listener is None:
            vendor = self.connection.vendor
            if vendor == "postgresql":
                params = dict(self.connection.get_connection_params())
                params.pop("cursor_factory", None)
                self.listener = PostgresListener(params)
            elif vendor == "sqlite":
                self.listener = DatagramListener(self.database_name, self.list_key)
            else:
                time.sleep(timeout)
                return
        try:
            self.listener.wait(timeout)
        except Exception:
            self.listener.close()
            raise

    def wake(self) -> None:
        vendor = self.connection.vendor
        if vendor == "sqlite":
            self.waker().wake()
        elif vendor == "postgresql":
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, self.list_key])

    def serialized(self) -> AbstractContextManager[Any]:
        return self.write_lock if self.connection.vendor == "sqlite" else nullcontext()

    def delete(self, ack_id: Any) -> None:
        OrmQ.objects.using(self.alias).filter(pk=ack_id).delete()

    def queue_size(self) -> int:
        return self.queue().filter(owner__isnull=True).count()

    def lock_size(self) -> int:
        return self.queue().filter(owner__isnull=False).count()

    def purge_queue(self) -> int:
        return self.queue().delete()[0]

    def ready_size(self) -> int:
        # on SQLite the claim compares with the host's clock to the microsecond; Now()
        # has milliseconds there, and would call a task enqueued this millisecond not due
        now = timezone.now() if self.connection.vendor == "sqlite" else Now()
        due = Q(lock__isnull=True) | Q(lock__lte=now)
        return self.queue().filter(owner__isnull=True).filter(due).count()

    def claimed_payload(self, ack_id: Any, token: str | None) -> str | None:
        row = OrmQ.objects.using(self.alias).filter(id=ack_id, token=token).only("payload").first()
        return row.payload if row is not None else None

    def parse_ack_id(self, text: str) -> int:
        return int(text)

    def ping(self) -> bool:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone()[0] == 1

    def info(self) -> str:
        db = self.connection
        return f"ORM {db.vendor} ({self.alias})"

    # taskq's engine API ---------------------------------------------------------------
    def claim(self, owner: str, count: int, token: str | None = None) -> list[Delivery]:
        if count < 1:
            return []
        token = token or uuid.uuid4().hex
        db = self.connection
        if db.vendor == "postgresql":  # one statement: atomic by itself, one round trip
            with db.cursor() as cursor:
                params = [self.list_key, count, owner, token]
                prepared.execute(db, cursor, CLAIM_POSTGRES, params)
                rows = cursor.fetchall()
        elif db.vendor == "sqlite":  # BEGIN IMMEDIATE: the write lock before reading
            now = db.ops.adapt_datetimefield_value(timezone.now())
            with self.write_lock:
                rows = claim_sqlite(db, [owner, token, now, self.list_key, now, count])
        else:
            with transaction.atomic(using=self.alias, savepoint=False):
                rows = self.claim_portable(owner, token, count)
        rows.sort(key=lambda row: (-row[3], row[0]))
        return [Delivery(ack_id=r[0], token=token, attempt=r[1], payload=r[2]) for r in rows]

    def abandon(self, owner: str, token: str) -> int:
        return (
            OrmQ.objects.using(self.alias)
            .filter(owner=owner, token=token)
            .update(owner=None, token=None, claimed=None, attempt=F("attempt") - 1)
        )

    def claim_portable(self, owner: str, token: str, count: int) -> list[tuple[Any, ...]]:
        """SELECT ... FOR UPDATE (SKIP LOCKED where supported), then UPDATE by primary key."""
        skip = self.connection.features.has_select_for_update_skip_locked
        due = (
            self.queue()
            .filter(owner__isnull=True)
            .filter(Q(lock__isnull=True) | Q(lock__lte=Now()))
        )
        ids = list(
            due.order_by("-priority", "id")
            .select_for_update(skip_locked=skip)
            .values_list("id", flat=True)[:count]
        )
        OrmQ.objects.using(self.alias).filter(id__in=ids).update(
            owner=owner, token=token, attempt=F("attempt") + 1, claimed=Now()
        )
        return list(
            OrmQ.objects.using(self.alias)
            .filter(id__in=ids)
            .values_list("id", "attempt", "payload", "priority")
        )

    def ack_many(self, deliveries: Sequence[Delivery]) -> set[tuple[Any, str | None]]:
        if not deliveries:
            return set()
        db = self.connection
        pairs = [(d.ack_id, d.token) for d in deliveries]
        if db.vendor in ("postgresql", "sqlite"):
            # "id IN (...)" lets the primary key find the rows; the pairs fence them.
            ids = ", ".join(["%s"] * len(pairs))
            values = ", ".join(["(%s, %s)"] * len(pairs))
            sql = (
                f"DELETE FROM {TABLE} WHERE id IN ({ids}) AND (id, token) IN (VALUES {values}) "
                "RETURNING id, token"
            )
            params = [ack_id for ack_id, _ in pairs] + [x for pair in pairs for x in pair]
            with db.cursor() as cursor:  # one statement: atomic by itself, or in the caller's
                cursor.execute(sql, params)
                return {(row[0], row[1]) for row in cursor.fetchall()}
        fence = Q()
        for ack_id, token in pairs:
            fence |= Q(id=ack_id, token=token)
        with transaction.atomic(using=self.alias):
            rows = OrmQ.objects.using(self.alias).filter(fence).select_for_update()
            found = set(rows.values_list("id", "token"))
            OrmQ.objects.using(self.alias).filter(id__in=[i for i, _ in found]).delete()
        return found

    def release(
        self, deliveries: Iterable[Delivery], *, delay: float = 0, unstarted: bool = False
    ) -> int:
        released = 0
        lock = timezone.now() + timedelta(seconds=delay) if delay else None
        uncount = {"attempt": F("attempt") - 1} if unstarted else {}
        by_token: dict[str | None, list[Any]] = {}
        for delivery in deliveries:
            by_token.setdefault(delivery.token, []).append(delivery.ack_id)
        for token, ids in by_token.items():
            released += (
                OrmQ.objects.using(self.alias)
                .filter(id__in=ids, token=token)
                .update(owner=None, token=None, claimed=None, lock=lock, **uncount)
            )
        return released

    def orphans(self, retry: float) -> list[Delivery]:
        cutoff = Now() - timedelta(seconds=retry)
        clusters = Cluster.objects.using(self.alias)
        alive = clusters.filter(heartbeat__gte=cutoff).values("id")
        # one statement, one snapshot: read apart, a cluster that wrote its first
        # heartbeat between the two reads and then claimed would look dead
        rows = (
            OrmQ.objects.using(self.alias)
            .filter(owner__isnull=False)
            .exclude(owner__in=alive)
            .exclude(owner=self.owner_id)
            .values_list("id", "token", "attempt", "payload")
        )
        return [Delivery(ack_id=i, token=t, attempt=a, payload=p) for i, t, a, p in rows]

    def heartbeat(self, status: dict[str, Any]) -> None:
        fields = {k: v for k, v in status.items() if k != "id"}
        updated = (
            Cluster.objects.using(self.alias)
            .filter(id=status["id"])
            .update(heartbeat=Now(), **fields)
        )
        if not updated:
            Cluster.objects.using(self.alias).create(
                id=status["id"], heartbeat=timezone.now(), **fields
            )

    def remove_cluster(self, cluster_id: str) -> None:
        Cluster.objects.using(self.alias).filter(id=cluster_id).delete()

    def clusters(self) -> list[dict[str, Any]]:
        now = self.now()
        result = []
        for row in Cluster.objects.using(self.alias).order_by("name", "host", "pid").values():
            row["age"] = max(0.0, (now - row["heartbeat"]).total_seconds())
            result.append(row)
        return result

    def prune_clusters(self, older_than: float) -> int:
        cutoff = Now() - timedelta(seconds=older_than)
        stale = Cluster.objects.using(self.alias).filter(heartbeat__lt=cutoff)
        owners = OrmQ.objects.using(self.alias).filter(owner__isnull=False).values("owner")
        return stale.exclude(id__in=owners).delete()[0]

    def close(self) -> None:
        self.connection.close()
        if self.listener is not None:
            self.listener.close()
            self.listener = None
