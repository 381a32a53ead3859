"""The network file as frozen, typed objects: an operator's stations, chargers, tariffs and lists.

Each station carries the :class:`StationConfig` the smart-charging loop plans with (its EVSEs are
the chargers' connectors); secrets are :class:`SecretRef` references, resolved only where a change
is applied (:meth:`SecretRef.resolve`), never stored in these objects.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demand_response.config import Program
from fairwatt.config.forecast import expected_json
from fairwatt.config.model import ChargingPolicy, StationConfig
from fairwatt.errors import FairwattError


class SecretError(FairwattError):
    """A secret reference cannot be resolved (unset variable, unreadable file)."""


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a secret lives: ``env:NAME`` (an environment variable) or ``file:PATH``."""

    scheme: str
    name: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.name}"

    def resolve(self, environ: Mapping[str, str] = os.environ, base: Path | None = None) -> str:
        """The secret's value; :class:`SecretError` when it cannot be read."""
        if self.scheme == "env":
            value = environ.get(self.name)
            if not value:
                raise SecretError(f"secret {self}: environment variable {self.name} is not set")
            return value
        path = Path(self.name)
        if not path.is_absolute() and base is not None:
            path = base / path
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"secret {self}: cannot read {path}: {exc.strerror or exc}") from None
        if not value:
            raise SecretError(f"secret {self}: {path} is empty")
        return value


@dataclass(frozen=True, slots=True)
class Location:
    latitude_deg: float | None = None
    longitude_deg: float | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    """One connector (the OCPP 1.6 ``connectorId`` / 2.0.1 ``evseId``) and its EVSE id for the solver."""

    connector_id: int
    evse_id: str
    max_power_kw: float | None = None
    connector_type: str | None = None


@dataclass(frozen=True, slots=True)
class ChargerConfig:
    charger_id: str
    station_id: str
    connectors: tuple[ConnectorConfig, ...]
    vendor: str | None = None
    model: str | None = None
    security_profile: int | None = None
    """The OCPP security profile its connections must meet (1, 2 or 3); ``None``: the node's."""
    password: SecretRef | None = None
    tariff_id: str | None = None

    def canonical(self) -> dict[str, Any]:
        """The charger as plain JSON (what diff compares and the audit log records)."""
        return {
            "station": self.station_id,
            "vendor": self.vendor,
            "model": self.model,
            "security_profile": self.security_profile,
            "password": None if self.password is None else str(self.password),
            "tariff": self.tariff_id,
            "connectors": [
                {
                    "id": c.connector_id,
                    "evse": c.evse_id,
                    "max_power_kw": c.max_power_kw,
                    "type": c.connector_type,
                }
                for c in self.connectors
            ],
        }


@dataclass(frozen=True, slots=True)
class NetworkStation:
    station: StationConfig
    name: str | None = None
    location: Location = field(default_factory=Location)
    phases: int = 3
    tariff_id: str | None = None
    reservation_hold_s: int | None = None

    @property
    def station_id(self) -> str:
        return self.station.station_id

    @property
    def charging(self) -> ChargingPolicy:
        return self.station.charging

    def canonical(self) -> dict[str, Any]:
        s = self.station
        p = s.policy
        return {
            "name": self.name,
            "time_zone": s.time_zone.key,
            "location": {
                "latitude_deg": self.location.latitude_deg,
                "longitude_deg": self.location.longitude_deg,
                "address": self.location.address,
            },
            "grid_limit_kw": s.grid_limit_kw,
            "phases": self.phases,
            "limits": _limit_json(s.limits),
            "base_load_kw": list(s.base_load_kw),
            "evses": {
                e.evse_id: {
                    "connection": e.connection.value,
                    "voltage_v": e.voltage_v,
                    "max_current_a": e.max_current_a,
                    "min_current_a": e.min_current_a,
                    "rate_unit": e.rate_unit.value,
                    "step": e.step,
                }
                for e in s.evses
            },
            "tariff": self.tariff_id,
            "reservation_hold_s": self.reservation_hold_s,
            "policy": {
                "period_s": p.period_s,
                "horizon_periods": p.horizon_periods,
                "default_stay_h": p.default_stay.total_seconds() / 3600.0,
                "default_energy_kwh": p.default_energy_kwh,
                "fairness": p.fairness,
                "objective": list(p.objective),
                "deadline_s": p.deadline_s,
                "resolve_every_periods": s.resolve_every_periods,
                "priority_tiers": dict(self.charging.priority_tiers),
                "default_departure_min": self.charging.default_departure_min,
            },
            "forecast": _forecast_json(s),
        }


