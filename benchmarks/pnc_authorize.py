"""``python -m benchmarks pnc-authorize``: Plug & Charge Authorize latency, warm and cold OCSP cache.

One run, one CSMS (real PostgreSQL, a throw-away database), the test PKI (MO root -> MO sub-CA ->
contract certificates) and its OCSP responder on 127.0.0.1, one OCPP 2.0.1 charger sending raw
OCPP-J frames. Three kinds of Authorize are interleaved, so they share the machine's state:

- ``plain``: an RFID idToken, no certificate (the anchor: what every Authorize costs);
- ``warm``: eMAID + contract chain, revocation answers cached (the usual case);
- ``cold``: eMAID + contract chain after the revocation caches are emptied: two OCSP round trips
  (the contract certificate and the MO sub-CA) to the local responder and one PostgreSQL query
  (the operator's contract cancellations).

Latency is from sending the CALL to receiving the CALLRESULT [ms]; the table gives p50 and p99
side by side with their ratio to ``plain``. The PKI is built with the test factory
(``tests/csms/pki/factory.py``), so run from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from benchmarks.csms_load_chargers import percentiles
from csms.pki.revocation import RevocationSettings
from csms.pki.runtime import PKI
from csms.server import create_app
from csms.settings import CsmsSettings
from tests.csms.pki.factory import build_pki, running_responder
from tests.csms.pki.harness import ContractAuthorizer, install_test_pki, pki_settings

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
EMAID = "DE-FWT-C90000001-1"
MODES = ("plain", "warm", "cold")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", type=int, default=400, help="Authorize calls per mode (default 400)")
    parser.add_argument("--warmup", type=int, default=30, help="calls per mode not counted (default 30)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")


@dataclass
class Report:
    latencies_ms: dict[str, list[float]]
    ocsp_requests: dict[str, int]

    def figures(self) -> dict[str, dict[str, float]]:
        return {mode: percentiles(values) for mode, values in self.latencies_ms.items()}


async def measure(database_dsn: str, *, samples: int, warmup: int = 0) -> Report:
    """Run the three modes interleaved against a fresh app on ``database_dsn``."""
    async with running_responder() as responder:
        pki = build_pki(responder)
        settings = CsmsSettings(database_dsn=database_dsn, auto_register=True, response_timeout_s=10.0)
        app = create_app(settings, authorizer=ContractAuthorizer({EMAID, "RFID-0001"}))
        install_test_pki(app, pki, pki_settings(revocation=RevocationSettings(cache_ttl_s=3600.0)))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        port: int = listener.getsockname()[1]
        await web.SockSite(runner, listener).start()
        try:
            leaf, _ = pki.contract(EMAID)
            payloads: dict[str, dict[str, Any]] = {
                "plain": {"idToken": {"idToken": "RFID-0001", "type": "ISO14443"}},
                "warm": {"idToken": {"idToken": EMAID, "type": "eMAID"}, "certificate": pki.chain(leaf)},
                "cold": {"idToken": {"idToken": EMAID, "type": "eMAID"}, "certificate": pki.chain(leaf)},
            }
            plug_and_charge = app[PKI].plug_and_charge
            report = Report({mode: [] for mode in MODES}, dict.fromkeys(MODES, 0))
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(f"ws://127.0.0.1:{port}/ocpp/CP-BENCH-PNC", protocols=("ocpp2.0.1",)) as ws,
            ):
                for index in range(warmup + samples):
                    for mode in MODES:
                        if mode == "cold":
                            plug_and_charge.forget()
                        before = responder.ocsp_requests
                        frame = json.dumps([2, uuid.uuid4().hex, "Authorize", payloads[mode]])
                        started = time.perf_counter()
                        await ws.send_str(frame)
                        answer = json.loads(await ws.receive_str())
                        elapsed_ms = (time.perf_counter() - started) * 1000.0
                        if answer[0] != 3 or answer[2]["idTokenInfo"]["status"] != "Accepted":
                            raise RuntimeError(f"{mode}: unexpected answer {answer}")
                        if index >= warmup:
                            report.latencies_ms[mode].append(elapsed_ms)
                            report.ocsp_requests[mode] += responder.ocsp_requests - before
            return report
        finally:
            await runner.cleanup()


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _run(args: argparse.Namespace) -> Report:
    name = f"fairwatt_pnc_bench_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        return await measure(
            f"postgresql://postgres@127.0.0.1:5432/{name}", samples=args.samples, warmup=args.warmup
        )
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def render(report: Report) -> str:
    figures = report.figures()
    anchor = figures["plain"]
    lines = [
        f"{'mode':<6} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f" {'p50/plain':>10} {'p99/plain':>10} {'OCSP/call':>10}"
    ]
    for mode in MODES:
        row = figures[mode]
        count = int(row["count"])
        lines.append(
            f"{mode:<6} {count:>5} {row['p50']:>8.2f} {row['p99']:>8.2f} {row['max']:>8.2f}"
            f" {row['p50'] / anchor['p50']:>10.2f} {row['p99'] / anchor['p99']:>10.2f}"
            f" {report.ocsp_requests[mode] / max(count, 1):>10.2f}"
        )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    report = asyncio.run(_run(args))
    sys.stdout.write(render(report) + "\n")
    if args.json:
        sys.stdout.write(
            json.dumps({"figures": report.figures(), "ocsp_requests": report.ocsp_requests}) + "\n"
        )
