"""Load an operator's network file (or a folder of them) into a :class:`Network`, reporting every error.

Layout (see ``examples/network.yaml`` and the JSON Schema ``fairwatt/data/network.schema.json``)::

    version: 1
    operator: acme                # the CPO; must match the API key's when applied
    reservation_hold_s: 900       # default for every station
    tariffs: [ {OCPI 2.2.1 Tariff object}, ... ]
    stations:
      - id, name, time_zone, location: {latitude_deg, longitude_deg, address},
        grid_limit_kw, phases (1 or 3), base_load_kw, demand_charge_per_kw, tariff,
        reservation_hold_s, limits: {the limit tree of station.yaml}, prices, peak_events,
        policy: {period_s, ..., resolve_every_periods, priority_tiers: {tier: weight}, default_departure},
        chargers:
          - id, vendor, model, security_profile, password: env:NAME | file:PATH, tariff,
            connection, voltage_v, max_current_a, min_current_a, rate_unit, step   # connector defaults
            connectors: [{id, evse, type, max_power_kw, connection, voltage_v, max_current_a, ...}]
    local_lists: [{id, chargers: [...], stations: [...], entries: [{id_token, type, status}]}]
    demand_response: {programs: [...]}   # checked by demand_response.config.parse_programs

A connector's EVSE id (what the limit tree lists) is ``evse`` when given, else the charger id for
a charger with one connector, else ``CHARGER-N``. Errors are collected per entry (a station, a
charger, a tariff, a list) and across entries (ids used twice, a charger on two stations, an
unknown tariff), so one run reports them all, each as ``file:line:column: field: message``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from demand_response.config import Program, parse_programs
from demand_response.errors import ProgramConfigError
from fairwatt.config.errors import ConfigError
from fairwatt.config.model import EvsePlace, LimitNode, PriceSchedule, StationConfig
from fairwatt.config.network_model import (
    ChargerConfig,
    ChargingPolicy,
    ConnectorConfig,
    LocalListConfig,
    LocalListEntry,
    Location,
    Network,
    NetworkStation,
    SecretRef,
    TariffConfig,
)
from fairwatt.config.nodes import Cursor, compose_file, compose_text, suggestion
from fairwatt.config.station import (
    CONNECTIONS,
    POLICY_KEYS,
    RATE_UNITS,
    _base_load,
    _limit_tree,
    _peak_event,
    _prices,
    policy_from,
)
from fairwatt.config.yamljson import cursor_at, to_json
from fairwatt.errors import FairwattError
from optimizer.types import Connection, Evse, Policy, RateUnit
from tariffs.errors import TariffParseError
from tariffs.ocpi import parse_tariff

_TOP_KEYS = (
    "version",
    "operator",
    "reservation_hold_s",
    "tariffs",
    "stations",
    "local_lists",
    "demand_response",
)
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


class NetworkConfigError(FairwattError):
    """A network file with errors; ``errors`` holds each one (file, line, column, message)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


@dataclass
class _Collected:
    """What the files said so far, and where (for errors that name the first occurrence)."""

    errors: list[ConfigError] = field(default_factory=list)
    cpo: tuple[str, Cursor] | None = None
    hold_s: int | None = None
    stations: list[tuple[NetworkStation, Cursor]] = field(default_factory=list)
    chargers: list[tuple[ChargerConfig, Cursor]] = field(default_factory=list)
    tariffs: list[tuple[TariffConfig, Cursor]] = field(default_factory=list)
    lists: list[tuple[Cursor, dict[str, Cursor]]] = field(default_factory=list)
    tariff_refs: list[tuple[str, Cursor]] = field(default_factory=list)
    listed: dict[str, tuple[str, Cursor]] = field(default_factory=dict)
    """charger id -> the local list it is on (a charger holds one local list) and where."""
    station_ids: set[str] = field(default_factory=set)
    charger_ids: set[str] = field(default_factory=set)
    tariff_ids: set[str] = field(default_factory=set)
    """Every tariff id written, also of tariffs with errors (so references to them are not errors too)."""
    demand_response: list[Cursor] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def attempt(self, work: Callable[[], None]) -> None:
        try:
            work()
        except ConfigError as exc:
            self.errors.append(exc)
        except NetworkConfigError as exc:
            self.errors.extend(exc.errors)


