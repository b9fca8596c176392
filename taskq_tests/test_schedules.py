"""taskq.schedules: next-run arithmetic, DST, month-end clamping, validation, args parsing."""

from __future__ import annotations

import functools
import itertools
import os
import re
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule
from hypothesis import given, settings
from hypothesis import strategies as st

from taskq.schedules import (
    LABELS,
    ScheduleType,
    due_runs,
    localize,
    next_run,
    occurrence,
    occurrences_between,
    parse_args,
    parse_kwargs,
    validate,
)

AMS = ZoneInfo("Europe/Amsterdam")
INTERVAL_TYPES = ["I", "H", "D", "W", "BW", "M", "BM", "Q", "Y"]
DST_ZONES = [
    "Europe/Amsterdam",
    "America/New_York",
    "America/Sao_Paulo",  # its gaps were at midnight
    "Australia/Sydney",
    "Australia/Lord_Howe",  # a 30-minute shift
    "Pacific/Apia",  # skipped 2011-12-30 entirely
    "America/Santiago",
]


def at(*args: int, tz: tzinfo = AMS, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=tz, fold=fold)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def wall(moment: datetime, tz: tzinfo = AMS) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None)


def between(kind: str, anchor: datetime, start: datetime, end: datetime, **kw: object) -> list:
    tz = kw.pop("tz", AMS)
    return occurrences_between(kind, anchor=anchor, start=start, end=end, tz=tz, **kw)  # type: ignore[arg-type]


def test_schedule_types_and_labels_in_django_q2_order() -> None:
    assert [(kind.value, label) for kind, label in LABELS.items()] == [
        ("O", "Once"),
        ("I", "Minutes"),
        ("H", "Hourly"),
        ("D", "Daily"),
        ("W", "Weekly"),
        ("BW", "Biweekly"),
        ("M", "Monthly"),
        ("BM", "Bimonthly"),
        ("Q", "Quarterly"),
        ("Y", "Yearly"),
        ("C", "Cron"),
    ]
    assert list(LABELS) == list(ScheduleType)
    assert ScheduleType.BIWEEKLY == "BW"


# localize


def test_localize_ordinary_time() -> None:
    assert localize(datetime(2026, 6, 1, 9), AMS) == utc(2026, 6, 1, 7)
    assert localize(datetime(2026, 6, 1, 9), UTC) == utc(2026, 6, 1, 9)


def test_localize_gap_gives_first_instant_after_it() -> None:
    assert localize(datetime(2026, 3, 29, 2, 30), AMS) == utc(2026, 3, 29, 1)
    assert localize(datetime(2026, 3, 29, 2, 0), AMS) == utc(2026, 3, 29, 1)
    assert localize(datetime(2026, 3, 29, 2, 59, 59, 999999), AMS) == utc(2026, 3, 29, 1)
    assert localize(datetime(2026, 3, 29, 3, 0), AMS) == utc(2026, 3, 29, 1)


def test_localize_ambiguous_gives_first_instant() -> None:
    assert localize(datetime(2026, 10, 25, 2, 30), AMS) == utc(2026, 10, 25, 0, 30)


def test_localize_whole_day_and_midnight_gaps() -> None:
    apia, sao_paulo = ZoneInfo("Pacific/Apia"), ZoneInfo("America/Sao_Paulo")
    assert localize(datetime(2011, 12, 30, 9), apia) == at(2011, 12, 31, tz=apia)
    assert localize(datetime(2018, 11, 4, 0, 0), sao_paulo) == at(2018, 11, 4, 1, tz=sao_paulo)


# occurrence and next_run for every type


