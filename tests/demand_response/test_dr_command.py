"""``fairwatt dr`` argument parsing: local times of day to UTC instants, cuts and durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from fairwatt.commands.dr import DrCommandError, parse_cut, parse_duration, parse_start, zone

PARIS = ZoneInfo("Europe/Paris")


def test_a_time_of_day_is_the_next_one_in_the_zone() -> None:
    before = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # 14:00 in Paris (CEST)
    assert parse_start("17:00", PARIS, before) == datetime(2026, 7, 1, 15, 0, tzinfo=UTC)
    after = datetime(2026, 7, 1, 16, 0, tzinfo=UTC)  # 18:00 in Paris: tomorrow's 17:00
    assert parse_start("17:00", PARIS, after) == datetime(2026, 7, 2, 15, 0, tzinfo=UTC)
    across = datetime(2026, 10, 24, 16, 0, tzinfo=UTC)  # tomorrow is winter time (CET)
    assert parse_start("17:00", PARIS, across) == datetime(2026, 10, 25, 16, 0, tzinfo=UTC)


def test_full_times_keep_their_offset_or_take_the_zone() -> None:
    now = datetime(2026, 7, 1, tzinfo=UTC)
    assert parse_start("2026-07-02T17:00:00+00:00", PARIS, now) == datetime(2026, 7, 2, 17, tzinfo=UTC)
    assert parse_start("2026-07-02T17:00", PARIS, now) == datetime(2026, 7, 2, 15, tzinfo=UTC)
    with pytest.raises(DrCommandError, match="--start soon"):
        parse_start("soon", PARIS, now)


def test_cuts_and_durations() -> None:
    assert parse_cut("20%") == 20.0
    assert parse_cut(" 12.5 % ") == 12.5
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("90min") == timedelta(minutes=90)
    assert parse_duration("30s") == timedelta(seconds=30)
    assert parse_duration("45") == timedelta(minutes=45)
    for bad in ("0%", "120%", "lots"):
        with pytest.raises(DrCommandError, match="--cut"):
            parse_cut(bad)
    for bad in ("0h", "-1h", "2 weeks"):
        with pytest.raises(DrCommandError, match="--duration"):
            parse_duration(bad)
    with pytest.raises(DrCommandError, match="Mars/Olympus"):
        zone("Mars/Olympus")
