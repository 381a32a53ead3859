"""`fairwatt serve --config station.yaml` plans the station: three 1.6 chargers on a 20 A feeder.

The server runs as a real process on PostgreSQL; the chargers (``ocpp`` package) auto-register,
get their failsafe default profile on boot, start transactions and end up holding Tx profiles
whose currents add up to no more than the feeder allows.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16

from csms.commands import ChargingProfile, CommandOutcome, CommandResult
from csms.live_state import InProcessLiveState
from csms.smart_charging import SmartChargingLoop
from csms.tasks import TaskOwner
from fairwatt.cli import main
from fairwatt.commands.serve import ServeError, build_stations, load_stations
from fairwatt.commands.stations import keep_sites_current, refresh_site, station_setup
from fairwatt.config import parse_station
from optimizer.types import PricePeriod
from tests.cli.test_serve_cli import _environment, serving
from tests.csms.chargers import connected

FEEDER_A = 20.0
MAX_A = 16.0

STATION = """\
station:
  id: {station_id}
  time_zone: Europe/Amsterdam
  grid_limit_kw: 22
  limits:
    id: feeder
    limit_a: 20
    evses: [E1, E2, E3]
  evses:
    - {{id: E1, charger: {prefix}-A, connection: L1, voltage_v: 230, max_current_a: 16, min_current_a: 6}}
    - {{id: E2, charger: {prefix}-B, connection: L1, voltage_v: 230, max_current_a: 16, min_current_a: 6}}
    - {{id: E3, charger: {prefix}-C, connection: L1, voltage_v: 230, max_current_a: 16, min_current_a: 6}}
  prices:
    default_per_kwh: 0.20
    windows: [{{start: "17:00", end: "21:00", price_per_kwh: 0.40}}]
  policy: {{period_s: 300, horizon_periods: 48, deadline_s: 5}}
"""


class ProfiledCharger(ChargePoint16):  # type: ignore[misc]
    """A 1.6 charger with one connector that keeps the profiles it accepts and says when one arrives."""

    def __init__(self, charger_id: str, connection: Any) -> None:
        super().__init__(charger_id, connection, response_timeout=10)
        self.tx_default: dict[str, Any] | None = None
        self.tx: dict[str, Any] | None = None
        self.transaction_id: str | None = None
        self.changed = asyncio.Condition()

    @on(Action16.set_charging_profile)
    async def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        assert connector_id == 1
        async with self.changed:
            if cs_charging_profiles["charging_profile_purpose"] == "TxDefaultProfile":
                self.tx_default = cs_charging_profiles
            else:
                self.tx = cs_charging_profiles
            self.changed.notify_all()
        return result16.SetChargingProfile(status="Accepted")

    def holds_tx(self) -> bool:
        return self.tx is not None and str(self.tx.get("transaction_id")) == self.transaction_id

    def tx_limit_a(self, now: datetime) -> float:
        """The Tx profile's limit at ``now`` [A]."""
        assert self.tx is not None
        schedule = self.tx["charging_schedule"]
        assert schedule["charging_rate_unit"] == "A"
        start = datetime.fromisoformat(schedule["start_schedule"].replace("Z", "+00:00"))
        offset_s = (now - start).total_seconds()
        periods = [p for p in schedule["charging_schedule_period"] if p["start_period"] <= offset_s]
        return float(periods[-1]["limit"])


async def wait_for(charger: ProfiledCharger, predicate: Any) -> None:
    """Wait until ``predicate()`` holds; the timeout only guards against a hang."""
    async with asyncio.timeout(120), charger.changed:
        await charger.changed.wait_for(predicate)


@pytest.mark.asyncio
async def test_serve_plans_the_configured_station(database_url: str, tmp_path: Path) -> None:
    prefix = f"CP{uuid.uuid4().hex[:6]}"
    config = tmp_path / "station.yaml"
    config.write_text(STATION.format(station_id="feeder-20a", prefix=prefix), encoding="utf-8")
    environ = _environment(DATABASE_URL=database_url)
    async with AsyncExitStack() as stack:
        port, process = await stack.enter_async_context(serving("--config", str(config), environ=environ))
        chargers: list[ProfiledCharger] = []
        for name in "ABC":
            charger_id = f"{prefix}-{name}"
            url = f"ws://127.0.0.1:{port}/ocpp/{charger_id}"
            charger = await stack.enter_async_context(connected(ProfiledCharger, url, charger_id, "ocpp1.6"))
            boot = await charger.call(
                call16.BootNotification(charge_point_vendor="V", charge_point_model="M"), suppress=False
            )
            assert boot.status == "Accepted"
            chargers.append(charger)
        failsafes_a = []
        for charger in chargers:
            await wait_for(charger, lambda c=charger: c.tx_default is not None)
            schedule = charger.tx_default["charging_schedule"]  # type: ignore[index]
            failsafes_a.append(float(schedule["charging_schedule_period"][0]["limit"]))
        assert sum(failsafes_a) <= FEEDER_A + 1e-6, failsafes_a
        assert min(failsafes_a) >= 6.0, failsafes_a
        for charger in chargers:
            started = await charger.call(
                call16.StartTransaction(
                    connector_id=1,
                    id_tag="TAG",
                    meter_start=0,
                    timestamp=datetime.now(UTC).isoformat(),
                ),
                suppress=False,
            )
            charger.transaction_id = str(started.transaction_id)
        for charger in chargers:
            await wait_for(charger, charger.holds_tx)
        now = datetime.now(UTC)
        currents_a = [c.tx_limit_a(now) for c in chargers]
        assert sum(currents_a) <= FEEDER_A + 1e-6, currents_a
        assert all(6.0 - 1e-6 <= a <= MAX_A for a in currents_a), currents_a
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            status = await process.wait()
    assert process.stderr is not None
    stderr = (await process.stderr.read()).decode()
    assert status == 0, stderr
    assert "Traceback" not in stderr
    assert "ERROR" not in stderr


