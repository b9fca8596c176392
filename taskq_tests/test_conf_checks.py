"""ClusterConfig and the system checks."""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import override_settings

from taskq.checks import check_settings
from taskq.conf import ClusterConfig, build_config, get_config
from taskq.exceptions import ConfigurationError


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_defaults() -> None:
    config = ClusterConfig()
    assert config.retry == 60
    assert config.max_attempts == 1
    assert config.save_limit == 250
    assert config.bulk == 1
    assert config.poll == 0.2
    assert config.label == "Django Q"
    assert config.prefetch == config.workers * 2
    assert config.queue_key == "default"


def test_get_config_follows_override_settings() -> None:
    assert get_config().name == "tests"
    with override_settings(Q_CLUSTER={"name": "changed", "workers": 3}):
        assert get_config().name == "changed"
        assert get_config().workers == 3
    assert get_config().name == "tests"


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        get_config().workers = 9  # type: ignore[misc]


def test_alt_clusters_override_keys_for_the_named_cluster() -> None:
    raw = {"name": "site", "workers": 2, "ALT_CLUSTERS": {"fast": {"workers": 8, "name": "x"}}}
    fast = build_config(raw, "fast")
    assert fast.workers == 8
    assert fast.name == "site"
    assert fast.queue_key == "fast"
    assert build_config(raw).workers == 2


def test_q_cluster_name_environment_selects_the_cluster(monkeypatch) -> None:
    monkeypatch.setenv("Q_CLUSTER_NAME", "other")
    assert get_config().queue_key == "other"


def test_build_config_refuses_wrong_types() -> None:
    with pytest.raises(ConfigurationError, match="workers"):
        build_config({"workers": "4"})


@override_settings(Q_CLUSTER={"name": "tests", "wokers": 4})
def test_unknown_key_warns_with_did_you_mean() -> None:
    (message,) = check_settings()
    assert message.id == "taskq.W001"
    assert "'wokers'" in message.msg
    assert message.hint == "Did you mean 'workers'?"
    assert isinstance(message, checks.Warning)


@pytest.mark.parametrize(
    ("q_cluster", "expected"),
    [
        ({"workers": "4"}, "taskq.E003"),
        ({"workers": 0}, "taskq.E003"),
        ({"timeout": -1}, "taskq.E003"),
        ({"save_limit_per": "colour"}, "taskq.E003"),
        ({"retry": 30, "timeout": 60}, "taskq.E004"),
        ({"orm": "missing"}, "taskq.E007"),
        ({"sqs": {}}, "taskq.W002"),
        ({"retry": 5}, "taskq.W004"),
        ({"guard_cycle": 6}, "taskq.W007"),
        ({"guard_cycle": 30, "heartbeat": 5, "retry": 80}, "taskq.W004"),  # beats every 30 s
        ("not a dict", "taskq.E001"),
        ({"ALT_CLUSTERS": {"x": {"workres": 1}}}, "taskq.W001"),
        ({"error_reporter": {"no-such-reporter": {}}}, "taskq.W006"),
    ],
)
def test_checks_report_each_problem_with_an_id(q_cluster, expected: str) -> None:
    with override_settings(Q_CLUSTER=q_cluster):
        assert expected in ids(check_settings())


@override_settings(Q_CLUSTER={"name": "tests", "guard_cycle": 0.5, "heartbeat": 0.5})
def test_a_guard_cycle_as_long_as_the_heartbeat_is_fine() -> None:
    assert check_settings() == []


def test_redis_without_the_package_is_an_error(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n: None if n == "redis" else real(n))
    with override_settings(Q_CLUSTER={"redis": {"host": "127.0.0.1"}}):
        assert "taskq.E005" in ids(check_settings())


def test_sqlite_without_wal_warns(monkeypatch) -> None:
    from django.conf import settings

    from taskq.checks import check_sqlite_wal

    db = dict(settings.DATABASES["default"])
    if db["ENGINE"] != "django.db.backends.sqlite3":
        pytest.skip("SQLite only")
    monkeypatch.setitem(settings.DATABASES, "default", {**db, "OPTIONS": {}})
    assert ids(check_sqlite_wal("default")) == ["taskq.W005"]


def test_the_test_settings_pass_every_check() -> None:
    assert check_settings() == []


@pytest.mark.django_db
def test_manage_py_check_reports_a_misspelt_key_with_a_hint() -> None:
    import subprocess
    import sys

    from taskq_tests import clusters

    done = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        env=clusters.cluster_env(wokers=4),
        cwd=clusters.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert "taskq.W001" in output
    assert "Did you mean 'workers'?" in output
