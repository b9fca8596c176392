"""``manage.py qinfo``: a one-shot summary of the clusters, the queue and the results."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandParser

from taskq import dashboard
from taskq.conf import get_config
from taskq.management.base import TaskqCommand


class Command(TaskqCommand):
    help = "Summary of the clusters, the queue, the results and the schedules."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--config", action="store_true", help="Print the effective settings (Q_CLUSTER)."
        )
        parser.add_argument(
            "--ids", action="store_true", help="Print the id of each running cluster."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dashboard.qinfo(
            options.get("stdout") or sys.stdout,
            options.get("stderr") or sys.stderr,
            get_config(),
            settings=options["config"],
            ids=options["ids"],
        )
