"""Answering a radius query over one block of the nearby index (pure: no I/O).

Owns the query and result types (:class:`NearbyQuery`, :class:`NearbyCharger`,
:class:`ConnectorView`) and the per-block steps of a search: the candidates within the radius from
the k-d tree, the connector filters, and the result views. :class:`~sessions.geo.index.NearbyIndex`
runs them over its blocks and merges the answers, nearest first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from sessions.geo.blocks import EARTH_RADIUS_KM, Block, Codes, FloatArray, IntArray, haversine_km
from sessions.geo.vocabulary import Availability

__all__ = [
    "ConnectorView",
    "NearbyCharger",
    "NearbyQuery",
    "candidates",
    "charger_views",
    "matching",
]

_AVAILABILITY = tuple(Availability)
_AVAILABLE_CODE = int(Availability.AVAILABLE)
_RESERVED_CODE = int(Availability.RESERVED)
_UNAVAILABLE_CODE = int(Availability.UNAVAILABLE)
assert _AVAILABILITY[-2:] == (
    Availability.UNAVAILABLE,
    Availability.FAULTED,
)  # codes >= 4: whole charger down


@dataclass(frozen=True, slots=True)
class NearbyQuery:
    """A radius search; ``connector_type`` is an OCPI name (:mod:`sessions.geo.vocabulary`)."""

    latitude_deg: float
    longitude_deg: float
    radius_km: float
    limit: int
    connector_type: str | None = None
    min_power_kw: float | None = None
    available_only: bool = False

    @property
    def filtered(self) -> bool:
        return self.connector_type is not None or self.min_power_kw is not None or self.available_only


class ConnectorView(NamedTuple):
    """A connector in a search result (named tuples: built by the dozen per query, cheaply)."""

    evse_id: int
    connector_id: int
    connector_type: str | None
    max_power_kw: float | None
    availability: Availability


class NearbyCharger(NamedTuple):
    charger_id: str
    latitude_deg: float
    longitude_deg: float
    distance_km: float
    station_id: str | None
    tariff_id: str | None
    time_zone: str
    connectors: tuple[ConnectorView, ...]

    @property
    def max_power_kw(self) -> float | None:
        powers = [c.max_power_kw for c in self.connectors if c.max_power_kw is not None]
        return max(powers) if powers else None


def candidates(block: Block, point: FloatArray, query: NearbyQuery) -> tuple[IntArray, FloatArray, bool]:
    """Alive chargers of ``block`` within the radius (the nearest ``limit`` when unfiltered),
    their distances, and whether they come nearest first."""
    assert block.tree is not None
    angle = min(query.radius_km / EARTH_RADIUS_KM, math.pi)
    chord = 2 * math.sin(angle / 2) * (1 + 1e-9) + 1e-12
    slots: IntArray | None = None
    if not query.filtered and query.limit < len(block):
        found_chords, found = block.tree.query(point, k=query.limit, distance_upper_bound=chord)
        chords = np.atleast_1d(found_chords)  # k=1 answers scalars
        inside = np.isfinite(chords)
        neighbours = np.atleast_1d(np.asarray(found, dtype=np.intp))[inside]
        keep = block.alive[neighbours]
        if keep.all() or not inside.all():
            # the great-circle distance from the chord between unit vectors, nearest first
            distances = 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(chords[inside][keep] / 2, 1.0))
            within = distances <= query.radius_km
            return neighbours[keep][within], distances[within], True
    if slots is None:
        slots = np.asarray(block.tree.query_ball_point(point, chord), dtype=np.intp)
        slots = slots[block.alive[slots]]
    distances = haversine_km(
        query.latitude_deg, query.longitude_deg, block.latitude_deg[slots], block.longitude_deg[slots]
    )
    within = distances <= query.radius_km
    slots, distances = slots[within], distances[within]
    if len(slots) > query.limit and not query.filtered:
        nearest = np.argpartition(distances, query.limit - 1)[: query.limit]
        slots, distances = slots[nearest], distances[nearest]
    return slots, distances, False


def matching(block: Block, slots: IntArray, query: NearbyQuery, type_code: int) -> npt.NDArray[np.bool_]:
    """Which ``slots`` have a connector passing every filter."""
    owners, rows = block.connector_rows(slots)
    ok = np.ones(len(rows), dtype=np.bool_)
    if query.connector_type is not None:
        ok &= block.types[rows] == type_code
    if query.min_power_kw is not None:
        ok &= block.powers_kw[rows] >= query.min_power_kw  # unknown power (nan) never passes
    if query.available_only:
        ok &= block.availability(rows, slots[owners]) == Availability.AVAILABLE
    return np.bincount(owners[ok], minlength=len(slots)) > 0


def charger_views(
    block: Block,
    picked: Sequence[tuple[int, float]],
    *,
    types: Codes,
    stations: Codes,
    tariffs: Codes,
    zones: Codes,
) -> list[NearbyCharger]:
    """The chargers at ``picked`` (slot, distance) of ``block``: a few gathers, then plain Python
    (a result is 1-100 chargers, where numpy's per-call cost would dominate). The codes name the
    connector types, stations, tariffs and time zones stored as small integers."""
    slots = [slot for slot, _ in picked]
    bounds = block.conn_start[np.add.outer(slots, (0, 1))].tolist()
    rows = [row for first, end in bounds for row in range(first, end)]
    static = block.conn_static[rows].tolist()
    powers = block.powers_kw[rows].tolist()
    statuses = block.conn_status[rows].tolist()
    reserved = block.conn_reserved[rows].tolist()
    wholes = block.charger_status[slots].tolist()
    codes = block.codes[slots].tolist()
    positions = block.position[slots].tolist()
    type_names = types.names
    station_names, tariff_names, zone_names = stations.names, tariffs.names, zones.names
    found: list[NearbyCharger] = []
    k = 0
    for (slot, distance), (first, end), whole, (station, tariff, zone), (latitude, longitude) in zip(
        picked, bounds, wholes, codes, positions, strict=True
    ):
        connectors = []
        for _ in range(end - first):
            evse_id, connector_id, kind = static[k]
            status = statuses[k]
            if whole >= _UNAVAILABLE_CODE:  # the whole charger Unavailable or Faulted
                status = whole
            elif reserved[k] and status <= _AVAILABLE_CODE:
                status = _RESERVED_CODE
            power = powers[k]
            connectors.append(  # positional: the named tuple's fast path
                ConnectorView(
                    evse_id,
                    connector_id,
                    type_names[kind],
                    None if power != power else power,  # nan: unknown
                    _AVAILABILITY[status],
                )
            )
            k += 1
        found.append(
            NearbyCharger(
                block.charger_ids[slot],
                latitude,
                longitude,
                distance,
                station_names[station],
                tariff_names[tariff],
                zone_names[zone] or "UTC",
                tuple(connectors),
            )
        )
    return found
