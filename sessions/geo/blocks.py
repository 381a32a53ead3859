"""The storage of the nearby index: chargers in numpy columns with a k-d tree (pure, no I/O).

A :class:`Block` holds chargers column by column (positions, station/tariff/zone codes, the
connectors as flat arrays with per-charger offsets, live status codes) and a ``cKDTree`` over
their unit vectors; :class:`~sessions.geo.index.NearbyIndex` keeps a large block and a small one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from sessions.geo.vocabulary import Availability

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG) [km]."""

_UNKNOWN, _AVAILABLE, _OCCUPIED, _RESERVED, _UNAVAILABLE, _FAULTED = (np.int8(a) for a in Availability)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


def unit_vectors(latitude_deg: FloatArray, longitude_deg: FloatArray) -> FloatArray:
    """``(n, 3)`` unit vectors of points given in degrees."""
    lat = np.radians(latitude_deg)
    lng = np.radians(longitude_deg)
    cos_lat = np.cos(lat)
    return np.column_stack((cos_lat * np.cos(lng), cos_lat * np.sin(lng), np.sin(lat)))


def haversine_km(lat_deg: float, lng_deg: float, lats_deg: FloatArray, lngs_deg: FloatArray) -> FloatArray:
    """Great-circle distances [km] from one point to many (haversine formula)."""
    lat1 = math.radians(lat_deg)
    lat2 = np.radians(lats_deg)
    dlat = lat2 - lat1
    dlng = np.radians(lngs_deg) - math.radians(lng_deg)
    a = np.sin(dlat / 2) ** 2 + math.cos(lat1) * np.cos(lat2) * np.sin(dlng / 2) ** 2
    distances: FloatArray = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return distances


class Codes:
    """Small integer codes for repeated strings (connector types, tariffs, zones); 0 is None."""

    def __init__(self) -> None:
        self.names: list[str | None] = [None]
        self.codes: dict[str, int] = {}

    def code(self, name: str | None) -> int:
        if name is None:
            return 0
        found = self.codes.get(name)
        if found is None:
            found = self.codes[name] = len(self.names)
            self.names.append(name)
        return found


class SiteColumns:
    """Chargers collected column by column before a block is built (the loader fills it)."""

    def __init__(self) -> None:
        self.charger_ids: list[str] = []
        self.latitude_deg: list[float] = []
        self.longitude_deg: list[float] = []
        self.station: list[int] = []
        self.tariff: list[int] = []
        self.zone: list[int] = []
        self.connector_counts: list[int] = []
        self.evse_ids: list[int] = []
        self.connector_ids: list[int] = []
        self.types: list[int] = []
        self.powers_kw: list[float] = []

    def __len__(self) -> int:
        return len(self.charger_ids)


