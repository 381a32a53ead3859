"""End to end with an OCPP 2.0.1 station (``ocpp`` package) against the real server, PostgreSQL and
the smart-charging loop: the device model it reports when we ask, the events it notifies, the
external limits it tells of, and the loop planning with those limits."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from ocpp.exceptions import SecurityError
from ocpp.routing import after, on
from ocpp.v201 import call
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from csms.commands.reports import ReportBase, get_base_report
from csms.domain.events import ComponentVariable, RegistrationStatus
from csms.server import CSMS, create_app
from csms.smart_charging import (
    SMART_CHARGING,
    EvseBinding,
    SmartChargingLoop,
    SmartChargingSettings,
    StationSetup,
)
from csms.storage.chargers import ChargerRecord
from optimizer.types import Connection, Evse, FeederNode, Policy, Site
from tests.csms.chargers import Charger201, ClientConnection, connected
from tests.csms.conftest import RunningCsms, make_settings

pytestmark = pytest.mark.asyncio

BOOT = call.BootNotification(charging_station={"model": "DM", "vendor_name": "Acme"}, reason="PowerUp")


def stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def plug_in(station: Charger201, transaction_id: str, at: datetime | None = None) -> None:
    """A transaction Started on EVSE 1 by a cable plugged in ``at`` (now)."""
    await station.call(
        call.TransactionEvent(
            event_type="Started",
            timestamp=stamp(at or datetime.now(UTC)),
            trigger_reason="CablePluggedIn",
            seq_no=0,
            transaction_info={"transactionId": transaction_id},
            evse={"id": 1, "connectorId": 1},
        ),
        suppress=False,
    )


class ReportingStation(Charger201):
    """A station that accepts GetBaseReport (the test sends the NotifyReport parts itself)."""

    @on(Action201.get_base_report)
    async def on_get_base_report(self, request_id: int, report_base: str, **_: Any) -> Any:
        await self.received.put(("GetBaseReport", {"request_id": request_id, "report_base": report_base}))
        return result201.GetBaseReport(status="Accepted")


def attribute(component: str, variable: str, value: str, **component_extra: Any) -> dict[str, Any]:
    return {
        "component": {"name": component, **component_extra},
        "variable": {"name": variable},
        "variableAttribute": [{"type": "Actual", "value": value, "mutability": "ReadOnly"}],
        "variableCharacteristics": {"dataType": "string", "supportsMonitoring": False},
    }


async def test_a_pending_station_reports_its_device_model_then_events_and_limits(csms: RunningCsms) -> None:
    charger_id = "CS-E2E-DM"
    runtime = csms.runtime
    await runtime.chargers.save(ChargerRecord(charger_id, registration_status=RegistrationStatus.PENDING))
    async with connected(ReportingStation, csms.url(charger_id), charger_id, "ocpp2.0.1") as station:
        assert (await station.call(BOOT, suppress=False)).status == "Pending"
        event = {
            "eventId": 1,
            "timestamp": "2026-05-04T08:00:00Z",
            "trigger": "Alerting",
            "actualValue": "true",
            "eventNotificationType": "HardWiredNotification",
            "component": {"name": "ChargingStation"},
            "variable": {"name": "Problem"},
        }
        with pytest.raises(SecurityError):  # B02.FR.09: a Pending station sends what we ask for only
            await station.call(call.NotifyEvent("2026-05-04T08:00:01Z", 0, [event]), suppress=False)

        request = await get_base_report(
            runtime.commands, runtime.device_model, charger_id, ReportBase.FULL_INVENTORY
        )
        assert request.result.accepted
        assert await station.received.get() == (
            "GetBaseReport",
            {"request_id": request.request_id, "report_base": "FullInventory"},
        )
        first = [
            attribute("ChargingStation", "Model", "DM"),
            attribute("ChargingStation", "VendorName", "Acme"),
        ]
        second = [attribute("Connector", "ConnectorType", "cType2", evse={"id": 1, "connectorId": 1})]
        await station.call(
            call.NotifyReport(request.request_id, "2026-05-04T08:00:02Z", 0, report_data=first, tbc=True),
            suppress=False,
        )
        progress = await runtime.device_model.report(charger_id, request.request_id)
        assert progress is not None
        assert not progress.complete
        await station.call(
            call.NotifyReport(request.request_id, "2026-05-04T08:00:03Z", 1, report_data=second),
            suppress=False,
        )
        progress = await runtime.device_model.report(charger_id, request.request_id)
        assert progress is not None
        assert (
            progress.requested,
            progress.answer,
            progress.parts,
            progress.complete,
            progress.variables,
        ) == (
            "FullInventory",
            "Accepted",
            (0, 1),
            True,
            3,
        )
        stored = {
            v.reported.target: v.reported.value for v in await runtime.device_model.variables(charger_id)
        }
        assert stored == {
            ComponentVariable("ChargingStation", "Model"): "DM",
            ComponentVariable("ChargingStation", "VendorName"): "Acme",
            ComponentVariable("Connector", "ConnectorType", evse_id=1, connector_id=1): "cType2",
        }

        # the operator accepts the station; it boots again and is served
        await runtime.chargers.save(ChargerRecord(charger_id))
        assert (await station.call(BOOT, suppress=False)).status == "Accepted"
        cleared = {
            **event,
            "eventId": 2,
            "timestamp": "2026-05-04T08:05:00Z",
            "actualValue": "false",
            "cleared": True,
        }
        await station.call(call.NotifyEvent("2026-05-04T08:00:01Z", 0, [event], tbc=True), suppress=False)
        await station.call(call.NotifyEvent("2026-05-04T08:05:01Z", 1, [cleared]), suppress=False)
        events = await runtime.device_model.events(charger_id)
        assert [(e.event_id, e.actual_value, e.cleared) for e in events] == [
            (2, "false", True),
            (1, "true", None),
        ]
        assert events[1].target == ComponentVariable("ChargingStation", "Problem")

        schedule = {
            "id": 1,
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}],
        }
        await station.call(
            call.NotifyChargingLimit(
                {"chargingLimitSource": "EMS", "isGridCritical": True}, [schedule], evse_id=1
            ),
            suppress=False,
        )
        state = await runtime.live_state.get(charger_id)
        assert state is not None
        limit = state.charging_limits[(1, "EMS")]
        assert (limit.grid_critical, limit.schedules[0].rate_unit, limit.schedules[0].periods[0].limit) == (
            True,
            "A",
            10.0,
        )
        await station.call(call.ClearedChargingLimit("EMS", evse_id=1), suppress=False)
        state = await runtime.live_state.get(charger_id)
        assert state is not None
        assert state.charging_limits == {}

        answer = await station.call(
            call.NotifyEVChargingSchedule("2026-05-04T08:10:00Z", {**schedule, "id": 2}, 1), suppress=False
        )
        assert answer.status == "Accepted"
        profile = {
            "id": 7,
            "stackLevel": 0,
            "chargingProfilePurpose": "ChargingStationExternalConstraints",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [schedule],
        }
        await station.call(call.ReportChargingProfiles(11, "EMS", [profile], 0), suppress=False)
    await runtime.message_log.flush()
    async with runtime.database.pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT direction, payload FROM ocpp_messages WHERE charger_id = $1 AND action = $2 ORDER BY id",
            charger_id,
            "ReportChargingProfiles",
        )
    assert [(r["direction"], r["payload"]) for r in rows] == [
        ("in", {"requestId": 11, "chargingLimitSource": "EMS", "chargingProfile": [profile], "evseId": 0}),
        ("out", {}),
    ]


# -- the loop plans with an external limit ------------------------------------------------------------

EVSE = Evse("E1", Connection.THREE_PHASE, 230.0, 16.0, 6.0)


@dataclass
class PlannedStation:
    loop: SmartChargingLoop
    station: Charger201
    charger_id: str

    async def settle(self) -> None:
        async with asyncio.timeout(60):  # guards against a hang only
            await self.loop.wait_idle()

    async def tx_limits(self) -> list[float]:
        """The highest period limit of each Tx profile sent since the last look (other profiles skipped)."""
        return [max(limit for _, limit in periods) for periods in await self.tx_periods()]

    async def tx_periods(self) -> list[list[tuple[int, float]]]:
        """The (startPeriod, limit) periods of each Tx profile sent since the last look."""
        await self.settle()
        schedules: list[list[tuple[int, float]]] = []
        while not self.station.received.empty():
            action, request = self.station.received.get_nowait()
            profile = request["charging_profile"]
            if action == "SetChargingProfile" and profile["charging_profile_purpose"] == "TxProfile":
                periods = profile["charging_schedule"][0]["charging_schedule_period"]
                schedules.append([(int(p["start_period"]), float(p["limit"])) for p in periods])
        return schedules


@asynccontextmanager
async def planned_station(
    database_dsn: str, station_class: type[Charger201]
) -> AsyncIterator[PlannedStation]:
    """A one-EVSE station planned by the loop of a server of its own, its charger connected (not booted)."""
    charger_id = f"CS-EXT-{uuid.uuid4().hex[:6]}"
    setup = StationSetup(
        station_id=f"{charger_id}-station",
        site=Site(grid_limit_kw=22.0, root=FeederNode("main", limit_a=32.0, evse_ids=("E1",))),
        evses=(EvseBinding(EVSE, charger_id),),
        # a car that wants more than it can get: the plan offers all it may
        policy=Policy(period_s=300, horizon_periods=24, deadline_s=5.0, default_energy_kwh=200.0),
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
    try:
        url = f"ws://127.0.0.1:{port}/ocpp/{charger_id}"
        async with connected(station_class, url, charger_id, "ocpp2.0.1") as station:
            assert app[CSMS].commands is not None
            yield PlannedStation(app[SMART_CHARGING], station, charger_id)
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def planned(database_dsn: str) -> AsyncIterator[PlannedStation]:
    async with planned_station(database_dsn, Charger201) as station:
        yield station


async def test_the_loop_never_offers_more_than_an_external_limit(planned: PlannedStation) -> None:
    station = planned.station
    assert (await station.call(BOOT, suppress=False)).status == "Accepted"
    now = datetime.now(UTC)
    await plug_in(station, "TX-EXT", now)
    assert await planned.tx_limits() == [16.0]

    # an EMS allows 10 A now and 7 A from an hour on: the plan offers 10 A while it may, then 7 A
    schedule = {
        "id": 1,
        "startSchedule": stamp(now),
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}, {"startPeriod": 3600, "limit": 7.0}],
    }
    await station.call(
        call.NotifyChargingLimit({"chargingLimitSource": "EMS"}, [schedule], evse_id=1), suppress=False
    )
    [periods] = await planned.tx_periods()
    assert [limit for _, limit in periods] == [10.0, 7.0]
    assert 3600 - 300 <= periods[1][0] <= 3600  # the period the 7 A begins in is planned at 7 A
    snapshot = planned.loop.state(f"{planned.charger_id}-station").snapshot(now + timedelta(seconds=1))
    assert snapshot.evse("E1").max_current_a == 16.0  # the limit is a cap over time, not a new maximum
    assert [(c.evse_id, c.max_current_a) for c in snapshot.site.evse_caps] == [("E1", 10.0), ("E1", 7.0)]

    # the grid operator limits the whole station (no evseId: its one EVSE) in W: 3,450 W is 5 A
    watts = {
        "id": 2,
        "chargingRateUnit": "W",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 3450.0}],
    }
    await station.call(call.NotifyChargingLimit({"chargingLimitSource": "SO"}, [watts]), suppress=False)
    assert await planned.tx_limits() == [0.0]  # below the EVSE's 6 A minimum: it cannot charge under it

    await station.call(call.ClearedChargingLimit("SO"), suppress=False)
    assert await planned.tx_limits() == [10.0]
    await station.call(call.ClearedChargingLimit("EMS", evse_id=1), suppress=False)
    assert await planned.tx_limits() == [16.0]


# -- after a boot, the loop asks for the external limits (K09) ----------------------------------------


class LimitedStation(Charger201):
    """A station an EMS limits to 10 A on EVSE 1; it reports that when asked (GetChargingProfiles)."""

    def __init__(self, charger_id: str, connection: ClientConnection) -> None:
        super().__init__(charger_id, connection)
        self.reported = asyncio.Event()  # set once its report is answered

    @on(Action201.get_charging_profiles)
    async def on_get_charging_profiles(
        self, request_id: int, charging_profile: dict[str, Any], **_: Any
    ) -> Any:
        await self.received.put(("GetChargingProfiles", {"request_id": request_id, **charging_profile}))
        return result201.GetChargingProfiles(status="Accepted")

    @after(Action201.get_charging_profiles)
    async def report(self, request_id: int, **_: Any) -> None:
        profile = {
            "id": 90,
            "stackLevel": 0,
            "chargingProfilePurpose": "ChargingStationExternalConstraints",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [
                {
                    "id": 1,
                    "startSchedule": "2026-01-01T00:00:00Z",
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}],
                }
            ],
        }
        await self.call(call.ReportChargingProfiles(request_id, "EMS", [profile], 1), suppress=False)
        self.reported.set()


async def test_a_booted_station_is_asked_for_its_external_limits_and_planned_under_them(
    database_dsn: str,
) -> None:
    async with planned_station(database_dsn, LimitedStation) as planned:
        station = planned.station
        assert (await station.call(BOOT, suppress=False)).status == "Accepted"
        await planned.settle()
        asked = [request for action, request in await drain(station) if action == "GetChargingProfiles"]
        assert [a["charging_limit_source"] for a in asked] == [["EMS", "Other", "SO"]]
        await plug_in(station, "TX-ASKED")
        assert await planned.tx_limits() == [10.0]  # the EVSE's 16 A held to what the EMS allows


async def drain(station: Charger201) -> list[tuple[str, dict[str, Any]]]:
    """What ``station`` was sent and has not been looked at yet."""
    found = []
    while not station.received.empty():
        found.append(station.received.get_nowait())
    return found
