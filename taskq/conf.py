"""``Q_CLUSTER`` → one frozen, typed :class:`ClusterConfig`.

Settings are read when first used, never at import time, and the cached config is
dropped whenever Django's ``setting_changed`` fires, so ``override_settings`` works.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .exceptions import ConfigurationError

SETTING_NAMES = ("Q_CLUSTER", "TIME_ZONE", "SECRET_KEY", "SECRET_KEY_FALLBACKS", "DATABASES")
UNSHIPPED_BROKERS = ("sqs", "iron_mq", "mongo", "mongo_db")
IGNORED_KEYS = ("has_replica", "testing", "save", "ack_failure")


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
    """The effective settings of one cluster (``Q_CLUSTER`` plus its ``ALT_CLUSTERS`` entry)."""

    name: str = "default"  # project name: default queue key, signing salt
    cluster_name: str = ""  # queue key this cluster serves; "" means ``name``
    workers: int = field(default_factory=default_workers)
    daemonize_workers: bool = True
    recycle: int = 500  # tasks a worker runs before it is replaced
    max_rss: int | None = None  # KiB of resident memory before a worker is replaced
    timeout: float | None = None  # seconds a task may run; None = no limit
    retry: float = 60  # seconds without heartbeat before a cluster counts as dead
    max_attempts: int = 1  # deliveries of a failing task; 0 = unlimited
    ack_failures: bool = False
    queue_limit: int | None = None  # tasks held by one cluster; None = workers * 2
    bulk: int = 1  # most tasks claimed in one round trip
    poll: float = 0.2  # seconds between polls of an idle queue without push wake-ups
    orm: str = "default"  # database alias of the ORM broker
    redis: dict[str, Any] | str | None = None
    django_redis: str | None = None
    broker_class: str | None = None
    compress: bool = False
    save_limit: int = 250  # successes kept; 0 = all, -1 = none
    save_limit_per: str | None = None  # "group", "name" or "func"
    guard_cycle: float = 0.5
    scheduler: bool = True
    schedule_interval: float = 1.0  # seconds between scheduler runs
    heartbeat: float = 5.0  # seconds between cluster heartbeats
    catch_up: bool = True
    label: str = "Django Q"
    cpu_affinity: int = 0
    sync: bool = False
    cache: str = "default"
    cached: bool | int = False
    time_zone: str = ""  # "" means settings.TIME_ZONE
    error_reporter: dict[str, Any] = field(default_factory=dict)
    log_level: str = "INFO"

    @property
    def queue_key(self) -> str:
        """The queue this cluster serves and tasks go to by default."""
        return self.cluster_name or self.name

    @property
    def prefetch(self) -> int:
        """Most tasks one cluster holds at once."""
        return self.queue_limit if self.queue_limit is not None else self.workers * 2

    @property
    def zone(self) -> str:
        return self.time_zone or settings.TIME_ZONE or "UTC"


FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "cluster_name": (str,),
    "workers": (int,),
    "daemonize_workers": (bool,),
    "recycle": (int,),
    "max_rss": (int, type(None)),
    "timeout": (int, float, type(None)),
    "retry": (int, float),
    "max_attempts": (int,),
    "ack_failures": (bool,),
    "queue_limit": (int, type(None)),
    "bulk": (int,),
    "poll": (int, float),
    "orm": (str,),
    "redis": (dict, str, type(None)),
    "django_redis": (str, type(None)),
    "broker_class": (str, type(None)),
    "compress": (bool,),
    "save_limit": (int,),
    "save_limit_per": (str, type(None)),
    "guard_cycle": (int, float),
    "scheduler": (bool,),
    "schedule_interval": (int, float),
    "heartbeat": (int, float),
    "catch_up": (bool,),
    "label": (str,),
    "cpu_affinity": (int,),
    "sync": (bool,),
    "cache": (str,),
    "cached": (bool, int),
    "time_zone": (str, type(None)),
    "error_reporter": (dict,),
    "log_level": (str,),
}
KNOWN_KEYS = frozenset(FIELD_TYPES) | {"ALT_CLUSTERS"}
POSITIVE = ("workers", "recycle", "bulk")
NON_NEGATIVE = ("max_attempts", "cpu_affinity")
POSITIVE_SECONDS = ("retry", "poll", "guard_cycle", "schedule_interval", "heartbeat")


def type_problem(key: str, value: Any) -> str | None:
    """Why ``value`` cannot be used for ``key``, or None when it can."""
    types = FIELD_TYPES[key]
    if isinstance(value, bool) and bool not in types:
        return f"must be {describe(types)}, not a bool"
    if not isinstance(value, types):
        return f"must be {describe(types)}, not {type(value).__name__} {value!r}"
    if isinstance(value, bool) or value is None:
        return None
    if key in POSITIVE and value < 1:
        return f"must be at least 1, not {value!r}"
    if key in NON_NEGATIVE and value < 0:
        return f"must not be negative, not {value!r}"
    if key in POSITIVE_SECONDS and value <= 0:
        return f"must be a positive number of seconds, not {value!r}"
    if key == "timeout" and value <= 0:
        return f"must be a positive number of seconds or None, not {value!r}"
    if key == "queue_limit" and value < 1:
        return f"must be at least 1 or None, not {value!r}"
    if key == "save_limit_per" and value not in ("group", "name", "func"):
        return f"must be 'group', 'name', 'func' or None, not {value!r}"
    return None


def describe(types: tuple[type, ...]) -> str:
    names = ["None" if t is type(None) else t.__name__ for t in types]
    return " or ".join(names)


def raw_settings() -> dict[str, Any]:
    raw = getattr(settings, "Q_CLUSTER", None) or {}
    if not isinstance(raw, dict):
        raise ConfigurationError(f"Q_CLUSTER must be a dict, not {type(raw).__name__}")
    return raw


def selected_cluster_name(cluster_name: str | None = None) -> str | None:
    """The cluster asked for: an explicit name, else ``Q_CLUSTER_NAME`` from the environment."""
    return cluster_name or os.environ.get("Q_CLUSTER_NAME") or None


def build_config(raw: dict[str, Any], cluster_name: str | None = None) -> ClusterConfig:
    """Make a :class:`ClusterConfig`, raising :class:`ConfigurationError` on bad values."""
    merged = {k: v for k, v in raw.items() if k in FIELD_TYPES}
    if cluster_name and cluster_name != merged.get("name", "default"):
        merged["cluster_name"] = cluster_name
        alt = (raw.get("ALT_CLUSTERS") or {}).get(cluster_name) or {}
        merged.update(
            {k: v for k, v in alt.items() if k in FIELD_TYPES and k not in ("name", "cluster_name")}
        )
    for key, value in merged.items():
        problem = type_problem(key, value)
        if problem:
            raise ConfigurationError(f"Q_CLUSTER[{key!r}] {problem}")
    if merged.get("time_zone") is None:
        merged.pop("time_zone", None)
    return ClusterConfig(**merged)


@cache
def _cached_config(cluster_name: str | None) -> ClusterConfig:
    return build_config(raw_settings(), cluster_name)


def get_config(cluster_name: str | None = None) -> ClusterConfig:
    """The effective config; ``cluster_name`` (or ``Q_CLUSTER_NAME``) selects ALT_CLUSTERS."""
    return _cached_config(selected_cluster_name(cluster_name))


def replace(config: ClusterConfig, **changes: Any) -> ClusterConfig:
    return dataclasses.replace(config, **changes)


@receiver(setting_changed)
def _reset(setting: str, **kwargs: Any) -> None:
    if setting in SETTING_NAMES:
        _cached_config.cache_clear()
