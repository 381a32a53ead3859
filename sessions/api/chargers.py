"""``GET /v1/chargers/nearby``: chargers around a point, nearest first, with live availability.

Served from the in-memory index (:mod:`sessions.geo`), never from PostgreSQL: the only other
look-up is the tariff store's cached versions (read through every few seconds) for the price
now. A driver's bearer token is required (operator and session tokens are refused with 403):
the search is the drivers' app's, and a token lets us rate-limit and audit it later.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from sessions.app import SessionsRuntime
from sessions.auth import require_driver
from sessions.errors import bad_request, unavailable
from sessions.geo.feed import NearbyFeed
from sessions.geo.index import NearbyIndex
from sessions.geo.query import NearbyCharger, NearbyQuery
from sessions.geo.vocabulary import OCPI_CONNECTOR_TYPES, Availability, query_connector_type
from sessions.http import json_response, query_bool, query_float, query_int
from sessions.openapi import Api, Operation, json_content, problem
from tariffs.errors import TariffError
from tariffs.model import DimensionType
from tariffs.prices import prices_at

logger = logging.getLogger(__name__)

PATH = "/v1/chargers/nearby"
PARAMETERS = frozenset(
    {"lat", "lng", "radius_km", "connector_type", "min_power_kw", "available_only", "limit"}
)
DEFAULT_RADIUS_KM = 5.0
DEFAULT_LIMIT = 20
MAX_POWER_KW = 2000.0
_PRICE_FIELDS = {
    DimensionType.ENERGY: "energy_per_kwh",
    DimensionType.TIME: "time_per_hour",
    DimensionType.PARKING_TIME: "parking_per_hour",
    DimensionType.FLAT: "flat_per_session",
}

PRICE_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "The tariff's prices in force now, excl. VAT, as decimal strings; null without a tariff.",
    "required": ["tariff_id", "currency"],
    "properties": {
        "tariff_id": {"type": "string"},
        "currency": {"type": "string", "minLength": 3, "maxLength": 3},
        **{
            name: {"type": ["string", "null"], "pattern": r"^\d+(\.\d+)?$"} for name in _PRICE_FIELDS.values()
        },
        "vat_percent": {"type": ["string", "null"]},
    },
}
CONNECTOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["connector_id", "evse_id", "connector_type", "max_power_kw", "status"],
    "properties": {
        "connector_id": {
            "type": "integer",
            "description": "The connector as drivers address it (1.6 connectorId, 2.0.1 evseId).",
        },
        "evse_id": {"type": "integer"},
        "ocpp_connector_id": {"type": "integer", "description": "The connector within its EVSE (2.0.1)."},
        "connector_type": {"type": ["string", "null"], "description": "OCPI ConnectorType"},
        "max_power_kw": {"type": ["number", "null"]},
        "status": {"type": "string", "enum": [a.label for a in Availability]},
    },
}
CHARGER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "charger_id",
        "station_id",
        "latitude",
        "longitude",
        "distance_km",
        "max_power_kw",
        "connector_types",
        "available_connectors",
        "connectors",
        "price",
    ],
    "properties": {
        "charger_id": {"type": "string"},
        "station_id": {"type": ["string", "null"]},
        "latitude": {"type": "number"},
        "longitude": {"type": "number"},
        "distance_km": {"type": "number", "minimum": 0},
        "max_power_kw": {"type": ["number", "null"]},
        "connector_types": {"type": "array", "items": {"type": "string"}},
        "available_connectors": {"type": "integer", "minimum": 0},
        "connectors": {"type": "array", "items": {"$ref": "#/components/schemas/NearbyConnector"}},
        "price": {"$ref": "#/components/schemas/PriceNow"},
    },
}
RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["chargers", "count"],
    "properties": {
        "chargers": {"type": "array", "items": {"$ref": "#/components/schemas/NearbyCharger"}},
        "count": {"type": "integer", "minimum": 0},
    },
}


def register(api: Api, runtime: SessionsRuntime) -> None:
    """Declare the nearby search and start its index with the app."""
    index = NearbyIndex()
    csms = runtime.csms
    node = csms.redis_node
    feed = NearbyFeed(
        index,
        csms.database,
        redis=node.redis if node is not None else None,
        keys=node.live_state.keys if node is not None else None,
        node_id=node.commands.node_id if node is not None else "local",
        poll_interval_s=runtime.settings.nearby_poll_interval_s,
    )
    runtime.nearby = feed
    csms.service.subscribe(feed.on_event)
    runtime.on_start.append(feed.start)
    runtime.on_stop.append(feed.stop)
    settings = runtime.settings
    prices = _PriceBoard(runtime)

    async def nearby(request: web.Request) -> web.StreamResponse:
        require_driver(request, runtime.issuer)
        query = parse_query(
            request, max_radius_km=settings.nearby_max_radius_km, max_results=settings.nearby_max_results
        )
        if not feed.loaded.is_set():
            raise unavailable("the charger index is still loading", retry_after_s=2)
        hits = index.search(query)
        priced = await prices.for_hits(hits)
        chargers = [render(hit, priced.get((hit.tariff_id, hit.time_zone))) for hit in hits]
        return json_response({"chargers": chargers, "count": len(chargers)})

    api.schema("PriceNow", PRICE_SCHEMA)
    api.schema("NearbyConnector", CONNECTOR_SCHEMA)
    api.schema("NearbyCharger", CHARGER_SCHEMA)
    api.schema("NearbyResult", RESULT_SCHEMA)
    api.add(Operation("GET", PATH, nearby, _spec(settings.nearby_max_radius_km, settings.nearby_max_results)))


def parse_query(request: web.Request, *, max_radius_km: float, max_results: int) -> NearbyQuery:
    """The search parameters, each checked (400 naming the parameter otherwise)."""
    unknown = sorted(set(request.query) - PARAMETERS)
    if unknown:
        raise bad_request(
            f"unknown query parameter(s): {', '.join(unknown)}; accepted: {', '.join(sorted(PARAMETERS))}"
        )
    for name in PARAMETERS:
        if len(request.query.getall(name, [])) > 1:
            raise bad_request(f"query parameter {name!r} is given more than once")
    latitude = query_float(request, "lat", minimum=-90.0, maximum=90.0)
    longitude = query_float(request, "lng", minimum=-180.0, maximum=180.0)
    radius_km = query_float(
        request,
        "radius_km",
        minimum=0.0,
        maximum=max_radius_km,
        default=min(DEFAULT_RADIUS_KM, max_radius_km),
    )
    if radius_km <= 0:
        raise bad_request(f"query parameter 'radius_km' must be more than 0 and at most {max_radius_km:g}")
    connector_type: str | None = None
    raw_type = request.query.get("connector_type")
    if raw_type is not None and raw_type != "":
        connector_type = query_connector_type(raw_type)
        if connector_type is None:
            raise bad_request(
                f"unknown connector_type {raw_type!r}; use an OCPI ConnectorType such as IEC_62196_T2, "
                "IEC_62196_T2_COMBO or CHADEMO (or Type2, CCS2, CHAdeMO)"
            )
    min_power_kw: float | None = None
    if request.query.get("min_power_kw"):
        min_power_kw = query_float(request, "min_power_kw", minimum=0.0, maximum=MAX_POWER_KW)
    limit = query_int(
        request, "limit", minimum=1, maximum=max_results, default=min(DEFAULT_LIMIT, max_results)
    )
    return NearbyQuery(
        latitude_deg=latitude,
        longitude_deg=longitude,
        radius_km=radius_km,
        limit=limit,
        connector_type=connector_type,
        min_power_kw=min_power_kw,
        available_only=query_bool(request, "available_only"),
    )


def render(hit: NearbyCharger, price: dict[str, Any] | None) -> dict[str, Any]:
    """One charger of the answer (see ``NearbyCharger`` in the OpenAPI document)."""
    connectors = [
        {
            "connector_id": c.evse_id,
            "evse_id": c.evse_id,
            "ocpp_connector_id": c.connector_id,
            "connector_type": c.connector_type,
            "max_power_kw": c.max_power_kw,
            "status": c.availability.label,
        }
        for c in hit.connectors
    ]
    return {
        "charger_id": hit.charger_id,
        "station_id": hit.station_id,
        "latitude": hit.latitude_deg,
        "longitude": hit.longitude_deg,
        "distance_km": round(hit.distance_km, 4),
        "max_power_kw": hit.max_power_kw,
        "connector_types": sorted({c.connector_type for c in hit.connectors if c.connector_type is not None}),
        "available_connectors": sum(1 for c in hit.connectors if c.availability is Availability.AVAILABLE),
        "connectors": connectors,
        "price": price,
    }


class _PriceBoard:
    """Prices now per (tariff, time zone), from the tariff store's cached versions, kept 30 s."""

    _TTL_S = 30.0

    def __init__(self, runtime: SessionsRuntime) -> None:
        self._runtime = runtime
        self._cache: dict[tuple[str, str], tuple[datetime, dict[str, Any] | None]] = {}

    async def for_hits(
        self, hits: Sequence[NearbyCharger]
    ) -> dict[tuple[str | None, str], dict[str, Any] | None]:
        now = datetime.now(UTC)
        found: dict[tuple[str | None, str], dict[str, Any] | None] = {}
        for hit in hits:
            key = (hit.tariff_id, hit.time_zone)
            if key in found or hit.tariff_id is None:
                continue
            found[key] = await self._price(hit.tariff_id, hit.time_zone, now)
        return found

    async def _price(self, tariff_id: str, time_zone: str, now: datetime) -> dict[str, Any] | None:
        cached = self._cache.get((tariff_id, time_zone))
        if cached is not None and (now - cached[0]).total_seconds() < self._TTL_S:
            return cached[1]
        price = await self._compute(tariff_id, time_zone, now)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[(tariff_id, time_zone)] = (now, price)
        return price

    async def _compute(self, tariff_id: str, time_zone: str, now: datetime) -> dict[str, Any] | None:
        versions = await self._runtime.tariffs.versions(tariff_id)
        if versions is None:
            return None
        try:
            zone = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            logger.warning("tariff %s: unknown time zone %r, prices read in UTC", tariff_id, time_zone)
            zone = ZoneInfo("UTC")
        try:
            tariff = versions.in_force_at(now)
            components = prices_at(tariff, now, zone)
        except TariffError:
            return None
        price: dict[str, Any] = {"tariff_id": tariff_id, "currency": tariff.currency}
        vat: Decimal | None = None
        for dimension, name in _PRICE_FIELDS.items():
            component = components.get(dimension)
            price[name] = None if component is None else str(component.price)
            if component is not None and component.vat_percent is not None:
                vat = component.vat_percent
        price["vat_percent"] = None if vat is None else str(vat)
        return price