@pytest.mark.parametrize(
    ("kind", "third"),
    [
        ("I", utc(2024, 1, 15, 14, 30)),  # minutes=90
        ("H", utc(2024, 1, 15, 13)),
        ("D", utc(2024, 1, 18, 10)),
        ("W", utc(2024, 2, 5, 10)),
        ("BW", utc(2024, 2, 26, 10)),
        ("M", utc(2024, 4, 15, 10)),
        ("BM", utc(2024, 7, 15, 10)),
        ("Q", utc(2024, 10, 15, 10)),
        ("Y", utc(2027, 1, 15, 10)),
    ],
)
def test_occurrence_every_interval_type(kind: str, third: datetime) -> None:
    anchor = utc(2024, 1, 15, 10)
    assert occurrence(kind, anchor, 0, tz=UTC, minutes=90) == anchor
    assert occurrence(kind, anchor, 3, tz=UTC, minutes=90) == third
    after = third - timedelta(seconds=1)
    assert next_run(kind, anchor=anchor, after=after, tz=UTC, minutes=90) == third
    assert next_run(kind, anchor=anchor, after=third, tz=UTC, minutes=90) == occurrence(
        kind, anchor, 4, tz=UTC, minutes=90
    )


def test_next_run_before_the_anchor_is_the_anchor() -> None:
    anchor = utc(2030, 5, 1, 12)
    for kind in INTERVAL_TYPES:
        assert next_run(kind, anchor=anchor, after=utc(2020, 1, 1), tz=AMS, minutes=5) == anchor


def test_next_run_once_is_none_and_has_no_occurrences() -> None:
    anchor = utc(2030, 5, 1, 12)
    assert next_run("O", anchor=anchor, after=utc(2020, 1, 1), tz=AMS) is None
    assert between("O", anchor, utc(2020, 1, 1), utc(2040, 1, 1)) == []


def test_next_run_cron_type() -> None:
    found = next_run(
        "C", anchor=utc(2020, 1, 1), after=utc(2026, 1, 1, 12), tz=UTC, cron="0 8 * * 1"
    )
    assert found == utc(2026, 1, 5, 8)  # the first Monday


def test_cron_without_a_match_left_has_no_next_run() -> None:
    expression = "0 0 1 1 * 0 2020"  # with seconds and year fields: 2020-01-01 only
    assert next_run(
        "C", anchor=utc(2019, 1, 1), after=utc(2019, 6, 1), tz=UTC, cron=expression
    ) == (utc(2020, 1, 1))
    assert (
        next_run("C", anchor=utc(2019, 1, 1), after=utc(2021, 1, 1), tz=UTC, cron=expression)
        is None
    )
    assert between("C", utc(2019, 1, 1), utc(2019, 1, 1), utc(2030, 1, 1), cron=expression) == [
        at(2020, 1, 1)
    ]


def test_cron_decides_whatever_the_type() -> None:
    for kind in ("O", "D", "I"):
        found = next_run(
            kind, anchor=utc(2020, 1, 1), after=utc(2026, 1, 1, 12), tz=AMS, cron="0 8 * * *"
        )
        assert found == at(2026, 1, 2, 8)


def test_occurrence_zero_is_the_anchor_even_in_a_repeated_hour() -> None:
    second_pass = at(2026, 10, 25, 2, 30, fold=1)
    assert occurrence("D", second_pass, 0, tz=AMS) == utc(2026, 10, 25, 1, 30)
    assert occurrence("D", second_pass, 1, tz=AMS) == at(2026, 10, 26, 2, 30)


def test_occurrence_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match=r"Once \('O'\) has no fixed interval"):
        occurrence("O", utc(2026, 1, 1), 1, tz=UTC)
    with pytest.raises(ValueError, match="has no fixed interval"):
        occurrence("C", utc(2026, 1, 1), 1, tz=UTC)
    with pytest.raises(ValueError, match="must not be negative, got -1"):
        occurrence("D", utc(2026, 1, 1), -1, tz=UTC)
    with pytest.raises(ValueError, match="anchor must be an aware datetime"):
        occurrence("D", datetime(2026, 1, 1), 1, tz=UTC)
    with pytest.raises(ValueError, match="minutes must be at least 1"):
        occurrence("I", utc(2026, 1, 1), 1, tz=UTC)


