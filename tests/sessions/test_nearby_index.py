"""The nearby index against a brute-force haversine scan, its filters, ordering and live updates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sessions.geo.index import (
    EARTH_RADIUS_KM,
    ChargerSite,
    ConnectorSite,
    NearbyIndex,
    brute_force,
    haversine_km,
)
from sessions.geo.query import NearbyQuery
from sessions.geo.vocabulary import Availability, connector_type_name, query_connector_type

TYPE2 = "IEC_62196_T2"
CCS = "IEC_62196_T2_COMBO"


def _random_sites(
    rng: np.random.Generator, count: int, lat: tuple[float, float], lng: tuple[float, float]
) -> list[ChargerSite]:
    lats = rng.uniform(*lat, size=count)
    lngs = rng.uniform(*lng, size=count)
    lngs = (lngs + 180.0) % 360.0 - 180.0
    return [
        ChargerSite(
            f"cp-{i}",
            float(la),
            float(lo),
            connectors=(ConnectorSite(1, 1, TYPE2 if i % 2 else CCS, 22.0 if i % 2 else 150.0),),
        )
        for i, (la, lo) in enumerate(zip(lats, lngs, strict=True))
    ]


def _index(sites: list[ChargerSite]) -> NearbyIndex:
    index = NearbyIndex()
    index.load(index.columns(sites))
    return index


def _ids(
    index: NearbyIndex, lat: float, lng: float, radius_km: float, limit: int = 10_000, **filters: object
) -> list[str]:
    query = NearbyQuery(lat, lng, radius_km, limit, **filters)  # type: ignore[arg-type]
    return [hit.charger_id for hit in index.search(query)]


def test_haversine_matches_known_distances() -> None:
    # Paris - London, about 343.5 km; a quarter of a meridian
    paris_london = haversine_km(48.8566, 2.3522, np.array([51.5074]), np.array([-0.1278]))[0]
    assert paris_london == pytest.approx(343.5, abs=1.0)
    quarter = haversine_km(0.0, 0.0, np.array([90.0]), np.array([0.0]))[0]
    assert quarter == pytest.approx(math.pi / 2 * EARTH_RADIUS_KM)


@pytest.mark.parametrize(
    ("area", "points"),
    [
        (((40.0, 60.0), (-10.0, 30.0)), [(50.0, 10.0), (45.0, -5.0), (59.9, 29.9)]),
        (((-30.0, 30.0), (170.0, 190.0)), [(0.0, 179.95), (0.0, -179.95), (10.0, 180.0), (-5.0, -179.0)]),
        (((80.0, 90.0), (-180.0, 180.0)), [(90.0, 0.0), (89.7, 123.0), (85.0, -170.0)]),
        (((-90.0, -80.0), (-180.0, 180.0)), [(-90.0, 0.0), (-89.9, -45.0)]),
    ],
    ids=["europe", "antimeridian", "north-pole", "south-pole"],
)
def test_radius_queries_match_brute_force(
    area: tuple[tuple[float, float], tuple[float, float]], points: list[tuple[float, float]]
) -> None:
    rng = np.random.default_rng(7)
    sites = _random_sites(rng, 4000, *area)
    index = _index(sites)
    for lat, lng in points:
        for radius_km in (1.0, 25.0, 50.0, 300.0):
            expected = brute_force(sites, lat, lng, radius_km)
            assert _ids(index, lat, lng, radius_km) == expected
            assert _ids(index, lat, lng, radius_km, limit=5) == expected[:5]
            assert _ids(index, lat, lng, radius_km, limit=1) == expected[:1]
    assert any(brute_force(sites, lat, lng, 300.0) for lat, lng in points)


def test_antimeridian_neighbours_are_found_across_it() -> None:
    index = _index(
        [ChargerSite("east", 0.0, 179.99), ChargerSite("west", 0.0, -179.99), ChargerSite("far", 0.0, 0.0)]
    )
    hits = index.search(NearbyQuery(0.0, -179.995, 5.0, 10))
    assert [h.charger_id for h in hits] == ["west", "east"]
    assert hits[1].distance_km == pytest.approx(
        haversine_km(0.0, -179.995, np.array([0.0]), np.array([179.99]))[0]
    )


def test_filters_on_type_power_and_availability() -> None:
    sites = [
        ChargerSite(
            "ac", 50.0, 10.0, connectors=(ConnectorSite(1, 1, TYPE2, 22.0), ConnectorSite(2, 1, TYPE2, 22.0))
        ),
        ChargerSite(
            "dc",
            50.001,
            10.0,
            connectors=(ConnectorSite(1, 1, CCS, 150.0), ConnectorSite(1, 2, "CHADEMO", 50.0)),
        ),
        ChargerSite("bare", 50.002, 10.0),
    ]
    index = _index(sites)
    assert _ids(index, 50.0, 10.0, 5.0) == ["ac", "dc", "bare"]
    assert _ids(index, 50.0, 10.0, 5.0, connector_type=CCS) == ["dc"]
    assert _ids(index, 50.0, 10.0, 5.0, connector_type="TESLA_S") == []
    assert _ids(index, 50.0, 10.0, 5.0, min_power_kw=50.0) == ["dc"]
    assert _ids(index, 50.0, 10.0, 5.0, min_power_kw=151.0) == []
    assert _ids(index, 50.0, 10.0, 5.0, available_only=True) == []  # never reported: Unknown
    index.set_status("ac", 2, 1, Availability.AVAILABLE)
    index.set_status("dc", 1, 1, Availability.OCCUPIED)
    assert _ids(index, 50.0, 10.0, 5.0, available_only=True) == ["ac"]
    index.set_reserved("ac", 2, True)
    assert _ids(index, 50.0, 10.0, 5.0, available_only=True) == []
    [ac] = index.search(NearbyQuery(50.0, 10.0, 0.01, 10))
    assert [c.availability for c in ac.connectors] == [Availability.UNKNOWN, Availability.RESERVED]
    assert ac.max_power_kw == 22.0
    index.set_reserved("ac", 2, False)
    index.set_status("ac", 0, 0, Availability.FAULTED)  # the whole charger
    [ac] = index.search(NearbyQuery(50.0, 10.0, 0.01, 10))
    assert [c.availability for c in ac.connectors] == [Availability.FAULTED, Availability.FAULTED]


def test_changes_are_searchable_and_keep_status() -> None:
    index = _index([ChargerSite("a", 10.0, 10.0, connectors=(ConnectorSite(1, 1, TYPE2, 11.0),))])
    index.set_status("a", 1, 1, Availability.OCCUPIED)
    index.set_status("new", 1, 1, Availability.AVAILABLE)  # heard before the registry knew it
    index.upsert(ChargerSite("new", 10.01, 10.0, connectors=(ConnectorSite(1, 1, CCS, 50.0),)))
    index.upsert(ChargerSite("a", 10.02, 10.0, connectors=(ConnectorSite(1, 1, TYPE2, 11.0),)))  # moved
    hits = index.search(NearbyQuery(10.0, 10.0, 10.0, 10))
    assert [h.charger_id for h in hits] == ["new", "a"]
    assert [h.connectors[0].availability for h in hits] == [Availability.AVAILABLE, Availability.OCCUPIED]
    index.remove("new")
    assert _ids(index, 10.0, 10.0, 10.0) == ["a"]
    assert len(index) == 1
    assert index.pending_changes == 1
    index.load(index.compacted_columns())
    assert index.pending_changes == 0
    [a] = index.search(NearbyQuery(10.0, 10.0, 10.0, 10))
    assert (a.latitude_deg, a.connectors[0].availability) == (10.02, Availability.OCCUPIED)


def test_removed_base_chargers_do_not_hide_the_next_nearest() -> None:
    sites = [ChargerSite(f"cp-{i}", 0.0, i * 0.001) for i in range(50)]
    index = _index(sites)
    for i in range(5):
        index.remove(f"cp-{i}")
    assert _ids(index, 0.0, 0.0, 100.0, limit=3) == ["cp-5", "cp-6", "cp-7"]


def test_connector_type_names() -> None:
    assert connector_type_name("cCCS2") == CCS
    assert connector_type_name("Type2") == TYPE2
    assert connector_type_name("chademo") == "CHADEMO"
    assert connector_type_name("Weird") == "Weird"
    assert query_connector_type("ccs2") == CCS
    assert query_connector_type("iec_62196_t2") == TYPE2
    assert query_connector_type("nonsense") is None
