"""Run the taskq example project.

Migrates the SQLite database, creates the superuser admin / admin if missing, queues the
example tasks (``manage.py enqueue_examples``), then runs a cluster (``manage.py
qcluster``) and the development server side by side until Ctrl-C or SIGTERM, and stops
both cleanly.

``--check`` runs unattended: it waits (at most 60 s) until the admin login page answers
HTTP 200 and every queued example task has a result row, stops both and exits 0; it
exits 1 with the reason otherwise.

Standard library only: ``nox -s example`` runs it with the session's Python.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANAGE = [sys.executable, str(HERE / "manage.py")]
CHILD_ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
CHECK_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
TASK_ID = re.compile(r"\b[0-9a-f]{32}\b")

CREATE_ADMIN = """
from django.contrib.auth import get_user_model
User = get_user_model()
if not User.objects.filter(username="admin").exists():
    User.objects.create_superuser("admin", "admin@example.com", "admin")
    print("created the superuser admin / admin")
"""
COUNT_RESULTS = """
from taskq.models import Task
print("results=%d" % Task.objects.filter(id__in={ids!r}).count())
"""


def manage(*args: str, capture: bool = False) -> str:
    """Run one management command to completion; raise if it fails."""
    proc = subprocess.run(
        [*MANAGE, *args],
        cwd=HERE,
        env=CHILD_ENV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else None,
        text=True,
        check=True,
    )
    return proc.stdout or ""


def _die_with_parent() -> None:
    """In a child: get SIGTERM if this script dies without stopping it (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start(*args: str) -> subprocess.Popen[bytes]:
    """Start a long-running management command in a process group of its own, so that
    Ctrl-C reaches this script only and the children are stopped in order."""
    return subprocess.Popen(
        [*MANAGE, *args],
        cwd=HERE,
        env=CHILD_ENV,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )


def stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM each child (qcluster stops gracefully), wait, then kill what is left."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, proc in children.items():
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop within {STOP_TIMEOUT:.0f} s: killing it", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group start() made for it
            proc.wait()


def exited(children: dict[str, subprocess.Popen[bytes]]) -> str | None:
    for name, proc in children.items():
        if proc.poll() is not None:
            return f"{name} exited early with status {proc.returncode}"
    return None


def page_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def count_results(task_ids: list[str]) -> tuple[int, str]:
    proc = subprocess.run(
        [*MANAGE, "shell", "--verbosity", "0", "--command", COUNT_RESULTS.format(ids=task_ids)],
        cwd=HERE,
        env=CHILD_ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"^results=(\d+)$", proc.stdout, re.MULTILINE)
    if proc.returncode != 0 or not found:
        return 0, (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return int(found.group(1)), ""


def check(children: dict[str, subprocess.Popen[bytes]], url: str, task_ids: list[str]) -> int:
    deadline = time.monotonic() + CHECK_TIMEOUT
    page_ok, done, error = False, 0, ""
    while time.monotonic() < deadline:
        if problem := exited(children):
            print(f"check failed: {problem}", flush=True)
            return 1
        page_ok = page_ok or page_answers(url)
        if done < len(task_ids):
            done, error = count_results(task_ids)
        if page_ok and done == len(task_ids):
            print(f"check passed: {url} answers and {done} example tasks have results")
            return 0
        time.sleep(1)
    print(
        f"check failed after {CHECK_TIMEOUT:.0f} s: {url} "
        f"{'answered' if page_ok else 'did not answer HTTP 200'}; "
        f"{done} of {len(task_ids)} example tasks have a result"
        + (f" (last error: {error})" if error else ""),
        flush=True,
    )
    return 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="run unattended and exit 0 once the admin answers and every task has a result",
    )
    parser.add_argument(
        "--port", type=int, help="development server port (default 8000; --check: a free one)"
    )
    args = parser.parse_args(argv)
    port = args.port or (free_port() if args.check else 8000)

    manage("migrate", "--noinput")
    manage("shell", "--verbosity", "0", "--command", CREATE_ADMIN)
    queued = manage("enqueue_examples", capture=True)
    print(queued, end="", flush=True)
    task_ids = TASK_ID.findall(queued)
    if not task_ids:
        print("enqueue_examples printed no task ids", file=sys.stderr)
        return 1

    # Ctrl-C and SIGTERM end this script through KeyboardInterrupt and stop(), even where
    # SIGINT was ignored when it started (a background job of a non-interactive shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        children["qcluster"] = start("qcluster")
        children["runserver"] = start("runserver", "--noreload", f"127.0.0.1:{port}")
        print(f"Admin: http://127.0.0.1:{port}/admin/ (admin / admin) — Ctrl-C to stop", flush=True)
        if args.check:
            return check(children, f"http://127.0.0.1:{port}/admin/login/", task_ids)
        while not (problem := exited(children)):
            time.sleep(0.5)
        print(problem, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping the cluster and the server ...", flush=True)
        return 1 if args.check else 0
    finally:
        stop(children)


if __name__ == "__main__":
    sys.exit(main())