def lenient_mapping(
    cursor: Cursor, allowed: tuple[str, ...], required: tuple[str, ...], out: _Collected
) -> dict[str, Cursor]:
    """Like :meth:`Cursor.mapping`, but an unknown key is recorded in ``out`` and skipped, not fatal."""
    node = cursor.node
    if isinstance(node, yaml.MappingNode):
        kept = []
        for key_node, value_node in node.value:
            key = str(getattr(key_node, "value", ""))
            if isinstance(key_node, yaml.ScalarNode) and key not in allowed and key != "<<":
                where = Cursor(key_node, f"{cursor.path}.{key}" if cursor.path else key, cursor.source)
                out.errors.append(
                    where.error(
                        f"unknown key{suggestion(key, allowed)}; "
                        f"expected one of: {', '.join(sorted(allowed))}"
                    )
                )
                close = difflib.get_close_matches(key, list(required), n=1, cutoff=0.6)
                written = {str(getattr(k, "value", "")) for k, _ in node.value}
                if close and close[0] not in written:  # read it as the key meant, to find later errors too
                    renamed = yaml.ScalarNode(key_node.tag, close[0], key_node.start_mark, key_node.end_mark)
                    kept.append((renamed, value_node))
                continue
            kept.append((key_node, value_node))
        node = yaml.MappingNode(node.tag, kept, node.start_mark, node.end_mark, node.flow_style)
    return Cursor(node, cursor.path, cursor.source).mapping(allowed, required)


