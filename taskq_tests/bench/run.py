"""taskq against Django-Q2: the benchmark behind ``nox -s bench`` (docs/benchmark.md).

Standard library only: it runs with whatever Python nox (or you) start it with::

    python taskq_tests/bench/run.py            # 3 runs of everything, medians (long)
    python taskq_tests/bench/run.py --quick    # small N, one run, SQLite and PG: under two minutes
    python taskq_tests/bench/run.py --systems taskq --db sqlite --workloads W2,W3

It builds one virtualenv per system (taskq from this checkout; django-q2==1.11.1 from
PyPI; both with the same Django, psycopg and redis), starts a throwaway PostgreSQL on
127.0.0.1 unless ``TASKQ_PG_HOST`` is set (configured as a packaged server is: durable
commits and password authentication; ``--pg-server fast`` for the test suite's
configuration) and a throwaway redis-server for ``--db redis`` (results in SQLite, the
queue in Redis), runs every workload of ``workload.py`` for
each system and database, each run bounded in time, and prints the settings, the
versions and one table of medians with the ratios taskq / Django-Q2 and the targets.
Every run's figures are also written as JSON (the path is printed at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = ("taskq", "django-q2")
DATABASES = ("sqlite", "postgres", "redis")  # "redis": results in SQLite, the queue in Redis
LABEL = {
    "taskq": "taskq",
    "django-q2": "Django-Q2",
    "sqlite": "SQLite",
    "postgres": "PG",
    "redis": "Redis",
}
DJANGO = "django>=5.2,<5.3"  # the same Django for both systems
PSYCOPG = "psycopg[binary]"
DJANGO_Q2 = "django-q2==1.11.1"
BUILD = ["setuptools>=69", "wheel"]
Q_CLUSTER = {"name": "bench", "orm": "default"}  # + "workers"; everything else default
# On Redis, "orm" goes (Django-Q2 would pick its ORM broker) and every result is kept, so
# that a drain ends when its results are all stored (the queue is no longer a table).
REDIS_Q_CLUSTER = {"save_limit": 0}
K1_Q_CLUSTER = {"retry": 5}  # K1 only: a dead cluster's tasks come back after 5 s (taskq)
PG_DATABASE = "taskq_bench"
W3_GAP_MS = 200  # as workload.W3_GAP
SETUP_ALLOWANCE = 180.0  # seconds a run may take beyond its bound: migrate, stop, clean-up


@dataclass(frozen=True)
class Sizes:
    """Tasks per workload and system."""

    runs: int
    tasks: dict[str, int]  # W1 and W2 (and W5)
    latency: dict[str, int]  # W3
    sleeps: dict[str, int]  # W4
    sleep: float = 0.05
    sleep_workers: int = 8

    def ideal(self, system: str) -> float:
        return self.sleeps[system] * self.sleep / self.sleep_workers

    def replace(self, **changes: Any) -> Sizes:
        return Sizes(**{**self.__dict__, **changes})


def both(n: int) -> dict[str, int]:
    return dict.fromkeys(SYSTEMS, n)


FULL = Sizes(runs=3, tasks=both(5000), latency=both(200), sleeps=both(200))
# Django-Q2 gets fewer tasks in quick mode, or it alone would take minutes (on PostgreSQL
# it runs ~15-40 tasks/s). Rates and percentiles are per task, so they still compare, and
# so does W4's efficiency while Django-Q2's throughput, not its workers, is the limit.
QUICK = Sizes(
    runs=1,
    tasks={"taskq": 500, "django-q2": 100},
    latency={"taskq": 50, "django-q2": 25},
    sleeps={"taskq": 200, "django-q2": 80},
)


@dataclass(frozen=True)
class Job:
    """One process of ``workload.py``: its workloads run in order on one cluster."""

    key: str
    workloads: tuple[str, ...]
    workers: int
    memory: bool = False
    dbs: tuple[str, ...] = DATABASES  # the databases it runs on

    def bound(self, sizes: Sizes, system: str) -> float:
        """Seconds the measurements may take (generous: Django-Q2 may drain ~15 tasks/s)."""
        n, latency, sleeps = sizes.tasks[system], sizes.latency[system], sizes.sleeps[system]
        seconds = {"W1": n / 10, "W2": n / 5, "W3": latency * 1.0, "W4": sleeps * 0.5}
        seconds["K1"] = 30 + 60  # up to the first task, then --kill-wait
        return 60 + sum(seconds[w] for w in self.workloads)


def plan_jobs(wanted: set[str], sizes: Sizes) -> list[Job]:
    """W1 fills the queue that W2 drains with 2 workers; W5 rides on W2 with 4 workers;
    W3 then W4 run on one idle cluster; K1 (Redis only) has a cluster of its own."""
    jobs = []
    first = tuple(w for w in ("W1", "W2") if w in wanted)
    if first:
        jobs.append(Job("queue-2w", first, workers=2))
    if {"W2", "W5"} & wanted:
        jobs.append(Job("drain-4w", ("W2",), workers=4, memory=True))
    idle = tuple(w for w in ("W3", "W4") if w in wanted)
    if idle:
        jobs.append(Job("idle-8w", idle, workers=sizes.sleep_workers))
    if "K1" in wanted:
        jobs.append(Job("kill-4w", ("K1",), workers=4, dbs=("redis",)))
    return jobs


@dataclass(frozen=True)
class Row:
    label: str
    job: str
    workload: str
    metric: str
    fmt: str
    target: str = ""  # shown in the table
    ratio_min: dict[str, float] = field(default_factory=dict)  # per database
    ratio_max: float | None = None
    value_min: float | None = None
    value_max: float | None = None
    ratio: bool = True  # whether taskq / Django-Q2 means anything


ROWS = (
    Row(
        "W1 enqueue, tasks/s",
        "queue-2w",
        "W1",
        "rate",
        "{:,.0f}",
        "≥8x SQLite, ≥30x PG",
        ratio_min={"sqlite": 8, "postgres": 30},
    ),
    Row(
        "W2 drain, 2 workers, tasks/s",
        "queue-2w",
        "W2",
        "rate",
        "{:,.0f}",
        "≥50x SQLite, ≥100x PG",
        ratio_min={"sqlite": 50, "postgres": 100},
    ),
    Row(
        "W2 drain, 4 workers, tasks/s",
        "drain-4w",
        "W2",
        "rate",
        "{:,.0f}",
        "≥50x SQLite, ≥100x PG, ≥2x Redis",
        ratio_min={"sqlite": 50, "postgres": 100, "redis": 2},
    ),
    Row("W2 4 w., after 1st result, tasks/s", "drain-4w", "W2", "steady_rate", "{:,.0f}"),
    Row("W2 4 w., start to 1st result, s", "drain-4w", "W2", "first_s", "{:.2f}"),
    Row("W3 round trip p50, ms", "idle-8w", "W3", "p50_ms", "{:.1f}", "≤5 ms", value_max=5),
    Row("W3 round trip p95, ms", "idle-8w", "W3", "p95_ms", "{:.1f}"),
    Row("W3 round trip p99, ms", "idle-8w", "W3", "p99_ms", "{:.1f}", "≤25 ms", value_max=25),
    Row(
        "W4 efficiency (ideal/elapsed)",
        "idle-8w",
        "W4",
        "efficiency",
        "{:.2f}",
        "≥0.9",
        value_min=0.9,
    ),
    Row(
        "W5 peak RSS, 4 workers, MiB",
        "drain-4w",
        "W2",
        "rss_peak_mib",
        "{:.0f}",
        "≤ Django-Q2",
        ratio_max=1.0,
    ),
    Row("W5 peak PSS, 4 workers, MiB", "drain-4w", "W2", "pss_peak_mib", "{:.0f}"),
    Row(
        "K1 tasks lost after SIGKILL (Redis)",
        "kill-4w",
        "K1",
        "lost",
        "{:.0f}",
        "0",
        value_max=0,
        ratio=False,
    ),
    Row(
        "K1 not run, failure stored (Redis)",
        "kill-4w",
        "K1",
        "not_run_failed",
        "{:.0f}",
        ratio=False,
    ),
    Row("K1 tasks run twice (Redis)", "kill-4w", "K1", "ran_twice", "{:.0f}", ratio=False),
)


# -- building the virtualenvs ---------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def venv_python(path: Path) -> Path:
    return path / "bin" / "python"


def pip(python: Path, *args: str) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def ensure_venv(path: Path, requirements: list[str]) -> Path:
    """A virtualenv at ``path`` with ``requirements``, (re)made when they changed."""
    marker = path / "bench-requirements.json"
    wanted = json.dumps({"python": sys.version, "requirements": requirements})
    python = venv_python(path)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    log(f"creating {path} with {' '.join(requirements)}")
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    pip(python, *requirements)
    marker.write_text(wanted)
    return python


def expose_checkout(python: Path) -> None:
    """Put the checkout at the *end* of the venv's sys.path (a .pth file), so that
    ``taskq_tests.bench`` imports and the installed ``taskq`` is not shadowed."""
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "taskq_bench_checkout.pth").write_text(f"{ROOT}\n")


PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in")


def source_files() -> list[Path]:
    """What the taskq package is built from."""
    files = [p for p in sorted((ROOT / "taskq").rglob("*")) if p.is_file()]
    files = [p for p in files if "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return files + [ROOT / n for n in PROJECT_FILES if (ROOT / n).exists()]


def build_taskq(envdir: Path, scratch: Path) -> Path:
    """The taskq venv: its dependencies once, the checkout's taskq whenever it changed.

    The package is built from a copy of the sources, so that the checkout's ``build/``
    (shared with the other nox sessions) is never touched.
    """
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    python = ensure_venv(
        envdir / "taskq",
        [*BUILD, *project.get("dependencies", []), DJANGO, PSYCOPG, *redis_requirements()],
    )
    source = scratch / "taskq-source"
    digest = hashlib.sha256()
    for path in source_files():
        relative = path.relative_to(ROOT)
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, source / relative)
        digest.update(str(relative).encode() + b"\0" + (source / relative).read_bytes() + b"\0")
    installed = envdir / "taskq" / "bench-taskq-source.sha256"
    if installed.exists() and installed.read_text() == digest.hexdigest():
        log(f"taskq from {ROOT}: unchanged since it was installed")
    else:
        log(f"installing taskq from {ROOT}")
        installed.unlink(missing_ok=True)
        pip(python, "--no-deps", "--force-reinstall", "--no-build-isolation", str(source))
        installed.write_text(digest.hexdigest())
    expose_checkout(python)
    return python


def redis_requirements() -> list[str]:
    """taskq's ``redis`` extra: the ``redis`` package of both virtualenvs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project.get("optional-dependencies", {}).get("redis", ["redis"]))


