"""``manage.py qmonitor``: a live view of every cluster, refreshed every second."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandParser

from taskq import dashboard
from taskq.conf import get_config
from taskq.management.base import TaskqCommand


class Command(TaskqCommand):
    help = "Live view of the clusters and the queue; q or Ctrl-C quits."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--run-once", action="store_true", help="Print one frame and exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        dashboard.qmonitor(
            options.get("stdout") or sys.stdout, get_config(), run_once=options["run_once"]
        )