def test_next_run_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="after must be an aware datetime"):
        next_run("D", anchor=utc(2026, 1, 1), after=datetime(2026, 2, 1), tz=UTC)
    with pytest.raises(ValueError, match="cron expression is required"):
        next_run("C", anchor=utc(2026, 1, 1), after=utc(2026, 2, 1), tz=UTC)
    with pytest.raises(ValueError, match="minutes must be at least 1"):
        next_run("I", anchor=utc(2026, 1, 1), after=utc(2026, 2, 1), tz=UTC, minutes=0)
    with pytest.raises(ValueError, match="unknown schedule type 'X'"):
        next_run("X", anchor=utc(2026, 1, 1), after=utc(2026, 2, 1), tz=UTC)


def test_occurrences_between_bounds_and_limit() -> None:
    anchor = utc(2026, 1, 1, 9)
    assert between("D", anchor, anchor, utc(2026, 1, 4, 9), tz=UTC) == [
        utc(2026, 1, 2, 9),
        utc(2026, 1, 3, 9),
        utc(2026, 1, 4, 9),
    ]
    assert between("D", anchor, utc(2025, 1, 1), utc(2026, 1, 2), tz=UTC) == [anchor]
    assert len(between("I", anchor, anchor, utc(2027, 1, 1), tz=UTC, minutes=1, limit=5)) == 5
    assert between("D", anchor, utc(2026, 3, 1), utc(2026, 2, 1), tz=UTC) == []


# wall-clock time across DST


@pytest.mark.parametrize("year", [2026, 2027])
def test_daily_keeps_local_time_across_dst(year: int) -> None:
    anchor = at(year, 1, 5, 9)
    runs = between("D", anchor, anchor, at(year, 12, 31, 23))
    assert len(runs) == 360
    assert all(wall(run).time().hour == 9 and wall(run).minute == 0 for run in runs)
    by_day = {wall(run).date(): run for run in runs}
    spring, autumn = (
        (date(2026, 3, 29), date(2026, 10, 25))
        if year == 2026
        else (date(2027, 3, 28), date(2027, 10, 31))
    )
    assert by_day[spring - timedelta(days=1)].hour == 8  # 09:00 CET is 08:00 UTC
    assert by_day[spring].hour == 7  # 09:00 CEST is 07:00 UTC
    assert by_day[autumn - timedelta(days=1)].hour == 7
    assert by_day[autumn].hour == 8


def test_spring_forward_0230_runs_once_at_0300_then_0230_again() -> None:
    anchor = at(2026, 3, 27, 2, 30)
    runs = between("D", anchor, anchor, at(2026, 3, 31))
    assert [wall(run) for run in runs] == [
        datetime(2026, 3, 28, 2, 30),
        datetime(2026, 3, 29, 3, 0),
        datetime(2026, 3, 30, 2, 30),
    ]
    assert runs[1] == utc(2026, 3, 29, 1)
    assert next_run("D", anchor=anchor, after=runs[1], tz=AMS) == runs[2]


def test_fall_back_0230_runs_once() -> None:
    anchor = at(2026, 10, 23, 2, 30)
    runs = between("D", anchor, anchor, at(2026, 10, 27))
    assert runs == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    # after the first 02:30 has run, the second 02:30 of that day is not a run
    assert next_run("D", anchor=anchor, after=runs[1], tz=AMS) == runs[2]
    second_pass = at(2026, 10, 25, 2, 20, fold=1)
    assert next_run("D", anchor=anchor, after=second_pass, tz=AMS) == runs[2]


def test_minutes_keep_absolute_interval_across_dst() -> None:
    for day in (utc(2026, 3, 28, 22), utc(2026, 10, 24, 22)):
        runs = between("I", day, day, day + timedelta(hours=6), minutes=45)
        assert all(b - a == timedelta(minutes=45) for a, b in itertools.pairwise(runs))
        assert len(runs) == 8


def test_hourly_runs_every_real_hour_across_fall_back() -> None:
    anchor = utc(2026, 10, 24, 22)
    runs = between("H", anchor, anchor, utc(2026, 10, 25, 3))
    assert [wall(run).hour for run in runs] == [1, 2, 2, 3, 4]


# month-end clamping


