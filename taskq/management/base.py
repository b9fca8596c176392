"""What taskq's management commands share."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from taskq.dbfeatures import settle_sqlite_json_support


class TaskqCommand(BaseCommand):
    """A command whose system checks are not failed by a busy SQLite database.

    A cluster started, or ``qclean`` run from cron, while the application holds SQLite's
    write lock would otherwise stop with "SQLite does not support JSONFields"
    (``fields.E180``; :mod:`taskq.dbfeatures` says why).
    """

    def check(self, *args: Any, **kwargs: Any) -> None:
        settle_sqlite_json_support()
        super().check(*args, **kwargs)