def network_files(path: str | Path) -> list[Path]:
    """The YAML files of ``path``: itself, or a folder's ``*.yaml``/``*.yml`` in name order."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if not files:
            raise NetworkConfigError([ConfigError("no .yaml files in this folder", file=str(path))])
        return files
    return [path]


def load_network(path: str | Path) -> Network:
    """Read and check a network file or folder; :class:`NetworkConfigError` lists every error."""
    collected = _Collected()
    for file in network_files(path):
        collected.attempt(lambda file=file: _read_root(compose_file(file), collected))  # type: ignore[misc]
    return _finish(collected)


def parse_network(texts: dict[str, str]) -> Network:
    """Like :func:`load_network` for YAML texts already in memory (name -> text, read in name order)."""
    collected = _Collected()
    for name in sorted(texts):
        collected.attempt(lambda name=name: _read_root(compose_text(texts[name], name), collected))  # type: ignore[misc]
    return _finish(collected)


# -- the top level ----------------------------------------------------------------------------


def _read_root(root: Cursor, out: _Collected) -> None:
    out.sources.append(root.source)
    top = root.mapping(_TOP_KEYS)
    if "version" in top:
        out.attempt(lambda: _version(top["version"]))
    if "operator" in top:
        cpo = top["operator"].string()
        if out.cpo is not None and out.cpo[0] != cpo:
            raise top["operator"].error(
                f"operator {cpo!r} differs from {out.cpo[0]!r} given in {_at(out.cpo[1])}"
            )
        out.cpo = (cpo, top["operator"])
    if "reservation_hold_s" in top:
        out.hold_s = top["reservation_hold_s"].integer(minimum=1, maximum=86_400)
    for entry in top["tariffs"].sequence() if "tariffs" in top else []:
        ident = cursor_at(entry, "id")
        if ident is not entry and isinstance(ident.node, yaml.ScalarNode):
            out.tariff_ids.add(str(ident.node.value))
        out.attempt(lambda entry=entry: out.tariffs.append((_tariff(entry), entry)))  # type: ignore[misc]
    for entry in top["stations"].sequence() if "stations" in top else []:
        out.attempt(lambda entry=entry: _station(entry, out))  # type: ignore[misc]
    for entry in top["local_lists"].sequence() if "local_lists" in top else []:
        out.attempt(lambda entry=entry: out.lists.append((entry, _list_fields(entry))))  # type: ignore[misc]
    if "demand_response" in top:
        out.demand_response.append(top["demand_response"])


def _version(cursor: Cursor) -> None:
    cursor.integer(minimum=1, maximum=1)


def _at(cursor: Cursor) -> str:
    return f"{cursor.source}:{cursor.node.start_mark.line + 1}"


def _finish(out: _Collected) -> Network:
    _check_unique(out)
    tariff_ids = out.tariff_ids | {t.tariff_id for t, _ in out.tariffs}
    for tariff_id, where in out.tariff_refs:
        if tariff_id not in tariff_ids:
            out.errors.append(
                where.error(
                    f"unknown tariff {tariff_id!r}{suggestion(tariff_id, tariff_ids)}; "
                    "declare it under 'tariffs'"
                )
            )
    lists: list[LocalListConfig] = []
    for entry, fields in out.lists:
        out.attempt(lambda e=entry, f=fields: lists.append(_local_list(e, f, out)))  # type: ignore[misc]
    demand_response_json = None
    programs: tuple[Program, ...] = ()
    if len(out.demand_response) > 1:
        out.errors.append(out.demand_response[1].error("'demand_response' is given in two files"))
    elif out.demand_response:
        programs, demand_response_json = _demand_response(out.demand_response[0], out)
    if out.errors:
        out.errors.sort(key=lambda e: (e.file, e.line or 0, e.column or 0))
        raise NetworkConfigError(out.errors)
    return Network(
        cpo_id=out.cpo[0] if out.cpo else None,
        stations=tuple(s for s, _ in out.stations),
        chargers=tuple(c for c, _ in out.chargers),
        tariffs=tuple(t for t, _ in out.tariffs),
        local_lists=tuple(lists),
        demand_response_json=demand_response_json,
        demand_response=programs,
        reservation_hold_s=out.hold_s if out.hold_s is not None else 900,
        sources=tuple(out.sources),
    )


def _check_unique(out: _Collected) -> None:
    seen: dict[str, Cursor] = {}
    for station, where in out.stations:
        first = seen.setdefault(station.station_id, where)
        if first is not where:
            out.errors.append(
                _id_cursor(where).error(
                    f"station {station.station_id!r} is declared twice (first at {_at(first)})"
                )
            )
    on_station: dict[str, tuple[str, Cursor]] = {}
    for charger, where in out.chargers:
        first_charger = on_station.setdefault(charger.charger_id, (charger.station_id, where))
        if first_charger[1] is not where:
            other, at = first_charger
            what = f"is on two stations ({other!r} at {_at(at)} and {charger.station_id!r})"
            if other == charger.station_id:
                what = f"is declared twice on station {other!r} (first at {_at(at)})"
            out.errors.append(_id_cursor(where).error(f"charger {charger.charger_id!r} {what}"))
    tariffs: dict[str, Cursor] = {}
    for tariff, where in out.tariffs:
        first = tariffs.setdefault(tariff.tariff_id, where)
        if first is not where:
            out.errors.append(
                _id_cursor(where).error(
                    f"tariff {tariff.tariff_id!r} is declared twice (first at {_at(first)})"
                )
            )


def _id_cursor(entry: Cursor) -> Cursor:
    return cursor_at(entry, "id")


# -- tariffs ----------------------------------------------------------------------------------


def _tariff(entry: Cursor) -> TariffConfig:
    body = to_json(entry)
    if not isinstance(body, dict):
        raise entry.error("expected a mapping (an OCPI Tariff object)")
    try:
        tariff = parse_tariff(body)
    except TariffParseError as exc:
        relative = exc.path.removeprefix("tariff").lstrip(".")
        raise cursor_at(entry, relative).error(exc.problem) from None
    return TariffConfig(tariff.tariff_id, json.dumps(body, sort_keys=True))


# -- stations and chargers --------------------------------------------------------------------


def _station(entry: Cursor, out: _Collected) -> None:
    fields = lenient_mapping(
        entry, _STATION_KEYS, ("id", "time_zone", "grid_limit_kw", "limits", "chargers"), out
    )
    station_id = fields["id"].string()
    out.station_ids.add(station_id)  # also when it has errors: a list naming it is not wrong too
    errors_before = len(out.errors)
    tz_cursor = fields["time_zone"]
    tz = ZoneInfo("UTC")
    try:
        tz = ZoneInfo(tz_cursor.string())
    except (ZoneInfoNotFoundError, ValueError):
        out.errors.append(
            tz_cursor.error(
                f"unknown time zone {tz_cursor.string()!r}; use an IANA name such as Europe/Berlin"
            )
        )
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
        prices=_prices(fields["prices"]) if "prices" in fields else PriceSchedule(),
        peak_events=tuple(_peak_event(c) for c in fields["peak_events"].sequence())
        if "peak_events" in fields
        else (),
        base_load_kw=_base_load(fields["base_load_kw"]) if "base_load_kw" in fields else (),
        demand_charge_per_kw=fields["demand_charge_per_kw"].number(minimum=0.0)
        if "demand_charge_per_kw" in fields
        else 0.0,
        policy=policy,
        resolve_every_periods=resolve_every,
        source=entry.source,
        places=places,
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
                charging=charging,
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
    profile = fields["security_profile"].integer(minimum=1, maximum=3) if "security_profile" in fields else 1
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


# -- local lists and demand response ----------------------------------------------------------


def _list_fields(entry: Cursor) -> dict[str, Cursor]:
    return entry.mapping(("id", "chargers", "stations", "entries"), required=("id", "entries"))


def _local_list(entry: Cursor, fields: dict[str, Cursor], out: _Collected) -> LocalListConfig:
    list_id = fields["id"].string()
    known_chargers = {c.charger_id: c for c, _ in out.chargers}
    known_stations = out.station_ids
    chargers: list[str] = []
    for item in fields["chargers"].sequence_or_one() if "chargers" in fields else []:
        charger_id = item.string()
        if charger_id not in out.charger_ids:
            raise item.error(f"unknown charger {charger_id!r}{suggestion(charger_id, out.charger_ids)}")
        chargers.append(charger_id)
    for item in fields["stations"].sequence_or_one() if "stations" in fields else []:
        station_id = item.string()
        if station_id not in known_stations:
            raise item.error(f"unknown station {station_id!r}{suggestion(station_id, known_stations)}")
        chargers.extend(c.charger_id for c in known_chargers.values() if c.station_id == station_id)
    if "chargers" not in fields and "stations" not in fields:
        raise entry.error("give 'chargers' or 'stations': where the list is pushed")
    for charger_id in chargers:
        other, at = out.listed.setdefault(charger_id, (list_id, fields["id"]))
        if other != list_id:
            raise fields["id"].error(
                f"charger {charger_id!r} is already on local list {other!r} ({_at(at)}); "
                "a charger holds one list"
            )
    entries: list[LocalListEntry] = []
    seen: set[str] = set()
    for item in fields["entries"].sequence():
        spec = item.mapping(("id_token", "type", "status"), required=("id_token",))
        token = spec["id_token"].string()
        if token in seen:
            raise spec["id_token"].error(f"id token {token!r} is listed twice")
        seen.add(token)
        entries.append(
            LocalListEntry(
                token,
                spec["type"].string() if "type" in spec else "ISO14443",
                spec["status"].choice({s: s for s in TOKEN_STATUSES}, "a status:")
                if "status" in spec
                else "Accepted",
            )
        )
    return LocalListConfig(list_id, tuple(dict.fromkeys(chargers)), tuple(entries))


def _demand_response(cursor: Cursor, out: _Collected) -> tuple[tuple[Program, ...], str | None]:
    """The programmes (checked by :func:`demand_response.config.parse_programs`) and the section as JSON."""
    try:
        programs = parse_programs(cursor.node, source=cursor.source, path=cursor.path)
    except ProgramConfigError as exc:
        out.errors.append(
            ConfigError(exc.detail, file=exc.file, line=exc.line, column=exc.column, field=exc.field)
        )
        return (), None
    listed = cursor_at(cursor, "programs") if cursor.is_mapping else cursor
    for k, program in enumerate(programs):
        entry = cursor_at(listed, f"[{k}]")
        where = cursor_at(entry, "stations") if cursor_at(entry, "stations") is not entry else entry
        for station_id in program.stations:
            if station_id not in out.station_ids:
                out.errors.append(
                    where.error(
                        f"program {program.name!r} controls unknown station {station_id!r}"
                        f"{suggestion(station_id, out.station_ids)}"
                    )
                )
    try:
        return programs, json.dumps(to_json(cursor), sort_keys=True)
    except ConfigError as exc:
        out.errors.append(exc)
        return (), None
