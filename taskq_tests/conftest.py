"""Fixtures shared by the test suite."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from taskq_tests import jobs
from taskq_tests.pgserver import PostgresNotFound, PostgresServer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("TASKQ_TEST_DB", "sqlite") != "postgres":
        skip = pytest.mark.skip(reason="needs PostgreSQL (TASKQ_TEST_DB=postgres)")
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _clean_hook_calls() -> None:
    jobs.HOOK_CALLS.clear()


@pytest.fixture
def own_postgres(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own, stopped after it (skipped where PostgreSQL
    is not installed); parametrize it indirectly with ``True`` for the packaged
    configuration (``PostgresServer(stock=True)``)."""
    try:
        server = PostgresServer(stock=getattr(request, "param", False)).start()
    except PostgresNotFound as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()