@dataclass
class Block:
    """Chargers in columns with a k-d tree over their unit vectors."""

    charger_ids: list[str]
    latitude_deg: FloatArray
    longitude_deg: FloatArray
    tree: cKDTree | None
    alive: npt.NDArray[np.bool_]
    station: npt.NDArray[np.int32]
    tariff: npt.NDArray[np.int32]
    zone: npt.NDArray[np.int32]
    charger_status: npt.NDArray[np.int8]
    conn_start: npt.NDArray[np.int64]
    evse_ids: npt.NDArray[np.int32]
    connector_ids: npt.NDArray[np.int32]
    types: npt.NDArray[np.int32]
    powers_kw: FloatArray
    conn_status: npt.NDArray[np.int8]
    conn_reserved: npt.NDArray[np.bool_]
    position: FloatArray
    """``(n, 2)`` latitude and longitude; ``latitude_deg``/``longitude_deg`` are its columns."""
    codes: npt.NDArray[np.int32]
    """``(n, 3)`` station, tariff and zone codes (``station``/``tariff``/``zone`` are its columns)."""
    conn_static: npt.NDArray[np.int32]
    """``(m, 3)`` EVSE, connector and type code (``evse_ids``/``connector_ids``/``types``): one
    gather reads a result's connectors."""
    dead: int = 0

    @classmethod
    def of(cls, columns: SiteColumns) -> Block:
        lat = np.asarray(columns.latitude_deg, dtype=np.float64)
        lng = np.asarray(columns.longitude_deg, dtype=np.float64)
        n = len(columns)
        counts = np.asarray(columns.connector_counts, dtype=np.int64)
        start = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=start[1:])
        m = int(start[-1])
        position = np.column_stack((lat, lng)).reshape(n, 2)
        codes = np.column_stack(
            (
                np.asarray(columns.station, dtype=np.int32),
                np.asarray(columns.tariff, dtype=np.int32),
                np.asarray(columns.zone, dtype=np.int32),
            )
        ).reshape(n, 3)
        static = np.column_stack(
            (
                np.asarray(columns.evse_ids, dtype=np.int32),
                np.asarray(columns.connector_ids, dtype=np.int32),
                np.asarray(columns.types, dtype=np.int32),
            )
        ).reshape(m, 3)
        return cls(
            charger_ids=list(columns.charger_ids),
            latitude_deg=position[:, 0],
            longitude_deg=position[:, 1],
            tree=cKDTree(unit_vectors(lat, lng)) if n else None,
            alive=np.ones(n, dtype=np.bool_),
            station=codes[:, 0],
            tariff=codes[:, 1],
            zone=codes[:, 2],
            charger_status=np.zeros(n, dtype=np.int8),
            conn_start=start,
            evse_ids=static[:, 0],
            connector_ids=static[:, 1],
            types=static[:, 2],
            powers_kw=np.asarray(columns.powers_kw, dtype=np.float64),
            conn_status=np.zeros(m, dtype=np.int8),
            conn_reserved=np.zeros(m, dtype=np.bool_),
            position=position,
            codes=codes,
            conn_static=static,
        )

    def __len__(self) -> int:
        return len(self.charger_ids)

    def connector_rows(self, slots: IntArray) -> tuple[IntArray, IntArray]:
        """``(owner position in slots, connector row)`` of every connector of ``slots``."""
        starts = self.conn_start[slots]
        counts = self.conn_start[slots + 1] - starts
        owners = np.repeat(np.arange(len(slots)), counts)
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        return owners, (np.repeat(starts, counts) + offsets).astype(np.intp)

    def availability(self, rows: IntArray, owners_slots: IntArray) -> npt.NDArray[np.int8]:
        """Effective availability of connector ``rows`` whose chargers are ``owners_slots``."""
        status = self.conn_status[rows]
        free = (status == _UNKNOWN) | (status == _AVAILABLE)
        status = np.where(self.conn_reserved[rows] & free, _RESERVED, status)
        whole = self.charger_status[owners_slots]
        down = (whole == _UNAVAILABLE) | (whole == _FAULTED)
        result: npt.NDArray[np.int8] = np.where(down, whole, status)
        return result

    def find_connector(self, slot: int, evse_id: int, connector_id: int | None) -> IntArray:
        rows = np.arange(self.conn_start[slot], self.conn_start[slot + 1], dtype=np.intp)
        match = self.evse_ids[rows] == evse_id
        if connector_id is not None:
            match &= self.connector_ids[rows] == connector_id
        found: IntArray = rows[match]
        return found


def carry(old: Block, old_slots: IntArray, new: Block, new_slots: IntArray) -> None:
    """Copy statuses of chargers from ``old_slots`` to ``new_slots``, connector by connector."""
    new.charger_status[new_slots] = old.charger_status[old_slots]
    old_counts = old.conn_start[old_slots + 1] - old.conn_start[old_slots]
    new_counts = new.conn_start[new_slots + 1] - new.conn_start[new_slots]
    same = old_counts == new_counts
    _, old_rows = old.connector_rows(old_slots[same])
    _, new_rows = new.connector_rows(new_slots[same])
    equal = (old.evse_ids[old_rows] == new.evse_ids[new_rows]) & (
        old.connector_ids[old_rows] == new.connector_ids[new_rows]
    )
    new.conn_status[new_rows[equal]] = old.conn_status[old_rows[equal]]
    for old_slot, new_slot in zip(old_slots[~same], new_slots[~same], strict=True):
        for row in range(int(old.conn_start[old_slot]), int(old.conn_start[old_slot + 1])):
            rows = new.find_connector(int(new_slot), int(old.evse_ids[row]), int(old.connector_ids[row]))
            new.conn_status[rows] = old.conn_status[row]
