"""``manage.py qcluster``: start a cluster."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.management.base import CommandParser

from taskq.cluster.cluster import Cluster
from taskq.conf import get_config
from taskq.management.base import TaskqCommand

LEVELS = {0: logging.ERROR, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}


class Command(TaskqCommand):
    help = "Start a taskq cluster: workers that run queued tasks. Ctrl-C stops it gracefully."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--run-once",
            action="store_true",
            help="Process what is queued, then stop (for scripts and tests).",
        )
        parser.add_argument(
            "-n",
            "--name",
            "--cluster-name",
            dest="cluster_name",
            default=None,
            help="Cluster (queue) name; ALT_CLUSTERS[NAME] overrides Q_CLUSTER for it. "
            "Default: Q_CLUSTER_NAME from the environment, else Q_CLUSTER['name'].",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config = get_config(options["cluster_name"])
        configure_logging(config.log_level, options["verbosity"])
        code = Cluster(config, run_once=options["run_once"]).start()
        if code:
            sys.exit(code)


def configure_logging(level_name: str, verbosity: int) -> None:
    """Give the ``taskq`` logger a handler only if the project configured none."""
    logger = logging.getLogger("taskq")
    level = (
        LEVELS.get(verbosity, logging.INFO)
        if verbosity != 1
        else logging.getLevelName(level_name.upper())
    )
    if not isinstance(level, int):
        level = logging.INFO
    logger.setLevel(level)
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s [taskq] %(levelname)s %(processName)s %(message)s")
    )
    logger.addHandler(handler)
