"""Protocol layer of the other 2.0.1 station messages: external limits (NotifyChargingLimit,
ClearedChargingLimit: K11-K13) kept in live state, the messages we answer and log
(NotifyEVChargingSchedule, ReportChargingProfiles, NotifyMonitoringReport, NotifyDisplayMessages,
NotifyCustomerInformation, PublishFirmwareStatusNotification), and the CALLERROR a message failing
its schema gets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csms.domain.events import ChargingLimitSet, LimitPeriod, LimitSchedule
from tests.csms.protocol_stations import NOW, ServiceCsms, answered, event_data, report, report_data, station

pytestmark = pytest.mark.asyncio


# -- NotifyChargingLimit / ClearedChargingLimit (K11-K13) ---------------------------------------------


async def test_external_limits_are_kept_per_evse_and_source_until_cleared(service: ServiceCsms) -> None:
    on_evse = {
        "evseId": 1,
        "chargingLimit": {"chargingLimitSource": "EMS", "isGridCritical": True},
        "chargingSchedule": [
            {
                "id": 4,
                "startSchedule": "2026-05-04T07:30:00Z",
                "duration": 7200,
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [
                    {"startPeriod": 3600, "limit": 8, "numberPhases": 3},
                    {"startPeriod": 0, "limit": 16.5},
                ],
            }
        ],
    }
    on_charger = {  # no evseId: on the whole station; no startSchedule: from when it arrived
        "chargingLimit": {"chargingLimitSource": "SO"},
        "chargingSchedule": [
            {"id": 5, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000}]}
        ],
    }
    async with station(service, "CS-LIMIT") as cs:
        answered(await cs.send("NotifyChargingLimit", on_evse), {})
        answered(await cs.send("NotifyChargingLimit", on_charger), {})
        answered(
            await cs.send(
                "NotifyChargingLimit", {"evseId": 2, "chargingLimit": {"chargingLimitSource": "Other"}}
            ),
            {},
        )
        state = await service.live_state.get("CS-LIMIT")
        assert state is not None
        start = datetime(2026, 5, 4, 7, 30, tzinfo=UTC)
        assert state.charging_limits == {
            (1, "EMS"): ChargingLimitSet(
                "CS-LIMIT",
                1,
                "EMS",
                True,
                (
                    LimitSchedule(
                        4,
                        "A",
                        (LimitPeriod(start, 16.5), LimitPeriod(start + timedelta(hours=1), 8.0, 3)),
                        start + timedelta(hours=2),
                    ),
                ),
                NOW,
            ),
            (0, "SO"): ChargingLimitSet(
                "CS-LIMIT", 0, "SO", None, (LimitSchedule(5, "W", (LimitPeriod(NOW, 11000.0),)),), NOW
            ),
            (2, "Other"): ChargingLimitSet("CS-LIMIT", 2, "Other", None, (), NOW),
        }
        limit = state.charging_limits[(1, "EMS")].schedules[0]
        assert (
            limit.limit_at(NOW),
            limit.limit_at(start + timedelta(minutes=90)),
            limit.limit_at(NOW + timedelta(hours=2)),
        ) == (16.5, 8.0, None)

        answered(await cs.send("ClearedChargingLimit", {"chargingLimitSource": "EMS", "evseId": 1}), {})
        answered(await cs.send("ClearedChargingLimit", {"chargingLimitSource": "SO"}), {})
        answered(
            await cs.send("ClearedChargingLimit", {"chargingLimitSource": "CSO", "evseId": 2}), {}
        )  # none
        state = await service.live_state.get("CS-LIMIT")
        assert state is not None
        assert list(state.charging_limits) == [(2, "Other")]


# -- answered and logged ------------------------------------------------------------------------------

PERIODS = [{"startPeriod": 0, "limit": 16.0}]
PROFILE = {
    "id": 9,
    "stackLevel": 0,
    "chargingProfilePurpose": "ChargingStationExternalConstraints",
    "chargingProfileKind": "Absolute",
    "chargingSchedule": [{"id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": PERIODS}],
}
ANSWERS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "NotifyEVChargingSchedule",
        {
            "timeBase": "2026-05-04T08:00:00Z",
            "evseId": 1,
            "chargingSchedule": {"id": 2, "chargingRateUnit": "W", "chargingSchedulePeriod": PERIODS},
        },
        {"status": "Accepted"},
    ),
    (
        "ReportChargingProfiles",
        {
            "requestId": 3,
            "chargingLimitSource": "EMS",
            "evseId": 0,
            "chargingProfile": [PROFILE],
            "tbc": True,
        },
        {},
    ),
    (
        "NotifyMonitoringReport",
        {
            "requestId": 4,
            "seqNo": 0,
            "generatedAt": "2026-05-04T08:00:00Z",
            "monitor": [
                {
                    "component": {"name": "EVSE", "evse": {"id": 1}},
                    "variable": {"name": "Power"},
                    "variableMonitoring": [
                        {
                            "id": 1,
                            "transaction": False,
                            "value": 22000,
                            "type": "UpperThreshold",
                            "severity": 4,
                        }
                    ],
                }
            ],
        },
        {},
    ),
    (
        "NotifyDisplayMessages",
        {
            "requestId": 5,
            "messageInfo": [
                {"id": 1, "priority": "NormalCycle", "message": {"format": "UTF8", "content": "Hi"}}
            ],
        },
        {},
    ),
    (
        "NotifyCustomerInformation",
        {"data": "card 1234", "seqNo": 0, "generatedAt": "2026-05-04T08:00:00Z", "requestId": 6},
        {},
    ),
    (
        "PublishFirmwareStatusNotification",
        {"status": "Published", "location": ["ftp://lc/fw.bin"], "requestId": 7},
        {},
    ),
]


@pytest.mark.parametrize(("action", "payload", "expected"), ANSWERS, ids=[a[0] for a in ANSWERS])
async def test_the_other_station_messages_are_answered_and_logged(
    service: ServiceCsms, action: str, payload: dict[str, Any], expected: dict[str, Any]
) -> None:
    async with station(service, "CS-OTHER") as cs:
        answer = await cs.send(action, payload)
    answered(answer, expected)
    logged = [(m.direction.value, m.action, m.payload) for m in cs.log.messages]
    assert logged == [("in", action, payload), ("out", action, expected)]


# -- schema violations still get their CALLERROR ------------------------------------------------------

VIOLATIONS: list[tuple[str, dict[str, Any], str]] = [
    ("NotifyEvent", {"generatedAt": "2026-05-04T08:00:00Z", "seqNo": 0}, "ProtocolError"),
    (
        "NotifyReport",
        report(1, 0, "2026-05-04T08:00:00Z", [report_data("C", "V", *({"value": str(i)} for i in range(5)))]),
        "OccurrenceConstraintViolation",
    ),
    (
        "NotifyChargingLimit",
        {"chargingLimit": {"chargingLimitSource": "Grid"}},
        "PropertyConstraintViolation",
    ),
    ("ClearedChargingLimit", {"chargingLimitSource": "EMS", "evseId": "1"}, "TypeConstraintViolation"),
    (
        "NotifyEVChargingSchedule",
        {"timeBase": "2026-05-04T08:00:00Z", "evseId": 1, "chargingSchedule": {}, "colour": "red"},
        "FormatViolation",
    ),
    ("PublishFirmwareStatusNotification", {"status": "Dancing"}, "PropertyConstraintViolation"),
    (
        "NotifyEvent",
        {"generatedAt": "yesterday", "seqNo": 0, "eventData": [event_data(1, "2026-05-04T08:00:00Z")]},
        "PropertyConstraintViolation",
    ),
]


@pytest.mark.parametrize(
    ("action", "payload", "code"), VIOLATIONS, ids=[f"{v[0]}-{v[2]}" for v in VIOLATIONS]
)
async def test_a_message_failing_its_schema_gets_the_matching_callerror(
    service: ServiceCsms, action: str, payload: dict[str, Any], code: str
) -> None:
    async with station(service, "CS-BAD") as cs:
        answer = await cs.send(action, payload)
        assert answer[:3] == [4, "m1", code], answer
        assert (await cs.send("Heartbeat", {}))[0] == 3  # the session goes on
    assert await service.device_model.events("CS-BAD") == []
