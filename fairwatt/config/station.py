"""Load a station file (YAML) into a :class:`StationConfig`, validating while walking it.

Layout (see ``examples/station.yaml``)::

    version: 1            # optional
    station:
      id, time_zone, grid_limit_kw, demand_charge_per_kw, base_load_kw,
      limits:  {id, limit_a, limit_kw, transformer: {...}, evses: [...], children: [...]}
      evses:   [{id | ids | id_range, connection, voltage_v, max_current_a, ...,
                charger, connector}, ...]
      prices:  {currency, default_per_kwh, windows: [{start, end, days, months, dates, price_per_kwh}]}
      peak_events: [{name, start, end, days, ..., limit_kw | fraction}]
      policy:  {period_s, horizon_periods, default_stay_h, ...}
      forecast: {weight, days, expected: {covers, arrivals: [...]}}   (``fairwatt.config.forecast``)

``charger``/``connector`` place an entry's EVSEs on the wire (what ``fairwatt serve`` controls):
without ``charger`` each EVSE is a charger of its own named like the EVSE, on connector
``connector`` (default 1); with ``charger`` the entry's EVSEs are that charger's connectors,
numbered from ``connector`` in the order listed.

Only ``station:`` exists today; a network file will add ``stations:``, tariffs and
programmes beside it, which is why the station sits one level down.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from fairwatt.config.currencies import is_currency
from fairwatt.config.forecast import forecast_rules
from fairwatt.config.model import (
    DAY_SETS,
    DailyWindow,
    DayFilter,
    EvsePlace,
    LimitNode,
    PeakEvent,
    PriceSchedule,
    PriceWindow,
    StationConfig,
    TransformerSpec,
)
from fairwatt.config.nodes import Cursor, compose_file, compose_text, suggestion
from optimizer.types import Connection, Evse, Policy, RateUnit

logger = logging.getLogger(__name__)

CONNECTIONS: dict[str, Connection] = {
    **{c.value: c for c in Connection},
    "L1_L2": Connection.L1_L2,
    "L2_L3": Connection.L2_L3,
    "L3_L1": Connection.L3_L1,
    "AB": Connection.L1_L2,
    "BC": Connection.L2_L3,
    "CA": Connection.L3_L1,
    "three-phase": Connection.THREE_PHASE,
}
RATE_UNITS: dict[str, RateUnit] = {"A": RateUnit.AMPERE, "W": RateUnit.WATT}
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
FAIRNESS = {"max-min": "max-min", "none": "none"}
OBJECTIVE_TERMS = {"energy": "energy", "cost": "cost", "peak": "peak"}

_STATION_KEYS = (
    "id",
    "time_zone",
    "grid_limit_kw",
    "limits",
    "evses",
    "prices",
    "peak_events",
    "base_load_kw",
    "demand_charge_per_kw",
    "policy",
    "forecast",
)


def load_station(path: str | Path) -> StationConfig:
    """Read and validate a station file; raises ``ConfigError`` naming file, line and field."""
    return _station_from(compose_file(path))


def parse_station(text: str, name: str = "<string>") -> StationConfig:
    """Like :func:`load_station` for YAML text already in memory (``name`` appears in errors)."""
    return _station_from(compose_text(text, name))


def _station_from(root: Cursor) -> StationConfig:
    top = root.mapping(("version", "station"), required=("station",))
    if "version" in top:
        top["version"].integer(minimum=1, maximum=1)
    fields = top["station"].mapping(
        _STATION_KEYS, required=("id", "time_zone", "grid_limit_kw", "limits", "evses")
    )
    tz = fields["time_zone"].time_zone()
    evses, declared_at, places = _evses(fields["evses"])
    limits = _limit_tree(fields["limits"], evses, declared_at)
    policy, resolve_every = _policy(fields["policy"]) if "policy" in fields else (Policy(), 1)
    return StationConfig(
        station_id=fields["id"].string(),
        time_zone=tz,
        grid_limit_kw=fields["grid_limit_kw"].number("kW", positive=True),
        limits=limits,
        evses=evses,
        **site_rules(fields),
        **forecast_rules(fields, evses),
        policy=policy,
        resolve_every_periods=resolve_every,
        source=root.source,
        places=places,
    )


def site_rules(fields: dict[str, Cursor]) -> dict[str, Any]:
    """A station's optional rules over time as ``StationConfig`` fields: prices, peak events,
    base load and demand charge (the station file and the network file read them alike)."""
    return {
        "prices": _prices(fields["prices"]) if "prices" in fields else PriceSchedule(),
        "peak_events": tuple(_peak_event(c) for c in fields["peak_events"].sequence())
        if "peak_events" in fields
        else (),
        "base_load_kw": _base_load(fields["base_load_kw"]) if "base_load_kw" in fields else (),
        "demand_charge_per_kw": fields["demand_charge_per_kw"].number(minimum=0.0)
        if "demand_charge_per_kw" in fields
        else 0.0,
    }


# -- EVSEs ------------------------------------------------------------------------------------


def _evse_ids(fields: dict[str, Cursor], entry: Cursor) -> list[tuple[str, Cursor]]:
    given = [key for key in ("id", "ids", "id_range") if key in fields]
    if len(given) != 1:
        raise entry.error("give exactly one of 'id', 'ids' or 'id_range'")
    key = given[0]
    if key == "id":
        return [(fields["id"].string(), fields["id"])]
    if key == "ids":
        items = fields["ids"].sequence()
        if not items:
            raise fields["ids"].error("expected at least one EVSE id")
        return [(item.string(), item) for item in items]
    spec = fields["id_range"].mapping(("prefix", "first", "last", "digits"), required=("first", "last"))
    prefix = spec["prefix"].string() if "prefix" in spec else ""
    first = spec["first"].integer(minimum=0)
    last = spec["last"].integer(minimum=first)
    digits = spec["digits"].integer(minimum=1, maximum=12) if "digits" in spec else 0
    return [(f"{prefix}{n:0{digits}d}", fields["id_range"]) for n in range(first, last + 1)]


def _evses(cursor: Cursor) -> tuple[tuple[Evse, ...], dict[str, Cursor], tuple[EvsePlace, ...]]:
    evses: list[Evse] = []
    declared_at: dict[str, Cursor] = {}
    places: list[EvsePlace] = []
    placed_at: dict[tuple[str, int], Cursor] = {}  # (charger, connector) -> where
    entries = cursor.sequence()
    if not entries:
        raise cursor.error("a station needs at least one EVSE")
    for entry in entries:
        fields = entry.mapping(
            (
                "id",
                "ids",
                "id_range",
                "connection",
                "voltage_v",
                "max_current_a",
                "min_current_a",
                "rate_unit",
                "step",
                "charger",
                "connector",
            ),
            required=("connection", "voltage_v", "max_current_a"),
        )
        charger = fields["charger"].string() if "charger" in fields else None
        connector = fields["connector"].integer(minimum=1) if "connector" in fields else 1
        connection = fields["connection"].choice(CONNECTIONS, "a connection:")
        voltage_v = fields["voltage_v"].number("V", positive=True)
        max_a = fields["max_current_a"].number("A", positive=True)
        min_a = fields["min_current_a"].number("A", minimum=0.0) if "min_current_a" in fields else 0.0
        if min_a > max_a:
            raise fields["min_current_a"].error(f"{min_a:g} A is above max_current_a ({max_a:g} A)")
        unit = (
            fields["rate_unit"].choice(RATE_UNITS, "a rate unit:")
            if "rate_unit" in fields
            else RateUnit.AMPERE
        )
        step = fields["step"].number(unit.value, positive=True) if "step" in fields else 0.1
        for k, (evse_id, where) in enumerate(_evse_ids(fields, entry)):
            if evse_id in declared_at:
                first = declared_at[evse_id].node.start_mark.line + 1
                raise where.error(f"EVSE {evse_id!r} is declared twice (first on line {first})")
            declared_at[evse_id] = where
            evses.append(Evse(evse_id, connection, voltage_v, max_a, min_a, unit, step))
            place = (
                EvsePlace(evse_id, evse_id, connector)
                if charger is None
                else EvsePlace(evse_id, charger, connector + k)
            )
            spot = (place.charger_id, place.connector_id)
            if spot in placed_at:
                first = placed_at[spot].node.start_mark.line + 1
                raise (fields["charger"] if charger is not None else where).error(
                    f"charger {place.charger_id!r} connector {place.connector_id} holds two EVSEs "
                    f"(the first declared on line {first})"
                )
            placed_at[spot] = where
            places.append(place)
    return tuple(evses), declared_at, tuple(places)


# -- the limit tree ---------------------------------------------------------------------------


def _limit_tree(cursor: Cursor, evses: tuple[Evse, ...], declared_at: dict[str, Cursor]) -> LimitNode:
    placed: dict[str, str] = {}  # evse id -> node id
    node_ids: set[str] = set()
    root = _limit_node(cursor, {e.evse_id for e in evses}, placed, node_ids, parent_limit_a=None)
    missing = [evse_id for evse_id in declared_at if evse_id not in placed]
    if missing:
        raise declared_at[missing[0]].error(
            f"EVSE {missing[0]!r} is not under any node of 'limits' "
            f"({len(missing)} EVSE(s) missing); every EVSE must sit under exactly one node"
        )
    return root


def _limit_node(
    cursor: Cursor,
    known: set[str],
    placed: dict[str, str],
    node_ids: set[str],
    parent_limit_a: float | None,
) -> LimitNode:
    fields = cursor.mapping(
        ("id", "limit_a", "limit_kw", "transformer", "evses", "children"), required=("id",)
    )
    node_id = fields["id"].string()
    if node_id in node_ids:
        raise fields["id"].error(f"node id {node_id!r} is used twice in the limit tree")
    node_ids.add(node_id)
    transformer: TransformerSpec | None = None
    limit_a = fields["limit_a"].number("A", positive=True) if "limit_a" in fields else None
    if "transformer" in fields:
        if limit_a is not None:
            raise fields["limit_a"].error("a transformer's limit_a follows from its rating; remove limit_a")
        spec = fields["transformer"].mapping(
            ("rating_kva", "primary_voltage_v", "secondary_voltage_v"),
            required=("rating_kva", "primary_voltage_v", "secondary_voltage_v"),
        )
        transformer = TransformerSpec(
            rating_kva=spec["rating_kva"].number("kVA", positive=True),
            primary_voltage_v=spec["primary_voltage_v"].number("V", positive=True),
            secondary_voltage_v=spec["secondary_voltage_v"].number("V", positive=True),
        )
    limit_kw = fields["limit_kw"].number("kW", positive=True) if "limit_kw" in fields else None
    evse_ids: list[str] = []
    for item in fields["evses"].sequence_or_one() if "evses" in fields else []:
        evse_id = item.string()
        if evse_id not in known:
            raise item.error(
                f"unknown EVSE {evse_id!r}{suggestion(evse_id, known)}; declare it under 'evses'"
            )
        if evse_id in placed:
            raise item.error(f"EVSE {evse_id!r} is already under node {placed[evse_id]!r}")
        placed[evse_id] = node_id
        evse_ids.append(evse_id)
    own_limit_a = transformer.secondary_limit_a if transformer is not None else limit_a
    if own_limit_a is not None and parent_limit_a is not None and own_limit_a > parent_limit_a:
        logger.warning(
            "%s: limit node %r allows %.1f A, more than its parent (%.1f A)",
            cursor.source,
            node_id,
            own_limit_a,
            parent_limit_a,
        )
    inherited = own_limit_a if own_limit_a is not None else parent_limit_a
    children = tuple(
        _limit_node(child, known, placed, node_ids, inherited)
        for child in (fields["children"].sequence() if "children" in fields else [])
    )
    node = LimitNode(node_id, limit_a, limit_kw, tuple(evse_ids), children, transformer)
    if not node.all_evse_ids():
        raise cursor.error(f"limit node {node_id!r} has no EVSEs below it")
    return node


# -- prices, peak events, base load -----------------------------------------------------------

_WINDOW_KEYS = ("name", "start", "end", "days", "months", "dates")


def _day_filter(fields: dict[str, Cursor]) -> DayFilter:
    weekdays = frozenset(range(7))
    if "days" in fields:
        sets = [item.choice(DAY_SETS, "days:") for item in fields["days"].sequence_or_one()]
        weekdays = frozenset().union(*sets)
    months = frozenset(range(1, 13))
    if "months" in fields:
        chosen: set[int] = set()
        for item in fields["months"].sequence_or_one():
            if item.node.tag == "tag:yaml.org,2002:int":
                chosen.add(item.integer(minimum=1, maximum=12))
            else:
                chosen.add(item.choice({name: k + 1 for k, name in enumerate(MONTH_NAMES)}, "a month:"))
        months = frozenset(chosen)
    first = last = None
    if "dates" in fields:
        span = fields["dates"].mapping(("from", "to"))
        first = span["from"].date() if "from" in span else None
        last = span["to"].date() if "to" in span else None
        if first is not None and last is not None and last < first:
            raise span["to"].error(f"the date range ends ({last}) before it starts ({first})")
    return DayFilter(weekdays, months, first, last)


def _daily_window(fields: dict[str, Cursor]) -> DailyWindow:
    start = fields["start"].time_of_day()
    end = fields["end"].time_of_day()
    if start == 24 * 60:
        raise fields["start"].error("a window cannot start at 24:00; use 00:00")
    return DailyWindow(start, end, _day_filter(fields))


def _prices(cursor: Cursor) -> PriceSchedule:
    fields = cursor.mapping(("currency", "default_per_kwh", "windows"), required=("default_per_kwh",))
    windows: list[PriceWindow] = []
    for k, entry in enumerate(fields["windows"].sequence() if "windows" in fields else []):
        item = entry.mapping((*_WINDOW_KEYS, "price_per_kwh"), required=("start", "end", "price_per_kwh"))
        name = item["name"].string() if "name" in item else f"window-{k}"
        windows.append(PriceWindow(name, _daily_window(item), item["price_per_kwh"].number(minimum=0.0)))
    return PriceSchedule(
        currency=_currency(fields["currency"]) if "currency" in fields else "USD",
        default_per_kwh=fields["default_per_kwh"].number(minimum=0.0),
        windows=tuple(windows),
    )


def _currency(cursor: Cursor) -> str:
    code = cursor.string().strip().upper()
    if not is_currency(code):
        raise cursor.error(
            f"unknown currency {cursor.string()!r}; expected an ISO 4217 code such as EUR or USD"
        )
    return code


def _peak_event(cursor: Cursor) -> PeakEvent:
    fields = cursor.mapping((*_WINDOW_KEYS, "limit_kw", "fraction"), required=("start", "end"))
    if ("limit_kw" in fields) == ("fraction" in fields):
        raise cursor.error("give exactly one of 'limit_kw' or 'fraction'")
    limit_kw = fields["limit_kw"].number("kW", minimum=0.0) if "limit_kw" in fields else None
    fraction = fields["fraction"].number(minimum=0.0, maximum=1.0) if "fraction" in fields else None
    name = fields["name"].string() if "name" in fields else f"event-line-{cursor.node.start_mark.line + 1}"
    return PeakEvent(name, _daily_window(fields), limit_kw, fraction)


def _base_load(cursor: Cursor) -> tuple[float, ...]:
    if not cursor.is_sequence:
        return (cursor.number("kW", minimum=0.0),)
    values = tuple(item.number("kW", minimum=0.0) for item in cursor.sequence())
    if len(values) != 24:
        raise cursor.error(f"expected one number or 24 hourly values, got {len(values)} values")
    return values


POLICY_KEYS = (
    "period_s",
    "horizon_periods",
    "default_stay_h",
    "default_energy_kwh",
    "fairness",
    "objective",
    "resolve_every_periods",
    "deadline_s",
    "trust_forecast",
)

_YES_NO = {"true": True, "false": False, "yes": True, "no": False}


def _policy(cursor: Cursor) -> tuple[Policy, int]:
    return policy_from(cursor.mapping(POLICY_KEYS))


def policy_from(fields: dict[str, Cursor]) -> tuple[Policy, int]:
    """The solver policy and re-solve cadence of a policy mapping's fields (others are ignored)."""
    base = Policy()
    objective = base.objective
    if "objective" in fields:
        objective = tuple(
            item.choice(OBJECTIVE_TERMS, "an objective term:") for item in fields["objective"].sequence()
        )
        if len(set(objective)) != len(objective):
            raise fields["objective"].error("an objective term is listed twice")
    policy = Policy(
        period_s=fields["period_s"].integer(minimum=1, maximum=3600)
        if "period_s" in fields
        else base.period_s,
        horizon_periods=fields["horizon_periods"].integer(minimum=1)
        if "horizon_periods" in fields
        else base.horizon_periods,
        default_stay=timedelta(hours=fields["default_stay_h"].number("h", positive=True))
        if "default_stay_h" in fields
        else base.default_stay,
        default_energy_kwh=fields["default_energy_kwh"].number("kWh", minimum=0.0)
        if "default_energy_kwh" in fields
        else base.default_energy_kwh,
        fairness=fields["fairness"].choice(FAIRNESS, "fairness:") if "fairness" in fields else base.fairness,
        objective=objective,
        deadline_s=fields["deadline_s"].number("s", positive=True)
        if "deadline_s" in fields
        else base.deadline_s,
        trust_forecast=fields["trust_forecast"].choice(_YES_NO, "trust_forecast:")
        if "trust_forecast" in fields
        else base.trust_forecast,
    )
    resolve = fields["resolve_every_periods"].integer(minimum=1) if "resolve_every_periods" in fields else 1
    return policy, resolve
