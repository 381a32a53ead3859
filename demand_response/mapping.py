"""Pure: demand-response events -> cap windows and price changes per station over time (UTC).

Signals (OpenADR 2.0b names and types):

* ``SIMPLE`` (``level``): level 1/2/3 cuts the share of the grid limit the program maps it to;
  0 (normal operation) and below cut nothing.
* ``LOAD_DISPATCH``: ``setpoint`` [kW] caps the import; ``delta`` [kW, negative = less] lowers
  the grid limit by it; ``multiplier`` caps at that share of the grid limit.
* ``LOAD_CONTROL``: ``x-loadControlCapacity`` (share of capacity, 0..1),
  ``x-loadControlLevelOffset`` (a level offset from normal, mapped like SIMPLE levels),
  ``x-loadControlPercentOffset`` (percent, -20 = 80 % of the grid limit), ``x-loadControlSetpoint`` [kW].
* ``ELECTRICITY_PRICE``: ``price`` (absolute), ``priceRelative`` (added), ``priceMultiplier``:
  :class:`PriceChange`s over the station's own prices (:func:`overlay_prices`). A price or relative
  price applies only per kWh (item base ``currencyPerKWh``, scaled by its SI code, or none); one
  per kW or per therm is not an energy price and gives nothing. The currency the VTN names is
  taken to be the station's: a program serves one market.

Other signals (``CHARGE_STATE``, bids, other prices, ``x-`` names and types, powers whose item
base is not a real power) are not :func:`supported`: they give nothing.

A kW value for a resource of several stations is split in proportion to their grid limits. A
randomisation window (``startafter``) shifts the whole event by an offset that depends only on
the VEN and the event id (:func:`start_offset`), so an update or a restart keeps it; a
cancellation that reaches such an event while we enforce it ends it that offset later. Ramp-up and
recovery periods step the cap down before the event and back up after it. Where events overlap
on a station, the higher-priority one (OpenADR: 1 is highest, 0 is unset and lowest) rules alone;
equal priorities both apply (the lower cap wins). Test, cancelled and opted-out events, and
events for other VENs, give nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from demand_response.config import OptType, Program
from demand_response.events import PER_KWH, POWER_TYPES, PRICE_TYPES, DrEvent, EventStatus, Signal, Targets
from optimizer.types import CapWindow, PricePeriod

logger = logging.getLogger(__name__)

RAMP_STEPS = 4
"""How many steps a ramp-up or recovery period is cut into."""
_NO_PRIORITY = 1 << 30
_SUPPORTED: dict[str, frozenset[str] | None] = {  # signal name -> its types we map (None: any)
    "SIMPLE": None,
    "LOAD_DISPATCH": frozenset({"setpoint", "delta", "multiplier"}),
    "LOAD_CONTROL": frozenset(
        {
            "x-loadControlCapacity",
            "x-loadControlLevelOffset",
            "x-loadControlPercentOffset",
            "x-loadControlSetpoint",
        }
    ),
    "ELECTRICITY_PRICE": frozenset({"price", "priceRelative", "priceMultiplier"}),
}


@dataclass(frozen=True, slots=True)
class PriceChange:
    """A price signal over ``[start, end)``: ``kind`` is price, priceRelative or priceMultiplier."""

    start: datetime
    end: datetime
    kind: str
    value: float


@dataclass(frozen=True, slots=True)
class Plan:
    """What the events mean for each station: caps and price changes (stations without any omitted)."""

    caps: Mapping[str, tuple[CapWindow, ...]] = field(default_factory=dict)
    prices: Mapping[str, tuple[PriceChange, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Audience:
    """Who we are to a VTN: the VEN's name and id, and the program (groups, resources)."""

    program: Program
    ven_id: str | None = None


def start_offset(ven_name: str, event: DrEvent) -> timedelta:
    """The event's randomised start offset in ``[0, start_after)``: the same for the same VEN and event."""
    if event.start_after <= timedelta(0):
        return timedelta(0)
    digest = hashlib.sha256(f"{ven_name}\x00{event.program}\x00{event.event_id}".encode()).digest()
    share = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(seconds=round(share * event.start_after.total_seconds(), 3))


def targeted_stations(event: DrEvent, audience: Audience | None) -> tuple[str, ...]:
    """The stations an event applies to (a manual event names them; a VTN's names us or our resources).

    A VTN's event keeps the stations it was found to target when it arrived (``stations``), so a
    restart that does not know the VEN id the VTN assigned yet still enforces it.
    """
    if audience is None or event.stations:
        return event.stations
    return _matching(event.targets, audience, audience.program.stations)


def _matching(targets: Targets, audience: Audience, stations: tuple[str, ...]) -> tuple[str, ...]:
    program = audience.program
    if targets.empty:
        return stations
    ours = {program.ven_name, *((audience.ven_id,) if audience.ven_id else ())}
    if ours & set(targets.ven_ids) or set(program.groups) & set(targets.group_ids):
        return stations
    if targets.party_ids and program.ven_name in targets.party_ids:
        return stations
    chosen: dict[str, None] = {}
    for resource in targets.resource_ids:
        chosen.update(dict.fromkeys(s for s in program.stations_of(resource) if s in stations))
    return tuple(chosen)


