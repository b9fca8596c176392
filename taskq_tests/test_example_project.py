"""The README's first command runs the example project: check it runs, unattended."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from taskq_tests.clusters import ROOT

pytestmark = pytest.mark.cluster


def test_example_project_runs_a_cluster_and_serves_the_admin(tmp_path) -> None:
    project = tmp_path / "example_project"
    shutil.copytree(ROOT / "example_project", project, ignore=shutil.ignore_patterns("db.sqlite3*"))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "run.py", "--check"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    assert "check passed" in done.stdout + done.stderr
