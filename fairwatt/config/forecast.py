"""A station's ``forecast:`` section: how much the forecast weighs, how far back it learns, and
the arrivals its operator declares for the days it has not seen yet.

Layout::

    forecast:
      weight: 0.5          # below 1: expected sessions only break ties between plans (default 0.5)
      days: 14             # the latest earlier days of the same kind it learns from (default 14)
      expected:            # stands in for a kind of day (weekday, weekend) until one is seen
        covers: all        # the days it speaks for in full (default: the days its arrivals name)
        arrivals:
          - {evses: 12, arrive: "17:00", until: "18:30", leave: "06:00", energy_kwh: 45, days: weekdays}

``evses`` is a number of cars (one per EVSE, spread evenly over the station's EVSEs in file
order) or a list of EVSE ids (one car each). The cars arrive evenly spread from ``arrive`` to
``until`` (default: all at ``arrive``; the window may not pass midnight); they leave at
``leave``, the next day when it is at or before ``arrive``. ``energy_kwh`` is each car's need.
``days`` (default all) and ``covers``: weekdays, weekends, all, or mon..sun, one or a list.

``covers`` is what the schedule says of the days it declares nobody on: a covered day with no
arrivals expects nobody (the vans' energy may wait for the night before it); a day it does not
cover stays unforecast (a car may come; the solver keeps early energy). Without ``covers`` a
weekday timetable says nothing of weekends: saying nobody comes is the operator's explicit choice.
"""

from __future__ import annotations

from typing import Any

from fairwatt.config.model import DAY_SETS, WEEKDAY_NAMES
from fairwatt.config.nodes import Cursor, suggestion
from optimizer.forecast import DeclaredArrivals, DeclaredCar, DeclaredSchedule
from optimizer.types import Evse

_DAY = 24 * 60
_INT_TAG = "tag:yaml.org,2002:int"
_ARRIVAL_KEYS = ("evses", "arrive", "until", "leave", "energy_kwh", "days")


def forecast_rules(fields: dict[str, Cursor], evses: tuple[Evse, ...]) -> dict[str, Any]:
    """A station's ``forecast: {weight, days, expected}`` as ``StationConfig`` fields (absent: no
    forecast); ``evses`` are the station's, in file order."""
    if "forecast" not in fields:
        return {}
    entry = fields["forecast"].mapping(("weight", "days", "expected"))
    weight, days = 0.5, 14
    if "weight" in entry:
        weight = entry["weight"].number(positive=True)
        if weight >= 1.0:
            raise entry["weight"].error(
                f"must be below 1 (expected sessions only break ties between plans), got {weight:g}"
            )
    if "days" in entry:
        days = entry["days"].integer(minimum=1, maximum=60)
    out: dict[str, Any] = {"forecast_weight": weight, "forecast_days": days}
    if "expected" in entry:
        out["forecast_expected"] = _declared(entry["expected"], evses)
    return out


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _weekdays(cursor: Cursor) -> frozenset[int]:
    return frozenset().union(*(item.choice(DAY_SETS, "days:") for item in cursor.sequence_or_one()))


def _declared(cursor: Cursor, evses: tuple[Evse, ...]) -> DeclaredSchedule:
    fields = cursor.mapping(("covers", "arrivals"), required=("arrivals",))
    covers = _weekdays(fields["covers"]) if "covers" in fields else None
    items = fields["arrivals"].sequence()
    if not items:
        raise fields["arrivals"].error("expected at least one entry of arrivals")
    arrivals = tuple(_arrivals(item, evses, covers) for item in items)
    named = frozenset().union(*(a.weekdays for a in arrivals))
    return DeclaredSchedule(arrivals, named if covers is None else covers)


def _arrivals(cursor: Cursor, evses: tuple[Evse, ...], covers: frozenset[int] | None) -> DeclaredArrivals:
    fields = cursor.mapping(_ARRIVAL_KEYS, required=("evses", "arrive", "leave", "energy_kwh"))
    cars = _cars(fields["evses"], evses)
    arrive = fields["arrive"].time_of_day()
    if arrive == _DAY:
        raise fields["arrive"].error("cars cannot arrive at 24:00; use 00:00")
    until = arrive
    if "until" in fields:
        until = fields["until"].time_of_day()
        if not arrive <= until < _DAY:
            raise fields["until"].error(
                f"the last car must arrive from {_hhmm(arrive)} (arrive) to 23:59, got {_hhmm(until)}; "
                "an arrival window may not pass midnight"
            )
    leave = fields["leave"].time_of_day()
    if arrive < leave <= until:
        raise fields["leave"].error(
            f"{_hhmm(leave)} is inside the arrival window {_hhmm(arrive)}-{_hhmm(until)}: cars leave "
            f"after the last arrives, or at or before {_hhmm(arrive)} for the next day"
        )
    weekdays = _weekdays(fields["days"]) if "days" in fields else DAY_SETS["all"]
    if covers is not None and not weekdays <= covers:
        names = ", ".join(WEEKDAY_NAMES[d] for d in sorted(weekdays - covers))
        raise fields.get("days", cursor).error(
            f"arrivals on {names}, which 'covers' leaves out; add them to 'covers'"
        )
    return DeclaredArrivals(
        cars=cars,
        weekdays=weekdays,
        arrive_min=arrive,
        arrive_until_min=until,
        leave_min=leave,
        energy_kwh=fields["energy_kwh"].number("kWh", positive=True),
    )


def _cars(cursor: Cursor, evses: tuple[Evse, ...]) -> tuple[DeclaredCar, ...]:
    """One car per EVSE: ``count`` spread evenly over the station's EVSEs, or those listed."""
    if not cursor.is_sequence:
        if cursor.node.tag != _INT_TAG:
            raise cursor.error("expected a number of cars or a list of EVSE ids")
        count = cursor.integer(minimum=1)
        if count > len(evses):
            raise cursor.error(
                f"{count} cars on {len(evses)} EVSEs: one car per EVSE (list the EVSEs to name them)"
            )
        chosen = [evses[k * len(evses) // count] for k in range(count)]
        return tuple(DeclaredCar(e.evse_id, e.max_current_a) for e in chosen)
    by_id = {e.evse_id: e for e in evses}
    items = cursor.sequence()
    if not items:
        raise cursor.error("expected at least one EVSE id")
    cars: list[DeclaredCar] = []
    for item in items:
        evse_id = item.string()
        if evse_id not in by_id:
            known = suggestion(evse_id, by_id)
            raise item.error(f"unknown EVSE {evse_id!r}{known}; declare it under 'evses'")
        if any(car.evse_id == evse_id for car in cars):
            raise item.error(f"EVSE {evse_id!r} is listed twice")
        cars.append(DeclaredCar(evse_id, by_id[evse_id].max_current_a))
    return tuple(cars)


def expected_json(schedule: DeclaredSchedule) -> dict[str, Any]:
    """A declared schedule as canonical JSON (EVSEs resolved, days as mon..sun), for diffs."""

    def days(weekdays: frozenset[int]) -> list[str]:
        return [WEEKDAY_NAMES[d] for d in sorted(weekdays)]

    return {
        "covers": days(schedule.covers),
        "arrivals": [
            {
                "evses": [car.evse_id for car in a.cars],
                "arrive": _hhmm(a.arrive_min),
                "until": _hhmm(a.arrive_until_min),
                "leave": _hhmm(a.leave_min),
                "energy_kwh": a.energy_kwh,
                "days": days(a.weekdays),
            }
            for a in schedule.arrivals
        ],
    }
