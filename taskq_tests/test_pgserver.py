"""The benchmark's PostgreSQL: ``PostgresServer(stock=True)`` is configured as a
packaged server is (durable commits, a password on TCP), not as the fast test server."""

from __future__ import annotations

import pytest

from .pgserver import PostgresServer

pytestmark = pytest.mark.postgres
psycopg = pytest.importorskip("psycopg")


def connect(server: PostgresServer, password: str):
    return psycopg.connect(
        host=server.host,
        port=server.port,
        user=server.user,
        password=password,
        dbname=server.name,
        connect_timeout=10,
    )


def setting(server: PostgresServer, name: str) -> str:
    with connect(server, server.password) as conn:
        return conn.execute(f"SHOW {name}").fetchone()[0]


@pytest.mark.parametrize("own_postgres", [False, True], ids=["fast", "stock"], indirect=True)
def test_durability_and_authentication_follow_the_mode(own_postgres: PostgresServer) -> None:
    server = own_postgres
    durable = "on" if server.stock else "off"
    for name in ("fsync", "synchronous_commit", "full_page_writes"):
        assert setting(server, name) == durable, name
    if server.stock:
        assert len(server.password) >= 32
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            connect(server, "not-the-password")
    else:
        assert server.password == ""
        connect(server, "anything").close()  # trust: any password is accepted
