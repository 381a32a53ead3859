"""The load generator of ``python -m benchmarks csms-load``: simulated OCPP 1.6 chargers in one process.

Raw OCPP-J 1.6 frames over aiohttp WebSockets (the ``ocpp`` package's ChargePoint per connection
is too heavy for 10,000 connections). The orchestrator (:mod:`benchmarks.csms_load`) starts this
module as a process, writes its options as one JSON line on stdin, reads ``{"event": "connected"}``
once the ramp is done, writes ``go``, reads ``{"event": "steady_done"}``, writes ``close`` (the
chargers disconnect) and reads ``{"event": "result", ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import json
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

CALL_TIMEOUT_S = 30.0
VISIBILITY_LIMIT_S = 10.0  # the design limit: a change not visible by then counts as missed
VISIBILITY_POLL_S = 0.002
PROBE_KEY = "FairwattLoadProbe"
LAG_TICK_S = 0.1


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Stats:
    """What one worker measured: round trips [ms] per action, failures, latencies [ms]."""

    rtt_ms: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    visibility_ms: list[float] = field(default_factory=list)
    invisible: int = 0
    command_ms: list[float] = field(default_factory=list)
    connected: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    errors: list[str] = field(default_factory=list)
    cpu_s: float = 0.0
    steady_s: float = 1.0
    loop_lag_ms: list[float] = field(default_factory=list)
    """How late this process's event loop woke up for a 100 ms tick: its own share of every latency."""

    def fail(self, action: str, reason: str) -> None:
        self.failures[action] = self.failures.get(action, 0) + 1
        if len(self.errors) < 10:
            self.errors.append(f"{action}: {reason}")


