"""Writing a batch of outcomes as ``django_q_task`` rows.

One statement per batch: new rows inserted, an earlier failure of the same id
overwritten, an earlier success kept (as Django-Q2 does). On PostgreSQL, when the
results live in the broker's database, the acknowledgement (the fenced delete of the
queue rows) and the write are one statement too, so a batch costs one round trip: only
the outcomes whose claim the delete confirmed are written (a batch of one, an idle
cluster's, has a statement of its own without arrays). Row values are encoded before
the statement runs (:func:`encode_rows`), outside any lock or transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db import connections, router

from . import prepared
from .fields import encode as encode_value
from .messages import Delivery, TaskOutcome
from .models import OrmQ, Task
from .prepared import Statement

UPDATE_FIELDS = ("started", "stopped", "result", "success", "attempt_count", "cluster")
COLUMNS = (
    "id",
    "name",
    "func",
    "hook",
    "args",
    "kwargs",
    "result",
    "group",
    "cluster",
    "started",
    "stopped",
    "success",
    "attempt_count",
)
UPSERT_CHUNK = 500
Encoded = dict[int, tuple[Any, ...]]  # the values of each outcome's row, by id() of the outcome


def task_row(outcome: TaskOutcome) -> Task:
    """The (unsaved) :class:`Task` of an outcome."""
    message = outcome.message
    return Task(
        id=message.id,
        name=message.name[:100],
        func=message.func_name[:256],
        hook=message.hook_name,
        args=message.args,
        kwargs=message.kwargs,
        result=outcome.result,
        group=message.group,
        started=message.started or outcome.started,
        stopped=outcome.stopped,
        success=outcome.success,
        attempt_count=outcome.attempt,
        cluster=outcome.cluster or message.cluster,
    )


def encode(value: Any) -> str | None:
    """A pickled column's text; ``None`` stays NULL."""
    return None if value is None else encode_value(value)


def outcome_values(outcome: TaskOutcome, stamp: Any) -> tuple[Any, ...]:
    """The column values of an outcome's Task row, ready for the database driver."""
    message = outcome.message
    return (
        message.id,
        message.name[:100],
        message.func_name[:256],
        message.hook_name,
        encode(message.args),
        encode(message.kwargs),
        encode(outcome.result),
        message.group,
        outcome.cluster or message.cluster,
        stamp(message.started or outcome.started),
        stamp(outcome.stopped),
        outcome.success,
        outcome.attempt,
    )


def results_connection() -> Any:
    return connections[router.db_for_write(Task)]


def fast_upsert(connection: Any) -> bool:
    return connection.vendor in ("postgresql", "sqlite")


def encode_rows(outcomes: Sequence[TaskOutcome]) -> Encoded:
    """The row values of each outcome, for :func:`write_outcomes` and
    :func:`ack_and_write`; empty where the database takes the portable path."""
    connection = results_connection()
    if not outcomes or not fast_upsert(connection):
        return {}
    stamp = connection.ops.adapt_datetimefield_value
    return {id(o): outcome_values(o, stamp) for o in outcomes}


def upsert_sql(connection: Any, rows: str) -> str:
    """``INSERT ... {rows} ON CONFLICT``: ``rows`` is a VALUES list or a SELECT."""
    table = connection.ops.quote_name(Task._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(name) for name in COLUMNS)
    updates = ", ".join(f"{name} = excluded.{name}" for name in UPDATE_FIELDS)
    return (
        f"INSERT INTO {table} ({columns}) {rows} "
        f"ON CONFLICT (id) DO UPDATE SET {updates} WHERE NOT {table}.success"
    )


def write_outcomes(outcomes: list[TaskOutcome], encoded: Encoded | None = None) -> None:
    """Write the result rows of ``outcomes`` (``encoded`` may hold their values)."""
    if not outcomes:
        return
    connection = results_connection()
    if not fast_upsert(connection):
        save_rows_portable([task_row(o) for o in outcomes])
        return
    stamp = connection.ops.adapt_datetimefield_value
    encoded = encoded or {}
    placeholders = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(outcomes), UPSERT_CHUNK):
            chunk = outcomes[start : start + UPSERT_CHUNK]
            params = [v for o in chunk for v in (encoded.get(id(o)) or outcome_values(o, stamp))]
            cursor.execute(
                upsert_sql(connection, "VALUES " + ", ".join([placeholders] * len(chunk))),
                params,
            )


def can_ack_and_write(
    alias: str | None, deliveries: Sequence[Delivery], saved: Sequence[Any]
) -> bool:
    """Whether :func:`ack_and_write` applies: PostgreSQL, results in the broker's
    database, a claim to acknowledge, and a claim behind every row to write."""
    connection = results_connection()
    return (
        alias == connection.alias
        and connection.vendor == "postgresql"
        and bool(deliveries)
        and bool(saved)
        and all(o.delivery is not None for o in saved)
    )


