"""qinfo, qmonitor and qmemory: the status they compute, in-process and against real clusters."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError
from django.utils import timezone

from taskq import dashboard, status
from taskq.brokers import get_broker
from taskq.conf import get_config
from taskq.models import Cluster, Schedule, Task
from taskq.tasks import async_task
from taskq_tests import clusters
from taskq_tests.clusters import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ESCAPE = "\x1b"


def heartbeat(cluster_id: str, **fields: Any) -> None:
    get_broker().heartbeat(
        {
            "id": cluster_id,
            "name": "tests",
            "host": "web-1",
            "pid": 4242,
            "state": "running",
            "started": timezone.now() - timedelta(hours=1, minutes=2),
            "workers": [],
            **fields,
        }
    )


def make_task(*, success: bool = True, age: timedelta = timedelta(0), took: float = 2.0) -> Task:
    stopped = timezone.now() - age
    return Task.objects.create(
        id=os.urandom(16).hex(),
        name="t",
        func="taskq_tests.jobs.add",
        started=stopped - timedelta(seconds=took),
        stopped=stopped,
        success=success,
    )


def run(name: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def tool(*args: str, **q_cluster: Any) -> subprocess.CompletedProcess[str]:
    """A monitoring command in a process of its own, its output a pipe (not a terminal)."""
    env = clusters.cluster_env(**q_cluster)
    for name in ("FORCE_COLOR", "CLICOLOR_FORCE"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        env=env,
        cwd=clusters.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def cells(output: str, *first: str) -> list[str]:
    """The words of the line of ``output`` whose first words are ``first``."""
    for text in output.splitlines():
        if text.split()[: len(first)] == list(first):
            return text.split()
    raise AssertionError(f"no line starting with {first} in:\n{output}")


def line(output: str, label: str) -> str:
    """The line of ``output`` that starts with ``label``."""
    found = [text for text in output.splitlines() if text.startswith(label)]
    assert found, f"no {label!r} line in:\n{output}"
    return found[0]


# status ---------------------------------------------------------------------------------------


def test_status_health_follows_heartbeat_and_retry(settings) -> None:
    settings.Q_CLUSTER = {"name": "tests", "heartbeat": 2, "retry": 30}
    config = get_config()
    assert status.health(0, config) == "ok"
    assert status.health(6, config) == "ok"
    assert status.health(6.5, config) == "stale"
    assert status.health(30, config) == "stale"
    assert status.health(31, config) == "dead"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.4, "0s"),
        (59, "59s"),
        (65, "1m 05s"),
        (3720, "1h 02m"),
        (90000, "1d 01h"),
    ],
)
def test_status_duration_format(seconds: float | None, text: str) -> None:
    assert status.duration(seconds) == text


def test_status_memory_in_mib() -> None:
    assert status.mib(1536) == "1.5 MiB"
    assert status.mib(0) == "-"


def test_status_cluster_status_from_a_heartbeat_row() -> None:
    busy = {"pid": 11, "rss": 102400, "done": 4, "task_id": "a" * 32, "task_name": "busy"}
    idle = {"pid": None, "rss": 0, "done": 0, "task_id": None, "task_name": None, "since": None}
    heartbeat(
        "c1",
        held=2,
        processed=9,
        failed=1,
        rss=300 * 1024,
        workers=[{**busy, "since": time.time() - 75}, idle],
    )
    [row] = status.clusters(get_broker(), get_config())
    assert (row.id, row.host, row.pid, row.health, row.alive) == ("c1", "web-1", 4242, "ok", True)
    assert (row.held, row.processed, row.failed, row.busy, row.pool) == (2, 9, 1, 1, 1)
    assert row.workers_rss == 100 * 1024
    assert 3719 <= row.uptime <= 3730
    first, second = row.workers
    assert (first.index, first.task_name) == (1, "busy")
    assert 74 <= first.running <= 80
    assert (second.pid, second.running) == (None, None)


def test_status_summary_counts_results_queues_and_schedules() -> None:
    make_task(took=2.0)
    make_task(took=4.0)
    make_task(age=timedelta(days=2), took=100.0)  # not recent: left out of the average
    make_task(success=False)
    make_task(success=False, age=timedelta(days=3))
    Schedule.objects.create(func="taskq_tests.jobs.add")
    Schedule.objects.create(func="taskq_tests.jobs.add", next_run=None)  # paused
    Schedule.objects.create(func="taskq_tests.jobs.add", repeats=0)  # spent
    async_task("taskq_tests.jobs.add", 1, 1)
    async_task("taskq_tests.jobs.add", 1, 1, run_after=timedelta(hours=1))
    async_task("taskq_tests.jobs.add", 1, 1, cluster="other")
    info = status.summary(get_config())
    assert (info.successes, info.recent_successes) == (3, 2)
    assert (info.failures, info.recent_failures) == (2, 1)
    assert info.average == pytest.approx(3.0, abs=0.01)
    assert (info.schedules, info.active_schedules) == (3, 1)
    assert (info.queued, info.ready, info.claimed) == (3, 2, 0)
    assert {q.key: (q.queued, q.ready, q.delayed) for q in info.queues} == {
        "tests": (2, 1, 1),
        "other": (1, 1, 0),
    }
    assert info.clusters == []


# the commands in-process -----------------------------------------------------------------------


def test_qinfo_prints_labelled_counts_without_escape_sequences() -> None:
    heartbeat("c1", workers=[{"pid": 7, "rss": 0, "done": 1, "task_id": None}], processed=5)
    make_task()
    make_task(success=False)
    Schedule.objects.create(func="taskq_tests.jobs.add")
    async_task("taskq_tests.jobs.add", 1, 1)
    out, _ = run("qinfo")
    assert ESCAPE not in out
    assert line(out, "Clusters").split() == ["Clusters", "1", "running"]
    assert line(out, "Workers").split()[:2] == ["Workers", "1"]
    assert line(out, "Queued").split()[:2] == ["Queued", "1"]
    assert line(out, "Successes").split()[:2] == ["Successes", "1"]
    assert line(out, "Failures").split()[:2] == ["Failures", "1"]
    assert line(out, "Schedules").split()[:2] == ["Schedules", "1"]
    assert line(out, "Avg time").split()[:3] == ["Avg", "time", "2.000s"]
    assert "c1" in line(out, "Cluster ")
    assert "web-1:4242" in line(out, "Cluster ")
    assert "No clusters running" not in out


def test_qinfo_says_when_no_cluster_runs_and_counts_dead_ones() -> None:
    out, _ = run("qinfo")
    assert "No clusters running." in out
    heartbeat("gone")
    Cluster.objects.update(heartbeat=timezone.now() - timedelta(seconds=600))
    out, _ = run("qinfo")
    assert "No clusters running. (1 dead cluster" in out
    assert line(out, "Clusters").split() == ["Clusters", "0", "running", "(1", "dead)"]
    assert "dead" in line(out, "Cluster gone")
    out, err = run("qinfo", "--ids")
    assert (out, err) == ("", "No clusters running.\n")


def test_qinfo_ids_prints_the_running_clusters_only() -> None:
    heartbeat("a" * 32)
    heartbeat("b" * 32)
    heartbeat("c" * 32)
    Cluster.objects.filter(id="c" * 32).update(heartbeat=timezone.now() - timedelta(seconds=600))
    out, err = run("qinfo", "--ids")
    assert out.split() == ["a" * 32, "b" * 32]
    assert err == ""


def test_qinfo_config_prints_the_effective_settings_and_hides_passwords(settings) -> None:
    settings.Q_CLUSTER = {
        "name": "shop",
        "workers": 3,
        "retry": 120,
        "redis": {"host": "cache", "password": "s3cret"},
        "ALT_CLUSTERS": {"fast": {"workers": 9}},
    }
    out, _ = run("qinfo", "--config")
    assert "name: 'shop'" in out
    assert "workers: 3" in out
    assert "retry: 120" in out
    assert "save_limit: 250" in out  # defaults are shown too
    assert "effective queue_limit: 6" in out
    assert "s3cret" not in out
    assert "'password': '***'" in out
    assert "Clusters" not in out  # the settings only


def test_qinfo_config_of_a_named_cluster(settings, monkeypatch) -> None:
    settings.Q_CLUSTER = {"name": "shop", "workers": 3, "ALT_CLUSTERS": {"fast": {"workers": 9}}}
    monkeypatch.setenv("Q_CLUSTER_NAME", "fast")
    out, _ = run("qinfo", "--config")
    assert "workers: 9" in out
    assert "queue (cluster name served): 'fast'" in out


def test_hide_secrets_in_a_redis_url() -> None:
    assert status.hide_secrets("redis://u:pw@host:6379/0") == "redis://u:***@host:6379/0"
    assert status.hide_secrets("redis://host:6379/0") == "redis://host:6379/0"


def test_qmonitor_run_once_shows_every_cluster_and_the_totals() -> None:
    since = time.time() - 30
    workers = [
        {
            "pid": 7,
            "rss": 0,
            "done": 3,
            "task_id": "a" * 32,
            "task_name": "long-job",
            "since": since,
        },
        {"pid": 8, "rss": 0, "done": 2, "task_id": None, "task_name": None, "since": None},
    ]
    heartbeat("c1", workers=workers, held=1, processed=12, failed=2)
    heartbeat("c2", host="web-2", pid=99, state="stopping")
    heartbeat("c3", host="web-3")
    Cluster.objects.filter(id="c3").update(heartbeat=timezone.now() - timedelta(seconds=600))
    make_task()
    async_task("taskq_tests.jobs.add", 1, 1)
    out, _ = run("qmonitor", "--run-once")
    assert ESCAPE not in out
    header = line(out, "Host").split()
    assert header == ["Host", "Id", "Queue", "Pid", "State", "Pool", "Held", "Done", "Failed", "Up"]
    assert line(out, "web-1").split() == [
        "web-1",
        "c1",
        "tests",
        "4242",
        "running",
        "1/2",
        "1",
        "12",
        "2",
        "1h",
        "02m",
    ]
    assert line(out, "web-2").split()[4] == "stopping"
    assert line(out, "web-3").split()[4] == "dead"
    assert re.search(r"c1 worker 1 \(pid 7\) runs long-job for 3\ds", out)
    totals = line(out, "Queued")
    assert "Queued 1 (1 ready)" in totals
    assert "Successes 1" in totals
    assert "Failures 0" in totals
    assert "Schedules 0" in totals
    assert "No clusters running" not in out


def test_qmonitor_and_qmemory_say_when_no_cluster_runs() -> None:
    for command in (("qmonitor", "--run-once"), ("qmemory", "--run-once", "--workers")):
        out, _ = run(*command)
        assert "No clusters running." in out
        assert "Host" not in out


def test_qmemory_shows_each_cluster_and_with_workers_each_worker(settings) -> None:
    settings.Q_CLUSTER = {"name": "tests", "max_rss": 150 * 1024}
    big = {"task_id": "b" * 32, "task_name": "big", "since": time.time()}
    workers = [
        {"pid": 7, "rss": 100 * 1024, "done": 3, "task_id": None},
        {"pid": 8, "rss": 200 * 1024, "done": 1, **big},
    ]
    heartbeat("c1", workers=workers, rss=350 * 1024)
    out, _ = run("qmemory", "--run-once")
    assert ESCAPE not in out
    assert line(out, "web-1").split() == [
        "web-1",
        "c1",
        "4242",
        "running",
        "2",
        "300.0",
        "50.0",
        "350.0",
        "200.0",
    ]
    assert "Running" not in out  # no worker table
    assert "max_rss     150.0 MiB" in out
    out, _ = run("qmemory", "--run-once", "--workers")
    assert cells(out, "c1", "1") == ["c1", "1", "7", "100.0", "3", "-"]
    assert cells(out, "c1", "2")[:6] == ["c1", "2", "8", "200.0", "1", "big"]


@pytest.mark.redis
def test_qinfo_and_qmonitor_on_the_redis_broker(settings) -> None:
    pytest.importorskip("redis")
    from taskq_tests import redisserver

    url = redisserver.url_or_skip()
    redisserver.delete_keys(url)
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": url}
    try:
        heartbeat("r1", host="redis-host", workers=[{"pid": 5, "rss": 0, "done": 0}])
        async_task("taskq_tests.jobs.add", 1, 1)
        async_task("taskq_tests.jobs.add", 1, 1, run_after=timedelta(hours=1))
        out, _ = run("qinfo")
        assert line(out, "Clusters").split() == ["Clusters", "1", "running"]
        assert line(out, "Queued").split()[:5] == ["Queued", "2", "(1", "ready,", "1"]
        assert "r1  tests  redis-host:4242  running" in out
        out, _ = run("qmonitor", "--run-once")
        assert line(out, "redis-host").split()[:5] == [
            "redis-host",
            "r1",
            "tests",
            "4242",
            "running",
        ]
        assert "Redis " in out.splitlines()[0]
    finally:
        redisserver.delete_keys(url)


# the live loop ---------------------------------------------------------------------------------


def test_live_redraws_every_interval_until_interrupted() -> None:
    out = io.StringIO()
    term = dashboard.terminal(out)
    frames = iter(range(1, 4))
    pauses: list[float] = []

    def draw() -> list[str]:
        number = next(frames, None)
        if number is None:
            raise KeyboardInterrupt
        return [f"frame {number}"]

    dashboard.live(term, draw, interval=1.0, sleep=pauses.append)
    assert out.getvalue() == "frame 1\n\nframe 2\n\nframe 3\n\n"
    assert pauses == [1.0, 1.0, 1.0]


def test_live_run_once_draws_one_frame() -> None:
    out = io.StringIO()
    dashboard.live(dashboard.terminal(out), lambda: ["only"], run_once=True, sleep=pytest.fail)
    assert out.getvalue() == "only\n"


def test_live_shows_a_database_error_and_keeps_going() -> None:
    out = io.StringIO()
    calls = {"n": 0}

    def draw() -> list[str]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise DatabaseError("database is locked")
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return ["fine"]

    dashboard.live(dashboard.terminal(out), draw, sleep=lambda _: None)
    assert out.getvalue() == "Cannot read the cluster status: database is locked\n\nfine\n\n"


# against real clusters -----------------------------------------------------------------------


@pytest.mark.cluster
def test_tools_without_a_cluster_say_no_clusters_running() -> None:
    for args in (("qinfo",), ("qmonitor", "--run-once"), ("qmemory", "--run-once")):
        done = tool(*args)
        assert done.returncode == 0, done.stderr
        assert "No clusters running." in done.stdout, done.stdout
        assert ESCAPE not in done.stdout
    done = tool("qinfo", "--ids")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "No clusters running.\n")


@pytest.mark.cluster
def test_tools_show_a_running_cluster_from_another_process(tmp_path: Path) -> None:
    for _ in range(3):
        make_task()
    make_task(success=False)
    Schedule.objects.create(
        func="taskq_tests.jobs.add", next_run=timezone.now() + timedelta(days=1)
    )
    busy = async_task("taskq_tests.jobs.sleep", 60, task_name="long-sleep")
    async_task("taskq_tests.jobs.add", 1, 1, run_after=timedelta(hours=1))
    async_task("taskq_tests.jobs.add", 1, 1, cluster="other")
    cluster = clusters.start(timeout=None)
    try:

        def busy_cluster() -> Cluster | None:
            for row in Cluster.objects.all():
                if any(worker["task_id"] == busy for worker in row.workers):
                    return row
            return None

        row = wait_until(busy_cluster, 30, "a busy worker")
        host = socket.gethostname()
        worker_pids = [str(worker["pid"]) for worker in row.workers]

        info = tool("qinfo")
        assert info.returncode == 0, info.stderr
        out = info.stdout
        assert ESCAPE not in out
        assert line(out, "Clusters").split() == ["Clusters", "1", "running"]
        assert line(out, "Workers").split()[:4] == ["Workers", "2", "(1", "busy)"]
        assert line(out, "Queued").split()[:2] == ["Queued", "2"]
        assert "1 claimed by clusters" in line(out, "Queued")
        assert line(out, "Successes").split()[:2] == ["Successes", "3"]
        assert line(out, "Failures").split()[:2] == ["Failures", "1"]
        assert line(out, "Schedules").split()[:2] == ["Schedules", "1"]
        assert f"{row.id}  tests  {host}:{row.pid}  running" in out

        ids = tool("qinfo", "--ids")
        assert (ids.returncode, ids.stdout.split()) == (0, [row.id])

        monitor = tool("qmonitor", "--run-once")
        assert monitor.returncode == 0, monitor.stderr
        cells = line(monitor.stdout, host).split()
        assert cells[:6] == [host, row.id, "tests", str(row.pid), "running", "1/2"]
        assert cells[6].isdigit()  # held: claimed tasks waiting in the cluster for a worker
        assert "runs long-sleep for" in monitor.stdout
        assert ESCAPE not in monitor.stdout

        memory = tool("qmemory", "--run-once", "--workers")
        assert memory.returncode == 0, memory.stderr
        cells = line(memory.stdout, host).split()
        assert cells[:5] == [host, row.id, str(row.pid), "running", "2"]
        assert float(cells[7]) > 0  # total MiB
        for pid in worker_pids:
            assert re.search(rf"{row.id}\s+\d\s+{pid}\s+\d+\.\d", memory.stdout), memory.stdout
        assert "long-sleep" in memory.stdout
    finally:
        clusters.kill_group(cluster)


@pytest.mark.cluster
def test_qmonitor_refreshes_every_second_until_interrupted(tmp_path: Path) -> None:
    cluster = clusters.start()
    log = tmp_path / "qmonitor.out"
    try:
        wait_until(lambda: Cluster.objects.exists(), 30, "the cluster's heartbeat")
        with log.open("w") as out:
            monitor = subprocess.Popen(
                [sys.executable, "-m", "django", "qmonitor"],
                env=clusters.cluster_env(),
                cwd=clusters.ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                # Ctrl-C as in a terminal, even where the tests were started in the
                # background of a shell, which starts them with SIGINT ignored
                preexec_fn=default_sigint,
            )
        try:
            wait_until(lambda: log.read_text().count("monitor - ") >= 3, 30, "three frames")
        finally:
            monitor.send_signal(signal.SIGINT)
            code = monitor.wait(timeout=10)
    finally:
        clusters.stop(cluster)
    text = log.read_text()
    assert code == 0, text
    assert "Traceback" not in text
    assert ESCAPE not in text
    frames = text.count("monitor - ")
    assert text.count("running") >= frames - 1  # each complete frame shows the cluster


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def answer_terminal_queries(fd: int, data: bytes) -> None:
    """Reply as a terminal would to what blessed asks when it starts."""
    for match in re.finditer(rb"\x1bP\+q([0-9a-f]+)\x1b\\|\x1b\[6n|\x1b\[>q", data):
        query = match.group(0)
        if query.startswith(b"\x1bP"):
            os.write(fd, b"\x1bP0+r" + match.group(1) + b"\x1b\\")  # capability unknown
        elif query == b"\x1b[6n":
            os.write(fd, b"\x1b[1;1R")  # cursor position
        else:
            os.write(fd, b"\x1bP>|xterm(390)\x1b\\")  # terminal version


@pytest.mark.cluster
def test_qmonitor_on_a_terminal_redraws_in_colour_and_quits_on_q() -> None:
    cluster = clusters.start()
    try:
        row = wait_until(lambda: Cluster.objects.first(), 30, "the cluster's heartbeat")
        env = {**clusters.cluster_env(), "TERM": "xterm-256color"}
        for name in ("NO_COLOR", "FORCE_COLOR", "CLICOLOR_FORCE", "TERM_PROGRAM"):
            env.pop(name, None)
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        monitor = subprocess.Popen(
            [sys.executable, "-m", "django", "qmonitor"],
            env=env,
            cwd=clusters.ROOT,
            stdin=slave,
            stdout=slave,
            stderr=slave,
        )
        os.close(slave)
        output, quit_sent = b"", False
        try:
            deadline = time.monotonic() + 60
            while monitor.poll() is None and time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.05)
                if ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # the terminal's other side closed: qmonitor exited
                        break
                    output += data
                    answer_terminal_queries(master, data)
                if not quit_sent and output.count(b"[Press q to quit]") >= 2:
                    os.write(master, b"q")
                    quit_sent = True
            code = monitor.wait(timeout=10)
        finally:
            if monitor.poll() is None:
                monitor.kill()
                monitor.wait()
            os.close(master)
    finally:
        clusters.stop(cluster)
    text = output.decode(errors="replace")
    assert quit_sent, text
    assert code == 0, text
    assert row.id[:8] in text
    assert "\x1b[32mrunning" in text  # a healthy cluster, in green
    assert "\x1b[?1049h" in text
    assert "\x1b[?1049l" in text
