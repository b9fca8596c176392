"""Prepared statements on PostgreSQL: used where safe, and never the cause of a failure.

The enqueue, the claim and the acknowledge-and-write run as ``EXECUTE`` of statements
prepared once per session, outside transactions only; a session whose prepared
statements vanish (as behind a pooler in transaction mode) goes on with plain ones.
"""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from taskq import prepared
from taskq.brokers import get_broker
from taskq.brokers.orm import CLAIM_POSTGRES, INSERT_POSTGRES
from taskq.conf import get_config
from taskq.models import OrmQ, Task
from taskq.outcomes import record
from taskq.prepared import Statement, sqlstate
from taskq.taskrows import ack_and_write_one_statement, ack_and_write_statement
from taskq.tasks import async_task

from .test_taskrows import run_claimed

postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's"
)


def session_statements() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {row[0] for row in cursor.fetchall()}


def forget_session() -> None:
    """As if this driver connection had not prepared anything yet (its server session
    keeps what it has): what a client sees when a pooler hands it a used connection."""
    prepared._sessions.pop(connection.connection, None)


def test_a_statement_numbers_its_placeholders_and_names_itself_by_its_text() -> None:
    statement = Statement("SELECT %s, %s FROM t WHERE a = %s")
    assert statement.prepare_sql == f"PREPARE {statement.name} AS SELECT $1, $2 FROM t WHERE a = $3"
    assert statement.execute_sql == f"EXECUTE {statement.name}(%s, %s, %s)"
    assert statement.name.startswith("taskq_")
    assert Statement("SELECT %s, %s FROM t WHERE a = %s").name == statement.name
    assert Statement("SELECT %s FROM t").name != statement.name
    assert Statement("SELECT 1").execute_sql == f"EXECUTE {Statement('SELECT 1').name}"


@pytest.mark.parametrize("text", ["SELECT '100%%'", "SELECT $1"])
def test_a_statement_refuses_text_it_could_not_number_safely(text: str) -> None:
    with pytest.raises(ValueError, match="no '%%' and no '\\$'"):
        Statement(text)


@postgres
@pytest.mark.django_db(transaction=True)
def test_hot_statements_are_prepared_once_per_session_in_autocommit() -> None:
    connection.close()
    ids = [async_task("taskq_tests.jobs.add", i, i) for i in range(4)]
    outcomes = run_claimed("cluster-a", 4)
    done = record(outcomes, get_broker(), get_config())
    assert prepared.uses_prepared(connection) is True
    names = {CLAIM_POSTGRES.name, INSERT_POSTGRES.name, ack_and_write_statement("default").name}
    assert names <= session_statements()
    assert sorted(o.message.id for o in done.saved) == sorted(ids)
    assert dict(Task.objects.values_list("id", "result")) == {ids[i]: 2 * i for i in range(4)}
    assert not OrmQ.objects.exists()
    single = async_task("taskq_tests.jobs.add", 5, 5)
    (outcome,) = run_claimed("cluster-a", 1)
    assert record([outcome], get_broker(), get_config()).saved == [outcome]
    assert ack_and_write_one_statement("default").name in session_statements()
    assert Task.objects.get(id=single).result == 10


@postgres
@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_the_plain_statements_run() -> None:
    connection.close()
    with transaction.atomic():
        task_id = async_task("taskq_tests.jobs.add", 1, 2)
        (delivery,) = get_broker().claim("cluster-a", 1)
        assert session_statements() == set()
    assert prepared.uses_prepared(connection) is None
    assert OrmQ.objects.get().task_ident == task_id
    assert delivery.attempt == 1


@postgres
@pytest.mark.django_db(transaction=True)
def test_a_session_whose_statements_vanish_goes_on_with_plain_ones() -> None:
    connection.close()
    async_task("taskq_tests.jobs.add", 1, 2)
    assert prepared.uses_prepared(connection) is True
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what a pooler's other server connection looks like
    second = async_task("taskq_tests.jobs.add", 3, 4)
    assert prepared.uses_prepared(connection) is False
    claimed = get_broker().claim("cluster-a", 5)
    assert len(claimed) == 2
    assert session_statements() == set()  # nothing prepared again on this session
    assert OrmQ.objects.filter(task_ident=second, owner="cluster-a").exists()


@postgres
@pytest.mark.django_db(transaction=True)
def test_a_name_already_prepared_in_the_session_is_used_as_it_is() -> None:
    connection.close()
    async_task("taskq_tests.jobs.add", 1, 2)
    forget_session()
    async_task("taskq_tests.jobs.add", 3, 4)  # PREPARE answers "already exists"
    assert prepared.uses_prepared(connection) is True
    assert OrmQ.objects.count() == 2


@postgres
@pytest.mark.django_db(transaction=True)
def test_a_real_error_of_a_prepared_statement_is_raised_and_the_session_keeps_preparing() -> None:
    connection.close()
    statement = Statement("SELECT 1 / %s")
    with connection.cursor() as cursor:
        prepared.execute(connection, cursor, statement, [1])
        assert cursor.fetchone() == (1,)
        with pytest.raises(DatabaseError) as caught:
            prepared.execute(connection, cursor, statement, [0])
        assert sqlstate(caught.value) == "22012"  # division_by_zero
        prepared.execute(connection, cursor, statement, [1])
        assert cursor.fetchone() == (1,)
    assert prepared.uses_prepared(connection) is True


def test_sqlite_and_others_never_prepare() -> None:
    if connection.vendor == "postgresql":
        pytest.skip("the other databases' path")
    assert not prepared.preparable(connection)
