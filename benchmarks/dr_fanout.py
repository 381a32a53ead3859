"""``python -m benchmarks dr-fanout``: one OpenADR event to every station, until each charger has its profile.

One process runs the served CSMS (smart-charging loop, demand response) on 127.0.0.1 over a
throw-away PostgreSQL database, and ``--stations`` x ``--evses`` lightweight simulated chargers
(raw OCPP-J 1.6 frames over aiohttp WebSockets, one EVSE each, every one charging a car). Once the
loop is idle, one ``oadrDistributeEvent`` (built and parsed by openleadr, as the VEN receives it:
a SIMPLE level-1 event, a 20 % cut of every station's grid limit) is handed to the program's VEN.
The clock starts as the message arrives at the VEN (before parsing) and stops for each charger
when its new TxProfile arrives; the total is the time until the last one has it. The figures
printed are per-charger latency p50/p99 and the total; the anchor measured in the same run is
the time one station's solve takes alone (the fan-out is ~stations solves plus the sends).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import resource
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

ADMIN_DSN = os.environ.get("FAIRWATT_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
VOLTAGE_V = 230.0
MAX_A = 16.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--evses", type=int, default=10, help="EVSEs (one charger each) per station")
    parser.add_argument("--horizon-periods", type=int, default=24, help="policy periods each solve plans")
    parser.add_argument("--period-s", type=int, default=300)
    parser.add_argument("--timeout-s", type=float, default=300.0, help="give up waiting for profiles")
    parser.add_argument(
        "--transport",
        choices=("memory", "websocket"),
        default="memory",
        help="chargers linked in process to the protocol layer (default; no file descriptors) or over"
        " real WebSockets on 127.0.0.1 (two descriptors per charger: 10,000 need more than 20,000)",
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() the heap built while chargers connected, before the event (what a server"
        " can do once its chargers are connected): collections then skip it",
    )
    parser.add_argument(
        "--profile",
        metavar="PATH",
        default=None,
        help="write cProfile stats of the event loop's thread during the fan-out to PATH",
    )


@dataclass
class FanoutReport:
    stations: int
    evses: int
    chargers_connected: int
    profiles_expected: int
    profiles_received: int
    latencies_ms: list[float] = field(default_factory=list)
    total_ms: float = 0.0
    setup_s: float = 0.0
    one_solve_ms: float = 0.0
    horizon_periods: int = 0
    enforced_ms: float = 0.0
    """From the message's arrival until the VEN has handed every station its caps (parse included)."""
    capped_limits_a: list[float] = field(default_factory=list)
    """Each charger's first limit in the profile the event caused [A]."""
    refined_ms: float = 0.0
    """From the message's arrival until the loop is idle again: the LP has refined every quick answer."""
    worst_station_share: float = 0.0
    """The highest station's sum of those first limits over its capped limit (<= 1: the cap holds)."""
    gc_pauses_ms: list[tuple[int, float]] = field(default_factory=list)
    """The garbage collector's pauses until the last charger had its profile: (generation, ms)."""

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class GcPauses:
    """Times the garbage collector's pauses while installed (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.pauses_ms: list[tuple[int, float]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses_ms.append((info["generation"], (time.perf_counter() - self._started) * 1000))


class Charger:
    """One raw OCPP-J 1.6 connection: calls one at a time, answers SetChargingProfile Accepted."""

    def __init__(self, charger_id: str, send: Callable[[str], Awaitable[None]]) -> None:
        self.charger_id = charger_id
        self.send = send
        self.pending: dict[str, asyncio.Future[list[Any]]] = {}
        self.counter = 0
        self.tx_profiles: list[tuple[float, float]] = []  # (perf_counter at arrival, first limit)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.counter += 1
        unique_id = str(self.counter)
        answer: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.pending[unique_id] = answer
        await self.send(json.dumps([2, unique_id, action, payload]))
        async with asyncio.timeout(120):
            frame = await answer
        if frame[0] != 3:
            raise RuntimeError(f"{self.charger_id}: {action}: CALLERROR {frame[2:]}")
        result: dict[str, Any] = frame[2]
        return result

    async def handle(self, text: str) -> None:
        frame = json.loads(text)
        if frame[0] in (3, 4):
            waiting = self.pending.pop(frame[1], None)
            if waiting is not None and not waiting.done():
                waiting.set_result(frame)
        elif frame[0] == 2:
            if frame[2] == "SetChargingProfile":
                profile = frame[3]["csChargingProfiles"]
                if profile["chargingProfilePurpose"] == "TxProfile":
                    limit = float(profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"])
                    self.tx_profiles.append((time.perf_counter(), limit))
                reply: list[Any] = [3, frame[1], {"status": "Accepted"}]
            else:
                reply = [4, frame[1], "NotImplemented", f"{frame[2]} is not simulated", {}]
            await self.send(json.dumps(reply))


class MemoryConnection:
    """The server's end of an in-process charger link (the protocol layer's ``recv``/``send``)."""

    def __init__(self, charger: Charger) -> None:
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.charger = charger
        self.closed = False

    async def recv(self) -> str:
        from csms.errors import ConnectionClosedError

        frame = await self.inbox.get()
        if frame is None:
            raise ConnectionClosedError("closed")
        return frame

    async def send(self, frame: str) -> None:
        from csms.errors import ConnectionClosedError

        if self.closed:
            raise ConnectionClosedError("closed")
        await self.charger.handle(frame)

    async def close(self, code: int, reason: str) -> None:
        self.closed = True
        self.inbox.put_nowait(None)


async def _admin(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


BOOT = {"chargePointVendor": "Bench", "chargePointModel": "DR"}


def _keep(task: asyncio.Task[None], tasks: set[asyncio.Task[None]]) -> None:
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def _progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} dr-fanout: {message}", file=sys.stderr, flush=True)


def _distribution(ven_name: str, start: datetime) -> bytes:
    """The oadrDistributeEvent the VTN would send: SIMPLE level 1 for the next hour, to our VEN."""
    from openleadr import objects
    from openleadr.messaging import create_message

    event = objects.Event(
        event_descriptor=objects.EventDescriptor(
            event_id=f"bench-{uuid.uuid4().hex[:8]}",
            modification_number=0,
            market_context="oadr://bench",
            event_status="far",
        ),
        active_period=objects.ActivePeriod(dtstart=start, duration=timedelta(hours=1)),
        event_signals=[
            objects.EventSignal(
                intervals=[
                    objects.Interval(dtstart=start, duration=timedelta(hours=1), signal_payload=1.0, uid=0)
                ],
                signal_name="SIMPLE",
                signal_type="level",
                signal_id="s1",
            )
        ],
        targets=[objects.Target(ven_id=ven_name)],
        response_required="always",
    )
    message: bytes | str = create_message(
        "oadrDistributeEvent", request_id="r1", vtn_id="BENCH-VTN", events=[event]
    )
    return message.encode() if isinstance(message, str) else message


async def run(args: argparse.Namespace) -> FanoutReport:
    """Set the site up, send one event, time the fan-out; the report."""
    from aiohttp import web
    from openleadr.messaging import parse_message

    from csms.protocol.handlers import build_router
    from csms.protocol.session import OcppSession
    from csms.protocol.versions import OcppVersion
    from csms.server import CSMS, create_app
    from csms.settings import CsmsSettings
    from csms.smart_charging import SMART_CHARGING, EvseBinding, SmartChargingSettings, StationSetup
    from demand_response.app import install
    from demand_response.config import Program
    from optimizer import solve
    from optimizer.types import Algorithm, Connection, Evse, FeederNode, Policy, Site

    needed = 2 * args.stations * args.evses + 1024  # both ends of every WebSocket, plus the database
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))
        except (ValueError, OSError):  # not allowed above the hard limit: go as far as it lets us
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    name = f"fairwatt_dr_fanout_{uuid.uuid4().hex[:8]}"
    await _admin(f'CREATE DATABASE "{name}"')
    setup_started = time.perf_counter()
    evses = tuple(Evse(f"E{i}", Connection.THREE_PHASE, VOLTAGE_V, MAX_A, 6.0) for i in range(args.evses))
    site = Site(
        grid_limit_kw=sum(e.max_power_kw for e in evses),
        root=FeederNode("main", evse_ids=tuple(e.evse_id for e in evses)),
    )
    policy = Policy(period_s=args.period_s, horizon_periods=args.horizon_periods, deadline_s=5.0)
    setups = [
        StationSetup(
            f"S{s:04d}", site, tuple(EvseBinding(e, f"S{s:04d}-{i}") for i, e in enumerate(evses)), policy
        )
        for s in range(args.stations)
    ]
    program = Program(
        name="bench",
        vtn_url="http://127.0.0.1:9/OpenADR2/Simple/2.0b",
        ven_name="fairwatt-bench",
        resources=tuple((s.station_id, (s.station_id,)) for s in setups),
        randomize=False,
    )
    settings = CsmsSettings(database_dsn=f"postgresql://postgres@127.0.0.1:5432/{name}", auto_register=True)
    app = create_app(
        settings, stations=setups, smart_charging=SmartChargingSettings(quiet_s=0.01, max_delay_s=0.05)
    )
    dr = install(app, [program], stations=setups, start_vens=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    await web.SockSite(runner, listener, backlog=4096).start()
    chargers: list[Charger] = []
    readers: set[asyncio.Task[None]] = set()
    closers: list[Callable[[], Awaitable[Any]]] = []
    report = FanoutReport(args.stations, args.evses, 0, 0, 0, horizon_periods=args.horizon_periods)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            runtime = app[CSMS]

            async def websocket_link(charger_id: str) -> Charger:
                websocket = await http.ws_connect(
                    f"ws://127.0.0.1:{port}/ocpp/{charger_id}", protocols=("ocpp1.6",)
                )
                charger = Charger(charger_id, websocket.send_str)

                async def read() -> None:
                    async for message in websocket:
                        if message.type is not aiohttp.WSMsgType.TEXT:
                            break
                        await charger.handle(message.data)

                closers.append(websocket.close)
                _keep(asyncio.create_task(read()), readers)
                return charger

            async def memory_link(charger_id: str) -> Charger:
                connection: MemoryConnection | None = None

                async def to_server(text: str) -> None:
                    assert connection is not None
                    connection.inbox.put_nowait(text)

                charger = Charger(charger_id, to_server)
                connection = MemoryConnection(charger)
                if await runtime.chargers.get(charger_id) is None:
                    await runtime.chargers.register_unknown(charger_id, runtime.settings.auto_register_status)
                session = OcppSession(
                    charger_id,
                    OcppVersion.V16,
                    connection,
                    build_router(OcppVersion.V16, runtime.service),
                    max_message_bytes=runtime.settings.max_message_bytes,
                    message_log=runtime.message_log,
                )
                runtime.connected.register(session)
                await runtime.live_state.set_connected(charger_id, True, datetime.now(UTC))
                closers.append(lambda: connection.close(1000, "done"))
                _keep(asyncio.create_task(session.run()), readers)
                return charger

            link = memory_link if args.transport == "memory" else websocket_link

            async def station(setup: StationSetup) -> None:
                async with gate:  # a station's chargers arrive together: their solves coalesce
                    linked = [await link(b.charger_id) for b in setup.evses]
                    await asyncio.gather(*(c.call("BootNotification", BOOT) for c in linked))
                    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
                    await asyncio.gather(
                        *(
                            c.call(
                                "StartTransaction",
                                {
                                    "connectorId": 1,
                                    "idTag": c.charger_id[-20:],
                                    "meterStart": 0,
                                    "timestamp": now,
                                },
                            )
                            for c in linked
                        )
                    )
                    chargers.extend(linked)

            gate = asyncio.Semaphore(20)
            _progress(f"connecting {args.stations * args.evses} chargers ({args.transport})")
            await asyncio.gather(*(station(s) for s in setups))
            report.chargers_connected = len(chargers)
            loop = app[SMART_CHARGING]
            async with asyncio.timeout(args.timeout_s):
                await loop.wait_idle()
            report.setup_s = time.perf_counter() - setup_started
            _progress(f"{len(chargers)} chargers charging, loop idle after {report.setup_s:.1f} s")

            # The anchor: one station's solve alone, on this machine, now.
            snapshot = loop.state(setups[0].station_id).snapshot(datetime.now(UTC).replace(microsecond=0))
            started = time.perf_counter()
            for _ in range(5):
                solve(snapshot, Algorithm.FAIRWATT)
            report.one_solve_ms = (time.perf_counter() - started) / 5 * 1000

            before = {c.charger_id: len(c.tx_profiles) for c in chargers}
            xml = _distribution(program.ven_name, datetime.now(UTC).replace(microsecond=0))
            ven = dr.vens["bench"]
            if getattr(args, "gc_freeze", False):
                gc.collect()
                gc.freeze()
            profiler = cProfile.Profile() if getattr(args, "profile", None) else None
            if profiler is not None:
                profiler.enable()
            pauses = GcPauses()
            gc.callbacks.append(pauses)
            arrived = time.perf_counter()
            message_type, payload = parse_message(xml)
            await ven.after_parse(message_type, payload)
            report.enforced_ms = (time.perf_counter() - arrived) * 1000
            report.profiles_expected = len(chargers)

            def received() -> int:
                return sum(1 for c in chargers if len(c.tx_profiles) > before[c.charger_id])

            try:
                async with asyncio.timeout(args.timeout_s):
                    while received() < len(chargers):  # noqa: ASYNC110 - many sockets, no single event
                        await asyncio.sleep(0.005)
                    report.gc_pauses_ms = list(pauses.pauses_ms)
                    await loop.wait_idle()  # the LP's refinements too
                    report.refined_ms = (time.perf_counter() - arrived) * 1000
            finally:
                gc.callbacks.remove(pauses)
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.profile)
            report.profiles_received = received()
            latencies = [(c.tx_profiles[before[c.charger_id]][0] - arrived) * 1000 for c in chargers]
            report.latencies_ms = latencies
            report.total_ms = max(latencies, default=0.0)
            report.capped_limits_a = [c.tx_profiles[before[c.charger_id]][1] for c in chargers]
            by_station: dict[str, float] = {}
            for c, limit_a in zip(chargers, report.capped_limits_a, strict=True):
                station_id = c.charger_id.rsplit("-", 1)[0]
                by_station[station_id] = by_station.get(station_id, 0.0) + limit_a
            capped_a = 0.8 * MAX_A * args.evses  # SIMPLE level 1 = a 20 % cut of the grid limit
            report.worst_station_share = max(by_station.values(), default=0.0) / capped_a
            _progress(
                f"first limits after the event: {statistics.mean(report.capped_limits_a):.1f} A on average"
            )
            for close in closers:
                await close()
    finally:
        gc.unfreeze()
        await runner.cleanup()
        await _admin(f'DROP DATABASE "{name}" WITH (FORCE)')
    return report


def render(report: FanoutReport) -> str:
    lines = [
        f"dr-fanout: {report.stations} stations x {report.evses} EVSEs = {report.chargers_connected} chargers"
        f" (horizon {report.horizon_periods} periods)",
        f"  profiles received      {report.profiles_received} of {report.profiles_expected}",
        f"  latency p50            {report.percentile(0.50):.0f} ms",
        f"  latency p99            {report.percentile(0.99):.0f} ms",
        f"  total (last charger)   {report.total_ms:.0f} ms   target <= 2000 ms",
        f"  caps handed to loop    {report.enforced_ms:.0f} ms   (parse, decide, store, set_caps)",
        f"  loop idle again        {report.refined_ms:.0f} ms   (the LP has refined every quick answer)",
        f"  cap honoured           worst station at {report.worst_station_share:.1%} of its cap"
        " with its first profiles",
        f"  GC pauses in it        {sum(ms for _, ms in report.gc_pauses_ms):.0f} ms"
        f"   ({len(report.gc_pauses_ms)} collections, {sum(g == 2 for g, _ in report.gc_pauses_ms)} full)",
        f"  anchor: one solve      {report.one_solve_ms:.1f} ms"
        f"  (x {report.stations} stations = {report.one_solve_ms * report.stations:.0f} ms of solving)",
        f"  set-up                 {report.setup_s:.1f} s",
    ]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> FanoutReport:
    report = asyncio.run(run(args))
    print(render(report))
    return report
