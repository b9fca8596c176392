"""Database features that Django finds out with a query, found out so that a busy
database cannot make them wrong.

Django asks SQLite whether it has JSON functions inside ``transaction.atomic``, and
takes any ``OperationalError`` for "no". With ``transaction_mode: "IMMEDIATE"`` (what
taskq recommends) that transaction begins by taking the write lock, so while another
process holds it longer than the busy timeout the answer is "no", and the system checks
that ``qcluster`` runs before it starts fail with ``fields.E180`` ("SQLite does not
support JSONFields"): a cluster started while the application writes did not start.
The same question asked outside a transaction takes no lock.
"""

from __future__ import annotations

from django.db import OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

JSON_PROBE = """SELECT JSON('{"a": "b"}')"""


def settle_sqlite_json_support() -> None:
    """Answer Django's ``supports_json_field`` for each SQLite database that has not
    answered it yet, with a query that takes no lock; before the system checks run."""
    for alias in connections:
        connection = connections[alias]
        features = connection.features
        if connection.vendor != "sqlite" or "supports_json_field" in features.__dict__:
            continue
        # a cached_property: the value set on the instance is the one Django reads
        features.supports_json_field = has_json_functions(connection)


def has_json_functions(connection: BaseDatabaseWrapper) -> bool:
    with connection.cursor() as cursor:
        try:
            cursor.execute(JSON_PROBE)
        except OperationalError:  # "no such function: JSON": a build without JSON1
            return False
    return True
