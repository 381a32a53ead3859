"""How long validate, diff and apply take on a large operator network (stations x chargers).

    .venv/bin/python -m benchmarks.network_apply [--stations 100] [--chargers 10] [--passwords 0]

Prints, side by side, the network file's check against an anchor measured in the same run (plain
``yaml.safe_load`` of the same text), then the first apply (everything created), an apply of the
same file (nothing changes), and a diff and apply after one station's name changed, all on a
throw-away database of the local PostgreSQL. ``--passwords N`` gives N chargers an ``env:``
password: each is hashed once (PBKDF2, 200,000 rounds) when created or when its reference changes.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import asyncpg
import yaml

from csms.storage.database import Database
from fairwatt.config.network import parse_network
from fairwatt.operator.app import FAIRWATT_MIGRATIONS
from fairwatt.operator.engine import Applier, plan
from sessions.app import SESSIONS_MIGRATIONS
from sessions.tariff_store import TariffStore

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def network_text(stations: int, chargers: int, passwords: int) -> str:
    lines = [
        "version: 1",
        "operator: bench",
        "tariffs:",
        "  - {id: std, currency: EUR,"
        " elements: [{price_components: [{type: ENERGY, price: 0.4, step_size: 1}]}]}",
        "stations:",
    ]
    with_password = 0
    for s in range(stations):
        evses = ", ".join(f"s{s}-c{c}" for c in range(chargers))
        lines += [
            f"  - id: s{s}",
            f"    name: station {s}",
            "    time_zone: Europe/Berlin",
            f"    grid_limit_kw: {11 * chargers}",
            "    tariff: std",
            f"    limits: {{id: grid-{s}, limit_a: {16 * chargers}, evses: [{evses}]}}",
            "    chargers:",
        ]
        for c in range(chargers):
            secret = ""
            if with_password < passwords:
                secret = ", password: env:BENCH_PASSWORD"
                with_password += 1
            lines.append(
                f"      - {{id: s{s}-c{c}, model: AC22, connection: 3P, voltage_v: 230,"
                f" max_current_a: 32{secret}}}"
            )
    return "\n".join(lines) + "\n"


def timed(work: object) -> float:
    started = time.perf_counter()
    assert callable(work)
    work()
    return time.perf_counter() - started


async def database_run(text: str) -> list[tuple[str, float, int]]:
    name = f"fairwatt_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    rows: list[tuple[str, float, int]] = []
    try:
        database = Database(f"postgresql://postgres@127.0.0.1:5432/{name}")
        for package in (SESSIONS_MIGRATIONS, FAIRWATT_MIGRATIONS):
            database.add_migrations(package)
        await database.open()
        try:
            applier = Applier(database.pool, TariffStore(database), environ={"BENCH_PASSWORD": "secret-1"})
            network = parse_network({"bench.yaml": text})
            for label, changed in (("first apply", network), ("same file again", network)):
                started = time.perf_counter()
                outcome = await applier.apply("bench", "bench.key", changed)
                rows.append((label, time.perf_counter() - started, len(outcome.changes)))
            renamed = parse_network({"bench.yaml": text.replace("name: station 0\n", "name: renamed\n")})
            started = time.perf_counter()
            changes = await plan(database.pool, "bench", renamed)
            rows.append(("diff, one change", time.perf_counter() - started, len(changes)))
            started = time.perf_counter()
            outcome = await applier.apply("bench", "bench.key", renamed)
            rows.append(("apply, one change", time.perf_counter() - started, len(outcome.changes)))
        finally:
            await database.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stations", type=int, default=100)
    parser.add_argument("--chargers", type=int, default=10, help="chargers per station")
    parser.add_argument(
        "--passwords", type=int, default=0, help="how many chargers have a password reference"
    )
    args = parser.parse_args()
    text = network_text(args.stations, args.chargers, args.passwords)
    anchor = min(timed(lambda: yaml.safe_load(text)) for _ in range(3))
    check = min(timed(lambda: parse_network({"bench.yaml": text})) for _ in range(3))
    total = args.stations * args.chargers
    print(
        f"network: {args.stations} stations x {args.chargers} chargers = {total} chargers, {len(text)} bytes"
    )
    print(f"{'step':24} {'seconds':>9} {'changes':>8}")
    print(f"{'yaml.safe_load (anchor)':24} {anchor:9.3f}")
    print(f"{'validate (parse+check)':24} {check:9.3f}   ratio to anchor {check / anchor:.2f}")
    for label, seconds, changes in asyncio.run(database_run(text)):
        print(f"{label:24} {seconds:9.3f} {changes:8d}")


if __name__ == "__main__":
    main()