def test_broken_station_file_is_a_plain_error_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "station.yaml"
    text = STATION.format(station_id="s", prefix="X").replace("charger: X-B", "charger: X-A")
    config.write_text(text, encoding="utf-8")
    assert main(["serve", "--port", "0", "--config", str(config)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"fairwatt: error: {config}:11:")
    assert "charger 'X-A' connector 1 holds two EVSEs" in error


def test_a_charger_in_two_stations_is_refused(tmp_path: Path) -> None:
    paths = []
    for station_id in ("one", "two"):
        path = tmp_path / f"{station_id}.yaml"
        path.write_text(STATION.format(station_id=station_id, prefix="X"), encoding="utf-8")
        paths.append(path)
    configs = load_stations(paths)
    with pytest.raises(ServeError, match="charger X-A connector 1 is in stations one and two"):
        build_stations(configs, datetime.now(UTC))
    with pytest.raises(ServeError, match="configured twice"):
        load_stations([paths[0], paths[0]])


class Refusing:
    """A command bus whose chargers are never connected (the loop here is never sent to)."""

    async def set_charging_profile(
        self, charger_id: str, evse_id: int, profile: ChargingProfile, *, timeout_s: float | None = None
    ) -> CommandResult:
        return CommandResult(charger_id, "SetChargingProfile", CommandOutcome.NOT_CONNECTED)

    async def get_charging_profiles(self, charger_id: str) -> CommandResult:
        return CommandResult(charger_id, "GetChargingProfiles", CommandOutcome.NOT_CONNECTED)


@pytest.mark.asyncio
async def test_setup_binds_evses_and_refresh_lays_prices_out_again() -> None:
    config = parse_station(STATION.format(station_id="s", prefix="X"), "station.yaml")
    start = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)  # 11:00 in Amsterdam: evening peak ahead
    setup = station_setup(config, start)
    assert [(b.evse_id, b.charger_id, b.ocpp_evse_id) for b in setup.evses] == [
        ("E1", "X-A", 1),
        ("E2", "X-B", 1),
        ("E3", "X-C", 1),
    ]
    assert [(p.start, p.price_per_kwh) for p in setup.site.prices] == [
        (start, 0.20),
        (datetime(2026, 11, 21, 16, 0, tzinfo=UTC), 0.40),
    ]  # two horizons of 4 h ahead
    tasks = TaskOwner()
    loop = SmartChargingLoop([setup], commands=Refusing(), live_state=InProcessLiveState(), tasks=tasks)
    later = start + timedelta(hours=7)  # 18:00 in Amsterdam: inside the peak
    refresh_site(loop, config, later)
    prices = loop.state("s").site.prices
    assert [(p.start, p.price_per_kwh) for p in prices] == [
        (later, 0.40),
        (datetime(2026, 11, 21, 20, 0, tzinfo=UTC), 0.20),
    ]
    await tasks.cancel_all()


@pytest.mark.asyncio
async def test_prices_are_laid_out_again_once_a_horizon_has_passed() -> None:
    config = parse_station(STATION.format(station_id="s", prefix="X"), "station.yaml")
    start = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    now = [start]
    slept_s: list[float] = []

    async def sleep(seconds: float) -> None:
        slept_s.append(seconds)
        if len(slept_s) == 3:
            raise asyncio.CancelledError
        now[0] += timedelta(seconds=seconds)

    tasks = TaskOwner()
    loop = SmartChargingLoop(
        [station_setup(config, start)], commands=Refusing(), live_state=InProcessLiveState(), tasks=tasks
    )
    with pytest.raises(asyncio.CancelledError):
        await keep_sites_current(loop, [config], clock=lambda: now[0], sleep=sleep)
    assert slept_s == [4 * 3600.0] * 3  # one horizon (48 periods of 5 min) each time
    # refreshed at 14:00 and 18:00 UTC; 19:00 in Amsterdam is in the evening peak
    assert loop.state("s").site.prices[0] == PricePeriod(start + timedelta(hours=8), 0.40)
    await tasks.cancel_all()
