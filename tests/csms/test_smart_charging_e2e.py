"""End to end: a 10-EVSE station of 1.6 and 2.0.1 chargers (``ocpp`` package) under a 32 A / 22 kW limit.

The real server and PostgreSQL run the smart-charging loop; each simulated charger keeps the
profiles it accepted, and after every arrival and departure the limits in force at the chargers
(Tx profile, else failsafe default, else the EVSE's maximum) must keep the station within its
limits. One charger refuses every profile: it is re-sent once, then planned at its maximum.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from aiohttp import web
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from csms.server import CSMS, create_app
from csms.smart_charging import (
    SMART_CHARGING,
    EvseBinding,
    SmartChargingLoop,
    SmartChargingSettings,
    StationSetup,
)
from csms.smart_charging.reserve import reserve
from optimizer.failsafe import failsafe_currents_a
from optimizer.network import Network
from optimizer.types import Connection, Evse, FeederNode, Policy, RateUnit, Site
from tests.csms.chargers import connected
from tests.csms.conftest import make_settings

pytestmark = pytest.mark.asyncio

COUNT = 10
REFUSING = 7  # this charger refuses every profile
MAX_A = 16.0


def evse_of(i: int) -> Evse:
    if i % 2:  # the 2.0.1 stations take profiles in W
        return Evse(f"E{i}", Connection.THREE_PHASE, 230.0, MAX_A, 6.0, rate_unit=RateUnit.WATT, step=100.0)
    return Evse(f"E{i}", Connection.THREE_PHASE, 230.0, MAX_A, 6.0)


EVSES = tuple(evse_of(i) for i in range(COUNT))
SITE = Site(
    grid_limit_kw=22.0, root=FeederNode("main", limit_a=32.0, evse_ids=tuple(e.evse_id for e in EVSES))
)
NETWORK = Network.build(SITE, EVSES)


@dataclass
class Holder:
    """What a simulated charger holds on its one EVSE, and what it was sent."""

    reject: bool = False
    tx_default: dict[str, Any] | None = None
    tx: dict[str, Any] | None = None
    transaction_id: str | None = None
    refused: list[str] = field(default_factory=list)

    def take(self, profile: dict[str, Any]) -> str:
        purpose = profile["charging_profile_purpose"]
        if self.reject:
            self.refused.append(purpose)
            return "Rejected"
        if purpose == "TxDefaultProfile":
            self.tx_default = profile
        elif purpose == "TxProfile":
            self.tx = profile
        return "Accepted"

    def limit_in_force_a(self, evse: Evse, now: datetime) -> float:
        """What the car may draw now [A]: 0 without a car, else Tx profile, failsafe, or maximum."""
        if self.transaction_id is None:
            return 0.0
        if self.tx is not None and str(self.tx["transaction_id"]) == self.transaction_id:
            schedule = _schedule(self.tx)
            start = datetime.fromisoformat(schedule["start_schedule"].replace("Z", "+00:00"))
            offset_s = (now - start).total_seconds()
            if 0 <= offset_s < schedule["duration"]:
                limit = [
                    float(p["limit"])
                    for p in schedule["charging_schedule_period"]
                    if p["start_period"] <= offset_s
                ]
                return _amperes(limit[-1], schedule, evse)
        if self.tx_default is not None:
            schedule = _schedule(self.tx_default)
            return _amperes(float(schedule["charging_schedule_period"][0]["limit"]), schedule, evse)
        return evse.max_current_a

    def failsafe_a(self, evse: Evse) -> float | None:
        if self.tx_default is None:
            return None
        schedule = _schedule(self.tx_default)
        return _amperes(float(schedule["charging_schedule_period"][0]["limit"]), schedule, evse)


def _schedule(profile: dict[str, Any]) -> dict[str, Any]:
    schedule = profile["charging_schedule"]
    return schedule[0] if isinstance(schedule, list) else schedule  # type: ignore[no-any-return]


def _amperes(limit: float, schedule: dict[str, Any], evse: Evse) -> float:
    return limit if schedule["charging_rate_unit"] == "A" else limit / (evse.kw_per_a * 1000.0)


class SmartCharger16(ChargePoint16):  # type: ignore[misc]
    def __init__(self, charger_id: str, connection: Any) -> None:
        super().__init__(charger_id, connection, response_timeout=10)
        self.holder = Holder()

    @on(Action16.set_charging_profile)
    async def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        assert connector_id == 1
        return result16.SetChargingProfile(status=self.holder.take(cs_charging_profiles))


class SmartCharger201(ChargePoint201):  # type: ignore[misc]
    def __init__(self, charger_id: str, connection: Any) -> None:
        super().__init__(charger_id, connection, response_timeout=10)
        self.holder = Holder()

    @on(Action201.set_charging_profile)
    async def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any]) -> Any:
        assert evse_id == 1
        return result201.SetChargingProfile(status=self.holder.take(charging_profile))


@dataclass
class Station:
    loop: SmartChargingLoop
    chargers: list[Any]
    prefix: str

    async def settle(self) -> None:
        """Wait until the loop has acted on everything (the timeout only guards against a hang)."""
        async with asyncio.timeout(120):
            await self.loop.wait_idle()

    def currents_a(self) -> dict[str, float]:
        now = datetime.now(UTC)
        return {
            e.evse_id: c.holder.limit_in_force_a(e, now) for e, c in zip(EVSES, self.chargers, strict=True)
        }

    def assert_within_limits(self) -> dict[str, float]:
        currents = self.currents_a()
        use = NETWORK.utilisation(np.array([currents[e] for e in NETWORK.evse_ids]), SITE.grid_limit_kw)
        assert float(use.max()) <= 1.0 + 1e-9, currents
        return currents


@pytest_asyncio.fixture
async def station(database_dsn: str) -> AsyncIterator[Station]:
    prefix = f"SC{uuid.uuid4().hex[:6]}"
    setup = StationSetup(
        station_id=f"{prefix}-station",
        site=SITE,
        evses=tuple(EvseBinding(e, f"{prefix}-{i}") for i, e in enumerate(EVSES)),
        policy=Policy(period_s=300, horizon_periods=24, deadline_s=5.0),
    )
    settings = SmartChargingSettings(quiet_s=0.01, max_delay_s=0.05, retry_backoff_s=0.01, apply_grace_s=0.0)
    app = create_app(
        make_settings(database_dsn, auto_register=True), stations=[setup], smart_charging=settings
    )
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    await web.SockSite(runner, listener).start()
    assert app[CSMS].commands is not None
    try:
        async with AsyncExitStack() as stack:
            chargers = []
            for i in range(COUNT):
                charger_id = f"{prefix}-{i}"
                url = f"ws://127.0.0.1:{port}/ocpp/{charger_id}"
                if i % 2:
                    charger = await stack.enter_async_context(
                        connected(SmartCharger201, url, charger_id, "ocpp2.0.1")
                    )
                else:
                    charger = await stack.enter_async_context(
                        connected(SmartCharger16, url, charger_id, "ocpp1.6")
                    )
                charger.holder.reject = i == REFUSING
                chargers.append(charger)
            yield Station(app[SMART_CHARGING], chargers, prefix)
    finally:
        await runner.cleanup()


async def boot(charger: Any) -> None:
    if isinstance(charger, SmartCharger16):
        answer = await charger.call(
            call16.BootNotification(charge_point_model="SC", charge_point_vendor="Acme"), suppress=False
        )
    else:
        answer = await charger.call(
            call201.BootNotification(
                charging_station={"model": "SC", "vendor_name": "Acme"}, reason="PowerUp"
            ),
            suppress=False,
        )
    assert answer.status == "Accepted"


async def arrive(charger: Any, i: int) -> None:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(charger, SmartCharger16):
        started = await charger.call(
            call16.StartTransaction(connector_id=1, id_tag=f"TAG-{i}", meter_start=0, timestamp=now),
            suppress=False,
        )
        charger.holder.transaction_id = str(started.transaction_id)
        return
    transaction_id = f"TX-{uuid.uuid4().hex[:8]}"
    await charger.call(
        call201.TransactionEvent(
            event_type="Started",
            timestamp=now,
            trigger_reason="CablePluggedIn",
            seq_no=0,
            transaction_info={"transaction_id": transaction_id},
            evse={"id": 1, "connector_id": 1},
            id_token={"id_token": f"TAG-{i}", "type": "ISO14443"},
        ),
        suppress=False,
    )
    charger.holder.transaction_id = transaction_id


async def leave(charger: Any) -> None:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    transaction_id = charger.holder.transaction_id
    if isinstance(charger, SmartCharger16):
        await charger.call(
            call16.StopTransaction(meter_stop=5000, timestamp=now, transaction_id=int(transaction_id)),
            suppress=False,
        )
    else:
        await charger.call(
            call201.TransactionEvent(
                event_type="Ended",
                timestamp=now,
                trigger_reason="EVCommunicationLost",
                seq_no=1,
                transaction_info={"transaction_id": transaction_id, "stopped_reason": "EVDisconnected"},
                evse={"id": 1, "connector_id": 1},
            ),
            suppress=False,
        )
    charger.holder.transaction_id = None


async def test_station_stays_within_its_limit_while_cars_come_and_go(station: Station) -> None:
    for charger in station.chargers:
        await boot(charger)
    await station.settle()

    # Every charger got its failsafe default at boot; the refusing one twice (sent, re-sent), and
    # the others' failsafes count it at its maximum.
    site, others = reserve(SITE, EVSES, {f"E{REFUSING}": MAX_A})
    expected = failsafe_currents_a(site, others)
    for i, (evse, charger) in enumerate(zip(EVSES, station.chargers, strict=True)):
        if i == REFUSING:
            assert charger.holder.refused == ["TxDefaultProfile", "TxDefaultProfile"]
            assert charger.holder.failsafe_a(evse) is None
            continue
        held = charger.holder.tx_default
        assert held is not None, evse.evse_id
        assert (held["stack_level"], held["charging_profile_kind"]) == (0, "Relative")
        assert charger.holder.failsafe_a(evse) == pytest.approx(expected[evse.evse_id], abs=0.15)
    failsafes = [c.holder.failsafe_a(e) for e, c in zip(EVSES, station.chargers, strict=True)]
    everyone = {e.evse_id: MAX_A if a is None else a for e, a in zip(EVSES, failsafes, strict=True)}
    use = NETWORK.utilisation(np.array([everyone[e] for e in NETWORK.evse_ids]), SITE.grid_limit_kw)
    assert float(use.max()) <= 1.0 + 1e-9

    order = [0, 1, 2, REFUSING, 3, 4, 5, 6, 8, 9]
    for i in order:
        await arrive(station.chargers[i], i)
        await station.settle()
        currents = station.assert_within_limits()
        for j in order[: order.index(i) + 1]:
            holder = station.chargers[j].holder
            if j == REFUSING:
                assert currents[f"E{j}"] == MAX_A  # nothing accepted: it may draw its maximum
            else:
                assert holder.tx is not None
                assert str(holder.tx["transaction_id"]) == holder.transaction_id

    refused = station.chargers[REFUSING].holder.refused
    assert refused.count("TxProfile") == 2  # sent once, re-sent once, then planned around
    state = station.loop.state(f"{station.prefix}-station")
    assert state.reserved_a() == {f"E{REFUSING}": MAX_A}

    before = station.currents_a()
    for i in (0, 1, REFUSING):
        await leave(station.chargers[i])
        await station.settle()
        station.assert_within_limits()
    after = station.assert_within_limits()
    staying = [f"E{i}" for i in order if i not in (0, 1, REFUSING)]
    # The refusing EVSE's 16 A and the leavers' shares go to those who stay.
    assert sum(after[e] for e in staying) > sum(before[e] for e in staying) + 1.0
    assert state.reserved_a() == {}

    for evse_id in staying:
        await leave(station.chargers[int(evse_id[1:])])
    await station.settle()
    assert all(a == 0.0 for a in station.assert_within_limits().values())


async def test_ev_needs_and_meter_values_shape_the_plan(station: Station) -> None:
    for charger in station.chargers[:2]:
        await boot(charger)
    await arrive(station.chargers[0], 0)
    await arrive(station.chargers[1], 1)
    await station.settle()
    first = station.assert_within_limits()
    assert first["E0"] > 10.0
    assert first["E1"] > 10.0

    departure = (datetime.now(UTC) + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    answer = await station.chargers[1].call(
        call201.NotifyEVChargingNeeds(
            evse_id=1,
            charging_needs={
                "requested_energy_transfer": "AC_three_phase",
                "departure_time": departure,
                "ac_charging_parameters": {
                    "energy_amount": 6000,
                    "ev_min_current": 6,
                    "ev_max_current": 10,
                    "ev_max_voltage": 400,
                },
            },
        ),
        suppress=False,
    )
    assert answer.status == "Processing"
    await station.settle()
    session = station.loop.state(f"{station.prefix}-station").evses["E1"].session
    assert session is not None
    assert (session.reported_max_a, session.energy_needed_kwh) == (10.0, 6.0)
    assert station.currents_a()["E1"] == pytest.approx(6900 / 690)  # the car takes 10 A at most

    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    phases = [
        {"value": "7.0", "measurand": "Current.Import", "unit": "A", "phase": phase}
        for phase in ("L1", "L2", "L3")
    ]
    holder = station.chargers[0].holder
    await station.chargers[0].call(
        call16.MeterValues(
            connector_id=1,
            transaction_id=int(holder.transaction_id),
            meter_value=[{"timestamp": now, "sampled_value": phases}],
        ),
        suppress=False,
    )
    await station.settle()
    # It draws 7 A of the 16 A offered: that is its limit now, and what it frees is free for others.
    assert station.currents_a()["E0"] == pytest.approx(7.0)
    station.assert_within_limits()
