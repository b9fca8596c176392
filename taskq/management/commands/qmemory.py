"""``manage.py qmemory``: resident memory of each cluster and, with ``--workers``, each worker."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandParser

from taskq import dashboard
from taskq.conf import get_config
from taskq.management.base import TaskqCommand


class Command(TaskqCommand):
    help = "Memory used by each cluster (and worker), refreshed every second; q or Ctrl-C quits."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--run-once", action="store_true", help="Print one frame and exit.")
        parser.add_argument("--workers", action="store_true", help="Show each worker too.")

    def handle(self, *args: Any, **options: Any) -> None:
        dashboard.qmemory(
            options.get("stdout") or sys.stdout,
            get_config(),
            run_once=options["run_once"],
            workers=options["workers"],
        )
