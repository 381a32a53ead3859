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
          - id, vendor, model, security_profile (1-3; absent: the serving node's profile),
            password: env:NAME | file:PATH, tariff,
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

__all__ = ["NetworkConfigError", "load_network", "network_files", "parse_network"]

import json
from pathlib import Path

import yaml

from demand_response.config import Program, parse_programs
from demand_response.errors import ProgramConfigError
from fairwatt.config.currencies import is_currency
from fairwatt.config.errors import ConfigError
from fairwatt.config.network_collect import NetworkConfigError, _at, _Collected
from fairwatt.config.network_model import (
    LocalListConfig,
    LocalListEntry,
    Network,
    TariffConfig,
)
from fairwatt.config.network_stations import TOKEN_STATUSES, _station
from fairwatt.config.nodes import Cursor, compose_file, compose_text, suggestion
from fairwatt.config.yamljson import cursor_at, to_json
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
    if not is_currency(tariff.currency):
        raise cursor_at(entry, "currency").error(
            f"unknown currency {tariff.currency!r}; expected an ISO 4217 code such as EUR or USD"
        )
    return TariffConfig(tariff.tariff_id, json.dumps(body, sort_keys=True))


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
