"""Next-run arithmetic for schedules, as pure functions (no ORM, no settings).

A repeating schedule is an *anchor* (its first run) and a rule. Fixed-duration rules
(``I`` every ``minutes``, ``H`` hourly) step in absolute time. Calendar rules (``D``,
``W``, ``BW``, ``M``, ``BM``, ``Q``, ``Y``) step in the anchor's wall-clock time in a
time zone, so a daily 09:00 run stays at 09:00 local across DST changes, and months
are counted from the anchor with clamping to the month's last day (Jan 31, Feb 28,
Mar 31). A cron expression is matched against wall-clock time in the same zone; with
croniter's optional sixth field (seconds, last) it can run every second.

Wall-clock times are turned into instants by :func:`localize`: a time that does not
exist (spring forward) runs at the first instant after the gap; a time that occurs
twice (fall back) runs at the first of the two. Every datetime returned is aware UTC.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from itertools import count, islice, takewhile
from typing import Any

from dateutil.relativedelta import relativedelta

# croniter (and the dateutil.tz it imports, about 35 ms together) is imported where a
# cron expression is read, not with the models: most processes never read one.


class ScheduleType(StrEnum):
    """The values stored in ``Schedule.schedule_type`` (Django-Q2's codes)."""

    ONCE = "O"
    MINUTES = "I"
    HOURLY = "H"
    DAILY = "D"
    WEEKLY = "W"
    BIWEEKLY = "BW"
    MONTHLY = "M"
    BIMONTHLY = "BM"
    QUARTERLY = "Q"
    YEARLY = "Y"
    CRON = "C"


LABELS: dict[ScheduleType, str] = {
    ScheduleType.ONCE: "Once",
    ScheduleType.MINUTES: "Minutes",
    ScheduleType.HOURLY: "Hourly",
    ScheduleType.DAILY: "Daily",
    ScheduleType.WEEKLY: "Weekly",
    ScheduleType.BIWEEKLY: "Biweekly",
    ScheduleType.MONTHLY: "Monthly",
    ScheduleType.BIMONTHLY: "Bimonthly",
    ScheduleType.QUARTERLY: "Quarterly",
    ScheduleType.YEARLY: "Yearly",
    ScheduleType.CRON: "Cron",
}

_DAYS = {ScheduleType.DAILY: 1, ScheduleType.WEEKLY: 7, ScheduleType.BIWEEKLY: 14}
_MONTHS = {
    ScheduleType.MONTHLY: 1,
    ScheduleType.BIMONTHLY: 2,
    ScheduleType.QUARTERLY: 3,
    ScheduleType.YEARLY: 12,
}
_MICROSECOND = timedelta(microseconds=1)


def localize(naive: datetime, tz: tzinfo) -> datetime:
    """The aware UTC instant at which the wall-clock time ``naive`` happens in ``tz``.

    A nonexistent time (in a spring-forward gap) gives the first instant after the gap;
    an ambiguous time (fall back) gives the earlier of its two instants.
    """
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first <= second:  # an ordinary time (equal), or ambiguous: fold=0 is the earlier
        return first
    # In a gap, fold=0 applies the offset from before the transition and fold=1 the one
    # from after it, so the transition lies in (second, first]: bisect for it.
    low, high = second, first
    while high - low > _MICROSECOND:
        middle = low + (high - low) / 2
        if _wall(middle, tz) >= naive:
            high = middle
        else:
            low = middle
    return high


def occurrence(
    schedule_type: str, anchor: datetime, n: int, *, tz: tzinfo, minutes: int | None = None
) -> datetime:
    """The ``n``-th run of an interval schedule (``n=0`` is the anchor), as aware UTC."""
    kind = _interval_type(schedule_type)
    if n < 0:
        raise ValueError(f"occurrence index must not be negative, got {n}")
    start = _utc(anchor, "anchor")
    if n == 0:
        return start
    if kind in _DAYS:
        return localize(_wall(start, tz) + timedelta(days=n * _DAYS[kind]), tz)
    if kind in _MONTHS:
        return localize(_wall(start, tz) + relativedelta(months=n * _MONTHS[kind]), tz)
    return start + n * _fixed_step(kind, minutes)


def next_run(
    schedule_type: str,
    *,
    anchor: datetime,
    after: datetime,
    tz: tzinfo,
    minutes: int | None = None,
    cron: str | None = None,
) -> datetime | None:
    """The first run strictly after ``after``; ``None`` when there is none (type ``O``).

    When ``cron`` is given it decides the run times, whatever ``schedule_type`` says;
    a cron expression with no match left (a past year field) also gives ``None``.
    """
    runs = _runs_after(schedule_type, anchor=anchor, after=after, tz=tz, minutes=minutes, cron=cron)
    return next(runs, None)


def occurrences_between(
    schedule_type: str,
    *,
    anchor: datetime,
    start: datetime,
    end: datetime,
    tz: tzinfo,
    minutes: int | None = None,
    cron: str | None = None,
    limit: int | None = None,
) -> list[datetime]:
    """The runs in ``(start, end]``, in order, at most ``limit`` of them."""
    stop = _utc(end, "end")
    runs = _runs_after(schedule_type, anchor=anchor, after=start, tz=tz, minutes=minutes, cron=cron)
    return list(islice(takewhile(lambda run: run <= stop, runs), limit))


def due_runs(
    schedule_type: str,
    *,
    anchor: datetime,
    next_run: datetime,
    now: datetime,
    tz: tzinfo,
    minutes: int | None = None,
    cron: str | None = None,
    catch_up: bool = True,
    limit: int | None = None,
) -> tuple[list[datetime], datetime | None]:
    """The runs to fire at ``now``, from ``next_run`` on, and the run after them.

    Nothing is due while ``next_run`` is later than ``now``. Then ``next_run`` is due;
    with ``catch_up`` so is every later run up to ``now`` (at most ``limit`` in all:
    the run after them is then still due, for the next call). Without ``catch_up``
    the run after is the first one later than ``now``: missed runs are skipped. The
    run after is ``None`` when there is none (type ``O``, a cron with no match left).
    """
    start, stop = _utc(next_run, "next_run"), _utc(now, "now")
    if start > stop:
        return [], start
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    runs = [start]
    if catch_up:
        more = None if limit is None else limit - 1
        runs += occurrences_between(
            schedule_type,
            anchor=anchor,
            start=start,
            end=stop,
            tz=tz,
            minutes=minutes,
            cron=cron,
            limit=more,
        )
    after = runs[-1] if catch_up else stop
    following = _runs_after(
        schedule_type, anchor=anchor, after=after, tz=tz, minutes=minutes, cron=cron
    )
    return runs, next(following, None)


def validate(schedule_type: str, *, minutes: int | None, cron: str | None) -> None:
    """Raise ``ValueError`` naming the problem if these schedule fields cannot run."""
    kind = _parse_type(schedule_type)
    if minutes is not None and minutes < 0:
        raise ValueError(f"minutes must not be negative, got {minutes}")
    if kind is ScheduleType.MINUTES:
        _fixed_step(kind, minutes)
    if kind is ScheduleType.CRON and not cron:
        raise ValueError("a cron expression is required for the Cron type ('C')")
    if cron:
        _check_cron(cron)


def parse_args(text: str | None) -> tuple[Any, ...]:
    """Positional arguments from their stored text: ``"1, 'a'"``, ``"(1,)"`` or ``"5"``."""
    if text is None or not text.strip():
        return ()
    try:
        value = _literal(text.strip())
    except ValueError as exc:
        raise ValueError(f"args {text!r} is not a Python literal: {exc}") from exc
    return value if isinstance(value, tuple) else (value,)


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """Keyword arguments from their stored text: ``"{'x': 1}"`` or ``"x=1, y='a'"``."""
    if text is None or not text.strip():
        return {}
    try:
        value = _literal(text.strip())
    except ValueError:
        try:
            return _parse_keywords(text.strip())
        except ValueError as exc:
            raise ValueError(
                f"kwargs {text!r} is neither a dict literal nor keyword arguments "
                f"with literal values: {exc}"
            ) from exc
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ValueError(f"kwargs {text!r} is not a dict with string keys nor keywords like x=1")
    return value


def _parse_keywords(source: str) -> dict[str, Any]:
    """Django-Q2's call style ``x=1, y='a'``, parsed as ``f(x=1, y='a')``: literals only."""
    try:
        call = ast.parse(f"f({source})", mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"invalid syntax: {exc.msg}") from exc
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)) or call.args:
        raise ValueError("expected only keyword arguments")
    kwargs: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ValueError("** unpacking is not allowed")
        if keyword.arg in kwargs:
            raise ValueError(f"keyword argument repeated: {keyword.arg}")
        kwargs[keyword.arg] = _literal(keyword.value)
    return kwargs