def test_monthly_from_the_31st_clamps_and_comes_back() -> None:
    anchor = at(2026, 1, 31, 9)
    runs = [occurrence("M", anchor, n, tz=AMS) for n in range(6)]
    assert [wall(run) for run in runs] == [
        datetime(2026, month, day, 9)
        for month, day in [(1, 31), (2, 28), (3, 31), (4, 30), (5, 31), (6, 30)]
    ]
    leap = [wall(occurrence("M", at(2028, 1, 31, 9), n, tz=AMS)) for n in range(3)]
    assert leap == [datetime(2028, 1, 31, 9), datetime(2028, 2, 29, 9), datetime(2028, 3, 31, 9)]


def test_bimonthly_from_december_31st() -> None:
    anchor = utc(2025, 12, 31, 6)
    days = [occurrence("BM", anchor, n, tz=UTC).date() for n in range(5)]
    assert days == [
        date(2025, 12, 31),
        date(2026, 2, 28),
        date(2026, 4, 30),
        date(2026, 6, 30),
        date(2026, 8, 31),
    ]


def test_quarterly_and_yearly_from_february_29th() -> None:
    anchor = utc(2024, 2, 29, 12)
    quarterly = [occurrence("Q", anchor, n, tz=UTC).date() for n in (1, 2, 3, 4, 16)]
    assert quarterly == [
        date(2024, 5, 29),
        date(2024, 8, 29),
        date(2024, 11, 29),
        date(2025, 2, 28),
        date(2028, 2, 29),
    ]
    yearly = [occurrence("Y", anchor, n, tz=UTC).date() for n in range(5)]
    assert yearly == [
        date(2024, 2, 29),
        date(2025, 2, 28),
        date(2026, 2, 28),
        date(2027, 2, 28),
        date(2028, 2, 29),
    ]
    assert next_run("Y", anchor=anchor, after=utc(2025, 3, 1), tz=UTC) == utc(2026, 2, 28, 12)


# cron in wall-clock time


@pytest.mark.parametrize("year", [2026, 2027])
def test_cron_0800_in_amsterdam_across_dst(year: int) -> None:
    runs = between("C", at(year, 1, 1), at(year, 1, 1), at(year, 12, 31, 12), cron="0 8 * * *")
    assert len(runs) == 365
    assert {wall(run).time() for run in runs} == {datetime(2000, 1, 1, 8).time()}
    assert len({wall(run).date() for run in runs}) == 365
    assert {run.hour for run in runs} == {6, 7}


def test_cron_0230_on_dst_days() -> None:
    runs = between("C", at(2026, 3, 28), at(2026, 3, 28), at(2026, 3, 31), cron="30 2 * * *")
    assert [wall(run) for run in runs] == [
        datetime(2026, 3, 28, 2, 30),
        datetime(2026, 3, 29, 3, 0),
        datetime(2026, 3, 30, 2, 30),
    ]
    autumn = between("C", at(2026, 10, 24), at(2026, 10, 24), at(2026, 10, 27), cron="30 2 * * *")
    assert autumn == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_cron_times_in_a_gap_collapse_onto_its_end() -> None:
    start = at(2026, 3, 29, 1, 30)
    runs = between("C", start, start, at(2026, 3, 29, 3, 30), cron="*/15 * * * *")
    assert [wall(run).strftime("%H:%M") for run in runs] == ["01:45", "03:00", "03:15", "03:30"]


def test_cron_repeated_hour_runs_in_its_first_pass_only() -> None:
    start = at(2026, 10, 25, 1, 30)
    runs = between("C", start, start, at(2026, 10, 25, 3, 30), cron="*/30 * * * *")
    assert runs == [
        utc(2026, 10, 25, 0),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 2),
        utc(2026, 10, 25, 2, 30),
    ]
    # started inside the second pass, the next run is after it
    second_pass = at(2026, 10, 25, 2, 10, fold=1)
    assert next_run("C", anchor=start, after=second_pass, tz=AMS, cron="*/30 * * * *") == utc(
        2026, 10, 25, 2
    )


# comparison with dateutil.rrule over years