def supported(signal: Signal) -> bool:
    """Whether a signal means a cap or a price change here (name and type mapped, a power in kW)."""
    name = "SIMPLE" if signal.name.upper() == "SIMPLE" else signal.name
    if name not in _SUPPORTED:
        return False
    kinds = _SUPPORTED[name]
    if kinds is not None and signal.signal_type not in kinds:
        return False
    if signal.signal_type in PRICE_TYPES:  # per kWh; "kW" is Signal's default: no item base named
        return signal.unit == "kW" or signal.unit.split(":")[0] == PER_KWH
    return signal.signal_type not in POWER_TYPES or signal.unit == "kW"


def enforced(event: DrEvent) -> bool:
    """Whether an event's caps and prices apply (not a test, not opted out, not cancelled, or
    cancelled while we enforced it with a randomisation window: its randomised end still runs)."""
    return (
        not event.test_event
        and event.opt is not OptType.OPT_OUT
        and (
            event.status is not EventStatus.CANCELLED
            or (event.cancelled_at is not None and event.start_after > timedelta(0))
        )
    )


def plan(
    events: Iterable[DrEvent],
    grid_limit_kw: Mapping[str, float],
    audiences: Mapping[str, Audience] | None = None,
) -> Plan:
    """The caps and price changes of ``events`` for the stations in ``grid_limit_kw``.

    ``audiences`` gives each program's VEN (manual events, program ``manual``, need none).
    """
    audiences = audiences or {}
    spans: dict[str, list[tuple[int, datetime, datetime, list[CapWindow], list[PriceChange]]]] = {}
    for event in events:
        if not enforced(event):
            continue
        audience = audiences.get(event.program)
        stations = tuple(s for s in targeted_stations(event, audience) if s in grid_limit_kw)
        if not stations:
            continue
        offset = (
            start_offset(audience.program.ven_name, event)
            if audience and audience.program.randomize
            else timedelta(0)
        )
        cut_off: list[tuple[datetime, datetime]] = []
        if event.status is EventStatus.CANCELLED:
            if event.cancelled_at is None or offset <= timedelta(0):
                continue
            # The cancellation ends the event at the same random offset as its start (so that a
            # population of VENs does not come back at one moment): nothing from then on.
            cut_off = [(event.cancelled_at + offset, datetime.max.replace(tzinfo=event.cancelled_at.tzinfo))]
        rank = event.priority if event.priority > 0 else _NO_PRIORITY
        for station in stations:
            caps, prices = _station_windows(event, station, stations, grid_limit_kw, audience, offset)
            if cut_off:
                caps = [c for cap in caps for c in _clip_cap(cap, cut_off)]
                prices = [p for price in prices for p in _clip_price(price, cut_off)]
            if caps or prices:
                begin = event.start + offset - event.ramp_up
                end = event.end + offset + event.recovery
                if cut_off:
                    end = min(end, cut_off[0][0])
                spans.setdefault(station, []).append((rank, begin, end, caps, prices))
    out_caps: dict[str, tuple[CapWindow, ...]] = {}
    out_prices: dict[str, tuple[PriceChange, ...]] = {}
    for station, entries in spans.items():
        caps_here: list[CapWindow] = []
        prices_here: list[PriceChange] = []
        for rank, _, _, caps, prices in entries:
            above = [(b, e) for r, b, e, _, _ in entries if r < rank]
            caps_here.extend(c for cap in caps for c in _clip_cap(cap, above))
            prices_here.extend(p for price in prices for p in _clip_price(price, above))
        if caps_here:
            out_caps[station] = tuple(sorted(caps_here, key=lambda c: (c.start, c.end)))
        if prices_here:
            out_prices[station] = tuple(sorted(prices_here, key=lambda p: (p.start, p.end)))
    return Plan(out_caps, out_prices)


def _station_windows(
    event: DrEvent,
    station: str,
    stations: tuple[str, ...],
    grid_limit_kw: Mapping[str, float],
    audience: Audience | None,
    offset: timedelta,
) -> tuple[list[CapWindow], list[PriceChange]]:
    source = f"dr:{event.program}:{event.event_id}"
    caps: list[CapWindow] = []
    prices: list[PriceChange] = []
    for signal in event.signals:
        if audience is not None and not signal.targets.empty:
            members = _matching(signal.targets, audience, stations)
        else:
            members = stations
        if station not in members or not supported(signal):
            continue
        share = 1.0  # of a kW value for a resource of several stations: by grid limit
        if signal.signal_type in POWER_TYPES and len(members) > 1:
            share = grid_limit_kw[station] / sum(grid_limit_kw[s] for s in members)
        for interval in signal.intervals:
            start, end = interval.start + offset, interval.end + offset
            if end <= start:
                continue
            if signal.name == "ELECTRICITY_PRICE":
                prices.append(PriceChange(start, end, signal.signal_type, interval.value))
                continue
            limit_kw = _cap_kw(signal, interval.value, grid_limit_kw[station], share, audience)
            if limit_kw is not None:
                caps.append(CapWindow(start, end, limit_kw=max(limit_kw, 0.0), source=source))
    if caps:
        caps = _with_ramps(caps, event, grid_limit_kw[station], source)
    return caps, prices


