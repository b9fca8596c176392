"""Running real ``qcluster`` processes against the test database, with timeouts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def cluster_env(extra_env: dict[str, str] | None = None, **q_cluster: Any) -> dict[str, str]:
    """The environment that points a subprocess at the test database."""
    env = dict(os.environ)
    env.update(extra_env or {})
    env["DJANGO_SETTINGS_MODULE"] = "taskq_tests.settings"
    env["PYTHONPATH"] = str(ROOT)
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        env["TASKQ_SQLITE_NAME"] = str(name)
    else:
        env["TASKQ_PG_NAME"] = str(name)
    config = {
        "name": "tests",
        "workers": 2,
        "timeout": 30,
        "retry": 60,
        "guard_cycle": 0.1,
        "poll": 0.05,
        "heartbeat": 0.5,
    }
    config.update(q_cluster)
    env["TASKQ_TEST_Q_CLUSTER"] = json.dumps(config)
    return env


def start(
    *args: str, extra_env: dict[str, str] | None = None, **q_cluster: Any
) -> subprocess.Popen[str]:
    """Start ``manage.py qcluster`` in its own process group; its output goes to a file
    (a pipe nobody reads would fill up and block the cluster)."""
    log = tempfile.NamedTemporaryFile("w+", prefix="qcluster-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "qcluster", "-v", "2", *args],
        env=cluster_env(extra_env, **q_cluster),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    process.log_path = log.name  # type: ignore[attr-defined]
    log.close()
    return process


def output(process: subprocess.Popen[str]) -> str:
    path = Path(process.log_path)  # type: ignore[attr-defined]
    text = path.read_text() if path.exists() else ""
    return text[-20_000:]


def run_once(
    *args: str, limit: float = 60, extra_env: dict[str, str] | None = None, **q_cluster: Any
) -> subprocess.CompletedProcess[str]:
    """``qcluster --run-once``: process what is queued and exit (killed after ``limit`` s)."""
    return subprocess.run(
        [sys.executable, "-m", "django", "qcluster", "--run-once", *args],
        env=cluster_env(extra_env, **q_cluster),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=limit,
    )


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 30) -> str:
    """Signal the cluster, wait for it and return its output; kill it if it hangs."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        raise AssertionError(
            f"cluster did not stop within {timeout}s:\n{output(process)}"
        ) from None
    return output(process)


def kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL the cluster and every process it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def wait_until(predicate: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def read_ledger(path: Path) -> list[tuple[str, str, int]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        kind, tag, pid = line.split()
        rows.append((kind, tag, int(pid)))
    return rows


def starts(path: Path, tag: str) -> int:
    return sum(1 for kind, t, _ in read_ledger(path) if kind == "start" and t == tag)
