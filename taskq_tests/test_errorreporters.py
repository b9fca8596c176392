"""Error reporters are found through entry points and called on each task failure."""

from __future__ import annotations

import sys
import textwrap

import pytest
from django.test import override_settings

from taskq.errorreporters import load
from taskq.tasks import async_task

pytestmark = pytest.mark.django_db(transaction=True)

REPORTED: list[tuple[str, str]] = []


class Recorder:
    """A reporter like the Sentry plug-in: reads the current exception in ``report()``."""

    def __init__(self, tag: str = "default") -> None:
        self.tag = tag

    def report(self) -> None:
        REPORTED.append((self.tag, repr(sys.exc_info()[1])))


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Install a distribution with an entry point in each group, as a plug-in package would."""
    dist = tmp_path / "taskq_test_reporter-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: taskq-test-reporter\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        textwrap.dedent("""\
        [taskq.errorreporters]
        recorder = taskq_tests.test_errorreporters:Recorder

        [djangoq.errorreporters]
        legacy = taskq_tests.test_errorreporters:Recorder
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    REPORTED.clear()
    yield
    REPORTED.clear()


def test_reporters_load_from_both_entry_point_groups(plugin) -> None:
    reporters = load({"recorder": {"tag": "a"}, "legacy": {"tag": "b"}})
    assert [r.tag for r in reporters] == ["a", "b"]


def test_an_unknown_reporter_is_logged_and_skipped(plugin, caplog) -> None:
    assert load({"nope": {}}) == []
    assert "no entry point provides it" in caplog.text


def test_a_failing_task_is_reported_with_its_exception(plugin) -> None:
    with override_settings(
        Q_CLUSTER={"name": "tests", "error_reporter": {"recorder": {"tag": "x"}}}
    ):
        with pytest.raises(ValueError, match="reported"):
            async_task("taskq_tests.jobs.fail", "reported", sync=True)
        async_task("taskq_tests.jobs.add", 1, 1, sync=True)
    assert REPORTED == [("x", "ValueError('reported')")]
