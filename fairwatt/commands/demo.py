"""``fairwatt demo``: the whole system on this machine, no servers needed.

    fairwatt demo [--duration SECONDS] [--port 9000] [--plot demo.png] [--data-dir DIR]
                  [--config STATION_YAML]

Starts the central system on an embedded PostgreSQL (or ``DATABASE_URL``), loads the demo
station, connects simulated OCPP 1.6 chargers (built on the ``ocpp`` package) whose drivers
arrive, tap their cards and charge with meter values, declares a utility peak event midway, and
prints a live summary. It writes a plot of the station's power per charger against its limit and
the event's cap. With ``--duration`` it exits after that many seconds; without, the story runs for
three minutes and the server stays up for the operator's CLI until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from csms.embedded import EmbeddedDatabaseError, EmbeddedPostgres
from csms.settings import CsmsSettings
from csms.smart_charging import SMART_CHARGING
from fairwatt.assembly import build_app, serve_app
from fairwatt.commands.serve import ServeError, build_stations
from fairwatt.config import StationConfig, load_station
from fairwatt.demo.run import DemoRecord, run_story, write_plot
from fairwatt.demo.scenario import build_scenario
from optimizer.types import CapWindow

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "data" / "demo-station.yaml"
STORY_S = 180.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole system with simulated chargers, drivers and a peak event",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, metavar="SECONDS", help="exit after this many seconds")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="TCP port (default 9000; 0: any free port)")
    parser.add_argument("--plot", type=Path, default=Path("demo.png"), help="plot file (default demo.png)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="embedded PostgreSQL data directory")
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="station YAML (default: the demo depot)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.duration is not None and args.duration < 10:
        raise ServeError("--duration must be at least 10 seconds")
    config = load_station(args.config)
    database_url = os.environ.get("DATABASE_URL")
    if database_url:
        return _run(args, config, database_url)
    embedded = EmbeddedPostgres(args.data_dir)
    try:
        dsn = embedded.start()
    except EmbeddedDatabaseError as exc:
        raise ServeError(str(exc)) from None
    try:
        return _run(args, config, dsn)
    finally:
        try:
            embedded.stop()
        except EmbeddedDatabaseError as exc:
            logger.error("%s", exc)


def _run(args: argparse.Namespace, config: StationConfig, dsn: str) -> int:
    settings = CsmsSettings(database_dsn=dsn, auto_register=True, gc_freeze_every_s=5.0)
    try:
        asyncio.run(_demo(args, config, settings))
    except OSError as exc:
        raise ServeError(f"cannot start on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0


async def _demo(args: argparse.Namespace, config: StationConfig, settings: CsmsSettings) -> None:
    app = build_app(settings, [config], build_stations([config], datetime.now(UTC)))
    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(
        serve_app(app, args.host, args.port, ready=listening.set_result), name="demo-server"
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    try:
        port = await _first(listening, server)
        url = f"ws://{args.host}:{port}{settings.ocpp_path_prefix}"
        print(f"fairwatt demo: OCPP endpoint {url}/{{charger_id}}", flush=True)

        async def declare_peak_event(start: datetime, end: datetime, fraction: float) -> None:
            smart_charging = app[SMART_CHARGING]
            caps = smart_charging.state(config.station_id).site.caps
            window = CapWindow(start=start, end=end, fraction=fraction, source="demo peak event")
            smart_charging.set_caps(config.station_id, (*caps, window))

        story_s = args.duration if args.duration is not None else STORY_S
        charger_ids = [config.place(e.evse_id).charger_id for e in config.evses]
        story = asyncio.create_task(
            run_story(
                url, config, build_scenario(charger_ids, story_s), story_s, declare_peak_event, out=sys.stdout
            )
        )
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({story, stopped, server}, return_when=asyncio.FIRST_COMPLETED)
        if story in done:
            record = story.result()
            _report(record, args.plot, config.station_id)
            if args.duration is None:
                print("fairwatt demo: the server keeps running; stop it with Ctrl-C", flush=True)
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


async def _first(listening: asyncio.Future[int], server: asyncio.Task[None]) -> int:
    """The bound port, or the server's start-up error."""
    waiting: set[asyncio.Future[object]] = {listening, server}  # type: ignore[arg-type]
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if listening.done():
        return listening.result()
    server.result()
    raise ServeError("the server stopped before it listened")


def _report(record: DemoRecord, plot: Path, station_id: str) -> None:
    write_plot(record, plot, station_id)
    over = record.peak_over_cap_kw
    print(
        f"fairwatt demo: {record.started} sessions started, {record.finished} finished, "
        f"{record.energy_wh / 1000:.2f} kWh delivered; "
        + (
            "the station stayed within its limit and cap"
            if over <= 0.05
            else f"above its limit or cap for {record.seconds_over_s:.0f} s (at worst {over:.2f} kW: "
            "a car drawing its default profile until the next solve)"
        )
        + f"; plot: {plot}",
        flush=True,
    )