def _spec(max_radius_km: float, max_results: int) -> dict[str, Any]:
    def number(name: str, description: str, minimum: float, maximum: float, required: bool) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": required,
            "description": description,
            "schema": {"type": "number", "minimum": minimum, "maximum": maximum},
        }

    return {
        "operationId": "nearbyChargers",
        "summary": "Chargers within a radius, nearest first, with live availability and the price now",
        "security": [{"bearer": []}],
        "parameters": [
            number("lat", "Latitude [deg]", -90, 90, True),
            number("lng", "Longitude [deg]", -180, 180, True),
            {
                "name": "radius_km",
                "in": "query",
                "required": False,
                "description": f"Search radius [km], default {min(DEFAULT_RADIUS_KM, max_radius_km):g}",
                "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": max_radius_km},
            },
            {
                "name": "connector_type",
                "in": "query",
                "required": False,
                "description": "Only chargers with this connector type (OCPI ConnectorType)",
                "schema": {"type": "string", "enum": list(OCPI_CONNECTOR_TYPES)},
            },
            number(
                "min_power_kw",
                "Only chargers with a connector of at least this power [kW]",
                0,
                MAX_POWER_KW,
                False,
            ),
            {
                "name": "available_only",
                "in": "query",
                "required": False,
                "description": "Only chargers with a matching connector Available now",
                "schema": {"type": "boolean", "default": False},
            },
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": max_results,
                    "default": min(DEFAULT_LIMIT, max_results),
                },
            },
        ],
        "responses": {
            "200": json_content({"$ref": "#/components/schemas/NearbyResult"}, "the chargers found"),
            "401": problem("no valid bearer token"),
            "403": problem("not a driver's token"),
            "503": problem("the index is still loading"),
        },
    }
