"""System checks for ``Q_CLUSTER`` (``manage.py check``).

Errors ``taskq.E0xx`` stop the project from running tasks; warnings ``taskq.W0xx``
point at settings that are ignored or risky.
"""

from __future__ import annotations

import difflib
import importlib.util
from typing import Any

from django.conf import settings
from django.core import checks

from .conf import FIELD_TYPES, IGNORED_KEYS, KNOWN_KEYS, UNSHIPPED_BROKERS, type_problem

DOCS = "See the configuration page of taskq's documentation."


def error(msg: str, hint: str, n: int) -> checks.Error:
    return checks.Error(msg, hint=hint, id=f"taskq.E{n:03d}")


def warning(msg: str, hint: str, n: int) -> checks.Warning:
    return checks.Warning(msg, hint=hint, id=f"taskq.W{n:03d}")


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    raw = getattr(settings, "Q_CLUSTER", None)
    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [error(f"Q_CLUSTER must be a dict, not {type(raw).__name__}.", DOCS, 1)]
    problems = check_keys(raw, "Q_CLUSTER")
    alt = raw.get("ALT_CLUSTERS", {})
    if not isinstance(alt, dict):
        problems.append(error("Q_CLUSTER['ALT_CLUSTERS'] must be a dict of dicts.", DOCS, 2))
    else:
        for name, overrides in alt.items():
            where = f"Q_CLUSTER['ALT_CLUSTERS'][{name!r}]"
            if not isinstance(overrides, dict):
                problems.append(error(f"{where} must be a dict.", DOCS, 2))
                continue
            problems += check_keys(overrides, where)
            problems += check_values({**raw, **overrides}, where)
    return problems + check_values(raw, "Q_CLUSTER")


def check_keys(raw: dict[str, Any], where: str) -> list[checks.CheckMessage]:
    problems: list[checks.CheckMessage] = []
    for key, value in raw.items():
        if key in UNSHIPPED_BROKERS:
            problems.append(
                warning(
                    f"{where}[{key!r}] selects a broker that taskq does not ship; it is ignored.",
                    "Use the ORM broker (the default), 'redis', or your own 'broker_class'.",
                    2,
                )
            )
        elif key in IGNORED_KEYS:
            problems.append(warning(f"{where}[{key!r}] has no effect in taskq.", DOCS, 3))
        elif key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key, sorted(KNOWN_KEYS), n=1)
            hint = f"Did you mean {close[0]!r}?" if close else DOCS
            problems.append(warning(f"{where} has an unknown key {key!r}.", hint, 1))
        elif key != "ALT_CLUSTERS":
            problem = type_problem(key, value)
            if problem:
                types = FIELD_TYPES[key]
                problems.append(
                    error(f"{where}[{key!r}] {problem}.", f"Use {types_hint(types)}.", 3)
                )
    return problems


def types_hint(types: tuple[type, ...]) -> str:
    return " or ".join("None" if t is type(None) else t.__name__ for t in types)


def check_values(raw: dict[str, Any], where: str) -> list[checks.CheckMessage]:
    problems: list[checks.CheckMessage] = []
    retry, timeout = raw.get("retry", 60), raw.get("timeout")
    numbers = (int, float)
    if isinstance(retry, numbers) and isinstance(timeout, numbers) and retry <= timeout:
        problems.append(
            error(
                f"{where}: 'retry' ({retry}) must be greater than 'timeout' ({timeout}).",
                "A cluster that stops heartbeating for 'retry' seconds is presumed dead; make "
                "'retry' longer than any task may run ('timeout').",
                4,
            )
        )
    heartbeat, guard = raw.get("heartbeat", 5.0), raw.get("guard_cycle", 0.5)
    if isinstance(heartbeat, numbers) and isinstance(guard, numbers) and guard > heartbeat > 0:
        problems.append(
            warning(
                f"{where}: 'guard_cycle' ({guard}) is longer than 'heartbeat' ({heartbeat}).",
                "The Sentinel writes the heartbeat from its guard cycle, so it would come "
                f"every {guard} s, not every {heartbeat} s; keep 'guard_cycle' at most "
                "'heartbeat'.",
                7,
            )
        )
        heartbeat = guard  # how often heartbeats really come
    if isinstance(retry, numbers) and isinstance(heartbeat, numbers) and retry < 3 * heartbeat:
        problems.append(
            warning(
                f"{where}: 'retry' ({retry}) is shorter than three heartbeats ({3 * heartbeat}).",
                "A cluster that is merely slow could be presumed dead; raise 'retry'.",
                4,
            )
        )
    if (raw.get("redis") or raw.get("django_redis")) and not importlib.util.find_spec("redis"):
        problems.append(
            error(
                f"{where} selects the Redis broker but the 'redis' package is not installed.",
                "pip install 'taskq[redis]'",
                5,
            )
        )
    if not importlib.util.find_spec("croniter"):
        problems.append(
            error(
                "croniter is not installed; cron schedules cannot be validated or run.",
                "pip install croniter (a dependency of taskq).",
                6,
            )
        )
    reporters = raw.get("error_reporter") or {}
    if isinstance(reporters, dict):
        from .errorreporters import GROUPS, find

        for name in reporters:
            if find(name) is None:
                problems.append(
                    warning(
                        f"{where}['error_reporter'] names {name!r}, which no installed "
                        "package provides.",
                        f"Install the plug-in that registers {name!r} in the entry point "
                        f"group {GROUPS[0]!r} or {GROUPS[1]!r}.",
                        6,
                    )
                )
    orm = raw.get("orm", "default")
    if isinstance(orm, str) and orm not in settings.DATABASES:
        problems.append(
            error(
                f"{where}['orm'] names the database alias {orm!r}, which is not in DATABASES.",
                f"Use one of: {', '.join(sorted(settings.DATABASES))}.",
                7,
            )
        )
    elif isinstance(orm, str) and not (
        raw.get("redis") or raw.get("django_redis") or raw.get("broker_class")
    ):
        problems += check_sqlite_wal(orm)
    return problems


def check_sqlite_wal(alias: str) -> list[checks.CheckMessage]:
    """Warn when the broker's SQLite database is not configured for WAL and immediate writes."""
    db = settings.DATABASES[alias]
    if db.get("ENGINE") != "django.db.backends.sqlite3":
        return []
    options = db.get("OPTIONS", {})
    wal = "journal_mode=wal" in str(options.get("init_command", "")).lower().replace(" ", "")
    immediate = str(options.get("transaction_mode", "")).upper() == "IMMEDIATE"
    if wal and immediate:
        return []
    return [
        warning(
            f"The broker's SQLite database {alias!r} does not use WAL and immediate transactions.",
            "Add OPTIONS = {'transaction_mode': 'IMMEDIATE', 'timeout': 20, 'init_command': "
            "'PRAGMA journal_mode=WAL;'} so a web process and a cluster never see "
            "'database is locked'.",
            5,
        )
    ]
