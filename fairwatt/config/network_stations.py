"""A network file's stations and their chargers, connectors, limit tree and policy."""

from __future__ import annotations

from collections.abc import Iterator
from zoneinfo import ZoneInfo

from fairwatt.config.errors import ConfigError
from fairwatt.config.forecast import forecast_rules
from fairwatt.config.model import ChargingPolicy, EvsePlace, LimitNode, StationConfig
from fairwatt.config.network_collect import _at, _Collected, lenient_mapping
from fairwatt.config.network_model import (
    ChargerConfig,
    ConnectorConfig,
    Location,
    NetworkStation,
    SecretRef,
)
from fairwatt.config.nodes import Cursor
from fairwatt.config.station import (
    CONNECTIONS,
    POLICY_KEYS,
    RATE_UNITS,
    _limit_tree,
    policy_from,
    site_rules,
)
from fairwatt.config.yamljson import cursor_at
from optimizer.types import Connection, Evse, Policy, RateUnit

_STATION_KEYS = (
    "id",
    "name",
    "time_zone",
    "location",
    "grid_limit_kw",
    "phases",
    "base_load_kw",
    "demand_charge_per_kw",
    "tariff",
    "reservation_hold_s",
    "limits",
    "prices",
    "peak_events",
    "policy",
    "forecast",
    "chargers",
)
_ELECTRICAL_KEYS = ("connection", "voltage_v", "max_current_a", "min_current_a", "rate_unit", "step")
_CHARGER_KEYS = (
    "id",
    "vendor",
    "model",
    "security_profile",
    "password",
    "tariff",
    "connectors",
    *_ELECTRICAL_KEYS,
)
_CONNECTOR_KEYS = ("id", "evse", "type", "max_power_kw", *_ELECTRICAL_KEYS)
_SECRET_SCHEMES = ("env", "file")
TOKEN_STATUSES = ("Accepted", "Blocked", "Expired", "Invalid")


# -- stations and chargers --------------------------------------------------------------------


def _station(entry: Cursor, out: _Collected) -> None:
    fields = lenient_mapping(
        entry, _STATION_KEYS, ("id", "time_zone", "grid_limit_kw", "limits", "chargers"), out
    )
    station_id = fields["id"].string()
    out.station_ids.add(station_id)  # also when it has errors: a list naming it is not wrong too
    errors_before = len(out.errors)
    tz = ZoneInfo("UTC")
    try:
        tz = fields["time_zone"].time_zone()
    except ConfigError as exc:
        out.errors.append(exc)
    phases = 3
    if "phases" in fields:
        try:
            phases = fields["phases"].choice({"1": 1, "3": 3}, "phases:")
        except ConfigError as exc:
            out.errors.append(exc)
    grid_limit_kw = 0.0
    try:
        grid_limit_kw = fields["grid_limit_kw"].number("kW", positive=True)
    except ConfigError as exc:
        out.errors.append(exc)
    tariff_id = None
    if "tariff" in fields:
        tariff_id = fields["tariff"].string()
        out.tariff_refs.append((tariff_id, fields["tariff"]))
    chargers: list[tuple[ChargerConfig, Cursor]] = []
    evses: list[Evse] = []
    declared_at: dict[str, Cursor] = {}
    entries = fields["chargers"].sequence()
    if not entries:
        raise fields["chargers"].error("a station needs at least one charger")
    for charger_entry in entries:

        def read(charger_entry: Cursor = charger_entry) -> None:
            charger, charger_evses = _charger(charger_entry, station_id, phases, declared_at, out)
            chargers.append((charger, charger_entry))
            evses.extend(charger_evses)

        out.attempt(read)
    out.chargers.extend(chargers)
    if len(out.errors) > errors_before:
        return  # the EVSEs are incomplete: the limit tree would only repeat the chargers' errors
    limits = _limit_tree(fields["limits"], tuple(evses), declared_at)
    _check_tree(fields["limits"], limits, grid_limit_kw, out)
    policy, resolve_every, charging = (
        _policy(fields["policy"]) if "policy" in fields else (Policy(), 1, ChargingPolicy())
    )
    places = tuple(
        EvsePlace(connector.evse_id, charger.charger_id, connector.connector_id)
        for charger, _ in chargers
        for connector in charger.connectors
    )
    config = StationConfig(
        station_id=station_id,
        time_zone=tz,
        grid_limit_kw=grid_limit_kw,
        limits=limits,
        evses=tuple(evses),
        **site_rules(fields),
        **forecast_rules(fields, tuple(evses)),
        policy=policy,
        resolve_every_periods=resolve_every,
        source=entry.source,
        places=places,
        charging=charging,
    )
    if len(out.errors) > errors_before:
        return
    out.stations.append(
        (
            NetworkStation(
                station=config,
                name=fields["name"].string() if "name" in fields else None,
                location=_location(fields["location"]) if "location" in fields else Location(),
                phases=phases,
                tariff_id=tariff_id,
                reservation_hold_s=fields["reservation_hold_s"].integer(minimum=1, maximum=86_400)
                if "reservation_hold_s" in fields
                else None,
            ),
            entry,
        )
    )


