"""An in-memory spatial index of chargers for radius queries, nearest first (pure: no I/O).

Chargers are points on a sphere of radius :data:`EARTH_RADIUS_KM`, stored as unit vectors in a
k-d tree (``scipy.spatial.cKDTree``). The straight-line (chord) distance between unit vectors
grows monotonically with the great-circle distance, so a ball or nearest-neighbour query in 3-D
is exact on the sphere: no special cases at the antimeridian or the poles. Distances returned
are haversine distances from the stored latitude and longitude. The query and result types and
the steps of a query over one block (candidates, filters, result views) are in
:mod:`sessions.geo.query`.

Data is columnar (:mod:`sessions.geo.blocks`: numpy arrays, charger ids in a list, an id map of
plain ints) so 500,000 chargers cost about 136 MB and give the garbage collector almost nothing
to walk. The registry changes little: a changed charger is tombstoned in its block and re-added
to a small second block (rebuilt on every change); when that block grows past a share of the
first, :meth:`NearbyIndex.compacted_columns` and :meth:`NearbyIndex.load` merge both. Live
connector status and reservations are small mutable arrays beside the geometry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from sessions.geo.blocks import (
    EARTH_RADIUS_KM,
    Block,
    Codes,
    FloatArray,
    IntArray,
    SiteColumns,
    carry,
    haversine_km,
    unit_vectors,
)
from sessions.geo.query import NearbyCharger, NearbyQuery, candidates, charger_views, matching
from sessions.geo.vocabulary import Availability

__all__ = [
    "EARTH_RADIUS_KM",
    "ChargerSite",
    "ConnectorSite",
    "NearbyIndex",
    "Prepared",
    "SiteColumns",
    "brute_force",
    "haversine_km",
    "unit_vectors",
]


@dataclass(frozen=True, slots=True)
class ConnectorSite:
    """One connector as the registry describes it; ``evse_id`` is the 1.6 connectorId."""

    evse_id: int
    connector_id: int
    connector_type: str | None = None
    max_power_kw: float | None = None


@dataclass(frozen=True, slots=True)
class ChargerSite:
    """A charger where it stands (its own position, else its station's)."""

    charger_id: str
    latitude_deg: float
    longitude_deg: float
    station_id: str | None = None
    tariff_id: str | None = None
    time_zone: str = "UTC"
    connectors: tuple[ConnectorSite, ...] = ()


@dataclass(frozen=True, slots=True)
class Prepared:
    """A block built off the event loop, ready for :meth:`NearbyIndex.install`."""

    block: Block


class NearbyIndex:
    """Chargers by position with their live availability; every method is synchronous and fast.

    Not thread-safe: one event loop owns it (the feed writes, API handlers read).
    """

    def __init__(self) -> None:
        self._types = Codes()
        self._tariffs = Codes()
        self._zones = Codes()
        self._stations = Codes()
        self._base = Block.of(SiteColumns())
        self._extra = Block.of(SiteColumns())
        self._extra_sites: dict[str, ChargerSite] = {}
        self._where: dict[str, int] = {}
        """Charger id -> slot in the base block (>= 0) or ``-1 - slot`` in the small block: plain
        ints, so the garbage collector has no half a million tuples to walk."""
        self._status: dict[tuple[str, int, int], Availability] = {}
        """Statuses heard for chargers not (yet) in the index, applied when they appear."""
        self._reserved: dict[tuple[str, int], int] = {}
        self._offline: dict[str, Availability] = {}  # charger -> its whole status before it dropped

    # -- building -------------------------------------------------------------------------------

    def columns(self, sites: Iterable[ChargerSite] = ()) -> SiteColumns:
        """Empty (or filled) columns for :meth:`load`; :meth:`add_to` appends one charger."""
        columns = SiteColumns()
        for site in sites:
            self.add_to(columns, site)
        return columns

    def add_to(self, columns: SiteColumns, site: ChargerSite) -> None:
        columns.charger_ids.append(site.charger_id)
        columns.latitude_deg.append(site.latitude_deg)
        columns.longitude_deg.append(site.longitude_deg)
        columns.station.append(self._stations.code(site.station_id))
        columns.tariff.append(self._tariffs.code(site.tariff_id))
        columns.zone.append(self._zones.code(site.time_zone))
        columns.connector_counts.append(len(site.connectors))
        for connector in site.connectors:
            columns.evse_ids.append(connector.evse_id)
            columns.connector_ids.append(connector.connector_id)
            columns.types.append(self._types.code(connector.connector_type))
            columns.powers_kw.append(math.nan if connector.max_power_kw is None else connector.max_power_kw)

    def add_rows(
        self,
        columns: SiteColumns,
        chargers: Sequence[tuple[str, float, float, str | None, str | None, str]],
        connectors: Sequence[tuple[str, int, int, str | None, float | None]],
    ) -> None:
        """Append many chargers at once: ``(id, lat, lng, station, tariff, zone)`` rows sorted by
        id, and their ``(charger id, evse, connector, OCPI type, kW)`` rows sorted the same way."""
        station, tariff, zone, kind = (
            self._stations.code,
            self._tariffs.code,
            self._zones.code,
            self._types.code,
        )
        counts: dict[str, int] = {}
        for connector in connectors:
            counts[connector[0]] = counts.get(connector[0], 0) + 1
        known = {row[0] for row in chargers}
        columns.charger_ids.extend(row[0] for row in chargers)
        columns.latitude_deg.extend(row[1] for row in chargers)
        columns.longitude_deg.extend(row[2] for row in chargers)
        columns.station.extend(station(row[3]) for row in chargers)
        columns.tariff.extend(tariff(row[4]) for row in chargers)
        columns.zone.extend(zone(row[5]) for row in chargers)
        columns.connector_counts.extend(counts.get(row[0], 0) for row in chargers)
        kept = [row for row in connectors if row[0] in known]
        columns.evse_ids.extend(row[1] for row in kept)
        columns.connector_ids.extend(row[2] for row in kept)
        columns.types.extend(kind(row[3]) for row in kept)
        columns.powers_kw.extend(math.nan if row[4] is None else row[4] for row in kept)

    def load(self, columns: SiteColumns) -> None:
        """Replace every charger with ``columns`` (statuses of chargers still present are kept)."""
        self.install(self.prepare(columns))

    @staticmethod
    def prepare(columns: SiteColumns) -> Prepared:
        """Build the arrays and tree of ``columns`` (touches no index state: may run in a thread)."""
        return Prepared(Block.of(columns))

    def install(self, prepared: Prepared) -> None:
        """Make a block built by :meth:`prepare` the whole index (live statuses carried over)."""
        previous = self._finder()
        self._where = {}
        self._base = prepared.block
        self._extra = Block.of(SiteColumns())
        self._extra_sites = {}
        self._adopt(prepared.block, previous, in_base=True)

    def _finder(self) -> Callable[[str], tuple[Block, int] | None]:
        """Where a charger is now (for carrying its statuses after the blocks change)."""
        where, base, extra = self._where, self._base, self._extra

        def find(charger_id: str) -> tuple[Block, int] | None:
            code = where.get(charger_id)
            if code is None:
                return None
            return (base, code) if code >= 0 else (extra, -1 - code)

        return find

    def _find(self, charger_id: str) -> tuple[Block, int] | None:
        code = self._where.get(charger_id)
        if code is None:
            return None
        return (self._base, code) if code >= 0 else (self._extra, -1 - code)

    def _adopt(
        self, block: Block, find_old: Callable[[str], tuple[Block, int] | None], *, in_base: bool
    ) -> None:
        """Index ``block``'s chargers by id, carrying statuses over from where they were."""
        positions = {charger_id: slot for slot, charger_id in enumerate(block.charger_ids)}
        moves: dict[int, tuple[Block, list[int], list[int]]] = {}
        for charger_id, slot in positions.items():
            old = find_old(charger_id)
            if old is not None:
                entry = moves.setdefault(id(old[0]), (old[0], [], []))
                entry[1].append(old[1])
                entry[2].append(slot)
            self._where[charger_id] = slot if in_base else -1 - slot
        for old_block, old_slots, new_slots in moves.values():
            carry(old_block, np.array(old_slots, dtype=np.intp), block, np.array(new_slots, dtype=np.intp))
        for key in [key for key in self._status if key[0] in positions]:
            charger_id, evse_id, connector_id = key
            self.set_status(charger_id, evse_id, connector_id, self._status.pop(key))
        for charger_id, evse_id in self._reserved:
            position = positions.get(charger_id)
            if position is not None:
                block.conn_reserved[block.find_connector(position, evse_id, None)] = True

    def upsert(self, site: ChargerSite) -> None:
        """Add a new charger or replace a changed one (cheap: only the small block is rebuilt)."""
        self._extra_sites[site.charger_id] = site
        self._rebuild_extra(site.charger_id)

    def remove(self, charger_id: str) -> None:
        """Forget a charger that left the registry (or lost its position)."""
        if self._extra_sites.pop(charger_id, None) is not None:
            self._rebuild_extra(charger_id)
        code = self._where.pop(charger_id, None)
        if code is not None and code >= 0:
            self._tombstone(self._base, code)

    def _tombstone(self, block: Block, slot: int) -> None:
        if block.alive[slot]:
            block.alive[slot] = False
            block.dead += 1

    def _rebuild_extra(self, changed: str) -> None:
        previous: dict[str, tuple[Block, int]] = {}
        for charger_id in (*self._extra.charger_ids, changed):
            found = self._find(charger_id)
            if found is not None:
                previous[charger_id] = found
        code = self._where.get(changed)
        if code is not None and code >= 0:
            self._tombstone(self._base, code)
        for charger_id in self._extra.charger_ids:
            self._where.pop(charger_id, None)
        self._where.pop(changed, None)
        block = Block.of(self.columns(self._extra_sites.values()))
        self._extra = block
        self._adopt(block, previous.get, in_base=False)

    @property
    def pending_changes(self) -> int:
        """Chargers in the small block; compact when this grows (see :meth:`compacted_columns`)."""
        return len(self._extra_sites)

    def compacted_columns(self) -> SiteColumns:
        """Every live charger as columns, for a rebuild with :meth:`load` (e.g. in a thread)."""
        columns = SiteColumns()
        for block in (self._base, self._extra):
            slots = np.flatnonzero(block.alive).astype(np.intp)
            if block is self._base and not len(slots):
                continue
            owners, rows = block.connector_rows(slots)
            columns.charger_ids.extend(block.charger_ids[i] for i in slots)
            columns.latitude_deg.extend(block.latitude_deg[slots].tolist())
            columns.longitude_deg.extend(block.longitude_deg[slots].tolist())
            columns.station.extend(block.station[slots].tolist())
            columns.tariff.extend(block.tariff[slots].tolist())
            columns.zone.extend(block.zone[slots].tolist())
            columns.connector_counts.extend(np.bincount(owners, minlength=len(slots)).tolist())
            columns.evse_ids.extend(block.evse_ids[rows].tolist())
            columns.connector_ids.extend(block.connector_ids[rows].tolist())
            columns.types.extend(block.types[rows].tolist())
            columns.powers_kw.extend(block.powers_kw[rows].tolist())
        return columns

    def __len__(self) -> int:
        return len(self._where)

    def charger_ids(self) -> list[str]:
        return list(self._where)

    def __contains__(self, charger_id: object) -> bool:
        return charger_id in self._where

    # -- live state -----------------------------------------------------------------------------

    def set_status(self, charger_id: str, evse_id: int, connector_id: int, status: Availability) -> None:
        """A connector's reported status; ``evse_id`` 0 is the whole charger (1.6 connector 0)."""
        found = self._find(charger_id)
        if found is None:
            key = (charger_id, evse_id, connector_id if evse_id else 0)
            self._status[key] = status
            return
        block, slot = found
        if evse_id == 0:
            block.charger_status[slot] = status
            return
        rows = block.find_connector(slot, evse_id, connector_id)
        if not len(rows):  # a 1.6 status names the EVSE only: apply it to its connectors
            rows = block.find_connector(slot, evse_id, None)
        block.conn_status[rows] = status

    def set_online(self, charger_id: str, online: bool) -> None:
        """A charger whose connection dropped shows as Unavailable until it is back (then as before)."""
        found = self._find(charger_id)
        if found is None:
            return
        block, slot = found
        if not online:
            if charger_id not in self._offline:
                self._offline[charger_id] = Availability(int(block.charger_status[slot]))
            block.charger_status[slot] = Availability.UNAVAILABLE
            return
        before = self._offline.pop(charger_id, None)
        if before is not None:
            block.charger_status[slot] = before

    def set_reserved(self, charger_id: str, evse_id: int, reserved: bool) -> None:
        """Count one reservation of an EVSE more (``True``) or less; shown as Reserved while > 0."""
        key = (charger_id, evse_id)
        count = self._reserved.get(key, 0) + (1 if reserved else -1)
        if count > 0:
            self._reserved[key] = count
        else:
            self._reserved.pop(key, None)
        found = self._find(charger_id)
        if found is not None:
            block, slot = found
            block.conn_reserved[block.find_connector(slot, evse_id, None)] = count > 0

    def reserved_evses(self) -> set[tuple[str, int]]:
        return set(self._reserved)

    def connector_type_known(self, name: str) -> bool:
        return name in self._types.codes

    # -- queries --------------------------------------------------------------------------------

    def search(self, query: NearbyQuery) -> list[NearbyCharger]:
        """Chargers within ``radius_km`` matching the filters, nearest first, at most ``limit``."""
        type_code = 0
        if query.connector_type is not None:
            type_code = self._types.codes.get(query.connector_type, -1)
            if type_code < 0:
                return []
        lat, lng = math.radians(query.latitude_deg), math.radians(query.longitude_deg)
        point = np.array((math.cos(lat) * math.cos(lng), math.cos(lat) * math.sin(lng), math.sin(lat)))
        found: list[tuple[Block, IntArray, FloatArray]] = []
        ordered = True
        for block in (self._base, self._extra):
            if block.tree is None:
                continue
            slots, distances, nearest_first = candidates(block, point, query)
            if query.filtered and len(slots):
                keep = matching(block, slots, query, type_code)
                slots, distances = slots[keep], distances[keep]
                if len(slots) > query.limit:
                    nearest = np.argpartition(distances, query.limit - 1)[: query.limit]
                    slots, distances = slots[nearest], distances[nearest]
            if len(slots):
                found.append((block, slots, distances))
                ordered = ordered and nearest_first
        if len(found) == 1 and ordered:  # the usual case: one block, k nearest already in order
            block, slots, distances = found[0]
            return self._views(block, list(zip(slots.tolist(), distances.tolist(), strict=True)))
        ranked = [
            (distance, block.charger_ids[slot], slot, position)
            for position, (block, slots, distances) in enumerate(found)
            for slot, distance in zip(slots.tolist(), distances.tolist(), strict=True)
        ]
        ranked.sort()
        chosen = ranked[: query.limit]
        views: dict[tuple[int, int], NearbyCharger] = {}
        for position, (block, _, _) in enumerate(found):
            picked = [(slot, distance) for distance, _, slot, where in chosen if where == position]
            if picked:
                for slot, view in zip((p[0] for p in picked), self._views(block, picked), strict=True):
                    views[(position, slot)] = view
        return [views[(position, slot)] for _, _, slot, position in chosen]

    def _views(self, block: Block, picked: Sequence[tuple[int, float]]) -> list[NearbyCharger]:
        """The chargers at ``picked`` (slot, distance) of ``block`` with this index's names."""
        return charger_views(
            block,
            picked,
            types=self._types,
            stations=self._stations,
            tariffs=self._tariffs,
            zones=self._zones,
        )


def brute_force(sites: Sequence[ChargerSite], lat_deg: float, lng_deg: float, radius_km: float) -> list[str]:
    """Charger ids within ``radius_km`` by a full haversine scan, nearest first (for tests and checks)."""
    lats = np.array([s.latitude_deg for s in sites])
    lngs = np.array([s.longitude_deg for s in sites])
    distances = haversine_km(lat_deg, lng_deg, lats, lngs)
    order = sorted((float(d), s.charger_id) for d, s in zip(distances, sites, strict=True) if d <= radius_km)
    return [charger_id for _, charger_id in order]
