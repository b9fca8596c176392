"""Settings for taskq's test suite. ``TASKQ_TEST_DB``: ``sqlite`` (default) or ``postgres``."""

import importlib.util
import json
import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "taskq-tests-not-secret"
SECRET_KEY_FALLBACKS = [
    k for k in os.environ.get("TASKQ_TEST_SECRET_KEY_FALLBACKS", "").split(",") if k
]
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "taskq_tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "taskq",
]
if importlib.util.find_spec("django_prodserver"):
    INSTALLED_APPS.append("django_prodserver")
    PRODUCTION_PROCESSES = {
        "worker": {
            "BACKEND": "taskq.prodserver.TaskqWorker",
            "ARGS": {"verbosity": "1", "cluster-name": "priority"},
        }
    }

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"

TEST_DB = os.environ.get("TASKQ_TEST_DB", "sqlite")
if TEST_DB == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("TASKQ_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("TASKQ_PG_PORT", "5432"),
            "USER": os.environ.get("TASKQ_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("TASKQ_PG_PASSWORD", ""),
            "NAME": os.environ.get("TASKQ_PG_NAME", "taskq"),
        }
    }
elif TEST_DB == "sqlite":
    # A file (not :memory:) so that cluster subprocesses can share the test database.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("TASKQ_SQLITE_NAME", str(BASE_DIR / "taskq-test.sqlite3")),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": float(os.environ.get("TASKQ_SQLITE_TIMEOUT", "30")),
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # One test database per test run, so that runs in parallel never share a file.
            "TEST": {
                "NAME": os.environ.get(
                    "TASKQ_SQLITE_TEST_NAME",
                    str(Path(tempfile.gettempdir()) / f"taskq-test-{os.getpid()}.sqlite3"),
                )
            },
        }
    }
else:
    raise RuntimeError(f"TASKQ_TEST_DB must be 'sqlite' or 'postgres', not {TEST_DB!r}")

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
Q_CLUSTER = {"name": "tests", "workers": 2, "timeout": 30, "retry": 60}
# Cluster subprocesses started by the tests get their Q_CLUSTER through the environment.
if os.environ.get("TASKQ_TEST_Q_CLUSTER"):
    Q_CLUSTER = json.loads(os.environ["TASKQ_TEST_Q_CLUSTER"])
LOGGING_CONFIG = None

# Django's tasks framework, where installed (Django 6: django.tasks; Django 5.2: the
# django-tasks backport, an app): taskq_tests/test_backends.py runs its tasks on taskq.
if importlib.util.find_spec("django.tasks") is None and importlib.util.find_spec("django_tasks"):
    INSTALLED_APPS.append("django_tasks")
if "django_tasks" in INSTALLED_APPS or importlib.util.find_spec("django.tasks"):
    TASKS = {
        "default": {
            "BACKEND": "taskq.backends.TaskqBackend",
            "QUEUES": ["default", "emails"],
        }
    }
