"""Pure pieces of the lifecycle and the API, against small hand-checked cases."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from csms.commands.results import CommandOutcome, CommandResult
from csms.domain.events import IdToken
from sessions.api.session_live import sse_frame
from sessions.api.sessions import parse_start, request_hash
from sessions.errors import ProblemError
from sessions.estimates import estimate_cost, snapshot
from sessions.events import SessionEvent, SessionOrigin, SessionState
from sessions.late_events import origin_of
from sessions.lifecycle import failure_reason, new_app_token
from sessions.ratelimit import RateLimiter
from sessions.session_store import SessionRecord
from tariffs.model import TariffVersions
from tariffs.ocpi import parse_tariff

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def record(**changes: object) -> SessionRecord:
    base = SessionRecord(
        session_id="00000000-0000-0000-0000-000000000001",
        driver_id="d",
        charger_id="cp",
        evse_id=1,
        connector_id=1,
        state=SessionState.ACTIVE,
        origin=SessionOrigin.APP,
        failure_reason=None,
        id_token=None,
        payment_method_id=None,
        remote_start_id=None,
        reservation_id=None,
        transaction_ref=None,
        transaction_id=None,
        tariff_id="t",
        time_zone="Europe/Amsterdam",
        meter_start_wh=1000.0,
        meter_last_wh=3500.0,
        meter_stop_wh=None,
        power_w=7400.0,
        offline=False,
        created_at=START,
        started_at=START,
        ended_at=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_energy_is_measured_from_the_start_reading_and_final_once_stopped() -> None:
    assert record().energy_wh == 2500.0
    assert record(meter_stop_wh=5000.0).energy_wh == 4000.0
    assert record(meter_start_wh=None).energy_wh == 0.0
    assert record(meter_last_wh=None).energy_wh == 0.0
    assert record(meter_last_wh=900.0).energy_wh == 0.0  # a meter reset never makes energy negative


def _versions(*prices: tuple[float, datetime]) -> TariffVersions:
    return TariffVersions.of(
        parse_tariff(
            {
                "id": "t",
                "currency": "EUR",
                "start_date_time": start.isoformat().replace("+00:00", "Z"),
                "elements": [{"price_components": [{"type": "ENERGY", "price": price, "step_size": 1}]}],
            }
        )
        for price, start in prices
    )


def test_cost_so_far_uses_the_version_in_force_when_the_session_started() -> None:
    versions = _versions((0.30, START - timedelta(days=1)), (0.50, START + timedelta(minutes=10)))
    cost = estimate_cost(record(), versions, START + timedelta(minutes=30))
    assert (cost.amount, cost.currency) == (Decimal("0.75"), "EUR")  # 2.5 kWh at 0.30
    later = estimate_cost(
        record(started_at=START + timedelta(minutes=20)), versions, START + timedelta(hours=1)
    )
    assert later.amount == Decimal("1.25")  # the same 2.5 kWh, started under the 0.50 version


def test_snapshot_shows_kwh_kw_and_elapsed_seconds() -> None:
    shown = snapshot(record(), None, START + timedelta(minutes=5))
    assert shown == {
        "state": "ACTIVE",
        "energy_kwh": 2.5,
        "power_kw": 7.4,
        "elapsed_s": 300,
        "cost_so_far": None,
    }
    ended = record(state=SessionState.COMPLETED, ended_at=START + timedelta(minutes=2), meter_stop_wh=1500.0)
    assert snapshot(ended, None, START + timedelta(hours=3))["elapsed_s"] == 120
    assert snapshot(record(started_at=None), None, START)["elapsed_s"] is None


def test_origin_of_a_charger_started_session() -> None:
    assert origin_of(None) is SessionOrigin.FREE_VEND
    assert origin_of(IdToken("x", "NoAuthorization")) is SessionOrigin.FREE_VEND
    assert origin_of(IdToken("EMAID1", "eMAID")) is SessionOrigin.PLUG_AND_CHARGE
    assert origin_of(IdToken("04A1")) is SessionOrigin.RFID
    assert origin_of(IdToken("04A1", "ISO14443")) is SessionOrigin.RFID


def test_failure_reasons_say_what_the_charger_answered() -> None:
    rejected = CommandResult("cp", "RemoteStartTransaction", CommandOutcome.REJECTED, "Rejected")
    assert failure_reason(rejected) == "the charger rejected the start request (Rejected)"
    error = CommandResult("cp", "x", CommandOutcome.CALL_ERROR, error_code="InternalError")
    assert failure_reason(error) == "the charger answered the start request with an error (InternalError)"
    assert (
        failure_reason(CommandResult("cp", None, CommandOutcome.NOT_CONNECTED))
        == "the charger is not connected"
    )


def test_app_tokens_fit_an_ocpp16_id_tag_and_differ() -> None:
    tokens = {new_app_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(token) == 20 and token.startswith("FW") for token in tokens)


def test_start_requests_are_validated_and_hashed_independently_of_key_order() -> None:
    assert parse_start({"charger_id": "CP-1", "connector_id": 2.0, "payment_method_id": "PM"}) == (
        "CP-1",
        2,
        "PM",
    )
    for bad in (
        {"charger_id": "CP-1", "connector_id": True, "payment_method_id": "PM"},
        {"charger_id": "CP 1", "connector_id": 1, "payment_method_id": "PM"},
        {"charger_id": "CP-1", "connector_id": 1.5, "payment_method_id": "PM"},
        {"charger_id": "CP-1", "connector_id": 1},
    ):
        with pytest.raises(ProblemError) as refused:
            parse_start(bad)
        assert refused.value.status == 400
    assert request_hash({"a": 1, "b": 2}) == request_hash({"b": 2, "a": 1})
    assert request_hash({"a": 1}) != request_hash({"a": 2})


def test_sse_frames_name_the_last_transition_final() -> None:
    def event(kind: str, state: SessionState) -> SessionEvent:
        return SessionEvent(7, "s", kind, state, START, {"energy_kwh": 1.0})

    assert sse_frame(event("progress", SessionState.ACTIVE)).startswith(b"id: 7\nevent: progress\ndata: {")
    assert b"event: state\n" in sse_frame(event("state", SessionState.STOPPING))
    for final in (SessionState.COMPLETED, SessionState.FAILED):
        frame = sse_frame(event("state", final))
        assert b"event: final\n" in frame
        assert frame.endswith(b"\n\n")


def test_the_in_process_rate_limit_allows_n_a_minute() -> None:
    async def calls() -> list[int | None]:
        limiter = RateLimiter(2)
        return [await limiter.retry_after_s("d") for _ in range(3)] + [await limiter.retry_after_s("other")]

    first, second, third, other = asyncio.run(calls())
    assert (first, second, other) == (None, None, None)
    assert third is not None
    assert 1 <= third <= 61