def _location(cursor: Cursor) -> Location:
    fields = cursor.mapping(("latitude_deg", "longitude_deg", "address"))
    return Location(
        latitude_deg=fields["latitude_deg"].number("deg", minimum=-90, maximum=90)
        if "latitude_deg" in fields
        else None,
        longitude_deg=fields["longitude_deg"].number("deg", minimum=-180, maximum=180)
        if "longitude_deg" in fields
        else None,
        address=fields["address"].string() if "address" in fields else None,
    )


def secret_ref(cursor: Cursor) -> SecretRef:
    """``env:NAME`` or ``file:PATH``; anything else (a secret written inline) is an error."""
    raw = cursor.string()
    scheme, sep, name = raw.partition(":")
    if not sep or scheme not in _SECRET_SCHEMES or not name.strip():
        raise cursor.error("secrets are never written inline: give a reference, env:VARIABLE or file:PATH")
    return SecretRef(scheme, name.strip())


def _charger(
    entry: Cursor, station_id: str, phases: int, declared_at: dict[str, Cursor], out: _Collected
) -> tuple[ChargerConfig, list[Evse]]:
    fields = lenient_mapping(entry, _CHARGER_KEYS, ("id",), out)
    charger_id = fields["id"].string()
    out.charger_ids.add(charger_id)
    profile = None  # absent: the charger is held to the security profile of the node it connects to
    if "security_profile" in fields:
        profile = fields["security_profile"].integer(minimum=1, maximum=3)
    password = secret_ref(fields["password"]) if "password" in fields else None
    tariff_id = None
    if "tariff" in fields:
        tariff_id = fields["tariff"].string()
        out.tariff_refs.append((tariff_id, fields["tariff"]))
    connector_entries = fields["connectors"].sequence() if "connectors" in fields else [entry]
    if not connector_entries:
        raise fields["connectors"].error("a charger needs at least one connector")
    connectors: list[ConnectorConfig] = []
    evses: list[Evse] = []
    numbers: dict[int, Cursor] = {}
    for k, item in enumerate(connector_entries):
        own = item.mapping(_CONNECTOR_KEYS) if item is not entry else {}
        merged = {**{key: fields[key] for key in _ELECTRICAL_KEYS if key in fields}, **own}
        where = own.get("id", item)
        number = own["id"].integer(minimum=1) if "id" in own else k + 1
        if number in numbers:
            raise where.error(f"connector {number} is declared twice on charger {charger_id!r}")
        numbers[number] = where
        default_evse = charger_id if len(connector_entries) == 1 else f"{charger_id}-{number}"
        evse_id = own["evse"].string() if "evse" in own else default_evse
        if evse_id in declared_at:
            raise (own.get("evse") or where).error(
                f"EVSE {evse_id!r} is declared twice on station {station_id!r} "
                f"(first at {_at(declared_at[evse_id])})"
            )
        evse = _evse(evse_id, merged, item, phases)
        declared_at[evse_id] = own.get("evse") or fields["id"]
        evses.append(evse)
        connectors.append(
            ConnectorConfig(
                connector_id=number,
                evse_id=evse_id,
                max_power_kw=own["max_power_kw"].number("kW", positive=True)
                if "max_power_kw" in own
                else None,
                connector_type=own["type"].string() if "type" in own else None,
            )
        )
    return (
        ChargerConfig(
            charger_id=charger_id,
            station_id=station_id,
            connectors=tuple(connectors),
            vendor=fields["vendor"].string() if "vendor" in fields else None,
            model=fields["model"].string() if "model" in fields else None,
            security_profile=profile,
            password=password,
            tariff_id=tariff_id,
        ),
        evses,
    )