def build_django_q2(envdir: Path) -> Path:
    python = ensure_venv(envdir / "django-q2", [DJANGO_Q2, DJANGO, PSYCOPG, *redis_requirements()])
    expose_checkout(python)
    return python


# -- PostgreSQL ------------------------------------------------------------------------


def load_pgserver() -> ModuleType:
    return load_helper("pgserver")


def load_helper(name: str) -> ModuleType:
    """``taskq_tests/<name>.py`` (standard library only), without importing the package."""
    path = ROOT / "taskq_tests" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"taskq_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def redis_available() -> bool:
    try:
        load_helper("redisserver").find_server()
    except Exception:
        return False
    return True


def cluster_settings(
    q_cluster: dict[str, Any], system: str, db: str, job: Job, redis: tuple[str, int] | None
) -> dict[str, Any]:
    """Q_CLUSTER of one run: the common settings, and on Redis the broker and save_limit."""
    settings = {**q_cluster, "workers": job.workers}
    if db == "redis":
        assert redis is not None
        host, port = redis
        settings.pop("orm", None)
        settings = {**settings, **REDIS_Q_CLUSTER}
        if "K1" in job.workloads:
            settings.update(K1_Q_CLUSTER)
        # taskq takes a URL; Django-Q2 redis.Redis arguments (it takes a URL too)
        settings["redis"] = (
            f"redis://{host}:{port}/0"
            if system == "taskq"
            else {"host": host, "port": port, "db": 0}
        )
    return settings


