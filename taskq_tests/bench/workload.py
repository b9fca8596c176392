"""Benchmark measurements, run by ``run.py`` inside the virtualenv of one system.

::

    python -m taskq_tests.bench.workload W1 W2 --n 5000 --workers 2 --timeout 600 --out r.json

The environment selects the system and the database (see ``settings.py``). The
database is made afresh and migrated, the workloads named run in order on one cluster
(a ``python -m django qcluster`` subprocess in its own process group, started by the
first workload that needs it), the cluster is stopped with SIGTERM, and the outcome is
written as JSON to ``--out``: ``{"status": "ok", "figures": {workload: {...}}}``, or
``"timeout"`` / ``"error"`` with a message. Whatever overruns ``--timeout`` is stopped
and the cluster killed (its whole process group).

Workloads (queue rows are counted with SQL on ``django_q_ormq``; both systems delete
a row only after its result is saved, so an empty queue means every result is stored,
whatever ``save_limit`` keeps). With ``BENCH_DB=redis`` the queue is in Redis: a
workload is done when the result rows (``django_q_task``, kept by ``save_limit`` 0) it
expects exist, and the queue is counted with the system's broker (``queue_size()``):

- ``W1``: enqueue ``--n`` no-op tasks one by one (autocommit) from this process: tasks/s.
- ``W2``: drain the queue: W1's tasks if W1 ran first, else ``--n`` tasks committed at
  once (not timed). Timed from starting ``qcluster`` until the queue is empty: tasks/s.
  ``--memory`` samples the memory of the cluster's process group (W5).
- ``W3``: on an idle cluster, ``--latency-n`` times: enqueue one no-op task and poll
  (every 1 ms) for its result row; random pauses between tasks. Round trip p50/p95/p99.
- ``W4``: on an idle cluster, commit ``--sleeps-n`` tasks that sleep ``--sleep`` s in one
  transaction and time until the queue is empty: efficiency against the ideal
  ``n * sleep / workers``.
- ``K1`` (Redis): enqueue ``--kill-n`` tasks that sleep ``--kill-sleep`` s and then append
  their number to a ledger file; start the cluster, SIGKILL its whole process group
  ``--kill-after`` s after the first task is in the ledger, start a new cluster and let it
  run until every task is accounted for, or the queue is empty and nothing happened for
  ``K1_QUIET`` s, or ``--kill-wait`` s passed. Lost: tasks neither in the ledger nor with
  a result row.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

SYSTEM = os.environ.get("BENCH_SYSTEM", "taskq")
DB = os.environ.get("BENCH_DB", "sqlite")
DIST = {"taskq": "taskq", "django-q2": "django-q2"}

STOP_GRACE = 60.0  # seconds a cluster gets to stop after SIGTERM
IDLE_AFTER_READY = 0.5  # seconds a cluster sits idle before W3 and W4 start
W3_GAP = 0.2  # most seconds between two W3 tasks (random: Django-Q2 polls every 0.2 s)
W2_POLL = 0.02
W3_POLL = 0.001
W4_POLL = 0.005
K1_POLL = 0.1
K1_QUIET = 12.0  # seconds without progress, the queue empty, that end K1 (retry 5 s, twice)
MEMORY_SAMPLE = 0.05
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


class Timeout(Exception):
    """The measurement overran its time bound."""


class ClusterDied(Exception):
    """The cluster exited before the measurement ended."""


# -- the database ---------------------------------------------------------------------


def fresh_database() -> None:
    """A new, empty database for this run (before Django connects)."""
    if DB in ("sqlite", "redis"):
        name = Path(os.environ["BENCH_SQLITE_NAME"])
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{name}{suffix}").unlink()
        if DB == "redis":
            redis_client().flushall()
        return
    import psycopg
    from psycopg import sql

    target = os.environ.get("BENCH_PG_NAME", "taskq_bench")
    with psycopg.connect(**pg_params(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))


def drop_database() -> None:
    if DB != "postgres":
        return
    import psycopg
    from django.db import connections
    from psycopg import sql

    connections.close_all()
    target = os.environ.get("BENCH_PG_NAME", "taskq_bench")
    with psycopg.connect(**pg_params(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target))
        )


def redis_client() -> Any:
    import redis

    return redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])


def pg_params() -> dict[str, Any]:
    """Connection to the configured database, from which the bench database is made."""
    return {
        "host": os.environ.get("TASKQ_PG_HOST", "127.0.0.1"),
        "port": os.environ.get("TASKQ_PG_PORT", "5432"),
        "user": os.environ.get("TASKQ_PG_USER", "postgres"),
        "password": os.environ.get("TASKQ_PG_PASSWORD", ""),
        "dbname": os.environ.get("TASKQ_PG_NAME", "taskq"),
    }


def scalar(query: str, params: tuple[Any, ...] = ()) -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(query, params)
        row = cursor.fetchone()
    return row[0] if row else None


def queue_count() -> int:
    return scalar("SELECT COUNT(*) FROM django_q_ormq")


def task_count() -> int:
    return scalar("SELECT COUNT(*) FROM django_q_task")


def pending() -> int:
    """Tasks in the queue: rows of the ORM queue, or the Redis broker's ``queue_size()``."""
    if DB != "redis":
        return queue_count()
    if SYSTEM == "taskq":
        from taskq.brokers import get_broker
    else:
        from django_q.brokers import get_broker
    return int(get_broker().queue_size())


