"""``taskq.prodserver.TaskqWorker`` with the real django-prodserver package."""

from __future__ import annotations

import importlib.metadata
import signal
import subprocess
import sys

import pytest

from taskq.tasks import async_task, result
from taskq_tests import clusters

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.cluster]

prodserver = pytest.importorskip("django_prodserver", reason="django-prodserver not installed")


def command() -> list[str]:
    """``prodserver worker`` on 2.x, ``worker worker`` on 3.x."""
    major = int(importlib.metadata.version("django-prodserver").split(".")[0])
    return ["prodserver", "worker"] if major < 3 else ["worker", "worker"]


def test_worker_backend_runs_a_cluster_with_its_args() -> None:
    routed = async_task("taskq_tests.jobs.add", 40, 2, cluster="priority")
    other = async_task("taskq_tests.jobs.add", 1, 1)
    process = subprocess.Popen(
        [sys.executable, "-m", "django", *command()],
        env=clusters.cluster_env(),
        cwd=clusters.ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert result(routed, wait=30_000) == 42
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0, out
    assert "queue=priority" in out
    assert result(other) is None  # the worker serves only the "priority" cluster