# -- running the jobs ------------------------------------------------------------------


def interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def run_job(
    job: Job,
    system: str,
    db: str,
    python: Path,
    sizes: Sizes,
    q_cluster: dict[str, Any],
    pg_env: dict[str, str],
    workdir: Path,
    conn_max_age: str,
    redis: tuple[str, int] | None = None,
    sqlite_options: str = "recommended",
) -> dict[str, Any]:
    """Run one measurement in its own process group; never longer than its bound."""
    workdir.mkdir(parents=True)
    bound = job.bound(sizes, system)
    out = workdir / "result.json"
    pgid_file = workdir / "cluster.pgid"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(
        DJANGO_SETTINGS_MODULE="taskq_tests.bench.settings",
        BENCH_SYSTEM=system,
        BENCH_DB=db,
        BENCH_SQLITE_NAME=str(workdir / "bench.sqlite3"),
        BENCH_PG_NAME=PG_DATABASE,
        BENCH_Q_CLUSTER=json.dumps(cluster_settings(q_cluster, system, db, job, redis)),
        BENCH_REDIS_URL=f"redis://{redis[0]}:{redis[1]}/0" if redis else "",
        BENCH_PGID_FILE=str(pgid_file),
        BENCH_CONN_MAX_AGE=conn_max_age,
        BENCH_SQLITE_OPTIONS=sqlite_options,
        **pg_env,
    )
    command = [str(python), "-m", "taskq_tests.bench.workload", *job.workloads]
    command += ["--n", str(sizes.tasks[system]), "--latency-n", str(sizes.latency[system])]
    command += ["--sleeps-n", str(sizes.sleeps[system]), "--sleep", str(sizes.sleep)]
    command += ["--workers", str(job.workers), "--timeout", str(bound)]
    command += ["--out", str(out), "--cluster-log", str(workdir / "qcluster.log")]
    if job.memory:
        command.append("--memory")
    outcome: dict[str, Any] = {"system": system, "db": db, "job": job.key}
    started = time.monotonic()
    with (workdir / "workload.log").open("wb") as output:
        proc = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(bound + SETUP_ALLOWANCE)
        except subprocess.TimeoutExpired:
            outcome.update(
                status="timeout", message=f"killed after {bound + SETUP_ALLOWANCE:.0f} s"
            )
        finally:
            kill_group(proc.pid)
            with contextlib.suppress(OSError, ValueError):
                kill_group(int(pgid_file.read_text()))
            proc.wait()
    outcome["wall_s"] = time.monotonic() - started
    if "status" not in outcome:
        try:
            outcome.update(json.loads(out.read_text()))
        except (OSError, ValueError):
            outcome.update(status="error", message=f"no result (exit code {proc.returncode})")
    if outcome["status"] != "ok":
        outcome["log"] = str(workdir)
        outcome["log_tail"] = tail(workdir / "workload.log") + "\n" + tail(workdir / "qcluster.log")
    return outcome


