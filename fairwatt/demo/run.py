"""Run the demo's story against a running server: simulated chargers, a peak event, a live summary.

The chargers connect over real WebSockets to the server's OCPP endpoint; the summary and the
plot show what they actually drew (from their own meters) against the station's limit and cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import aiohttp

from fairwatt.config import StationConfig
from fairwatt.demo.charger import Car, DemoCharger, connect
from fairwatt.demo.scenario import Arrival, Scenario

logger = logging.getLogger(__name__)

PEAK_NOTICE_S = 8.0
"""How long before its start the demo's peak event is announced."""
AppStart = Callable[[Arrival], Awaitable[str]]
"""Starts a session from the driver app (POST /v1/sessions); returns what the API answered."""
PeakEvent = Callable[[datetime, datetime, float], Awaitable[None]]
"""Declares a peak event: (start, end, fraction of the grid limit)."""


@dataclass
class Sample:
    at_s: float
    per_charger_kw: dict[str, float]
    cap_kw: float | None


@dataclass
class DemoRecord:
    """What happened, for the summary and the plot."""

    grid_limit_kw: float
    samples: list[Sample] = field(default_factory=list)
    energy_wh: float = 0.0
    started: int = 0
    finished: int = 0

    tick_s: float = 2.0

    def _over_kw(self, sample: Sample) -> float:
        limit = self.grid_limit_kw if sample.cap_kw is None else min(self.grid_limit_kw, sample.cap_kw)
        return sum(sample.per_charger_kw.values()) - limit

    @property
    def peak_over_cap_kw(self) -> float:
        """How far the station's power went above its limit or cap at any sample (0 when never)."""
        return max((self._over_kw(s) for s in self.samples), default=0.0)

    @property
    def seconds_over_s(self) -> float:
        """How long the station drew more than its limit or cap (by more than 50 W)."""
        return self.tick_s * sum(1 for s in self.samples if self._over_kw(s) > 0.05)


async def run_story(
    url: str,
    config: StationConfig,
    scenario: Scenario,
    duration_s: float,
    declare_peak_event: PeakEvent,
    *,
    start_from_app: AppStart | None = None,
    out: TextIO,
    tick_s: float = 2.0,
    summary_every_s: float = 5.0,
) -> DemoRecord:
    """Play ``scenario`` for ``duration_s`` seconds; print a summary line every ``summary_every_s``."""
    record = DemoRecord(grid_limit_kw=config.grid_limit_kw, tick_s=tick_s)
    evses = {config.place(e.evse_id).charger_id: e for e in config.evses}
    chargers: dict[str, DemoCharger] = {}
    tasks: list[asyncio.Task[None]] = []
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    loop = asyncio.get_running_loop()
    begin = loop.time()
    cap_kw: float | None = None
    async with aiohttp.ClientSession() as http:
        try:
            for charger_id, evse in evses.items():
                charger, task, websocket = await connect(
                    http,
                    url,
                    charger_id,
                    voltage_v=evse.voltage_v,
                    phases=evse.connection.phases,
                    max_current_a=evse.max_current_a,
                )
                chargers[charger_id] = charger
                tasks.append(task)
                sockets.append(websocket)
            await asyncio.gather(*(c.boot() for c in chargers.values()))
            print(f"demo: {len(chargers)} chargers connected to {url}", file=out, flush=True)
            pending = sorted(scenario.arrivals, key=lambda a: a.at_s)
            departures: dict[str, float] = {}
            peak_declared = False
            peak_starts_s = duration_s
            next_summary = 0.0
            while (elapsed := loop.time() - begin) < duration_s:
                while pending and pending[0].at_s <= elapsed:
                    arrival = pending.pop(0)
                    await _arrive(chargers[arrival.charger_id], arrival, start_from_app, out)
                    departures[arrival.charger_id] = elapsed + arrival.stay_s
                for charger_id, leave_at in list(departures.items()):
                    if elapsed >= leave_at:
                        record.finished += await chargers[charger_id].unplug()
                        del departures[charger_id]
                if not peak_declared and elapsed >= scenario.peak_event_at_s - PEAK_NOTICE_S:
                    # utilities announce an event ahead of its start; the station plans for it
                    start = datetime.now(UTC) + timedelta(seconds=PEAK_NOTICE_S)
                    await declare_peak_event(
                        start, start + timedelta(seconds=duration_s), scenario.peak_event_fraction
                    )
                    peak_declared = True
                    peak_starts_s = elapsed + PEAK_NOTICE_S
                    print(
                        f"demo: utility peak event announced: from t={peak_starts_s:.0f} s import capped at "
                        f"{scenario.peak_event_fraction * config.grid_limit_kw:.1f} kW "
                        f"({scenario.peak_event_fraction:.0%} of {config.grid_limit_kw:g} kW)",
                        file=out,
                        flush=True,
                    )
                if peak_declared and cap_kw is None and elapsed >= peak_starts_s:
                    cap_kw = scenario.peak_event_fraction * config.grid_limit_kw
                before = {cid: c.register_wh for cid, c in chargers.items()}
                await asyncio.gather(*(c.tick(tick_s) for c in chargers.values()))
                record.energy_wh += sum(c.register_wh - before[cid] for cid, c in chargers.items())
                record.samples.append(
                    Sample(elapsed, {cid: c.power_kw for cid, c in chargers.items()}, cap_kw)
                )
                if elapsed >= next_summary:
                    print(_summary_line(elapsed, chargers, record, cap_kw), file=out, flush=True)
                    next_summary = elapsed + summary_every_s
                await asyncio.sleep(max(0.0, tick_s - (loop.time() - begin - elapsed)))
            for charger_id in list(departures):
                record.finished += await chargers[charger_id].unplug()
            record.started = sum(c.transactions_started for c in chargers.values())
        finally:
            for websocket in sockets:
                await websocket.close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await task
    return record