def result_exists(task_id: str) -> bool:
    return scalar("SELECT 1 FROM django_q_task WHERE id = %s", (task_id,)) is not None


def outcome_counts() -> dict[str, int]:
    return {
        "successes": scalar("SELECT COUNT(*) FROM django_q_task WHERE success = %s", (True,)),
        "failures": scalar("SELECT COUNT(*) FROM django_q_task WHERE success = %s", (False,)),
    }


# -- the systems ---------------------------------------------------------------------


def async_task() -> Any:
    if SYSTEM == "taskq":
        from taskq.tasks import async_task as function
    else:
        from django_q.tasks import async_task as function
    return function


def versions() -> dict[str, str]:
    from django.db import connection

    found = {
        "python": platform.python_version(),
        "django": importlib.metadata.version("django"),
        SYSTEM: importlib.metadata.version(DIST[SYSTEM]),
    }
    if DB in ("sqlite", "redis"):
        found["sqlite"] = sqlite3.sqlite_version
        if DB == "redis":
            found["redis-py"] = importlib.metadata.version("redis")
            found["redis-server"] = redis_client().info("server")["redis_version"]
    else:
        found["psycopg"] = importlib.metadata.version("psycopg")
        found["postgresql"] = scalar("SHOW server_version")
        connection.close()
    return found


# -- the cluster ---------------------------------------------------------------------


class ClusterProcess:
    """``python -m django qcluster`` in its own session (process group)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.stop_seconds: float | None = None
        self.stopped_cleanly: bool | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "django", "qcluster"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        pgid_file = os.environ.get("BENCH_PGID_FILE")
        if pgid_file:  # so that run.py can kill the cluster if this process overruns
            Path(pgid_file).write_text(str(self.proc.pid))

    @property
    def pgid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check(self) -> None:
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            raise ClusterDied(f"qcluster exited with code {code}")

    def stop(self) -> None:
        """SIGTERM and wait; then kill whatever is left of the process group."""
        if self.proc is None:
            return
        start = time.perf_counter()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE)
                self.stopped_cleanly = self.proc.returncode == 0
            except subprocess.TimeoutExpired:
                self.stopped_cleanly = False
        self.stop_seconds = time.perf_counter() - start
        self.kill()

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def wait_until(condition: Any, poll: float, deadline: float, cluster: ClusterProcess) -> float:
    """Poll ``condition()`` until true; the time it became true (perf_counter)."""
    while True:
        if condition():
            return time.perf_counter()
        cluster.check()
        if time.perf_counter() > deadline:
            raise Timeout(f"not done within the time bound ({condition.__doc__ or 'waiting'})")
        time.sleep(poll)


def start_idle_cluster(cluster: ClusterProcess, deadline: float) -> float:
    """Start the cluster, run one task through it, let it idle; seconds to that result."""
    start = time.perf_counter()
    cluster.start()
    from taskq_tests.bench.tasks import noop

    task_id = async_task()(noop)

    def ready() -> bool:
        """the cluster's first result"""
        return result_exists(task_id)

    ready_at = wait_until(ready, 0.01, deadline, cluster)
    time.sleep(IDLE_AFTER_READY)
    return ready_at - start


