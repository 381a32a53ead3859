"""Nearby search over many chargers: our in-memory index against PostGIS (``python -m benchmarks nearby``).

``python -m benchmarks nearby --chargers 500000 --queries 2000``

- Chargers: seeded, clustered like a continent's (``--cities`` Gaussian clusters over Europe,
  a fifth spread uniformly), one or two connectors each (Type 2 22 kW, CCS 50-350 kW).
- Queries: the same points (near a city, where drivers search) and radii (``--radii`` km) for
  both sides, nearest ``--limit`` first, in the same run, interleaved call by call (ours, then
  PostGIS) so both see the same shared machine; throughput is queries over summed latencies.
- Ours: :class:`sessions.geo.index.NearbyIndex` in this process (build time, then per-query
  latency around ``search``; no HTTP, no JSON).
- PostGIS: ``postgresql-15-postgis-3`` on the PostgreSQL at ``--dsn``, a throw-away database with
  ``geography(Point)`` and a GiST index; ``ST_DWithin(geog, q, r, false)`` ordered by
  ``ST_Distance(geog, q, false)`` (the sphere, as ours; no parallel workers: one backend, one
  core), one prepared statement over one connection; latency includes the local socket round
  trip, which every real caller pays. Without PostGIS the run says so and prints our side.
- Agreement: for every query the charger ids of both sides are compared (ties aside).
- HTTP (``--http-queries``, 0 to skip): the real app (CSMS + driver API) on a throw-away
  database with the same chargers in its registry, ``GET /v1/chargers/nearby`` through aiohttp
  from this process (client and server share the core, so this is an upper bound).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np

from sessions.geo.index import ChargerSite, ConnectorSite, NearbyIndex
from sessions.geo.query import NearbyQuery

EUROPE_LAT = (36.0, 70.0)
EUROPE_LNG = (-10.0, 30.0)
DEFAULT_RADII_KM = (2.0, 10.0, 25.0, 50.0)


@dataclass(frozen=True, slots=True)
class Fleet:
    charger_ids: list[str]
    latitude_deg: np.ndarray[Any, np.dtype[np.float64]]
    longitude_deg: np.ndarray[Any, np.dtype[np.float64]]
    fast: np.ndarray[Any, np.dtype[np.bool_]]
    dc_power_kw: np.ndarray[Any, np.dtype[np.float64]]

    def sites(self) -> list[ChargerSite]:
        return [
            ChargerSite(
                charger_id,
                float(self.latitude_deg[i]),
                float(self.longitude_deg[i]),
                connectors=(
                    (ConnectorSite(1, 1, "IEC_62196_T2", 22.0),)
                    + (
                        (ConnectorSite(2, 1, "IEC_62196_T2_COMBO", float(self.dc_power_kw[i])),)
                        if self.fast[i]
                        else ()
                    )
                ),
            )
            for i, charger_id in enumerate(self.charger_ids)
        ]


def make_fleet(count: int, cities: int, seed: int) -> tuple[Fleet, np.ndarray[Any, Any]]:
    """``count`` chargers around ``cities`` centres (returned too) and a uniform fifth."""
    rng = np.random.default_rng(seed)
    centres = np.column_stack((rng.uniform(*EUROPE_LAT, cities), rng.uniform(*EUROPE_LNG, cities)))
    weights = rng.pareto(1.2, cities) + 1.0
    weights /= weights.sum()
    clustered = int(count * 0.8)
    which = rng.choice(cities, size=clustered, p=weights)
    spread_deg = rng.uniform(0.05, 0.3, cities)[which]
    lat = np.concatenate(
        (
            centres[which, 0] + rng.normal(0, 1, clustered) * spread_deg,
            rng.uniform(*EUROPE_LAT, count - clustered),
        )
    )
    lng = np.concatenate(
        (
            centres[which, 1] + rng.normal(0, 1, clustered) * spread_deg * 1.5,
            rng.uniform(*EUROPE_LNG, count - clustered),
        )
    )
    lat = np.clip(lat, -89.9, 89.9)
    fleet = Fleet(
        charger_ids=[f"CP{i:07d}" for i in range(count)],
        latitude_deg=lat,
        longitude_deg=lng,
        fast=rng.random(count) < 0.3,
        dc_power_kw=rng.choice([50.0, 150.0, 350.0], size=count),
    )
    return fleet, centres


def make_queries(
    centres: np.ndarray[Any, Any], count: int, radii_km: Sequence[float], seed: int
) -> list[tuple[float, float, float]]:
    """``count`` (lat, lng, radius) per radius: points near a random city centre."""
    rng = np.random.default_rng(seed + 1)
    points = centres[rng.integers(0, len(centres), count)] + rng.normal(0, 0.2, (count, 2))
    return [(float(lat), float(lng), radius) for radius in radii_km for lat, lng in points]


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def summarise(latencies_s: Sequence[float], wall_s: float, results: Sequence[int]) -> dict[str, float]:
    return {
        "queries": len(latencies_s),
        "qps": len(latencies_s) / wall_s,
        "p50_ms": percentile(latencies_s, 50) * 1000,
        "p99_ms": percentile(latencies_s, 99) * 1000,
        "max_ms": max(latencies_s) * 1000,
        "mean_results": statistics.fmean(results) if results else 0.0,
    }


class Timings:
    """Latencies and result counts of one side, by radius."""

    def __init__(self) -> None:
        self.latencies: dict[float, list[float]] = {}
        self.counts: dict[float, list[int]] = {}
        self.answers: list[list[str]] = []

    def add(self, radius: float, elapsed_s: float, answer: list[str]) -> None:
        self.latencies.setdefault(radius, []).append(elapsed_s)
        self.counts.setdefault(radius, []).append(len(answer))
        self.answers.append(answer)

    def report(self, build_s: float) -> dict[str, Any]:
        """Throughput per radius is queries over the summed latencies of that radius (one core)."""
        every = [x for v in self.latencies.values() for x in v]
        return {
            "build_s": build_s,
            "by_radius": {
                str(r): summarise(v, sum(v), self.counts[r]) for r, v in sorted(self.latencies.items())
            },
            "all": summarise(every, sum(every), [c for v in self.counts.values() for c in v]),
        }


def build_ours(fleet: Fleet) -> tuple[NearbyIndex, float]:
    began = time.perf_counter()
    index = NearbyIndex()
    index.load(index.columns(fleet.sites()))
    return index, time.perf_counter() - began


def ask_ours(index: NearbyIndex, query: tuple[float, float, float], limit: int) -> tuple[float, list[str]]:
    lat, lng, radius = query
    start = time.perf_counter()
    hits = index.search(NearbyQuery(lat, lng, radius, limit))
    return time.perf_counter() - start, [h.charger_id for h in hits]


@contextlib.asynccontextmanager
async def throwaway_database(admin_dsn: str, name: str) -> AsyncIterator[str]:
    """A fresh database ``name`` on the server of ``admin_dsn``, dropped afterwards; yields its DSN."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = admin_dsn.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


