"""Django settings of the benchmark's processes, for taskq and for Django-Q2 alike.

``run.py`` sets the environment:

- ``BENCH_SYSTEM``: ``taskq`` or ``django-q2`` (the app in ``INSTALLED_APPS``);
- ``BENCH_DB``: ``sqlite`` (the file ``BENCH_SQLITE_NAME``), ``postgres``
  (``TASKQ_PG_HOST``/``PORT``/``USER``/``PASSWORD``, database ``BENCH_PG_NAME``) or
  ``redis`` (results in the SQLite file ``BENCH_SQLITE_NAME``; the broker is the Redis
  server of ``Q_CLUSTER["redis"]``, which ``run.py`` puts there);
- ``BENCH_Q_CLUSTER``: ``Q_CLUSTER`` as JSON, the same for both systems (but for the form
  of ``"redis"``: a URL for taskq, ``redis.Redis`` arguments for Django-Q2);
- ``BENCH_CONN_MAX_AGE``: ``CONN_MAX_AGE`` of the database (``none``: persistent;
  default 0, as Django's);
- ``BENCH_SQLITE_OPTIONS``: ``recommended`` (default: the OPTIONS of taskq's installation
  guide) or ``django`` (no OPTIONS: Django's defaults).
"""

import json
import os

APPS = {"taskq": "taskq", "django-q2": "django_q"}
SYSTEM = os.environ.get("BENCH_SYSTEM", "taskq")
if SYSTEM not in APPS:
    raise RuntimeError(f"BENCH_SYSTEM must be one of {sorted(APPS)}, not {SYSTEM!r}")

SECRET_KEY = "taskq-bench-not-secret"
DEBUG = False  # with DEBUG, Django keeps every query in memory
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = [APPS[SYSTEM]]

DB = os.environ.get("BENCH_DB", "sqlite")
# Django's default is 0: a new connection for each request (and Django-Q2's every broker call).
_AGE = os.environ.get("BENCH_CONN_MAX_AGE", "0").lower()
CONN_MAX_AGE = None if _AGE in ("none", "") else int(_AGE)
# SQLite's OPTIONS: "recommended" (default), those of taskq's installation guide; "django",
# none at all, as Django's default (rollback journal, deferred transactions, 5 s timeout).
SQLITE_OPTIONS = os.environ.get("BENCH_SQLITE_OPTIONS", "recommended")
if SQLITE_OPTIONS not in ("recommended", "django"):
    raise RuntimeError(
        f"BENCH_SQLITE_OPTIONS must be 'recommended' or 'django', not {SQLITE_OPTIONS!r}"
    )
if DB in ("sqlite", "redis"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("BENCH_SQLITE_NAME", "bench.sqlite3"),
            "CONN_MAX_AGE": CONN_MAX_AGE,
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            }
            if SQLITE_OPTIONS == "recommended"
            else {},
        }
    }
elif DB == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("TASKQ_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("TASKQ_PG_PORT", "5432"),
            "USER": os.environ.get("TASKQ_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("TASKQ_PG_PASSWORD", ""),
            "NAME": os.environ.get("BENCH_PG_NAME", "taskq_bench"),
            "CONN_MAX_AGE": CONN_MAX_AGE,
        }
    }
else:
    raise RuntimeError(f"BENCH_DB must be 'sqlite', 'postgres' or 'redis', not {DB!r}")

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
Q_CLUSTER = json.loads(os.environ.get("BENCH_Q_CLUSTER") or '{"name": "bench", "orm": "default"}')