class MemorySampler(threading.Thread):
    """Peak of the summed RSS and PSS of every process in a process group (W5)."""

    def __init__(self, pgid: int) -> None:
        super().__init__(daemon=True)
        self.pgid = pgid
        self.done = threading.Event()
        self.peak_rss_kib = 0
        self.peak_pss_kib = 0
        self.peak_processes = 0
        self.samples = 0

    def run(self) -> None:
        while not self.done.is_set():
            rss, pss, count = group_memory(self.pgid)
            self.samples += 1
            if rss > self.peak_rss_kib:
                self.peak_rss_kib, self.peak_processes = rss, count
            self.peak_pss_kib = max(self.peak_pss_kib, pss)
            self.done.wait(MEMORY_SAMPLE)

    def stop(self) -> None:
        self.done.set()
        self.join()


def group_memory(pgid: int) -> tuple[int, int, int]:
    """(RSS KiB, PSS KiB, processes) summed over the live processes of a process group."""
    rss = pss = count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
            # after "(comm)": state ppid pgrp ... ; rss (pages) is field 24 of stat(5)
            fields = stat[stat.rindex(b")") + 2 :].split()
            if int(fields[2]) != pgid or fields[0] == b"Z":
                continue
            rss += int(fields[21]) * PAGE_KIB
            count += 1
            with open(f"/proc/{entry.name}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        pss += int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            continue
    return rss, pss, count


# -- the workloads ---------------------------------------------------------------------


def enqueue_committed(n: int, func: Any, *args: Any) -> float:
    """Enqueue ``n`` tasks in one transaction; the time just before the commit."""
    from django.db import transaction

    send = async_task()
    with transaction.atomic():
        for _ in range(n):
            send(func, *args)
        committing = time.perf_counter()
    return committing


def w1(args: argparse.Namespace, deadline: float, cluster: ClusterProcess) -> dict[str, Any]:
    from taskq_tests.bench.tasks import noop

    send = async_task()
    send(noop)  # imports, connection: not timed
    start = time.perf_counter()
    for i in range(args.n):
        send(noop)
        if i % 100 == 0 and time.perf_counter() > deadline:
            raise Timeout(f"{i} of {args.n} enqueued within the time bound")
    elapsed = time.perf_counter() - start
    queued = pending()
    if queued != args.n + 1:
        raise RuntimeError(f"{queued} tasks in the queue, expected {args.n + 1}")
    return {"elapsed_s": elapsed, "rate": args.n / elapsed}


def w2(args: argparse.Namespace, deadline: float, cluster: ClusterProcess) -> dict[str, Any]:
    """Drain the queue: W1's tasks when W1 ran first, else ``n`` enqueued now (not timed)."""
    from taskq_tests.bench.tasks import noop

    if pending() == 0:
        enqueue_committed(args.n, noop)
    total = pending()
    results_before = task_count() if DB == "redis" else 0

    def left_to_do() -> int:
        if DB == "redis":  # the queue is in Redis: count the results (save_limit 0)
            return total - (task_count() - results_before)
        return queue_count()

    sampler: MemorySampler | None = None
    start = time.perf_counter()
    cluster.start()
    if args.memory:
        sampler = MemorySampler(cluster.pgid)
        sampler.start()
    first: float | None = None
    done_at_first = 0
    try:
        while True:
            left = left_to_do()
            now = time.perf_counter()
            if first is None and left < total:
                first, done_at_first = now - start, total - left
            if left == 0:
                break
            cluster.check()
            if now > deadline:
                raise Timeout(f"{total - left} of {total} tasks done within the time bound")
            time.sleep(W2_POLL)
    finally:
        if sampler is not None:
            sampler.stop()
    elapsed = now - start
    figures: dict[str, Any] = {
        "tasks": total,
        "elapsed_s": elapsed,
        "rate": total / elapsed,
        "first_s": first,
    }
    if first is not None and elapsed > first:  # the rate once running, start-up excluded
        figures["steady_rate"] = (total - done_at_first) / (elapsed - first)
    if sampler is not None:
        figures.update(
            rss_peak_mib=sampler.peak_rss_kib / 1024,
            pss_peak_mib=sampler.peak_pss_kib / 1024,
            processes=sampler.peak_processes,
            memory_samples=sampler.samples,
        )
    return figures


def idle_cluster(cluster: ClusterProcess, deadline: float) -> dict[str, Any]:
    """Start the cluster unless running (first result after how long), then let it idle."""
    figures = {}
    if cluster.proc is None:
        figures["ready_s"] = start_idle_cluster(cluster, deadline)
    else:
        time.sleep(IDLE_AFTER_READY)
    return figures


def w3(args: argparse.Namespace, deadline: float, cluster: ClusterProcess) -> dict[str, Any]:
    from taskq_tests.bench.tasks import noop

    figures = idle_cluster(cluster, deadline)
    send = async_task()
    # A random pause between tasks, so that each task meets a polling cluster at a random
    # point of its cycle (back to back, every task would wait for the same part of it).
    gaps = random.Random(4)
    latencies = []
    task_ids = []
    n = args.latency_n or args.n
    for i in range(n):
        start = time.perf_counter()
        task_id = send(noop)
        task_ids.append(task_id)
        while not result_exists(task_id):
            if time.perf_counter() > deadline:
                raise Timeout(f"{i} of {n} round trips within the time bound")
            cluster.check()
            time.sleep(W3_POLL)
        latencies.append((time.perf_counter() - start) * 1000)
        time.sleep(gaps.uniform(0, W3_GAP))
    latencies.sort()
    # Where the time goes: the Task row's started (enqueued, in both systems) to stopped
    # (the function returned) is the cluster's share; the rest is saving and our polling.
    inside = sorted(
        (stopped - started).total_seconds() * 1000 for started, stopped in task_times(task_ids)
    )
    return {
        **figures,
        "tasks": n,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": latencies[-1],
        "mean_ms": sum(latencies) / len(latencies),
        "to_stopped_p50_ms": percentile(inside, 50) if inside else None,
        "to_stopped_p99_ms": percentile(inside, 99) if inside else None,
    }


def task_times(task_ids: list[str]) -> list[tuple[Any, Any]]:
    if SYSTEM == "taskq":
        from taskq.models import Task
    else:
        from django_q.models import Task
    return list(Task.objects.filter(id__in=task_ids).values_list("started", "stopped"))


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def w4(args: argparse.Namespace, deadline: float, cluster: ClusterProcess) -> dict[str, Any]:
    from taskq_tests.bench.tasks import sleep

    figures = idle_cluster(cluster, deadline)
    n = args.sleeps_n or args.n
    results_before = task_count() if DB == "redis" else 0
    before = time.perf_counter()
    start = enqueue_committed(n, sleep, args.sleep)
    if DB == "redis":  # each task is in Redis (and may run) as soon as it is sent
        start = before

    def drained() -> bool:
        """the queue empty"""
        if DB == "redis":  # every result stored (save_limit 0)
            return task_count() >= results_before + n
        return queue_count() == 0

    end = wait_until(drained, W4_POLL, deadline, cluster)
    elapsed = end - start
    ideal = n * args.sleep / args.workers
    return {
        **figures,
        "tasks": n,
        "elapsed_s": elapsed,
        "ideal_s": ideal,
        "efficiency": ideal / elapsed,
    }


def ledger_numbers(path: Path) -> list[int]:
    try:
        return [int(line) for line in path.read_text().split()]
    except FileNotFoundError:
        return []


def k1(args: argparse.Namespace, deadline: float, cluster: ClusterProcess) -> dict[str, Any]:
    """Tasks lost when a busy cluster is killed with SIGKILL, then a new one started."""
    from taskq_tests.bench.tasks import ledger

    if SYSTEM == "taskq":
        from taskq.models import Task
    else:
        from django_q.models import Task
    if cluster.proc is not None:
        raise RuntimeError("K1 needs a cluster of its own (run it alone)")
    path = Path("k1-ledger.txt").resolve()
    path.unlink(missing_ok=True)
    send = async_task()
    numbers = {send(ledger, str(path), i, args.kill_sleep): i for i in range(args.kill_n)}
    queued = pending()
    if queued != args.kill_n:
        raise RuntimeError(f"{queued} tasks in the queue, expected {args.kill_n}")

    def missing() -> list[str]:
        """task ids neither in the ledger nor with a result row"""
        ran = set(ledger_numbers(path))
        stored = set(Task.objects.filter(id__in=list(numbers)).values_list("id", flat=True))
        return [t for t, i in numbers.items() if i not in ran and t not in stored]

    def started() -> bool:
        """the first task in the ledger"""
        return path.exists() and path.stat().st_size > 0

    cluster.start()
    wait_until(started, 0.01, deadline, cluster)
    time.sleep(args.kill_after)
    cluster.kill()  # SIGKILL to the whole process group
    done_before_kill = len(set(ledger_numbers(path)))
    left_at_kill = len(missing())
    restart = time.perf_counter()
    cluster.start()
    end = min(deadline, restart + args.kill_wait)
    last_progress, last_left = restart, left_at_kill
    recovered_s = None
    while True:
        left = len(missing())
        now = time.perf_counter()
        if left == 0:
            recovered_s = now - restart
            break
        if left != last_left:
            last_progress, last_left = now, left
        if now - last_progress > K1_QUIET and pending() == 0:
            break  # idle: nothing runs, nothing is queued
        if now > end:
            break
        cluster.check()
        time.sleep(K1_POLL)
    cluster.stop()
    lost = missing()
    runs = ledger_numbers(path)
    ran = set(runs)
    failed = Task.objects.filter(id__in=list(numbers), success=False)
    not_run = [(t, r) for t, r in failed.values_list("id", "result") if numbers[t] not in ran]
    return {
        "tasks": args.kill_n,
        "done_before_kill": done_before_kill,
        "left_at_kill": left_at_kill,
        "lost": len(lost),
        "ran_twice": len(runs) - len(set(runs)),
        "failed_results": failed.count(),
        "not_run_failed": len(not_run),  # never in the ledger, a failure result stored
        "not_run_failed_example": str(not_run[0][1])[:300] if not_run else None,
        "waited_s": time.perf_counter() - restart,
        "recovered_s": recovered_s,
    }


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "K1": k1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "workloads", nargs="+", choices=sorted(WORKLOADS), help="run in this order, one cluster"
    )
    parser.add_argument("--n", type=int, required=True, help="tasks (W1, W2)")
    parser.add_argument("--latency-n", type=int, help="W3's tasks (default --n)")
    parser.add_argument("--sleeps-n", type=int, help="W4's tasks (default --n)")
    parser.add_argument("--workers", type=int, default=1, help="workers in Q_CLUSTER")
    parser.add_argument("--sleep", type=float, default=0.05, help="W4: seconds per task")
    parser.add_argument("--memory", action="store_true", help="W2: sample the cluster's memory")
    parser.add_argument("--kill-n", type=int, default=200, help="K1: tasks")
    parser.add_argument("--kill-sleep", type=float, default=0.2, help="K1: seconds per task")
    parser.add_argument(
        "--kill-after", type=float, default=1.0, help="K1: seconds after the first task to SIGKILL"
    )
    parser.add_argument(
        "--kill-wait", type=float, default=60.0, help="K1: most seconds for the new cluster"
    )
    parser.add_argument("--timeout", type=float, required=True, help="bound of the measurements")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cluster-log", type=Path, default=Path("qcluster.log"))
    args = parser.parse_args(argv)

    outcome: dict[str, Any] = {"system": SYSTEM, "db": DB, "workloads": args.workloads}
    cluster = ClusterProcess(args.cluster_log)
    signal.signal(signal.SIGTERM, interrupt)  # kill the cluster on the way out
    try:
        fresh_database()
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        outcome["versions"] = versions()
        deadline = time.perf_counter() + args.timeout
        figures = {}
        for name in args.workloads:
            figures[name] = WORKLOADS[name](args, deadline, cluster)
        cluster.stop()
        outcome.update(status="ok", figures=figures)
    except Timeout as exc:
        outcome.update(status="timeout", message=str(exc))
    except Exception as exc:
        outcome.update(status="error", message=f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    finally:
        cluster.kill()
    if cluster.proc is not None:
        outcome.update(stop_s=cluster.stop_seconds, stopped_cleanly=cluster.stopped_cleanly)
    if outcome["status"] == "ok":
        try:
            outcome.update(outcome_counts())
            if outcome["failures"] and "K1" not in args.workloads:
                outcome.update(status="error", message=f"{outcome['failures']} tasks failed")
        except Exception as exc:
            outcome.update(status="error", message=f"counting results: {exc}")
    with contextlib.suppress(Exception):
        drop_database()
    args.out.write_text(json.dumps(outcome, indent=2))
    return 0 if outcome["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