PostgisQuery = Callable[[tuple[float, float, float]], Awaitable[tuple[float, list[str]]]]


@contextlib.asynccontextmanager
async def postgis(
    admin_dsn: str, fleet: Fleet, limit: int
) -> AsyncIterator[tuple[PostgisQuery, float] | str]:
    """``(ask, build seconds)`` over a throw-away PostGIS table of ``fleet``, or why it cannot run."""
    async with throwaway_database(admin_dsn, f"fairwatt_bench_nearby_{os.getpid()}") as dsn:
        connection = await asyncpg.connect(dsn)
        try:
            try:
                await connection.execute("CREATE EXTENSION postgis")
            except asyncpg.PostgresError as exc:
                yield f"PostGIS is not available ({exc}); apt-get install postgresql-15-postgis-3"
                return
            began = time.perf_counter()
            await connection.execute(
                "CREATE TABLE chargers_geo (charger_id text PRIMARY KEY, lat float8, lng float8)"
            )
            await connection.copy_records_to_table(
                "chargers_geo",
                records=zip(
                    fleet.charger_ids, fleet.latitude_deg.tolist(), fleet.longitude_deg.tolist(), strict=True
                ),
                columns=["charger_id", "lat", "lng"],
            )
            await connection.execute(
                "ALTER TABLE chargers_geo ADD COLUMN geog geography(Point, 4326);"
                "UPDATE chargers_geo SET geog = ST_SetSRID(ST_MakePoint(lng, lat), 4326)::geography;"
                "CREATE INDEX chargers_geo_gist ON chargers_geo USING gist (geog);"
            )
            await connection.execute("VACUUM ANALYZE chargers_geo")
            build_s = time.perf_counter() - began
            await connection.execute("SET max_parallel_workers_per_gather = 0; SET jit = off")
            statement = await connection.prepare(
                """SELECT charger_id FROM chargers_geo,
                          (SELECT ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography AS q) AS point
                   WHERE ST_DWithin(geog, point.q, $3, false)
                   ORDER BY ST_Distance(geog, point.q, false), charger_id LIMIT $4"""
            )

            async def ask(query: tuple[float, float, float]) -> tuple[float, list[str]]:
                lat, lng, radius = query
                start = time.perf_counter()
                rows = await statement.fetch(lat, lng, radius * 1000.0, limit)
                return time.perf_counter() - start, [row["charger_id"] for row in rows]

            yield ask, build_s
        finally:
            await connection.close()