def _literal(source: str | ast.expr) -> Any:
    """``ast.literal_eval`` raising ``ValueError`` with a readable reason."""
    try:
        return ast.literal_eval(source)
    except SyntaxError as exc:
        raise ValueError(f"invalid syntax: {exc.msg}") from exc
    except (ValueError, TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(
            "only literals are allowed (numbers, strings, bytes, tuples, lists, dicts, sets, "
            "booleans and None)"
        ) from exc


def _runs_after(
    schedule_type: str,
    *,
    anchor: datetime,
    after: datetime,
    tz: tzinfo,
    minutes: int | None,
    cron: str | None,
) -> Iterator[datetime]:
    """Runs strictly after ``after``, in increasing order (endless unless once)."""
    if cron:
        return _cron_runs(cron, _utc(after, "after"), tz)
    kind = _parse_type(schedule_type)
    if kind is ScheduleType.ONCE:
        return iter(())
    if kind is ScheduleType.CRON:
        raise ValueError("a cron expression is required for the Cron type ('C')")
    first = _first_index_after(kind, anchor, after, tz, minutes)
    return (occurrence(kind, anchor, n, tz=tz, minutes=minutes) for n in count(first))


def _first_index_after(
    kind: ScheduleType, anchor: datetime, after: datetime, tz: tzinfo, minutes: int | None
) -> int:
    """The smallest n whose occurrence is after ``after``: an estimate, then corrected."""
    start, limit = _utc(anchor, "anchor"), _utc(after, "after")
    if limit < start:
        return 0
    if kind in _DAYS:
        n = (_wall(limit, tz) - _wall(start, tz)) // timedelta(days=_DAYS[kind])
    elif kind in _MONTHS:
        first, last = _wall(start, tz), _wall(limit, tz)
        n = ((last.year - first.year) * 12 + last.month - first.month) // _MONTHS[kind]
    else:  # fixed steps are exact
        return (limit - start) // _fixed_step(kind, minutes) + 1
    # Whole steps between wall-clock times never overshoot; step on past `after` (an
    # earlier day of the month, or `after` in a repeated hour: once or twice at most).
    n = max(n, 0)
    while occurrence(kind, anchor, n, tz=tz) <= limit:
        n += 1
    return n


def _cron_runs(expression: str, after: datetime, tz: tzinfo) -> Iterator[datetime]:
    """Instants matching ``expression`` in ``tz``'s wall-clock time, strictly after ``after``.

    croniter runs on naive wall-clock times: given aware datetimes it fires a fixed time
    twice on the fall-back day. Times in a gap all collapse onto the gap's end, once.
    """
    from croniter import CroniterBadDateError, croniter

    times = croniter(expression, _wall(after, tz))
    last = after
    while True:
        try:
            run = localize(times.get_next(datetime), tz)
        except CroniterBadDateError:  # no match left
            return
        if run > last:
            last = run
            yield run


def _check_cron(expression: str) -> None:
    from croniter import CroniterBadDateError, CroniterError, croniter

    try:
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError as exc:
        raise ValueError(f"cron expression {expression!r} never matches a date: {exc}") from exc
    except (CroniterError, TypeError, AttributeError) as exc:
        raise ValueError(f"invalid cron expression {expression!r}: {exc}") from exc


def _parse_type(schedule_type: str) -> ScheduleType:
    try:
        return ScheduleType(schedule_type)
    except ValueError:
        valid = ", ".join(f"{kind.value} ({label})" for kind, label in LABELS.items())
        raise ValueError(
            f"unknown schedule type {schedule_type!r}; expected one of {valid}"
        ) from None


def _interval_type(schedule_type: str) -> ScheduleType:
    kind = _parse_type(schedule_type)
    if kind in (ScheduleType.ONCE, ScheduleType.CRON):
        raise ValueError(f"{LABELS[kind]} ({kind.value!r}) has no fixed interval")
    return kind


def _fixed_step(kind: ScheduleType, minutes: int | None) -> timedelta:
    if kind is ScheduleType.HOURLY:
        return timedelta(hours=1)
    if minutes is None or minutes < 1:
        raise ValueError(f"minutes must be at least 1 for the Minutes type ('I'), got {minutes}")
    return timedelta(minutes=minutes)


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


def _wall(moment: datetime, tz: tzinfo) -> datetime:
    """The naive wall-clock time of an aware ``moment`` in ``tz``."""
    return moment.astimezone(tz).replace(tzinfo=None, fold=0)