RRULE_CASES = [
    ("D", {"freq": DAILY}, 2000),
    ("W", {"freq": WEEKLY}, 400),
    ("BW", {"freq": WEEKLY, "interval": 2}, 200),
    ("M", {"freq": MONTHLY}, 120),
    ("BM", {"freq": MONTHLY, "interval": 2}, 60),
    ("Q", {"freq": MONTHLY, "interval": 3}, 40),
    ("Y", {"freq": YEARLY}, 20),
]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Amsterdam", "America/New_York"])
@pytest.mark.parametrize(("kind", "rule", "count"), RRULE_CASES)
def test_matches_rrule_where_no_clamping(kind: str, rule: dict, count: int, zone: str) -> None:
    tz = ZoneInfo(zone)
    anchor = at(2024, 1, 15, 9, 15, tz=tz)
    expected = [run.astimezone(UTC) for run in rrule(dtstart=anchor, count=count, **rule)]
    assert [occurrence(kind, anchor, n, tz=tz) for n in range(count)] == expected
    assert between(kind, anchor, anchor - timedelta(days=1), expected[-1], tz=tz) == expected


@pytest.mark.parametrize("zone", ["UTC", "Europe/Amsterdam"])
@pytest.mark.parametrize("day", [29, 30, 31])
@pytest.mark.parametrize(("kind", "interval"), [("M", 1), ("BM", 2), ("Q", 3)])
def test_month_end_matches_rrule_with_clamping(
    kind: str, interval: int, day: int, zone: str
) -> None:
    tz = ZoneInfo(zone)
    anchor = at(2023, 12 if interval == 1 else 1, day, 9, tz=tz)
    # rrule's clamp: the first of "that day" and "the last day" in each month
    clamped = rrule(
        MONTHLY,
        interval=interval,
        dtstart=anchor,
        bymonthday=(day, -1),
        bysetpos=1,
        count=72 // interval,
    )
    ours = [occurrence(kind, anchor, n, tz=tz) for n in range(72 // interval)]
    assert ours == [run.astimezone(UTC) for run in clamped]
    # plain rrule skips months without that day; where it has a run, it is one of ours
    plain = rrule(MONTHLY, interval=interval, dtstart=anchor, until=clamped[-1])
    assert {run.astimezone(UTC) for run in plain} <= set(ours)


def test_yearly_on_february_29th_matches_rrule_with_clamping() -> None:
    anchor = at(2024, 2, 29, 9)
    clamped = rrule(YEARLY, dtstart=anchor, bymonth=2, bymonthday=(29, -1), bysetpos=1, count=30)
    assert [occurrence("Y", anchor, n, tz=AMS) for n in range(30)] == [
        run.astimezone(UTC) for run in clamped
    ]


# properties


@functools.cache
def transitions(zone: str, year: int) -> tuple[datetime, ...]:
    """Instants (to the hour) at which ``zone``'s offset changes during ``year``."""
    tz, found = ZoneInfo(zone), []
    moment = utc(year, 1, 1)
    offset = moment.astimezone(tz).utcoffset()
    while moment.year == year:
        moment += timedelta(hours=1)
        if moment.astimezone(tz).utcoffset() != offset:
            offset = moment.astimezone(tz).utcoffset()
            found.append(moment)
    return tuple(found) or (utc(year, 6, 1),)


@st.composite
def near_a_transition(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    zone = draw(st.sampled_from(DST_ZONES))
    year = draw(st.sampled_from([2011, 2018, 2024, 2026, 2027, 2040]))
    moment = draw(st.sampled_from(transitions(zone, year)))
    offset = draw(st.integers(-3 * 86400, 3 * 86400))
    return ZoneInfo(zone), moment + timedelta(seconds=offset)


@st.composite
def anywhere(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    zones = [*DST_ZONES, "UTC", "Asia/Kolkata"]
    zone = draw(st.sampled_from(zones).map(ZoneInfo) | st.timezones())
    moment = draw(st.datetimes(datetime(1990, 1, 1), datetime(2045, 1, 1), timezones=st.just(UTC)))
    return zone, moment


def first_index_after(
    kind: str, anchor: datetime, after: datetime, tz: tzinfo, minutes: int
) -> int:
    """Oracle: the smallest n with occurrence(n) > after, by exponential then binary search."""

    def occ(n: int) -> datetime:
        return occurrence(kind, anchor, n, tz=tz, minutes=minutes)

    low, high = -1, 0  # occ(low) <= after < occ(high), with occ(-1) taken as -infinity
    while occ(high) <= after:
        low, high = high, 2 * high + 1
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if occ(middle) > after else (middle, high)
    return high


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(INTERVAL_TYPES),
    place=near_a_transition() | anywhere(),
    # seconds from the anchor to `after`: anywhere, or near the anchor's time of day
    back=st.integers(-2 * 86400, 12 * 365 * 86400)
    | st.builds(
        lambda days, seconds: days * 86400 + seconds, st.integers(0, 5000), st.integers(-5400, 5400)
    ),
    minutes=st.integers(1, 60 * 24 * 40),
)
def test_property_next_run_is_the_first_occurrence_after(
    kind: str, place: tuple[ZoneInfo, datetime], back: int, minutes: int
) -> None:
    tz, after = place
    anchor = after - timedelta(seconds=back)
    found = next_run(kind, anchor=anchor, after=after, tz=tz, minutes=minutes)
    assert found is not None
    assert found > after
    n = first_index_after(kind, anchor, after, tz, minutes)
    assert found == occurrence(kind, anchor, n, tz=tz, minutes=minutes)
    if n > 0:  # no occurrence lies strictly between after and found
        assert occurrence(kind, anchor, n - 1, tz=tz, minutes=minutes) <= after
    assert found.tzinfo is UTC


# (expression, hours, minutes) that it matches every day
CRON_CASES = [
    ("0 8 * * *", [8], [0]),
    ("30 2 * * *", [2], [30]),
    ("*/15 * * * *", range(24), [0, 15, 30, 45]),
    ("5,35 1-3 * * *", [1, 2, 3], [5, 35]),
    ("0 0 * * *", [0], [0]),
]


@settings(max_examples=300, deadline=None)
@given(case=st.sampled_from(CRON_CASES), place=near_a_transition() | anywhere())
def test_property_cron_next_run_is_the_first_wall_clock_match(
    case: tuple[str, list[int], list[int]], place: tuple[ZoneInfo, datetime]
) -> None:
    expression, hours, minutes = case
    tz, after = place
    day = wall(after, tz).date()
    walls = (
        datetime.combine(day + timedelta(days=offset), datetime.min.time()).replace(
            hour=hour, minute=minute
        )
        for offset, hour, minute in itertools.product((-1, 0, 1, 2), hours, minutes)
    )
    expected = min(run for run in (localize(w, tz) for w in walls) if run > after)
    found = next_run("C", anchor=after, after=after, tz=tz, cron=expression)
    assert found == expected


def test_next_run_is_constant_time_after_long_downtime() -> None:
    anchor = utc(2015, 1, 1, 0, 0, 30)
    started = time.perf_counter()
    assert next_run("I", anchor=anchor, after=utc(2025, 1, 1), tz=AMS, minutes=1) == utc(
        2025, 1, 1, 0, 0, 30
    )
    assert next_run("D", anchor=at(1925, 1, 1, 9), after=utc(2025, 6, 1, 12), tz=AMS) == at(
        2025, 6, 2, 9
    )
    assert next_run("M", anchor=at(1925, 1, 31, 9), after=utc(2025, 6, 1), tz=AMS) == at(
        2025, 6, 30, 9
    )
    assert time.perf_counter() - started < 0.5


# seconds in cron


def test_cron_with_a_seconds_field_runs_every_second() -> None:
    after = utc(2026, 1, 1, 12, 0, 0) + timedelta(microseconds=300)
    runs = between("C", after, after, utc(2026, 1, 1, 12, 0, 4), cron="* * * * * *")
    assert runs == [utc(2026, 1, 1, 12, 0, s) for s in (1, 2, 3, 4)]
    runs = between("C", after, after, utc(2026, 1, 1, 12, 1), cron="* * * * * */15")
    assert [run.second for run in runs] == [15, 30, 45, 0]


def test_seconds_cron_across_the_spring_gap_runs_once_at_its_end() -> None:
    start = at(2026, 3, 29, 1, 59, 58)
    runs = between("C", start, start, at(2026, 3, 29, 3, 0, 2), cron="* * * * * *")
    assert [wall(run).strftime("%H:%M:%S") for run in runs] == [
        "01:59:59",
        "03:00:00",
        "03:00:01",
        "03:00:02",
    ]


# due_runs: what firing at `now` enqueues


def test_due_runs_nothing_before_next_run() -> None:
    anchor = utc(2026, 1, 1, 9)
    assert due_runs(
        "D", anchor=anchor, next_run=anchor, now=anchor - timedelta(seconds=1), tz=UTC
    ) == ([], anchor)


def test_due_runs_with_catch_up_lists_every_missed_run_up_to_now() -> None:
    anchor = utc(2026, 1, 1, 9)
    runs, following = due_runs(
        "H", anchor=anchor, next_run=anchor, now=anchor + timedelta(hours=3, minutes=1), tz=UTC
    )
    assert runs == [anchor + timedelta(hours=n) for n in range(4)]
    assert following == anchor + timedelta(hours=4)


def test_due_runs_limit_leaves_the_rest_due() -> None:
    anchor = utc(2026, 1, 1, 9)
    now = anchor + timedelta(days=365)
    runs, following = due_runs(
        "I", anchor=anchor, next_run=anchor, now=now, tz=UTC, minutes=1, limit=100
    )
    assert runs == [anchor + timedelta(minutes=n) for n in range(100)]
    assert following == anchor + timedelta(minutes=100)
    with pytest.raises(ValueError, match="limit must be at least 1"):
        due_runs("I", anchor=anchor, next_run=anchor, now=now, tz=UTC, minutes=1, limit=0)


def test_due_runs_without_catch_up_runs_once_then_the_first_after_now() -> None:
    anchor = at(2026, 1, 31, 9)
    now = at(2026, 6, 2, 12)
    runs, following = due_runs("M", anchor=anchor, next_run=anchor, now=now, tz=AMS, catch_up=False)
    assert runs == [anchor]
    assert following == at(2026, 6, 30, 9)
    runs, following = due_runs(
        "C", anchor=anchor, next_run=anchor, now=now, tz=AMS, cron="0 8 * * *", catch_up=False
    )
    assert (runs, following) == ([anchor], at(2026, 6, 3, 8))


def test_due_runs_count_from_the_anchor_not_from_next_run() -> None:
    anchor = at(2026, 1, 31, 9)
    february = at(2026, 2, 28, 9)
    runs, following = due_runs("M", anchor=anchor, next_run=february, now=february, tz=AMS)
    assert (runs, following) == ([february], at(2026, 3, 31, 9))


def test_due_runs_once_and_a_spent_cron_have_no_run_after() -> None:
    moment = utc(2026, 1, 1)
    assert due_runs("O", anchor=moment, next_run=moment, now=moment, tz=UTC) == ([moment], None)
    cron = "0 0 1 1 * 0 2026"  # 2026-01-01 00:00:00 only
    assert due_runs("C", anchor=moment, next_run=moment, now=moment, tz=UTC, cron=cron) == (
        [moment],
        None,
    )


# validate


@pytest.mark.parametrize(
    ("kind", "minutes", "cron"),
    [
        ("O", None, None),
        ("I", 1, None),
        ("D", 0, None),
        ("C", None, "0 8 * * mon-fri"),
        ("D", None, "@daily"),
        ("C", None, "* * * * * *"),
        ("C", None, "0 8 * * mon-fri */30"),
        ("H", 5, None),
    ],
)
def test_validate_accepts(kind: str, minutes: int | None, cron: str | None) -> None:
    validate(kind, minutes=minutes, cron=cron)


@pytest.mark.parametrize(
    ("kind", "minutes", "cron", "message"),
    [
        ("X", None, None, r"unknown schedule type 'X'; expected one of O \(Once\), I \(Minutes\)"),
        ("I", None, None, r"minutes must be at least 1 for the Minutes type \('I'\), got None"),
        ("I", 0, None, "minutes must be at least 1 .* got 0"),
        ("D", -5, None, "minutes must not be negative, got -5"),
        ("C", None, None, r"a cron expression is required for the Cron type \('C'\)"),
        ("C", None, "", "a cron expression is required"),
        ("C", None, "61 * * * *", r"invalid cron expression '61 \* \* \* \*': .*out of range"),
        ("D", None, "every day", "invalid cron expression 'every day': Exactly 5, 6 or 7"),
        ("C", None, "0 0 31 2 *", "never matches a date"),
    ],
)
def test_validate_refuses(kind: str, minutes: int | None, cron: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate(kind, minutes=minutes, cron=cron)


def test_validate_unknown_type_message_lists_every_type() -> None:
    with pytest.raises(ValueError, match="unknown schedule type") as info:
        validate("daily", minutes=None, cron=None)
    assert all(f"{kind.value} ({label})" in str(info.value) for kind, label in LABELS.items())


# args and kwargs text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, ()),
        ("", ()),
        ("   ", ()),
        ("(1, 2)", (1, 2)),
        ("1, 'a'", (1, "a")),
        ("5", (5,)),
        ("'x'", ("x",)),
        ("[1, 2]", ([1, 2],)),
        ("(1,)", (1,)),
        ("()", ()),
        ("{'a': None}", ({"a": None},)),
        (" 1, 2 ", (1, 2)),
    ],
)
def test_parse_args(text: str | None, expected: tuple) -> None:
    assert parse_args(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("foo", "only literals are allowed"),
        ("1, 2)", "invalid syntax: unmatched ')'"),
        ("__import__('os')", "only literals are allowed"),
        ("x=1", "invalid syntax"),
    ],
)
def test_parse_args_refuses_non_literals(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"args {text!r} is not a Python literal: ")):
        parse_args(text)
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_args(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, {}),
        ("", {}),
        ("{'x': 1}", {"x": 1}),
        ("{}", {}),
        ("x=1, y='a'", {"x": 1, "y": "a"}),
        ("x=[1, {'b': (2,)}], flag=True", {"x": [1, {"b": (2,)}], "flag": True}),
        (" x = -1.5 ", {"x": -1.5}),
    ],
)
def test_parse_kwargs(text: str | None, expected: dict) -> None:
    assert parse_kwargs(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("x=foo", "neither a dict literal nor keyword arguments with literal values: only"),
        ("x=1,,", "invalid syntax"),
        ("1, x=2", "expected only keyword arguments"),
        ("**d", "unpacking is not allowed"),
        ("x=1)(y=2", "expected only keyword arguments"),
        ("x=1), f(y=2", "expected only keyword arguments"),
        ("x=__import__('os')", "neither a dict literal"),
        ("x=1, x=2", "keyword argument repeated: x"),
        ("[1]", "not a dict with string keys"),
        ("{1: 2}", "not a dict with string keys"),
    ],
)
def test_parse_kwargs_refuses(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match="kwargs") as info:
        parse_kwargs(text)
    assert repr(text) in str(info.value)
    assert reason in str(info.value)


def test_croniter_is_imported_only_when_a_cron_expression_is_read() -> None:
    """Starting Django with taskq (every web process, every qcluster) does not pay for
    croniter and the dateutil.tz it pulls in (about 35 ms); reading a cron expression
    imports it."""
    code = (
        "import sys, django; django.setup()\n"
        "import taskq.models, taskq.cluster.sentinel\n"
        "assert 'croniter' not in sys.modules, 'imported with the models'\n"
        "from taskq.schedules import validate\n"
        "validate('C', minutes=None, cron='*/5 * * * *')\n"
        "assert 'croniter' in sys.modules\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "taskq_tests.settings", "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
