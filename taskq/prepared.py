"""Server-side prepared statements for taskq's few hot statements on PostgreSQL.

Parsing and planning are about a third of the time PostgreSQL spends on an enqueue or a
claim. The statements that run per task or per batch (the enqueue's insert, the
Pusher's claim, the Monitor's acknowledge-and-write) are therefore prepared once per
database session with SQL ``PREPARE`` and run with ``EXECUTE``: that works with
Django's default client-side binding of psycopg 3 (:func:`preparable` says where).

Where that could go wrong, the plain statement runs instead, so nothing fails that
would have worked unprepared:

- inside a transaction (``atomic``) the plain statement runs: an ``EXECUTE`` that failed
  there would abort the caller's transaction;
- a session where a prepared statement went missing (a pooler in transaction mode gives
  each statement any server connection; ``DISCARD ALL``) or changed its result type
  stops using prepared statements, and the statement runs plain at once (in autocommit,
  the failed ``EXECUTE`` changed nothing);
- a name already prepared in the session (a pooler handing over a used server
  connection) is used as it is: each name carries a digest of its statement's text.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from typing import Any

from django.db import DatabaseError

# SQLSTATEs meaning "this prepared statement cannot be used here, the plain one can"
UNUSABLE = frozenset(
    {
        "26000",  # invalid_sql_statement_name: not prepared in this server session
        "0A000",  # feature_not_supported: cached plan must not change result type
    }
)
DUPLICATE = "42P05"  # duplicate_prepared_statement
PLACEHOLDER = re.compile(r"%s")

# per driver connection: the names prepared in its session, or None once it stopped
_sessions: weakref.WeakKeyDictionary[Any, set[str] | None] = weakref.WeakKeyDictionary()


class Statement:
    """One statement with ``%s`` placeholders (and no literal ``%``), and its prepared form."""

    def __init__(self, sql: str) -> None:
        if "%%" in sql or "$" in sql:
            raise ValueError("a prepared statement's text may hold no '%%' and no '$'")
        self.sql = sql
        self.name = "taskq_" + hashlib.blake2b(sql.encode(), digest_size=8).hexdigest()
        numbers = iter(range(1, sql.count("%s") + 1))
        self.prepare_sql = f"PREPARE {self.name} AS " + PLACEHOLDER.sub(
            lambda _: f"${next(numbers)}", sql
        )
        arguments = ", ".join(["%s"] * sql.count("%s"))
        self.execute_sql = f"EXECUTE {self.name}" + (f"({arguments})" if arguments else "")

    def __repr__(self) -> str:
        return f"<Statement {self.name}>"


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a database error from psycopg (3) or psycopg2, if it has one."""
    for candidate in (error, error.__cause__):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if code:
            return str(code)
    return None


def preparable(db: Any) -> bool:
    """PostgreSQL through psycopg 3 with Django's default client-side binding. (With
    ``OPTIONS["server_side_binding"]`` psycopg prepares statements itself; psycopg2
    writes some arrays as literals whose type an ``EXECUTE`` cannot infer.)"""
    if db.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3 and db.settings_dict["OPTIONS"].get("server_side_binding") is not True


def execute(db: Any, cursor: Any, statement: Statement, params: list[Any]) -> None:
    """Run ``statement`` on ``cursor`` of the Django connection ``db``, prepared where
    that is safe (PostgreSQL, autocommit, a session that keeps prepared statements)."""
    if not preparable(db) or db.in_atomic_block or not db.get_autocommit():
        cursor.execute(statement.sql, params)
        return
    raw = db.connection
    try:
        prepared = _sessions[raw]
    except KeyError:
        prepared = _sessions[raw] = set()
    if prepared is None:
        cursor.execute(statement.sql, params)
        return
    if statement.name not in prepared:
        try:
            cursor.execute(statement.prepare_sql)
        except DatabaseError as error:
            if sqlstate(error) != DUPLICATE:
                raise
        prepared.add(statement.name)
    try:
        cursor.execute(statement.execute_sql, params)
    except DatabaseError as error:
        if sqlstate(error) not in UNUSABLE:
            raise
        _sessions[raw] = None
        cursor.execute(statement.sql, params)


def uses_prepared(db: Any) -> bool | None:
    """Whether the session of ``db`` prepares statements: ``None`` before its first hot
    statement, ``False`` once it fell back to plain ones (for tests and diagnostics)."""
    raw = db.connection
    if raw is None or raw not in _sessions:
        return None
    return _sessions[raw] is not None