# -- the table -------------------------------------------------------------------------


def median_of(runs: list[dict[str, Any]], workload: str, metric: str) -> tuple[float | None, str]:
    """The median of a figure over the successful runs, and a note on the others."""
    found = [r.get("figures", {}).get(workload, {}).get(metric) for r in runs]
    values = [
        v for r, v in zip(runs, found, strict=True) if r.get("status") == "ok" and v is not None
    ]
    if not runs:
        return None, "—"
    if not values:
        return None, runs[0].get("status", "error")
    note = "" if len(values) == len(runs) else f" ({len(values)}/{len(runs)})"
    return statistics.median(values), note


def cell(value: float | None, note: str, fmt: str) -> str:
    return note if value is None else fmt.format(value) + note


def verdict(ok: bool) -> str:
    return " ✓" if ok else " ✗"


def build_table(
    results: dict[tuple[str, str, str], list[dict[str, Any]]],
    systems: list[str],
    dbs: list[str],
    jobs: list[Job],
) -> tuple[str, dict[str, Any]]:
    """The table (Markdown) and the medians behind it."""
    measured = {
        (job.key, workload) for job in jobs if set(job.dbs) & set(dbs) for workload in job.workloads
    }
    compare = systems == list(SYSTEMS)
    header = ["metric (median)"]
    for db in dbs:
        header += [f"{LABEL[s]} {LABEL[db]}" for s in systems]
        if compare:
            header.append(f"ratio {LABEL[db]}")
    header.append("target")
    rows = [header]
    medians: dict[str, Any] = {}
    for row in ROWS:
        if (row.job, row.workload) not in measured:
            continue
        line = [row.label]
        for db in dbs:
            values = {}
            for system in systems:
                runs = results.get((db, system, row.job), [])
                value, note = median_of(runs, row.workload, row.metric)
                values[system] = value
                medians.setdefault(db, {}).setdefault(system, {})[row.label] = value
                text = cell(value, note, row.fmt)
                if system == "taskq" and value is not None:
                    if row.value_max is not None:
                        text += verdict(value <= row.value_max)
                    if row.value_min is not None:
                        text += verdict(value >= row.value_min)
                line.append(text)
            if compare:
                taskq, other = values["taskq"], values["django-q2"]
                if taskq is None or not other or not row.ratio:
                    line.append("—")
                    continue
                ratio = taskq / other
                medians[db].setdefault("ratio", {})[row.label] = ratio
                text = f"{ratio:.2f}x" if ratio < 10 else f"{ratio:,.0f}x"
                if db in row.ratio_min:
                    text += verdict(ratio >= row.ratio_min[db])
                if row.ratio_max is not None:
                    text += verdict(ratio <= row.ratio_max)
                line.append(text)
        line.append(row.target)
        rows.append(line)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]

    def render(cells: list[str]) -> str:
        parts = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(parts) + " |"

    lines = [render(rows[0])]
    lines.append(
        "|" + "|".join(("-" * (w + 1) + (":" if i else "-")) for i, w in enumerate(widths)) + "|"
    )
    lines += [render(r) for r in rows[1:]]
    return "\n".join(lines), medians


