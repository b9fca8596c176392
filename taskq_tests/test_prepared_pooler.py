"""Prepared statements behind a real PgBouncer in transaction mode.

Each transaction of a client may run on any server connection of the pool, so a
statement prepared on one is missing on the other. taskq must notice, run the plain
statement, and lose nothing. Runs where ``pgbouncer`` is installed (``.ci/run``
installs it) and the tests run on PostgreSQL.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections

from taskq import prepared
from taskq.brokers import get_broker
from taskq.brokers.orm import INSERT_POSTGRES
from taskq.models import OrmQ

from .pgserver import _accepts_connections, _free_port

PGBOUNCER = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PgBouncer pools PostgreSQL"),
    pytest.mark.skipif(PGBOUNCER is None, reason="pgbouncer is not installed"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def pooler() -> Iterator[int]:
    """A PgBouncer on 127.0.0.1 in transaction mode with two server connections; its port."""
    # not pytest's tmp_path: run as root, PgBouncer runs as "postgres", who must read it
    with tempfile.TemporaryDirectory(prefix="taskq-pgbouncer-") as name:
        tmp_path = Path(name)
        tmp_path.chmod(0o777)
        yield from run_pooler(tmp_path)


def run_pooler(tmp_path: Path) -> Iterator[int]:
    settings = connection.settings_dict
    port = _free_port()
    (tmp_path / "users.txt").write_text(f'"{settings["USER"]}" "{settings["PASSWORD"]}"\n')
    (tmp_path / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={settings['HOST'] or '127.0.0.1'} port={settings['PORT'] or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {tmp_path / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 2\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {tmp_path / 'pgbouncer.log'}\n"
    )
    for path in tmp_path.iterdir():
        path.chmod(0o644)
    command = [str(PGBOUNCER), str(tmp_path / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        command = ["runuser", "-u", "postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not _accepts_connections(port):
            if process.poll() is not None or time.monotonic() > deadline:
                log = tmp_path / "pgbouncer.log"
                pytest.fail(f"pgbouncer did not start: {log.read_text() if log.exists() else ''}")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def pooled(port: int, alias: str) -> Any:
    """A Django connection to the test database through the pooler."""
    settings = copy.deepcopy(connection.settings_dict)
    settings.update(HOST="127.0.0.1", PORT=str(port))
    return connections["default"].__class__(settings, alias=alias)


def enqueue(db: Any, name: str) -> int:
    broker = get_broker()
    with db.cursor() as cursor:
        prepared.execute(
            db, cursor, INSERT_POSTGRES, [broker.list_key, "x", 0, name, name, "f", None, "k"]
        )
        return cursor.fetchone()[0]


def test_a_statement_that_lands_on_another_server_connection_runs_plain(pooler: int) -> None:
    first, second = pooled(pooler, "first"), pooled(pooler, "second")
    try:
        enqueue(first, "a")
        assert prepared.uses_prepared(first) is True
        second.set_autocommit(False)  # holds one server connection: the next goes elsewhere
        with second.cursor() as cursor:
            cursor.execute("SELECT 1")
        enqueue(first, "b")
        assert prepared.uses_prepared(first) is False  # fell back, and stays plain
        enqueue(second, "c")  # inside a transaction: plain
        second.commit()
        second.set_autocommit(True)
        for name in ("d", "e", "f"):  # whichever server connection, prepared or not
            enqueue(second, name)
            enqueue(first, name + "2")
    finally:
        first.close()
        second.close()
    assert sorted(OrmQ.objects.values_list("task_ident", flat=True)) == sorted(
        ["a", "b", "c", "d", "e", "f", "d2", "e2", "f2"]
    )
