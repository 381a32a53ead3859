"""``fairwatt demo``: the whole system on this machine, no servers needed.

    fairwatt demo [--duration SECONDS] [--port 9000] [--plot demo.png] [--data-dir DIR]

Starts everything ``fairwatt serve`` runs on an embedded PostgreSQL (or ``DATABASE_URL``) and a
local payment gateway, applies the demo network (``fairwatt/data/demo-network.yaml``: one depot,
eight chargers behind 30 kW, a tariff, the drivers' RFID cards) through the operator API, and
connects simulated OCPP 1.6 chargers (built on the ``ocpp`` package). Drivers arrive, tap their
cards or start from the app (the driver API), charge with meter values and leave; midway the
operator declares a peak event (demand response) and the station keeps under it; billing rates
each session and captures its payment. It prints a live summary and writes a plot of the
station's power per charger against its limit and the event's cap.

With ``--duration`` it exits after that many seconds; without, the story runs for 90 seconds
and the server stays up, printing how to point the CLI at it, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from billing import test_gateway
from billing.app import BillingSettings
from csms.embedded import EmbeddedDatabaseError, EmbeddedPostgres, default_data_dir
from csms.server import CSMS
from csms.settings import CsmsSettings
from fairwatt.assembly import AssemblyError, SystemSettings, build_app, serve_app, token_secret
from fairwatt.client import OperatorClient
from fairwatt.commands.outputs import output_file
from fairwatt.commands.serve import ServeError, build_stations
from fairwatt.config.network import load_network
from fairwatt.config.network_model import Network
from fairwatt.demo.run import DemoRecord, run_story, write_plot
from fairwatt.demo.scenario import Arrival, build_scenario
from fairwatt.operator import OperatorSettings
from fairwatt.operator.keys import mint_key
from sessions.app import SESSIONS, SessionsSettings
from sessions.auth import Role
from sessions.drivers import NewDriver, create_driver

logger = logging.getLogger(__name__)

DEMO_NETWORK = Path(__file__).resolve().parents[1] / "data" / "demo-network.yaml"
STORY_S = 90.0
PEAK_CUT_PERCENT = 40.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole system with simulated chargers, drivers, billing and a peak event",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, metavar="SECONDS", help="exit after this many seconds")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="TCP port (default 9000; 0: any free port)")
    parser.add_argument("--plot", type=Path, default=Path("demo.png"), help="plot file (default demo.png)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="embedded PostgreSQL data directory")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.duration is not None and args.duration < 10:
        raise ServeError("--duration must be at least 10 seconds")
    output_file(args.plot, "--plot")  # now, not after the story (an OSError then reads as "cannot start")
    network = load_network(DEMO_NETWORK)
    state_dir = (args.data_dir or default_data_dir()).expanduser().absolute().parent
    database_url = os.environ.get("DATABASE_URL")
    if database_url:
        return _run(args, network, database_url, state_dir)
    embedded = EmbeddedPostgres(args.data_dir)
    try:
        dsn = embedded.start()
    except EmbeddedDatabaseError as exc:
        raise ServeError(str(exc)) from None
    try:
        return _run(args, network, dsn, state_dir)
    finally:
        try:
            embedded.stop()
        except EmbeddedDatabaseError as exc:
            logger.error("%s", exc)


def _run(args: argparse.Namespace, network: Network, dsn: str, state_dir: Path) -> int:
    try:
        asyncio.run(_demo(args, network, dsn, state_dir))
    except OSError as exc:
        raise ServeError(f"cannot start on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except AssemblyError as exc:
        raise ServeError(str(exc)) from None
    return 0


async def _start_gateway() -> tuple[web.AppRunner, int]:
    """The local payment provider (Stripe's protocol) on a free port of 127.0.0.1."""
    runner = web.AppRunner(test_gateway.create_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def _demo(args: argparse.Namespace, network: Network, dsn: str, state_dir: Path) -> None:
    gateway, gateway_port = await _start_gateway()
    secret, secret_file = token_secret(dict(os.environ), state_dir)
    configs = network.station_configs
    system = SystemSettings(
        csms=CsmsSettings(database_dsn=dsn, gc_freeze_every_s=5.0),
        sessions=SessionsSettings(token_secret=secret, reservation_hold_s=network.reservation_hold_s),
        operator=OperatorSettings(environ=dict(os.environ)),
        billing=BillingSettings(
            gateway_url=f"http://127.0.0.1:{gateway_port}",
            gateway_api_key="sk_test_demo",
            poll_interval_s=1.0,
        ),
        demand_response=network.demand_response,
    )
    app = build_app(system, configs, build_stations(configs, datetime.now(UTC)))
    loop = asyncio.get_running_loop()
    listening: asyncio.Future[int] = loop.create_future()
    server = asyncio.create_task(serve_app(app, args.host, args.port, ready=listening.set_result))
    stop = asyncio.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    try:
        port = await _first(listening, server)
        base = f"http://{args.host}:{port}"
        cpo_id = network.cpo_id or "demo"
        _, api_key = mint_key(app[SESSIONS].issuer, cpo_id, "demo")
        operator = OperatorClient(base, api_key)
        applied = await asyncio.to_thread(
            operator.post,
            "/v1/operator/network/apply",
            {"files": {DEMO_NETWORK.name: DEMO_NETWORK.read_text(encoding="utf-8")}},
        )
        print(f"fairwatt demo: server on {base} (OCPP at ws://{args.host}:{port}/ocpp/{{charger_id}})")
        changes = len(applied.get("changes", []))
        print(f"fairwatt demo: network applied through the operator API: {changes} changes")
        config = configs[0]
        charger_ids = [config.place(e.evse_id).charger_id for e in config.evses]
        story_s = args.duration if args.duration is not None else STORY_S
        scenario = build_scenario(charger_ids, story_s)
        database = app[CSMS].database
        for arrival in scenario.arrivals:
            await create_driver(
                database,
                NewDriver(
                    _driver_of(arrival),
                    rfid_tokens=[arrival.id_tag],
                    payment_token="pm_card_visa",
                    cpo_id=cpo_id,
                ),
            )
        print(
            f"fairwatt demo: {len(scenario.arrivals)} drivers with RFID cards and a payment method",
            flush=True,
        )

        async def declare_peak_event(start: datetime, end: datetime, fraction: float) -> None:
            body = {
                "stations": [config.station_id],
                "cut_percent": round(100.0 * (1.0 - fraction), 3),
                "start": start.isoformat(),
                "duration_s": (end - start).total_seconds(),
            }
            await asyncio.to_thread(operator.post, "/v1/operator/dr/events", body)

        async def start_from_app(arrival: Arrival) -> str:
            driver_id = _driver_of(arrival)
            token = app[SESSIONS].issuer.mint(driver_id, Role.DRIVER)
            driver = OperatorClient(base, token)
            body = {
                "charger_id": arrival.charger_id,
                "connector_id": 1,
                "payment_method_id": f"PM-{driver_id}",
            }
            answer = await asyncio.to_thread(
                driver.post, "/v1/sessions", body, {"Idempotency-Key": str(uuid.uuid4())}
            )
            return str(answer.get("state"))

        story = asyncio.create_task(
            run_story(
                f"ws://{args.host}:{port}/ocpp",
                config,
                scenario,
                story_s,
                declare_peak_event,
                start_from_app=start_from_app,
                out=sys.stdout,
            )
        )
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({story, stopped, server}, return_when=asyncio.FIRST_COMPLETED)
        if story in done:
            record = story.result()
            await asyncio.sleep(2.0)  # the billing worker rates and captures the last sessions
            billed = await asyncio.to_thread(operator.get, "/v1/operator/billing/reconciliation")
            _report(record, args.plot, config.station_id, billed)
            if args.duration is None:
                _hints(base, api_key, secret_file)
                await asyncio.wait({stopped, server}, return_when=asyncio.FIRST_COMPLETED)
        for task in (story, stopped):
            task.cancel()
        if server.done():
            server.result()  # a failed server raises here
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
        await gateway.cleanup()


def _driver_of(arrival: Arrival) -> str:
    return "driver-" + arrival.id_tag.rsplit("-", 1)[-1]


async def _first(listening: asyncio.Future[int], server: asyncio.Task[None]) -> int:
    """The bound port, or the server's start-up error."""
    waiting: set[asyncio.Future[object]] = {listening, server}  # type: ignore[arg-type]
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if listening.done():
        return listening.result()
    server.result()
    raise ServeError("the server stopped before it listened")


def _report(record: DemoRecord, plot: Path, station_id: str, billed: dict[str, Any]) -> None:
    write_plot(record, plot, station_id)
    over = record.peak_over_cap_kw
    print(
        f"fairwatt demo: {record.started} sessions started, {record.finished} finished, "
        f"{record.energy_wh / 1000:.2f} kWh delivered; "
        + (
            "the station stayed within its limit and cap"
            if over <= 0.05
            else f"above its limit or cap for {record.seconds_over_s:.0f} s (at worst {over:.2f} kW)"
        )
        + f"; plot: {plot}",
        flush=True,
    )
    print(f"fairwatt demo: billing: {_billing_line(billed)}", flush=True)


def _billing_line(billed: dict[str, Any]) -> str:
    rated = billed.get("rated") or {}
    captured = billed.get("captured") or {}
    parts = [
        f"rated {amount} {currency}, captured {captured.get(currency, 0)} {currency}"
        for currency, amount in rated.items()
    ]
    return "; ".join(parts) if parts else "nothing rated yet"


def _hints(base: str, api_key: str, secret_file: Path | None) -> None:
    lines = [
        "fairwatt demo: the server keeps running; in another shell try the operator CLI:",
        f"  export FAIRWATT_SERVER={base} FAIRWATT_API_KEY={api_key}",
        "  fairwatt chargers list",
        "  fairwatt sessions list",
        "  fairwatt dr list",
        "  fairwatt stations schedule demo-depot --plot schedule.png",
    ]
    if secret_file is not None:
        lines.append(f"  fairwatt drivers token driver-01 --secret-file {secret_file}   # a driver's token")
    lines.append("stop it with Ctrl-C")
    print("\n".join(lines), flush=True)