# -- main ----------------------------------------------------------------------------------


def parse_list(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    aliases = {
        "pg": "postgres",
        "postgresql": "postgres",
        "djq2": "django-q2",
        "django_q": "django-q2",
    }
    canonical = {a.lower(): a for a in allowed}
    items = [i.strip().lower() for i in text.split(",") if i.strip()]
    items = [canonical.get(aliases.get(i, i), i) for i in items]
    unknown = [i for i in items if i not in allowed]
    if unknown or not items:
        raise argparse.ArgumentTypeError(f"{what}: choose from {', '.join(allowed)}")
    return [a for a in allowed if a in items]  # in the canonical order


def parse_setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set wants KEY=VALUE, not {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def conn_max_age(text: str) -> str:
    if text.lower() == "none" or text.isdigit():
        return text.lower()
    raise argparse.ArgumentTypeError("--conn-max-age wants whole seconds or 'none'")


def host_description() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.system()} {platform.release()}, {cpus} CPUs{', ' + model if model else ''}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small N and one run (< 2 min)")
    parser.add_argument("--runs", type=int, help="runs of each measurement (default 3, quick 1)")
    parser.add_argument(
        "--systems", default="taskq,django-q2", type=lambda t: parse_list(t, SYSTEMS, "--systems")
    )
    parser.add_argument(
        "--db",
        default=None,
        type=lambda t: parse_list(t, DATABASES, "--db"),
        help="redis: results in SQLite, the broker Redis (default: sqlite,postgres, plus "
        "redis outside --quick when redis-server is installed)",
    )
    parser.add_argument(
        "--workloads",
        default="W1,W2,W3,W4,W5,K1",
        type=lambda t: parse_list(t, ("W1", "W2", "W3", "W4", "W5", "K1"), "--workloads"),
        help="W5 is measured during W2's 4-worker run; K1 runs on Redis only",
    )
    parser.add_argument("--n", type=int, help="tasks of W1 and W2, both systems")
    parser.add_argument("--latency-n", type=int, help="tasks of W3, both systems")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        type=parse_setting,
        metavar="KEY=VALUE",
        help="a Q_CLUSTER key for both systems (JSON value)",
    )
    parser.add_argument(
        "--pg-server",
        choices=("stock", "fast"),
        default="stock",
        help="the throwaway PostgreSQL: 'stock' as packaged (fsync on, scram-sha-256 "
        "password over TCP; default), 'fast' as the tests run it (fsync off, trust)",
    )
    parser.add_argument(
        "--conn-max-age",
        default="0",
        type=conn_max_age,
        help="DATABASES CONN_MAX_AGE of both systems: seconds or 'none' "
        "(persistent); default 0, Django's",
    )
    parser.add_argument(
        "--sqlite-options",
        choices=("recommended", "django"),
        default="recommended",
        help="SQLite OPTIONS of both systems: 'recommended', those of taskq's installation "
        "guide (WAL, synchronous=NORMAL, IMMEDIATE transactions, timeout 20 s; default), "
        "or 'django', none (Django's defaults: rollback journal, synchronous=FULL, "
        "deferred transactions, timeout 5 s)",
    )
    parser.add_argument(
        "--envdir",
        type=Path,
        default=ROOT / ".nox" / "bench-envs",
        help="where the two virtualenvs are kept between runs",
    )
    parser.add_argument(
        "--json",
        type=Path,
        help="where to write every figure (default .nox/bench-results/bench-<time>.json)",
    )
    parser.add_argument(
        "--max-minutes", type=float, help="skip what is left after this long (default 10, quick 5)"
    )
    parser.add_argument("--keep", action="store_true", help="keep every run's directory and logs")
    args = parser.parse_args(argv)
    if args.db is None:  # --quick keeps to two minutes: Redis rows on request only
        with_redis = redis_available() and not args.quick
        args.db = ["sqlite", "postgres"] + (["redis"] if with_redis else [])

    sizes = QUICK if args.quick else FULL
    if args.runs:
        sizes = sizes.replace(runs=args.runs)
    if args.n:
        sizes = sizes.replace(tasks=both(args.n))
    if args.latency_n:
        sizes = sizes.replace(latency=both(args.latency_n))
    budget = 60 * (args.max_minutes or (5 if args.quick else 150))
    q_cluster = {**Q_CLUSTER, **dict(args.settings)}
    jobs = plan_jobs(set(args.workloads), sizes)
    signal.signal(signal.SIGTERM, interrupt)  # as Ctrl-C: stop what was started, then exit
    began = time.monotonic()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = args.json or ROOT / ".nox" / "bench-results" / f"bench-{stamp}.json"
    scratch = Path(tempfile.mkdtemp(prefix="taskq-bench-"))
    server = None
    redis_server = None
    redis: tuple[str, int] | None = None
    failed = False
    try:
        args.envdir.mkdir(parents=True, exist_ok=True)
        pythons = {}
        if "taskq" in args.systems:
            pythons["taskq"] = build_taskq(args.envdir, scratch)
        if "django-q2" in args.systems:
            pythons["django-q2"] = build_django_q2(args.envdir)
        pg_env: dict[str, str] = {}
        pg_note = ""
        if "postgres" in args.db:
            if os.environ.get("TASKQ_PG_HOST"):
                pg_env = {k: v for k, v in os.environ.items() if k.startswith("TASKQ_PG_")}
                pg_note = f"the server at {pg_env['TASKQ_PG_HOST']} (TASKQ_PG_HOST)"
            else:
                pgserver = load_pgserver()
                stock = args.pg_server == "stock"
                server = pgserver.PostgresServer(stock=stock).start()
                pg_env = server.env
                conf = (
                    "as packaged: fsync, synchronous_commit and full_page_writes on, "
                    "scram-sha-256 password authentication over TCP"
                    if stock
                    else ", ".join(
                        f"{k}={pgserver.SERVER_SETTINGS[k]}"
                        for k in ("fsync", "synchronous_commit", "full_page_writes")
                    )
                    + ", trust authentication (--pg-server fast)"
                )
                pg_note = f"throwaway server on {server.host}:{server.port} ({conf})"
                log(f"PostgreSQL from {server.bindir} on {server.host}:{server.port}")

        redis_note = ""
        if "redis" in args.db:
            redisserver = load_helper("redisserver")
            redis_server = redisserver.RedisServer().start()
            redis = (redis_server.host, redis_server.port)
            redis_note = f"throwaway server {redis_server.binary} on {redis[0]}:{redis[1]}"
            log(f"Redis: {redis_note}")

        plan = [
            (run, db, job, system)
            for run in range(sizes.runs)
            for db in args.db
            for job in jobs
            if db in job.dbs
            for system in args.systems
        ]
        results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        outcomes = []
        for index, (run, db, job, system) in enumerate(plan, 1):
            if time.monotonic() - began > budget:
                outcome = {
                    "system": system,
                    "db": db,
                    "job": job.key,
                    "status": "skipped",
                    "message": f"over the {budget / 60:.0f}-minute budget",
                }
            else:
                workdir = scratch / f"{index:03d}-{db}-{system}-{job.key}-run{run + 1}"
                outcome = run_job(
                    job,
                    system,
                    db,
                    pythons[system],
                    sizes,
                    q_cluster,
                    pg_env,
                    workdir,
                    args.conn_max_age,
                    redis if db == "redis" else None,
                    sqlite_options=args.sqlite_options,
                )
                log(
                    f"{index}/{len(plan)} {LABEL[system]} {LABEL[db]} {job.key} "
                    f"run {run + 1}: {outcome['status']} in {outcome['wall_s']:.1f} s"
                )
                for name, figures in outcome.get("figures", {}).items():
                    print(
                        f"    {name}: "
                        + ", ".join(
                            f"{k}={v:.4g}" if isinstance(v, int | float) else f"{k}={v!r}"
                            for k, v in figures.items()
                            if v is not None
                        ),
                        flush=True,
                    )
            outcome["run"] = run + 1
            outcomes.append(outcome)
            results.setdefault((db, system, job.key), []).append(outcome)
            if outcome["status"] not in ("ok", "skipped"):
                failed = True
                log(f"  {outcome.get('message', '')}\n{outcome.get('log_tail', '')}")

        table, medians = build_table(results, args.systems, args.db, jobs)
        versions: dict[str, str] = {}
        for outcome in outcomes:
            versions.update(outcome.get("versions", {}))
        elapsed = time.monotonic() - began
        report = describe(args, sizes, q_cluster, versions, pg_note, elapsed, redis_note)
        print()
        print(report)
        print()
        print(table)
        print()
        print(READING)
        problems = [o for o in outcomes if o["status"] != "ok"]
        for o in problems:
            where = f" (logs: {o['log']})" if o.get("log") else ""
            print(
                f"- {LABEL[o['system']]} {LABEL[o['db']]} {o['job']} run {o['run']}: "
                f"{o['status']}: {o.get('message', '')}{where}"
            )
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(
            json.dumps(
                {
                    "date": stamp,
                    "mode": "quick" if args.quick else "full",
                    "duration_s": elapsed,
                    "settings": report,
                    "sizes": sizes.__dict__,
                    "q_cluster": q_cluster,
                    "versions": versions,
                    "host": host_description(),
                    "medians": medians,
                    "table": table,
                    "runs": outcomes,
                },
                indent=2,
            )
        )
        print(f"\nEvery figure: {json_path}")
    except KeyboardInterrupt:
        print("\nInterrupted: every process the benchmark started was stopped.")
        return 130
    finally:
        if server is not None:
            server.stop()
        if redis_server is not None:
            redis_server.stop()
        if (failed or args.keep) and scratch.exists():
            print(f"Run directories kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failed else 0


READING = """\
Medians of the runs (a count such as (2/3) marks runs that failed). Ratios are taskq /
Django-Q2: above 1 taskq is faster for rates, below 1 it is faster (or smaller) for
latencies and memory. ✓/✗: whether the target is met. W2 times from starting qcluster
to the last result stored, start-up included. W5 is the peak memory of the whole
qcluster process group during W2 with 4 workers (RSS summed over processes; PSS counts
shared pages once). See docs/benchmark.md."""


def describe(
    args: argparse.Namespace,
    sizes: Sizes,
    q_cluster: dict[str, Any],
    versions: dict[str, str],
    pg_note: str,
    elapsed: float,
    redis_note: str = "",
) -> str:
    mode = "quick (--quick)" if args.quick else "full"

    def per_system(sizes_of: dict[str, int]) -> str:
        shown = {s: sizes_of[s] for s in args.systems}
        if len(set(shown.values())) == 1:
            return f"{next(iter(shown.values())):,}"
        return ", ".join(f"{LABEL[s]} {n:,}" for s, n in shown.items())

    def ideal() -> str:
        ideals = {s: f"{sizes.ideal(s):.2f} s" for s in args.systems}
        if len(set(ideals.values())) == 1:
            return next(iter(ideals.values()))
        return ", ".join(f"{LABEL[s]} {v}" for s, v in ideals.items())

    workloads = {
        "W1": f"enqueue {per_system(sizes.tasks)} no-op tasks one by one (autocommit) "
        "from one process",
        "W2": "drain W1's tasks with 2 workers, and as many committed at once with 4 workers; "
        "timed from starting qcluster until the queue is empty (every result stored)",
        "W3": f"{per_system(sizes.latency)} single no-op tasks, one at a time with random "
        f"0-{W3_GAP_MS} ms pauses, on an idle cluster of {sizes.sleep_workers} workers",
        "W4": f"{per_system(sizes.sleeps)} x {sizes.sleep * 1000:.0f} ms sleeps committed at "
        f"once on an idle cluster of {sizes.sleep_workers} workers (ideal {ideal()})",
        "W5": "peak memory of the qcluster process group during W2 with 4 workers",
        "K1": "(Redis) 200 tasks of 0.2 s that append their number to a ledger file; qcluster "
        "with 4 workers, SIGKILL to its process group 1 s after the first task is done, a new "
        "qcluster until every task is accounted for (or idle 12 s, or 60 s); lost = neither "
        "in the ledger nor with a result row",
    }
    lines = [
        f"taskq benchmark, {mode}: {sizes.runs} run(s) of each figure, in {elapsed / 60:.1f} min",
        f"Host: {host_description()}",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        f"Q_CLUSTER, both systems: {json.dumps(q_cluster)} and workers as below; "
        "every other key at its default",
    ]
    lines += [f"{w}: {text}" for w, text in workloads.items() if w in args.workloads]
    if len(args.systems) > 1 and any(
        len({sizes_of[s] for s in args.systems}) > 1
        for sizes_of in (sizes.tasks, sizes.latency, sizes.sleeps)
    ):
        lines.append(
            "Fewer tasks for Django-Q2 (quick): rates, percentiles and efficiencies are per "
            "task, so they still compare, but start-up weighs more on fewer tasks"
        )
    lines.append(f"DATABASES: CONN_MAX_AGE={args.conn_max_age} (Django's default is 0)")
    if "sqlite" in args.db:
        if args.sqlite_options == "recommended":
            lines.append(
                "SQLite: a new file per run; WAL, synchronous=NORMAL, IMMEDIATE transactions, "
                "timeout 20 s (--sqlite-options recommended)"
            )
        else:
            lines.append(
                "SQLite: a new file per run; no OPTIONS, Django's defaults: rollback journal, "
                "synchronous=FULL, deferred transactions, timeout 5 s (--sqlite-options django)"
            )
    if "postgres" in args.db:
        lines.append(f"PostgreSQL: {pg_note}; a new database per run")
    if "redis" in args.db:
        lines.append(
            f"Redis: {redis_note}, FLUSHALL before each run; results in a new SQLite file per "
            f'run (as above); Q_CLUSTER without "orm", with {json.dumps(REDIS_Q_CLUSTER)} '
            '(W2 and W4 end when every result is stored) and "redis": a URL for taskq, '
            '{"host", "port", "db": 0} for Django-Q2; K1 also with '
            f"{json.dumps(K1_Q_CLUSTER)}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