async def compare(
    admin_dsn: str, fleet: Fleet, queries: Sequence[tuple[float, float, float]], limit: int
) -> dict[str, Any]:
    """Both sides on the same queries, interleaved call by call so both see the same machine."""
    index, our_build_s = build_ours(fleet)
    ours = Timings()
    async with postgis(admin_dsn, fleet, limit) as session:
        if isinstance(session, str):
            for query in queries:
                ours.add(query[2], *ask_ours(index, query, limit))
            return {"ours": ours.report(our_build_s), "postgis": {"unavailable": session}}
        ask_postgis, their_build_s = session
        for query in queries[:20]:  # warm both
            ask_ours(index, query, limit)
            await ask_postgis(query)
        theirs = Timings()
        for query in queries:
            ours.add(query[2], *ask_ours(index, query, limit))
            theirs.add(query[2], *await ask_postgis(query))
    return {
        "ours": ours.report(our_build_s),
        "postgis": theirs.report(their_build_s),
        "agreement": agreement(ours.answers, theirs.answers),
    }


def agreement(ours: Sequence[list[str]], theirs: Sequence[list[str]]) -> float:
    """Share of queries whose answers list the same chargers (order may differ only on ties)."""
    same = sum(
        1
        for a, b in zip(ours, theirs, strict=True)
        if a == b or (len(a) == len(b) and len(set(a) ^ set(b)) <= 2)
    )
    return same / len(ours) if ours else 1.0