class SimulatedCharger:
    """One raw OCPP-J 1.6 WebSocket: one CALL at a time, answers the CSMS's CALLs."""

    def __init__(self, charger_id: str, websocket: aiohttp.ClientWebSocketResponse, stats: Stats) -> None:
        self.charger_id = charger_id
        self.websocket = websocket
        self.stats = stats
        self.lock = asyncio.Lock()
        self.pending: dict[str, asyncio.Future[list[Any]]] = {}
        self.transaction_id: int | None = None
        self.energy_wh = 0.0
        self.status = "Available"
        self.ids = itertools.count()

    async def call(self, action: str, payload: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """Send a CALL and wait for its answer; (round trip [s], result payload)."""
        async with self.lock:
            unique_id = str(next(self.ids))
            answer: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
            self.pending[unique_id] = answer
            started = time.perf_counter()
            try:
                await self.websocket.send_str(json.dumps([2, unique_id, action, payload]))
                async with asyncio.timeout(CALL_TIMEOUT_S):
                    frame = await answer
            finally:
                self.pending.pop(unique_id, None)
            elapsed = time.perf_counter() - started
        if frame[0] != 3:
            raise RuntimeError(f"CALLERROR {frame[2]}: {frame[3]}")
        result: dict[str, Any] = frame[2]
        return elapsed, result

    async def read(self) -> None:
        """The receive loop: answers go to their waiting call, CALLs are answered here."""
        try:
            async for message in self.websocket:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                frame = json.loads(message.data)
                if frame[0] in (3, 4):
                    waiting = self.pending.get(frame[1])
                    if waiting is not None and not waiting.done():
                        waiting.set_result(frame)
                elif frame[0] == 2:
                    await self._answer(frame[1], frame[2], frame[3])
        except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
            self.stats.fail("receive", f"{type(exc).__name__} {exc}")
        for waiting in self.pending.values():
            if not waiting.done():
                waiting.set_exception(ConnectionError("websocket closed"))

    async def _answer(self, unique_id: str, action: str, payload: dict[str, Any]) -> None:
        if action == "ChangeConfiguration" and payload.get("key") == PROBE_KEY:
            self.stats.command_ms.append((time.time_ns() - int(payload["value"])) / 1e6)
            reply: list[Any] = [3, unique_id, {"status": "Accepted"}]
        else:
            reply = [4, unique_id, "NotImplemented", f"{action} is not simulated", {}]
        await self.websocket.send_str(json.dumps(reply))


class Worker:
    """A load-generator process: its share of the chargers, ramp-up, then the steady schedule."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.stats = Stats()
        self.chargers: list[SimulatedCharger] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.readers: set[asyncio.Task[None]] = set()
        self.measuring = False

    def spawn(self, coroutine: Any, tasks: set[asyncio.Task[None]]) -> asyncio.Task[None]:
        """Start ``coroutine`` as a task kept in ``tasks`` until it ends."""
        task = asyncio.get_running_loop().create_task(coroutine)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    async def run(self) -> dict[str, Any]:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(self.options["redis_url"], decode_responses=True)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            await self.ramp(http)
            _emit({"event": "connected", "connected": self.stats.connected})
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
            cpu_started, steady_started = time.process_time(), time.monotonic()
            await self.steady()
            self.stats.cpu_s = time.process_time() - cpu_started
            self.stats.steady_s = time.monotonic() - steady_started
            _emit({"event": "steady_done"})
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "close"
            await asyncio.gather(*(c.websocket.close() for c in self.chargers), return_exceptions=True)
            async with asyncio.timeout(CALL_TIMEOUT_S):
                await asyncio.gather(*self.readers, return_exceptions=True)
        await self.redis.aclose()
        return _stats_document(self.stats)

    async def ramp(self, http: aiohttp.ClientSession) -> None:
        ids: list[str] = self.options["charger_ids"]
        in_transaction = set(self.options["in_transaction"])
        rate = float(self.options["ramp_rate"])
        gate = asyncio.Semaphore(200)
        started = time.monotonic()

        async def connect(index: int, charger_id: str) -> None:
            await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
            async with gate:
                try:
                    await self.connect(http, charger_id, charger_id in in_transaction)
                except (OSError, aiohttp.ClientError, RuntimeError, TimeoutError) as exc:
                    self.stats.connect_failures += 1
                    self.stats.fail("connect", f"{type(exc).__name__} {exc}")

        try:
            async with asyncio.timeout(len(ids) / rate + 120.0):
                await asyncio.gather(*(connect(i, c) for i, c in enumerate(ids)))
        except TimeoutError:
            self.stats.fail("connect", "ramp did not finish in time; going on with those connected")

    async def connect(self, http: aiohttp.ClientSession, charger_id: str, charging: bool) -> None:
        url = f"ws://127.0.0.1:{self.options['port']}/ocpp/{charger_id}"
        async with asyncio.timeout(CALL_TIMEOUT_S):
            websocket = await http.ws_connect(url, protocols=("ocpp1.6",))
        charger = SimulatedCharger(charger_id, websocket, self.stats)
        self.spawn(self._read(charger), self.readers)
        elapsed, boot = await charger.call(
            "BootNotification", {"chargePointVendor": "LoadGen", "chargePointModel": "Sim16"}
        )
        self.stats.rtt_ms.setdefault("BootNotification", []).append(round(elapsed * 1000, 2))
        if boot.get("status") != "Accepted":
            raise RuntimeError(f"boot {boot.get('status')}")
        charger.status = "Charging" if charging else "Available"
        await charger.call("StatusNotification", self._status_payload(charger))
        if charging:
            _, started = await charger.call(
                "StartTransaction",
                {"connectorId": 1, "idTag": "LOADTAG", "meterStart": 0, "timestamp": _now_text()},
            )
            charger.transaction_id = int(started["transactionId"])
        self.chargers.append(charger)
        self.stats.connected += 1

    async def _read(self, charger: SimulatedCharger) -> None:
        try:
            await charger.read()
        finally:
            if self.measuring:
                self.stats.disconnects += 1

    @staticmethod
    def _status_payload(charger: SimulatedCharger) -> dict[str, Any]:
        return {"connectorId": 1, "errorCode": "NoError", "status": charger.status, "timestamp": _now_text()}

    async def steady(self) -> None:
        interval_s = float(self.options["interval_s"])
        status_interval_s = float(self.options["status_interval_s"])
        duration_s = float(self.options["duration_s"])
        visibility_share = float(self.options["visibility_share"])
        start = time.monotonic()
        end = start + duration_s
        due: list[tuple[float, int, str]] = []
        for index, charger in enumerate(self.chargers):
            due.append((start + random.uniform(0, interval_s), index, "Heartbeat"))
            if charger.transaction_id is not None:
                due.append((start + random.uniform(0, interval_s), index, "MeterValues"))
            else:
                due.append((start + random.uniform(0, status_interval_s), index, "StatusNotification"))
        heapq.heapify(due)
        self.measuring = True
        self.spawn(self._watch_lag(end), self.tasks)
        while due and due[0][0] < end:
            at, index, action = heapq.heappop(due)
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            charger = self.chargers[index]
            if not charger.websocket.closed:
                sample = action == "StatusNotification" and random.random() < visibility_share
                self.spawn(self._send(charger, action, sample), self.tasks)
            period = status_interval_s if action == "StatusNotification" else interval_s
            heapq.heappush(due, (at + period * random.uniform(0.9, 1.1), index, action))
        self.measuring = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CALL_TIMEOUT_S + 5):
                while self.tasks:
                    await asyncio.wait(set(self.tasks))

    async def _watch_lag(self, end: float) -> None:
        while time.monotonic() < end:
            before = time.monotonic()
            await asyncio.sleep(LAG_TICK_S)
            self.stats.loop_lag_ms.append((time.monotonic() - before - LAG_TICK_S) * 1000)

    async def _send(self, charger: SimulatedCharger, action: str, sample_visibility: bool) -> None:
        if action == "Heartbeat":
            payload: dict[str, Any] = {}
        elif action == "MeterValues":
            charger.energy_wh += 11_000 * float(self.options["interval_s"]) / 3600
            payload = {
                "connectorId": 1,
                "transactionId": charger.transaction_id,
                "meterValue": [
                    {
                        "timestamp": _now_text(),
                        "sampledValue": [
                            {
                                "value": f"{charger.energy_wh:.1f}",
                                "unit": "Wh",
                                "measurand": "Energy.Active.Import.Register",
                            },
                            {"value": "11000", "unit": "W", "measurand": "Power.Active.Import"},
                        ],
                    }
                ],
            }
        else:
            charger.status = "Preparing" if charger.status == "Available" else "Available"
            payload = self._status_payload(charger)
        # Watched from before the send; a change answered with an error is never seen (counted).
        if sample_visibility:
            self.spawn(self._visible(charger.charger_id, payload), self.tasks)
        try:
            elapsed, _ = await charger.call(action, payload)
            self.stats.rtt_ms.setdefault(action, []).append(round(elapsed * 1000, 2))
        except (OSError, aiohttp.ClientError, RuntimeError, TimeoutError) as exc:
            self.stats.fail(action, f"{type(exc).__name__} {exc}")

    async def _visible(self, charger_id: str, payload: dict[str, Any]) -> None:
        """Poll the charger's live-state hash until it shows the status just sent."""
        from csms.redis_state import RedisKeys

        key = RedisKeys().state(charger_id)
        sent_at = datetime.fromisoformat(payload["timestamp"])
        started = time.perf_counter()
        while time.perf_counter() - started < VISIBILITY_LIMIT_S:
            raw = await self.redis.hget(key, "conn:1:1")
            if raw is not None:
                document = json.loads(raw)
                seen_at = datetime.fromisoformat(document["changed_at"])
                if seen_at >= sent_at and document["ocpp_status"] == payload["status"]:
                    self.stats.visibility_ms.append((time.perf_counter() - started) * 1000)
                    return
            await asyncio.sleep(VISIBILITY_POLL_S)
        self.stats.invisible += 1


def _stats_document(stats: Stats) -> dict[str, Any]:
    document = dataclasses.asdict(stats)
    document["loop_lag_ms"] = percentiles(stats.loop_lag_ms)
    return document


def percentiles(values: list[float]) -> dict[str, float]:
    """count, p50, p95, p99 and max (nearest rank) of ``values`` [ms]."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0}

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))], 2)

    return {"count": len(ordered), "p50": rank(0.5), "p95": rank(0.95), "p99": rank(0.99), "max": rank(1.0)}


def _emit(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def worker_main() -> int:
    """Entry of a load-generator process: options as JSON on the first stdin line."""
    options = json.loads(sys.stdin.readline())
    _emit({"event": "result", **asyncio.run(Worker(options).run())})
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