def _evse(evse_id: str, fields: dict[str, Cursor], where: Cursor, phases: int) -> Evse:
    for key in ("connection", "voltage_v", "max_current_a"):
        if key not in fields:
            raise where.error(f"missing required key '{key}' (on the connector or its charger)")
    connection = fields["connection"].choice(CONNECTIONS, "a connection:")
    if phases == 1 and connection is Connection.THREE_PHASE:
        raise fields["connection"].error("a three-phase connector on a single-phase station (phases: 1)")
    voltage_v = fields["voltage_v"].number("V", positive=True)
    max_a = fields["max_current_a"].number("A", positive=True)
    min_a = fields["min_current_a"].number("A", minimum=0.0) if "min_current_a" in fields else 0.0
    if min_a > max_a:
        raise fields["min_current_a"].error(f"{min_a:g} A is above max_current_a ({max_a:g} A)")
    unit = (
        fields["rate_unit"].choice(RATE_UNITS, "a rate unit:") if "rate_unit" in fields else RateUnit.AMPERE
    )
    step = fields["step"].number(unit.value, positive=True) if "step" in fields else 0.1
    return Evse(evse_id, connection, voltage_v, max_a, min_a, unit, step)


def _walk(node: LimitNode) -> Iterator[tuple[LimitNode, LimitNode | None]]:
    stack: list[tuple[LimitNode, LimitNode | None]] = [(node, None)]
    while stack:
        current, parent = stack.pop()
        yield current, parent
        stack.extend((child, current) for child in current.children)


def _node_cursors(cursor: Cursor, out: dict[str, Cursor]) -> None:
    ident = cursor_at(cursor, "id")
    if ident is not cursor:
        out[str(getattr(ident.node, "value", ""))] = cursor
    children = cursor_at(cursor, "children")
    if children is not cursor and children.is_sequence:
        for child in children.sequence():
            _node_cursors(child, out)


def _check_tree(cursor: Cursor, root: LimitNode, grid_limit_kw: float, out: _Collected) -> None:
    """A limit tree that does not add up: a node allowing more than its parent or the grid connection."""
    where: dict[str, Cursor] = {}
    _node_cursors(cursor, where)
    for node, parent in _walk(root):
        at = where.get(node.node_id, cursor)
        if node.limit_kw is not None and node.limit_kw > grid_limit_kw + 1e-9:
            out.errors.append(
                cursor_at(at, "limit_kw").error(
                    f"node {node.node_id!r} allows {node.limit_kw:g} kW, more than the grid connection "
                    f"(grid_limit_kw {grid_limit_kw:g} kW)"
                )
            )
        if parent is None:
            continue
        for unit, own, above in (("A", node.limit_a, parent.limit_a), ("kW", node.limit_kw, parent.limit_kw)):
            if own is not None and above is not None and own > above + 1e-9:
                key = "limit_a" if unit == "A" else "limit_kw"
                out.errors.append(
                    cursor_at(at, key).error(
                        f"node {node.node_id!r} allows {own:g} {unit}, more than its parent "
                        f"{parent.node_id!r} ({above:g} {unit})"
                    )
                )


def _policy(cursor: Cursor) -> tuple[Policy, int, ChargingPolicy]:
    fields = cursor.mapping((*POLICY_KEYS, "priority_tiers", "default_departure"))
    policy, resolve_every = policy_from(fields)
    tiers: list[tuple[str, float]] = []
    if "priority_tiers" in fields:
        for name, value in fields["priority_tiers"].mapping(_AnyKey()).items():
            tiers.append((name, value.number(positive=True)))
    departure = fields["default_departure"].time_of_day() if "default_departure" in fields else None
    return policy, resolve_every, ChargingPolicy(tuple(sorted(tiers)), departure)


class _AnyKey(tuple[str, ...]):
    """An ``allowed`` collection that admits every key (free-form mappings such as tier names)."""

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)
