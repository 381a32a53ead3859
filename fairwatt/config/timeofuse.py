"""Local-time rules (prices, peak events, base load) laid out as UTC instants.

The file speaks local wall-clock time in the station's zone; the solver speaks UTC.
A rule changes value only where the local time crosses one of its boundaries (or
jumps, at a daylight-saving change), so we evaluate the rule at exactly those
instants — both readings of an ambiguous local time, and the transitions themselves.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from optimizer.types import CapWindow, PricePeriod, Site

if TYPE_CHECKING:
    from fairwatt.config.model import PeakEvent, PriceSchedule, StationConfig

_HOUR = timedelta(hours=1)


def local_to_utc(tz: ZoneInfo, day: date, minute: int, fold: int = 0) -> datetime:
    """The UTC instant of local wall time ``minute`` after midnight on ``day`` (1440 is next midnight)."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    return wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)


def _local_days(tz: ZoneInfo, start: datetime, end: datetime) -> list[date]:
    """Every local date touching ``[start, end)``, with a day of margin each side."""
    first = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=1)
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def offset_changes(tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """UTC instants in ``[start, end)`` where the zone's offset changes (to the minute)."""
    out: list[datetime] = []
    t = start
    while t < end:
        nxt = min(t + _HOUR, end)
        if t.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
            lo, hi = t, nxt  # offset(lo) != offset(hi); find the first minute with the new one
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(second=0, microsecond=0)
                if mid <= lo:
                    mid = lo + timedelta(minutes=1)
                if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        t = nxt
    return out


def price_periods(
    prices: PriceSchedule, tz: ZoneInfo, start: datetime, end: datetime
) -> tuple[PricePeriod, ...]:
    """Price periods covering ``[start, end)`` (UTC), the first starting at ``start``."""
    candidates: set[datetime] = {start, *offset_changes(tz, start, end)}
    for day in _local_days(tz, start, end):
        for window in prices.windows:
            for minute in (window.window.start_min, window.window.end_min):
                for fold in (0, 1):
                    candidates.add(local_to_utc(tz, day, minute, fold))
    out: list[PricePeriod] = []
    current: float | None = None
    for instant in sorted(c for c in candidates if start <= c < end):
        price = prices.price_at(instant.astimezone(tz))
        if price != current:
            out.append(PricePeriod(start=instant, price_per_kwh=price))
            current = price
    return tuple(out)


def cap_windows(
    events: tuple[PeakEvent, ...], tz: ZoneInfo, start: datetime, end: datetime
) -> tuple[CapWindow, ...]:
    """The peak events' occurrences that overlap ``[start, end)``, as UTC windows."""
    out: list[CapWindow] = []
    for day in _local_days(tz, start, end):
        for event in events:
            window = event.window
            if not window.days.matches(day):
                continue
            begin = local_to_utc(tz, day, window.start_min)
            end_day = day + timedelta(days=1) if window.wraps else day
            finish = local_to_utc(tz, end_day, window.end_min)
            if begin < end and finish > start and finish > begin:
                out.append(
                    CapWindow(
                        start=begin,
                        end=finish,
                        limit_kw=event.limit_kw,
                        fraction=event.fraction,
                        source=f"peak-event:{event.name}",
                    )
                )
    out.sort(key=lambda cap: cap.start)
    return tuple(out)


def base_load_profile(
    base_load_kw: tuple[float, ...], tz: ZoneInfo, start: datetime, period_s: int, periods: int
) -> tuple[float, ...]:
    """Base load per period from ``start``: constant, or by local hour of day [kW]."""
    if not base_load_kw:
        return ()
    if len(base_load_kw) == 1:
        return base_load_kw * periods
    step = timedelta(seconds=period_s)
    return tuple(base_load_kw[(start + step * t).astimezone(tz).hour] for t in range(periods))


def site_for(config: StationConfig, start: datetime, periods: int) -> Site:
    """The solver's ``Site`` for ``periods`` policy periods from ``start`` (aware, UTC)."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    start = start.astimezone(UTC)
    period_s = config.policy.period_s
    end = start + timedelta(seconds=period_s * periods)
    base = base_load_profile(config.base_load_kw, config.time_zone, start, period_s, periods)
    return Site(
        grid_limit_kw=config.grid_limit_kw,
        root=config.limits.feeder_node(),
        caps=cap_windows(config.peak_events, config.time_zone, start, end),
        prices=price_periods(config.prices, config.time_zone, start, end),
        base_load_kw=base,
        base_load_start=start if base else None,
        demand_charge_per_kw=config.demand_charge_per_kw,
    )