async def run_http(
    admin_dsn: str, fleet: Fleet, queries: Sequence[tuple[float, float, float]], limit: int
) -> dict[str, Any]:
    """``GET /v1/chargers/nearby`` p50/p99 through the real app over the same chargers."""
    import aiohttp
    from aiohttp import web

    from csms.server import create_app
    from csms.settings import CsmsSettings
    from sessions.app import SessionsSettings, install
    from sessions.auth import Role

    async with throwaway_database(admin_dsn, f"fairwatt_bench_http_{os.getpid()}") as dsn:
        app = create_app(CsmsSettings(database_dsn=dsn))
        runtime = install(app, SessionsSettings(token_secret="benchmark-secret-of-at-least-32-bytes"))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        await web.SockSite(runner, listener).start()
        try:
            pool = runtime.csms.database.pool
            async with pool.acquire() as connection:
                # bulk registration: the per-row change triggers are for operators' edits
                await connection.execute("SET session_replication_role = replica")
                await connection.copy_records_to_table(
                    "chargers",
                    records=zip(
                        fleet.charger_ids,
                        fleet.latitude_deg.tolist(),
                        fleet.longitude_deg.tolist(),
                        strict=True,
                    ),
                    columns=["charger_id", "latitude_deg", "longitude_deg"],
                )
                rows: list[tuple[str, int, int, str, float]] = []
                for i, charger_id in enumerate(fleet.charger_ids):
                    rows.append((charger_id, 1, 1, "Type2", 22.0))
                    if fleet.fast[i]:
                        rows.append((charger_id, 2, 1, "CCS2", float(fleet.dc_power_kw[i])))
                await connection.copy_records_to_table(
                    "connectors",
                    records=rows,
                    columns=["charger_id", "evse_id", "connector_id", "connector_type", "max_power_kw"],
                )
                await connection.execute("RESET session_replication_role")
            assert runtime.nearby is not None
            await runtime.nearby.loaded.wait()
            began = time.perf_counter()
            await runtime.nearby.reload()
            load_s = time.perf_counter() - began
            token = runtime.issuer.mint("bench-driver", Role.DRIVER, ttl_s=3600)
            headers = {"Authorization": f"Bearer {token}"}
            latencies: list[float] = []
            counts: list[int] = []
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
                for lat, lng, radius in queries:
                    params = {
                        "lat": f"{lat:.6f}",
                        "lng": f"{lng:.6f}",
                        "radius_km": str(radius),
                        "limit": str(limit),
                    }
                    start = time.perf_counter()
                    async with http.get("/v1/chargers/nearby", params=params, headers=headers) as response:
                        body = await response.json()
                    latencies.append(time.perf_counter() - start)
                    if response.status != 200:
                        raise RuntimeError(f"nearby answered {response.status}: {body}")
                    counts.append(body["count"])
            return {"registry_load_s": load_s, **summarise(latencies, sum(latencies), counts)}
        finally:
            await runner.cleanup()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    fleet, centres = make_fleet(args.chargers, args.cities, args.seed)
    radii = tuple(float(r) for r in args.radii.split(","))
    queries = make_queries(centres, args.queries, radii, args.seed)
    compared = asyncio.run(compare(args.dsn, fleet, queries, args.limit))
    report: dict[str, Any] = {
        "chargers": args.chargers,
        "queries_per_radius": args.queries,
        "radii_km": list(radii),
        "limit": args.limit,
        **compared,
    }
    ours, theirs = report["ours"], report["postgis"]
    if "unavailable" not in theirs:
        report["qps_ratio"] = ours["all"]["qps"] / theirs["all"]["qps"]
        report["qps_ratio_by_radius"] = {
            r: ours["by_radius"][r]["qps"] / theirs["by_radius"][r]["qps"] for r in ours["by_radius"]
        }
    if args.http_queries > 0:
        step = max(1, len(queries) // args.http_queries)  # every radius, not only the first
        report["http"] = asyncio.run(
            run_http(args.dsn, fleet, queries[::step][: args.http_queries], args.limit)
        )
    return report


def print_report(report: dict[str, Any]) -> None:
    print(
        f"nearby search: {report['chargers']:,} chargers, "
        f"{report['queries_per_radius']} queries per radius, limit {report['limit']}"
    )
    ours = report["ours"]
    postgis = report["postgis"]
    print(
        f"index build: ours {ours['build_s']:.1f} s"
        + (
            ""
            if "unavailable" in postgis
            else f", PostGIS (COPY + GiST + ANALYZE) {postgis['build_s']:.1f} s"
        )
    )
    print(
        f"{'radius km':>9} {'ours qps':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'PostGIS qps':>12} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>7} {'hits':>6}"
    )
    for radius, mine in [*ours["by_radius"].items(), ("all", ours["all"])]:
        theirs = (
            postgis["all"]
            if radius == "all" and "all" in postgis
            else postgis.get("by_radius", {}).get(radius)
        )
        line = f"{radius:>9} {mine['qps']:>10.0f} {mine['p50_ms']:>8.3f} {mine['p99_ms']:>8.3f}"
        if theirs is not None:
            ratio = mine["qps"] / theirs["qps"]
            line += (
                f" {theirs['qps']:>12.0f} {theirs['p50_ms']:>8.3f} {theirs['p99_ms']:>8.3f} {ratio:>6.1f}x"
            )
        print(line + f" {mine['mean_results']:>6.1f}")
    if "unavailable" in postgis:
        print(f"PostGIS: {postgis['unavailable']}")
    else:
        print(f"same chargers as PostGIS: {report['agreement'] * 100:.1f} % of queries")
    if "http" in report:
        http = report["http"]
        print(
            f"HTTP GET /v1/chargers/nearby ({http['queries']} queries, "
            f"registry load {http['registry_load_s']:.1f} s): "
            f"{http['qps']:.0f} req/s, p50 {http['p50_ms']:.2f} ms, p99 {http['p99_ms']:.2f} ms"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chargers", type=int, default=500_000, help="chargers (default 500000)")
    parser.add_argument("--queries", type=int, default=1000, help="queries per radius (default 1000)")
    parser.add_argument("--radii", default=",".join(f"{r:g}" for r in DEFAULT_RADII_KM), help="radii [km]")
    parser.add_argument("--limit", type=int, default=20, help="nearest chargers returned (default 20)")
    parser.add_argument("--cities", type=int, default=400, help="charger clusters (default 400)")
    parser.add_argument("--http-queries", type=int, default=1000, help="HTTP end-to-end queries (0: skip)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--dsn", default=os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--name", default=None, help="results file stem (default nearby_<chargers>)")


def main(args: argparse.Namespace) -> dict[str, Any]:
    report = measure(args)
    print_report(report)
    from benchmarks.report import write_json

    print(f"\nwrote {write_json(args.name or f'nearby_{args.chargers}', report)}")
    return report