async def _arrive(
    charger: DemoCharger, arrival: Arrival, start_from_app: AppStart | None, out: TextIO
) -> None:
    car = Car(arrival.id_tag, arrival.need_wh, arrival.max_current_a)
    if arrival.via_app and start_from_app is not None:
        await charger.plug_in(car, start=False)
        state = await start_from_app(arrival)
        print(f"demo: {arrival.id_tag}'s driver starts {charger.id} from the app: session {state}", file=out)
        return
    await charger.plug_in(car)


def _summary_line(
    elapsed_s: float, chargers: dict[str, DemoCharger], record: DemoRecord, cap_kw: float | None
) -> str:
    power_kw = sum(c.power_kw for c in chargers.values())
    charging = sum(1 for c in chargers.values() if c.current_a > 0)
    plugged = sum(1 for c in chargers.values() if c.transaction_id is not None)
    cap = f"cap {cap_kw:5.1f} kW" if cap_kw is not None else "no cap     "
    return (
        f"  t={elapsed_s:5.0f} s  cars {plugged}/{len(chargers)}  charging {charging}  "
        f"station {power_kw:5.1f} kW / limit {record.grid_limit_kw:g} kW  {cap}  "
        f"delivered {record.energy_wh / 1000:6.2f} kWh"
    )


def write_plot(record: DemoRecord, path: Path, station_id: str) -> None:
    """Station power per charger (stacked) against the grid limit and the peak event's cap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = [s.at_s for s in record.samples]
    charger_ids = sorted({cid for s in record.samples for cid in s.per_charger_kw})
    stacks = [[s.per_charger_kw.get(cid, 0.0) for s in record.samples] for cid in charger_ids]
    figure, axes = plt.subplots(figsize=(10, 4.5))
    if times:
        axes.stackplot(times, stacks, labels=charger_ids, step="post", alpha=0.85)
        axes.plot(times, [record.grid_limit_kw] * len(times), "k--", label="grid limit")
        caps = [s.cap_kw if s.cap_kw is not None else float("nan") for s in record.samples]
        axes.plot(times, caps, color="tab:red", linewidth=2, label="peak-event cap")
    axes.set_xlabel("time since start [s]")
    axes.set_ylabel("power [kW]")
    axes.set_title(f"{station_id}: power per charger against limit and cap")
    axes.legend(loc="upper left", fontsize=7, ncol=2)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
