"""Error reporters (Sentry, Rollbar, ...) from entry points, called on each task failure.

``Q_CLUSTER["error_reporter"] = {"sentry": {"dsn": "..."}}`` instantiates the entry
point named ``sentry`` of the group ``taskq.errorreporters`` (or Django-Q2's group
``djangoq.errorreporters``, so existing plug-ins keep working) with those keyword
arguments. Its ``report()`` is called inside the ``except`` block of a failed task, so
``sys.exc_info()`` is the task's exception.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

GROUPS = ("taskq.errorreporters", "djangoq.errorreporters")


def find(name: str) -> Any:
    from importlib.metadata import entry_points  # about 15 ms: only with a reporter set

    for group in GROUPS:
        for entry_point in entry_points(group=group):
            if entry_point.name == name:
                return entry_point.load()
    return None


def load(settings: dict[str, Any]) -> list[Any]:
    """Instantiate the configured reporters; an unknown name is logged and skipped."""
    reporters = []
    for name, options in settings.items():
        factory = find(name)
        if factory is None:
            logger.error(
                "error reporter %r is configured but no entry point provides it (groups %s)",
                name,
                ", ".join(GROUPS),
            )
            continue
        reporters.append(factory(**(options or {})))
    return reporters


def reporter_callback(settings: dict[str, Any]) -> Callable[[BaseException], None] | None:
    """A function to call on each task failure, or None when no reporter is configured."""
    if not settings:
        return None
    reporters = load(settings)
    if not reporters:
        return None

    def report(exc: BaseException) -> None:
        for reporter in reporters:
            try:
                reporter.report()
            except Exception:
                logger.exception("error reporter %r failed", reporter)

    return report