def ack_and_write(
    deliveries: Sequence[Delivery], saved: Sequence[TaskOutcome], encoded: Encoded
) -> set[tuple[Any, str | None]]:
    """One statement: delete the queue rows of ``deliveries`` matching their claim
    tokens, and write the rows of those outcomes in ``saved`` whose claim that delete
    confirmed. Returns the confirmed ``(ack_id, token)`` pairs.

    Values travel as one array per column, so the statement's text is the same for every
    batch: the driver converts it once, and the server prepares it once per session
    (:mod:`taskq.prepared`)."""
    connection = results_connection()
    if len(deliveries) == 1 and len(saved) == 1 and saved[0].delivery is deliveries[0]:
        return ack_and_write_one(connection, deliveries[0], saved[0], encoded)
    stamp = connection.ops.adapt_datetimefield_value
    ack_ids = [d.ack_id for d in deliveries]
    rows = []
    for outcome in saved:
        delivery = outcome.delivery
        assert delivery is not None  # can_ack_and_write checked
        values = encoded.get(id(outcome)) or outcome_values(outcome, stamp)
        rows.append((delivery.ack_id, delivery.token, *values))
    columns = [list(column) for column in zip(*rows, strict=True)]
    params = [ack_ids, ack_ids, [d.token for d in deliveries], *columns]
    with connection.cursor() as cursor:
        prepared.execute(connection, cursor, ack_and_write_statement(connection.alias), params)
        return {(row[0], row[1]) for row in cursor.fetchall()}


@functools.lru_cache(maxsize=16)
def ack_and_write_statement(alias: str) -> Statement:
    """The statement of :func:`ack_and_write`: its parameters are the claims' ack ids
    (twice) and tokens, then the rows' ack ids, tokens and :data:`COLUMNS`, each an array."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    ack_type = OrmQ._meta.pk.rel_db_type(connection)
    casts = [Task._meta.get_field(name).db_type(connection) for name in COLUMNS]
    arrays = ", ".join(f"%s::{cast}[]" for cast in casts)
    names = ", ".join(quote(name) for name in COLUMNS)
    selected = ", ".join(f"incoming.{quote(name)}" for name in COLUMNS)
    confirmed = (
        f"SELECT {selected} FROM incoming "
        "JOIN acked ON acked.id = incoming.ack_id AND acked.token = incoming.ack_token"
    )
    return Statement(
        f"WITH acked AS (DELETE FROM {quote(OrmQ._meta.db_table)} "
        f"WHERE id = ANY(%s::{ack_type}[]) "
        f"AND (id, token) IN (SELECT * FROM unnest(%s::{ack_type}[], %s::text[])) "
        "RETURNING id, token), "
        f"incoming (ack_id, ack_token, {names}) AS "
        f"(SELECT * FROM unnest(%s::{ack_type}[], %s::text[], {arrays})), "
        f"written AS ({upsert_sql(connection, confirmed)}) "
        "SELECT id, token FROM acked"
    )


def ack_and_write_one(
    connection: Any, delivery: Delivery, outcome: TaskOutcome, encoded: Encoded
) -> set[tuple[Any, str | None]]:
    """:func:`ack_and_write` for a batch of one, the batch of an idle cluster: each value
    is a parameter of its own instead of an array of one, which the driver converts and
    the server unnests at a cost that is a tenth of a task's round trip."""
    stamp = connection.ops.adapt_datetimefield_value
    values = encoded.get(id(outcome)) or outcome_values(outcome, stamp)
    params = [delivery.ack_id, delivery.token, *values]
    with connection.cursor() as cursor:
        prepared.execute(connection, cursor, ack_and_write_one_statement(connection.alias), params)
        return {(row[0], row[1]) for row in cursor.fetchall()}


@functools.lru_cache(maxsize=16)
def ack_and_write_one_statement(alias: str) -> Statement:
    """The statement of :func:`ack_and_write_one`: the claim's ack id and token, then the
    row's :data:`COLUMNS`. The row is written only if the fenced delete found the claim."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    ack_type = OrmQ._meta.pk.rel_db_type(connection)
    casts = [Task._meta.get_field(name).db_type(connection) for name in COLUMNS]
    values = ", ".join(f"%s::{cast}" for cast in casts)
    return Statement(
        f"WITH acked AS (DELETE FROM {quote(OrmQ._meta.db_table)} "
        f"WHERE id = %s::{ack_type} AND token = %s::text RETURNING id, token), "
        f"written AS ({upsert_sql(connection, f'SELECT {values} FROM acked')}) "
        "SELECT id, token FROM acked"
    )


def save_rows_portable(rows: list[Task]) -> list[Task]:
    """Other databases: insert the new rows, overwrite earlier failures."""
    existing = dict(Task.objects.filter(id__in=[r.id for r in rows]).values_list("id", "success"))
    new = [r for r in rows if r.id not in existing]
    Task.objects.bulk_create(new)
    for row in rows:
        if row.id in existing and not existing[row.id]:
            row.save(update_fields=UPDATE_FIELDS)
    return rows