def _forecast_json(s: StationConfig) -> dict[str, Any] | None:
    if s.forecast_weight <= 0:
        return None
    out: dict[str, Any] = {"weight": s.forecast_weight, "days": s.forecast_days}
    if s.forecast_expected is not None:  # only when declared: older bodies compare unchanged
        out["expected"] = expected_json(s.forecast_expected)
    return out


def _limit_json(node: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": node.node_id}
    if node.limit_a is not None:
        out["limit_a"] = node.limit_a
    if node.limit_kw is not None:
        out["limit_kw"] = node.limit_kw
    if node.transformer is not None:
        t = node.transformer
        out["transformer"] = [t.rating_kva, t.primary_voltage_v, t.secondary_voltage_v]
    if node.evse_ids:
        out["evses"] = list(node.evse_ids)
    if node.children:
        out["children"] = [_limit_json(c) for c in node.children]
    return out


@dataclass(frozen=True, slots=True)
class TariffConfig:
    """An OCPI 2.2.1 Tariff object as written (checked by :func:`tariffs.ocpi.parse_tariff`)."""

    tariff_id: str
    body_json: str
    """The object as canonical JSON text (sorted keys), so the config stays immutable."""

    @property
    def body(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body_json)
        return value


@dataclass(frozen=True, slots=True)
class LocalListEntry:
    id_token: str
    token_type: str = "ISO14443"
    status: str = "Accepted"


@dataclass(frozen=True, slots=True)
class LocalListConfig:
    """A local authorisation list and the chargers it is pushed to (given directly or by station)."""

    list_id: str
    charger_ids: tuple[str, ...]
    entries: tuple[LocalListEntry, ...]

    def canonical(self) -> dict[str, Any]:
        return {
            "chargers": sorted(self.charger_ids),
            "entries": [
                {"id_token": e.id_token, "type": e.token_type, "status": e.status}
                for e in sorted(self.entries, key=lambda e: e.id_token)
            ],
        }


@dataclass(frozen=True, slots=True)
class Network:
    """An operator's whole network as read from one file or a folder of files."""

    cpo_id: str | None
    stations: tuple[NetworkStation, ...]
    chargers: tuple[ChargerConfig, ...]
    tariffs: tuple[TariffConfig, ...] = ()
    local_lists: tuple[LocalListConfig, ...] = ()
    demand_response_json: str | None = None
    """The ``demand_response`` section as JSON (what diff compares and apply stores)."""
    demand_response: tuple[Program, ...] = ()
    """Its programmes, read by :func:`demand_response.config.parse_programs`."""
    reservation_hold_s: int = 900
    sources: tuple[str, ...] = ()

    @property
    def station_configs(self) -> tuple[StationConfig, ...]:
        """Each station as the smart-charging loop plans it (what ``fairwatt serve --config`` loads)."""
        return tuple(s.station for s in self.stations)

    @property
    def reservation_holds_s(self) -> dict[str, int]:
        """Each station's own reservation hold [s] (``SessionsSettings.reservation_hold_by_station_s``)."""
        return {s.station_id: s.reservation_hold_s for s in self.stations if s.reservation_hold_s is not None}

    def station(self, station_id: str) -> NetworkStation:
        for station in self.stations:
            if station.station_id == station_id:
                return station
        raise KeyError(station_id)

    def resources(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every resource as ``(kind, id) -> canonical JSON``: what diff and apply compare."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for s in self.stations:
            body = s.canonical()
            if body["reservation_hold_s"] is None:
                body["reservation_hold_s"] = self.reservation_hold_s
            out[("station", s.station_id)] = body
        for c in self.chargers:
            out[("charger", c.charger_id)] = c.canonical()
        for t in self.tariffs:
            out[("tariff", t.tariff_id)] = t.body
        for lst in self.local_lists:
            out[("local_list", lst.list_id)] = lst.canonical()
        if self.demand_response_json is not None:  # one resource per programme, by its (unique) name
            section = json.loads(self.demand_response_json)
            programs = section.get("programs", []) if isinstance(section, dict) else section
            for program in programs:
                out[("demand_response", str(program["name"]))] = program
        return out
