"""Fixtures shared by the test suite."""

from __future__ import annotations

import os

import pytest

from taskq_tests import jobs


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("TASKQ_TEST_DB", "sqlite") != "postgres":
        skip = pytest.mark.skip(reason="needs PostgreSQL (TASKQ_TEST_DB=postgres)")
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _clean_hook_calls() -> None:
    jobs.HOOK_CALLS.clear()
