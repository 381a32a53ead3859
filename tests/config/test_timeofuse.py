"""Local-time rules to UTC: windows wrapping past midnight and across daylight-saving changes.

America/Los_Angeles in 2019: PST (UTC-8) until Sun 10 March 02:00, which jumps to 03:00 PDT
(UTC-7); PDT until Sun 3 November 02:00 PDT, which falls back to 01:00 PST.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from fairwatt.config import DailyWindow, DayFilter, PeakEvent, PriceSchedule, PriceWindow, load_station
from fairwatt.config.timeofuse import base_load_profile, cap_windows, local_to_utc, price_periods
from optimizer.limits import power_limit_kw

LA = ZoneInfo("America/Los_Angeles")
WEEKDAYS = DayFilter(weekdays=frozenset(range(5)))
EVERY_DAY = DayFilter()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "station.yaml"


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2019, month, day, hour, minute, tzinfo=UTC)


def schedule(start: str, end: str, days: DayFilter = EVERY_DAY) -> PriceSchedule:
    def minutes(text: str) -> int:
        hours, mins = text.split(":")
        return int(hours) * 60 + int(mins)

    window = DailyWindow(minutes(start), minutes(end), days)
    return PriceSchedule("USD", 0.20, (PriceWindow("cheap", window, 0.10),))


def as_pairs(prices: PriceSchedule, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
    return [(p.start, p.price_per_kwh) for p in price_periods(prices, LA, start, end)]


def test_window_wraps_past_midnight_and_follows_its_start_day() -> None:
    # 22:00-06:00 on weekdays: Thursday night reaches into Friday morning, Friday night
    # into Saturday morning; Saturday night (a weekend start) is not cheap.
    got = as_pairs(schedule("22:00", "06:00", WEEKDAYS), utc(3, 8, 8), utc(3, 10, 8))
    assert got == [
        (utc(3, 8, 8), 0.10),  # Fri 00:00 PST, inside Thursday's window
        (utc(3, 8, 14), 0.20),  # Fri 06:00 PST
        (utc(3, 9, 6), 0.10),  # Fri 22:00 PST
        (utc(3, 9, 14), 0.20),  # Sat 06:00 PST
    ]


def test_spring_forward_shortens_a_window_over_the_gap() -> None:
    got = as_pairs(schedule("01:00", "03:00"), utc(3, 10, 8), utc(3, 11, 12))
    assert got == [
        (utc(3, 10, 8), 0.20),  # Sun 00:00 PST
        (utc(3, 10, 9), 0.10),  # 01:00 PST
        (utc(3, 10, 10), 0.20),  # 02:00 PST is 03:00 PDT: one cheap hour only
        (utc(3, 11, 8), 0.10),  # Mon 01:00 PDT
        (utc(3, 11, 10), 0.20),  # Mon 03:00 PDT
    ]


def test_a_window_inside_the_gap_never_happens() -> None:
    assert as_pairs(schedule("02:00", "02:30"), utc(3, 10, 8), utc(3, 10, 20)) == [(utc(3, 10, 8), 0.20)]


def test_fall_back_lengthens_a_window_over_the_repeated_hour() -> None:
    got = as_pairs(schedule("01:00", "03:00"), utc(11, 3, 7), utc(11, 3, 12))
    assert got == [
        (utc(11, 3, 7), 0.20),  # 00:00 PDT
        (utc(11, 3, 8), 0.10),  # 01:00 PDT, then 01:00 PST again at 09:00 UTC
        (utc(11, 3, 11), 0.20),  # 03:00 PST: three cheap hours
    ]


def test_local_to_utc_reads_both_sides_of_an_ambiguous_time() -> None:
    day = datetime(2019, 11, 3).date()
    assert local_to_utc(LA, day, 90, fold=0) == utc(11, 3, 8, 30)
    assert local_to_utc(LA, day, 90, fold=1) == utc(11, 3, 9, 30)
    assert local_to_utc(LA, day, 24 * 60) == utc(11, 4, 8)  # 24:00 is the next midnight (PST)


def test_peak_events_become_utc_windows_on_matching_days() -> None:
    event = PeakEvent("afternoon", DailyWindow(16 * 60, 18 * 60, WEEKDAYS), fraction=0.6)
    caps = cap_windows((event,), LA, utc(3, 8, 8), utc(3, 12, 7))
    assert [(c.start, c.end) for c in caps] == [
        (utc(3, 9, 0), utc(3, 9, 2)),  # Fri 16:00-18:00 PST
        (utc(3, 11, 23), utc(3, 12, 1)),  # Mon 16:00-18:00 PDT
    ]
    assert caps[0].cap_kw(150.0) == pytest.approx(90.0)
    assert caps[0].source == "peak-event:afternoon"


def test_example_tariff_is_sce_tou_ev_4_winter() -> None:
    config = load_station(EXAMPLE)
    weekday = price_periods(config.prices, LA, utc(3, 4, 8), utc(3, 5, 8))  # Monday 4 March
    assert [(p.start.astimezone(LA).hour, p.price_per_kwh) for p in weekday] == [
        (0, 0.06087),
        (8, 0.07492),
        (12, 0.0869),
        (18, 0.07492),
        (23, 0.06087),
    ]
    weekend = price_periods(config.prices, LA, utc(3, 2, 8), utc(3, 3, 8))  # Saturday 2 March
    assert [p.price_per_kwh for p in weekend] == [0.06087]


def test_site_limit_lowered_by_events_and_base_load() -> None:
    config = load_station(EXAMPLE)
    event = PeakEvent("afternoon", DailyWindow(16 * 60, 18 * 60, WEEKDAYS), fraction=0.5)
    config = replace(config, peak_events=(event,), base_load_kw=(10.0,))
    start = utc(3, 4, 23, 30)  # Monday 15:30 PST, six 5-minute periods before the event
    site = config.site(start, 12)
    limit = power_limit_kw(site, start, 300, 12)
    assert list(limit[:6]) == pytest.approx([140.0] * 6)
    assert list(limit[6:]) == pytest.approx([65.0] * 6)


def test_hourly_base_load_follows_local_hours() -> None:
    hourly = tuple(float(h) for h in range(24))
    profile = base_load_profile(hourly, LA, utc(3, 10, 9), 3600, 3)  # 01:00 PST, then the jump
    assert profile == (1.0, 3.0, 4.0)