def _cap_kw(
    signal: Signal, value: float, grid_kw: float, share: float, audience: Audience | None
) -> float | None:
    """The import cap [kW] one interval's value of a supported signal means at a station (None: no cap)."""
    name, kind = signal.name, signal.signal_type
    if name.upper() == "SIMPLE" or kind == "x-loadControlLevelOffset":
        level = round(value)
        if level <= 0:  # normal operation (0) or more than normal: nothing to cut
            return None
        cut = audience.program.level_cut(level) if audience else {1: 0.2, 2: 0.5, 3: 1.0}.get(level)
        if cut is None:
            logger.warning("%s level %s is not mapped; treated as the highest level", name, value)
            cut = max((c for _, c in audience.program.simple_levels), default=1.0) if audience else 1.0
        return None if cut <= 0 else grid_kw * (1.0 - cut)
    if kind in {"setpoint", "x-loadControlSetpoint"}:
        return value * share
    if kind == "delta":
        return grid_kw + value * share
    if kind in {"multiplier", "x-loadControlCapacity"}:
        return grid_kw * value
    if kind == "x-loadControlPercentOffset":
        return grid_kw * (1.0 + value / 100.0)
    return None


def _with_ramps(caps: list[CapWindow], event: DrEvent, grid_kw: float, source: str) -> list[CapWindow]:
    """Add the ramp-up steps before the first cap and the recovery steps after the last one."""
    caps = sorted(caps, key=lambda c: c.start)
    first, last = caps[0], max(caps, key=lambda c: c.end)
    out = list(caps)
    for period, anchor, target, ramp_in in (
        (event.ramp_up, first.start, first.limit_kw, True),
        (event.recovery, last.end, last.limit_kw, False),
    ):
        if period <= timedelta(0) or target is None:
            continue
        step = period / RAMP_STEPS
        for k in range(RAMP_STEPS):
            share = (k + 1) / (RAMP_STEPS + 1)  # ramp in: 1/5 .. 4/5 of the way down
            if ramp_in:
                begin = anchor - period + step * k
                limit = grid_kw - (grid_kw - target) * share
            else:
                begin = anchor + step * k
                limit = target + (grid_kw - target) * share
            out.append(CapWindow(begin, begin + step, limit_kw=limit, source=source))
    return out


def _subtract(
    start: datetime, end: datetime, holes: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    pieces = [(start, end)]
    for hole_start, hole_end in holes:
        nxt = []
        for a, b in pieces:
            if hole_end <= a or hole_start >= b:
                nxt.append((a, b))
                continue
            if a < hole_start:
                nxt.append((a, hole_start))
            if hole_end < b:
                nxt.append((hole_end, b))
        pieces = nxt
    return pieces


def _clip_cap(cap: CapWindow, above: list[tuple[datetime, datetime]]) -> list[CapWindow]:
    return [
        CapWindow(a, b, limit_kw=cap.limit_kw, fraction=cap.fraction, source=cap.source)
        for a, b in _subtract(cap.start, cap.end, above)
    ]


def _clip_price(price: PriceChange, above: list[tuple[datetime, datetime]]) -> list[PriceChange]:
    return [PriceChange(a, b, price.kind, price.value) for a, b in _subtract(price.start, price.end, above)]


def overlay_prices(
    base: tuple[PricePeriod, ...], changes: tuple[PriceChange, ...]
) -> tuple[PricePeriod, ...]:
    """The station's own prices with ``changes`` laid over them (the base price resumes after each)."""
    if not changes:
        return base
    ordered = sorted(base, key=lambda p: p.start)

    def base_at(at: datetime) -> float:
        price = 0.0
        for period in ordered:
            if period.start <= at:
                price = period.price_per_kwh
        return price

    edges = sorted({p.start for p in ordered} | {c.start for c in changes} | {c.end for c in changes})
    out: list[PricePeriod] = []
    for at in edges:
        price = base_at(at)
        for change in sorted(changes, key=lambda c: c.start):
            if change.start <= at < change.end:
                if change.kind == "priceRelative":
                    price = price + change.value
                elif change.kind == "priceMultiplier":
                    price = price * change.value
                else:
                    price = change.value
        if not out or out[-1].price_per_kwh != price:
            out.append(PricePeriod(at, price))
    return tuple(out)


def lowest_cap_kw(caps: Iterable[CapWindow], grid_limit_kw: float, now: datetime) -> float | None:
    """The lowest cap [kW] of windows that have not ended by ``now`` (None: no such window)."""
    values = [c.cap_kw(grid_limit_kw) for c in caps if c.end > now]
    return min(values, default=None)
