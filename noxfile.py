"""taskq's development sessions. ``nox -l`` lists them; ``nox -t ci`` runs what CI runs.

- ``tests``: the test suite, per Python / Django / database. The PostgreSQL runs start a
  throwaway server (``taskq_tests/pgserver.py``) unless ``TASKQ_PG_HOST`` is set, in which
  case ``TASKQ_PG_*`` from the environment are used as they are. Every run starts a
  throwaway redis-server (``taskq_tests/redisserver.py``) unless ``TASKQ_REDIS_URL`` is set.
  Pass pytest arguments after ``--``: ``nox -s "tests(3.11-django5.2-sqlite)" -- -x -k chain``.
- ``lint``: ruff check and ruff format --check.
- ``docs``: the Sphinx documentation, warnings as errors.
- ``example``: the example project with an admin at http://127.0.0.1:8000/admin/
  (``nox -s example -- --check`` runs it unattended and exits).
- ``browser``: headless Chromium (Debian's ``chromium``) tours the example project's admin
  and saves a screenshot of each page (``taskq_tests/browser/tour.py``; ``-- --out DIR``).
- ``bench``: taskq against Django-Q2 (``taskq_tests/bench/run.py``, docs/benchmark.md);
  not run by ``-t ci``. ``nox -s bench -- --quick`` (SQLite and PostgreSQL) takes under two minutes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = False
nox.options.error_on_external_run = True

ROOT = Path(__file__).resolve().parent
LINT_PATHS = ["taskq", "taskq_tests", "example_project", "docs/conf.py", "noxfile.py"]
RUFF = "ruff>=0.17,<0.18"  # pinned to a minor: ruff's rules and format change between them
TEST_DEPS = [
    "pytest",
    "pytest-django",
    "hypothesis",
    "pytest-timeout",
    "psycopg[binary]",
    "redis",
    "django-redis",
]
DJANGO = {
    "5.2": "django>=5.2,<5.3",
    "6.1": "django>=6.0,<6.2",  # the newest 6.x on PyPI
}
# django-prodserver as each major documents it: 2.x (`prodserver worker`), 3.x (`worker worker`)
PRODSERVER = {"5.2": "django-prodserver>=2.4,<3", "6.1": "django-prodserver>=3,<4"}
# Django's tasks framework: built into Django 6; on 5.2 the django-tasks backport
TASKS_FRAMEWORK = {"5.2": ["django-tasks>=0.12,<0.13"], "6.1": []}
TEST_MATRIX = [
    nox.param(python, django, db, id=f"{python}-django{django}-{db}")
    for python, django in (("3.11", "5.2"), ("3.12", "6.1"))
    for db in ("sqlite", "postgres")
]
DEFAULT_PYTEST_ARGS = ["-q", "-p", "no:cacheprovider"]


def install_project(session: nox.Session, *requirements: str) -> None:
    """Install the checkout (not editable) with ``requirements``.

    setuptools builds in ``build/`` inside the checkout and never removes a module from
    it, so a renamed or deleted file would still be installed: start from a clean one.
    """
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    session.install(".", *requirements)


def _pgserver() -> ModuleType:
    return _test_module("pgserver")


def _test_module(name: str) -> ModuleType:
    """Load taskq_tests/NAME.py by path (stdlib only; taskq_tests is not imported)."""
    path = ROOT / "taskq_tests" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"taskq_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@nox.session(tags=["ci"])
@nox.parametrize(("python", "django", "db"), TEST_MATRIX)
def tests(session: nox.Session, django: str, db: str) -> None:
    install_project(
        session, DJANGO[django], PRODSERVER[django], *TASKS_FRAMEWORK[django], *TEST_DEPS
    )
    pytest = ["python", "-m", "pytest", "--timeout=300", *(session.posargs or DEFAULT_PYTEST_ARGS)]
    with _redis_server(session) as redis_env:
        env = {"TASKQ_TEST_DB": db, **redis_env}
        if db != "postgres" or os.environ.get("TASKQ_PG_HOST"):
            session.run(*pytest, env=env)
            return
        server = _pgserver().PostgresServer()
        try:
            server.start()
            session.log(f"PostgreSQL from {server.bindir} on {server.host}:{server.port}")
            session.run(*pytest, env={**env, **server.env})
        finally:
            server.stop()


@contextlib.contextmanager
def _redis_server(session: nox.Session) -> Iterator[dict[str, str]]:
    """A throwaway redis-server for the Redis tests, unless ``TASKQ_REDIS_URL`` is set.

    Without a ``redis-server`` binary the Redis tests skip, except under CI, which fails.
    """
    if os.environ.get("TASKQ_REDIS_URL"):
        yield {}
        return
    module = _test_module("redisserver")
    try:
        server = module.RedisServer()
    except module.RedisNotFound as exc:
        if os.environ.get("CI"):
            session.error(str(exc))
        session.warn(f"the Redis tests will be skipped: {exc}")
        yield {}
        return
    with server:
        session.log(f"Redis from {server.binary} on {server.url}")
        yield server.env


@nox.session(tags=["ci"])
def lint(session: nox.Session) -> None:
    session.install(RUFF)
    session.run("ruff", "check", *LINT_PATHS)
    session.run("ruff", "format", "--check", *LINT_PATHS)


@nox.session(tags=["ci"])
def docs(session: nox.Session) -> None:
    install_project(session, "sphinx", "myst-parser", "furo")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session(default=False)
def example(session: nox.Session) -> None:
    install_project(session)
    # run.py stops its children itself on Ctrl-C: give it time before nox escalates.
    session.run(
        "python",
        "example_project/run.py",
        *session.posargs,
        interrupt_timeout=60,
        terminate_timeout=10,
    )


@nox.session(tags=["ci"])
def browser(session: nox.Session) -> None:
    install_project(session, "playwright")  # drives /usr/bin/chromium: no browser download
    session.run(
        "python",
        "taskq_tests/browser/tour.py",
        *session.posargs,
        interrupt_timeout=60,
        terminate_timeout=10,
    )


@nox.session(python="3.12", default=False)
def bench(session: nox.Session) -> None:
    # The driver builds its own virtualenvs (taskq from the checkout, Django-Q2 from
    # PyPI) and starts PostgreSQL unless TASKQ_PG_HOST is set: nothing to install here.
    session.run(
        "python",
        "taskq_tests/bench/run.py",
        *session.posargs,
        interrupt_timeout=60,
        terminate_timeout=10,
    )
