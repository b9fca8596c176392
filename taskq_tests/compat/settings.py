"""Settings for the Django-Q2 compatibility subprocesses (``migrate``, ``read_rows.py``).

The database comes from the environment: ``TASKQ_COMPAT_SQLITE`` (path of a SQLite
file), or ``TASKQ_COMPAT_PG_NAME`` (a PostgreSQL database on the server given by
``TASKQ_PG_HOST``, ``TASKQ_PG_PORT``, ``TASKQ_PG_USER`` and ``TASKQ_PG_PASSWORD``).
``SECRET_KEY`` and the cluster name are those the fixtures were written with, so
that Django-Q2's signed queue payloads verify.
"""

import os

SECRET_KEY = "taskq-compat-fixture-secret"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "taskq"]
Q_CLUSTER = {"name": "compat"}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
LOGGING_CONFIG = None

if os.environ.get("TASKQ_COMPAT_PG_NAME"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("TASKQ_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("TASKQ_PG_PORT", "5432"),
            "USER": os.environ.get("TASKQ_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("TASKQ_PG_PASSWORD", ""),
            "NAME": os.environ["TASKQ_COMPAT_PG_NAME"],
        }
    }
elif os.environ.get("TASKQ_COMPAT_SQLITE"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["TASKQ_COMPAT_SQLITE"],
        }
    }
else:
    raise RuntimeError("set TASKQ_COMPAT_SQLITE or TASKQ_COMPAT_PG_NAME")
