"""``manage.py qclean``: delete old results, spent once-schedules and unreadable queued tasks."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import CommandError, CommandParser

from taskq.cleanup import clean, parse_duration, report
from taskq.conf import get_config
from taskq.management.base import TaskqCommand


def duration_argument(text: str) -> Any:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def count_argument(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of rows (0 or more)")
    return value


class Command(TaskqCommand):
    help = (
        "Delete successes beyond save_limit (or older than --older-than), spent "
        "once-schedules, and turn queued tasks that cannot be read into failures. "
        "Failures are deleted only with --failures."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=duration_argument,
            metavar="DURATION",
            help="Also delete results that stopped before this age: 90s, 30m, 12h, 7d, 2w.",
        )
        parser.add_argument(
            "--failures",
            action="store_true",
            help="Apply the same rules to failures (kept otherwise).",
        )
        parser.add_argument(
            "--keep",
            type=count_argument,
            metavar="N",
            help="Keep the newest N results (per save_limit_per) instead of save_limit; "
            "0 keeps none.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Print what would be removed; change nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        older_than, keep = options["older_than"], options["keep"]
        try:  # call_command() passes keyword options without the parser's checks
            if isinstance(older_than, str):
                older_than = duration_argument(older_than)
            if keep is not None:
                keep = count_argument(str(keep))
        except argparse.ArgumentTypeError as exc:
            raise CommandError(str(exc)) from exc
        cleaned = clean(
            get_config(),
            older_than=older_than,
            failures=options["failures"],
            keep=keep,
            dry_run=options["dry_run"],
        )
        for line in report(cleaned):
            self.stdout.write(line)
