"""The errors taskq raises."""

from __future__ import annotations


class TaskqError(Exception):
    """Base class of every taskq error."""


class InvalidTask(TaskqError, ValueError):
    """A task was refused at the call: the message names the offending value."""


class InvalidSchedule(TaskqError, ValueError):
    """A schedule was refused: the message names the offending value."""


class InvalidSignature(TaskqError):
    """A queued package failed its signature check or could not be unpickled."""


class ConfigurationError(TaskqError):
    """The settings cannot be used (see ``manage.py check`` for details)."""


class TaskTimeout(BaseException):
    """Raised inside a task that ran past its timeout.

    It derives from ``BaseException`` so that a task's ``except Exception`` cannot
    swallow it.
    """
