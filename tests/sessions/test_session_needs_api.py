"""A driver's departure and energy need through the API: validated (400 naming the field), stored
with the session in PostgreSQL, shown, changed with PATCH, and told to the planner once the
session's transaction is known (the charging service keeps them in live state), for app and
RFID sessions alike; real server, PostgreSQL and an ``ocpp`` 1.6 charger."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from ocpp.v16 import call as call16

from csms.domain.events import DriverNeeds
from sessions.events import SessionState
from tests.csms.chargers import Charger16, connected
from tests.sessions.conftest import RunningApi
from tests.sessions.helpers import event_log, register_charger, seed_driver
from tests.sessions.test_session_e2e import booted16, now_text, start

pytestmark = pytest.mark.asyncio


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def patch(api: RunningApi, driver: str, session_id: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with api.http.patch(
        f"{api.base_url}/v1/sessions/{session_id}", json=body, headers=api.headers(driver)
    ) as response:
        return response.status, await response.json()


async def stored(api: RunningApi, session_id: str) -> tuple[datetime | None, float | None]:
    row = await api.csms.database.pool.fetchrow(
        "SELECT departure_at, energy_needed_kwh FROM charging_sessions WHERE session_id = $1",
        uuid.UUID(session_id),
    )
    assert row is not None
    return row["departure_at"], row["energy_needed_kwh"]


async def planned(api: RunningApi, charger_id: str) -> DriverNeeds | None:
    """What the charging service keeps for the planner on EVSE 1 of ``charger_id``."""
    state = await api.csms.live_state.get(charger_id)
    return None if state is None else state.driver_needs.get(1)


def in_future(hours: float) -> datetime:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0)


BAD_START_VALUES: list[tuple[str, str, Callable[[], object]]] = [
    ("departure_at", "in the past", lambda: iso(in_future(-1))),
    ("departure_at", "more than 7 days ahead", lambda: iso(in_future(8 * 24))),
    ("departure_at", "without an offset", lambda: in_future(2).replace(tzinfo=None).isoformat()),
    ("departure_at", "a date only", lambda: in_future(2).date().isoformat()),
    ("departure_at", "not a string", lambda: 1_800_000_000),
    ("energy_needed_kwh", "zero", lambda: 0),
    ("energy_needed_kwh", "negative", lambda: -5.0),
    ("energy_needed_kwh", "above the bound", lambda: 40_000),
    ("energy_needed_kwh", "a string", lambda: "40"),
    ("energy_needed_kwh", "a boolean", lambda: True),
]


async def test_a_start_stores_and_shows_the_needs_and_refuses_bad_ones(api: RunningApi) -> None:
    payment = await seed_driver(api, "needs-ann")
    await register_charger(api, "CP-NEEDS-1", evses=2)
    async with connected(Charger16, api.charger_url("CP-NEEDS-1"), "CP-NEEDS-1", "ocpp1.6") as charger:
        await booted16(charger)
        base = {"charger_id": "CP-NEEDS-1", "connector_id": 1, "payment_method_id": payment}
        for name, what, value in BAD_START_VALUES:
            status, problem = await start(
                api, "needs-ann", {**base, name: value()}, f"bad-{name}-{what.replace(' ', '-')}"
            )
            assert status == 400, (name, what, problem)
            assert problem["field"] == name, (what, problem)
            assert problem["detail"].startswith(name), problem
        count = await api.csms.database.pool.fetchval(
            "SELECT count(*) FROM charging_sessions WHERE driver_id = 'needs-ann'"
        )
        assert count == 0  # nothing stored, no remote start sent
        assert charger.received.empty()

        leaves = in_future(5)
        body = {
            **base,
            "departure_at": leaves.astimezone(timezone(timedelta(hours=2))).isoformat(),
            "energy_needed_kwh": 42.5,
        }
        status, created = await start(api, "needs-ann", body, "needs-1")
        assert status == 201, created
        assert (created["departure_at"], created["energy_needed_kwh"]) == (leaves.isoformat(), 42.5)
        assert await stored(api, created["session_id"]) == (leaves, 42.5)
        async with api.http.get(
            f"{api.base_url}/v1/sessions/{created['session_id']}", headers=api.headers("needs-ann")
        ) as response:
            shown = await response.json()
        assert (shown["departure_at"], shown["energy_needed_kwh"]) == (leaves.isoformat(), 42.5)

        # without them: both null; the same key and body is the same session
        plain = {**base, "connector_id": 2}
        status, second = await start(api, "needs-ann", plain, "needs-2")
        assert status == 201
        assert (second["departure_at"], second["energy_needed_kwh"]) == (None, None)
        status, again = await start(api, "needs-ann", plain, "needs-2")
        assert (status, again["session_id"]) == (200, second["session_id"])


async def test_the_driver_changes_the_needs_of_an_open_session_and_the_planner_hears_it(
    api: RunningApi,
) -> None:
    log = event_log(api)
    payment = await seed_driver(api, "needs-bob")
    await seed_driver(api, "needs-eve")
    await api.csms.database.pool.execute("UPDATE drivers SET tier = 'gold' WHERE driver_id = 'needs-bob'")
    await register_charger(api, "CP-NEEDS-2")
    async with connected(Charger16, api.charger_url("CP-NEEDS-2"), "CP-NEEDS-2", "ocpp1.6") as charger:
        await booted16(charger)
        body = {"charger_id": "CP-NEEDS-2", "connector_id": 1, "payment_method_id": payment}
        status, created = await start(api, "needs-bob", {**body, "energy_needed_kwh": 20}, "needs-3")
        assert status == 201
        session_id = created["session_id"]

        # INITIATED: stored, nothing for the planner yet (no transaction)
        leaves = in_future(3)
        status, changed = await patch(api, "needs-bob", session_id, {"departure_at": iso(leaves)})
        assert status == 200, changed
        assert (changed["departure_at"], changed["energy_needed_kwh"]) == (leaves.isoformat(), 20.0)
        assert await stored(api, session_id) == (leaves, 20.0)
        assert await planned(api, "CP-NEEDS-2") is None

        # bad values name their field and change nothing; so do an empty body and unknown fields
        for bad, field in (
            ({"energy_needed_kwh": 0}, "energy_needed_kwh"),
            ({"energy_needed_kwh": 12, "departure_at": iso(in_future(-2))}, "departure_at"),
            ({"departure_at": "tomorrow"}, "departure_at"),
            ({"departure_kwh": 3}, "departure_kwh"),
        ):
            status, problem = await patch(api, "needs-bob", session_id, bad)
            assert (status, problem["field"]) == (400, field), problem
        status, problem = await patch(api, "needs-bob", session_id, {})
        assert status == 400
        assert await stored(api, session_id) == (leaves, 20.0)
        # another driver's session does not exist for them
        assert (await patch(api, "needs-eve", session_id, {"energy_needed_kwh": 5}))[0] == 404

        # ACTIVE: the transaction is known, so the planner hears the needs and the driver's tier
        action, request = await asyncio.wait_for(charger.received.get(), 10)
        assert action == "RemoteStartTransaction"
        started = await charger.call(
            call16.StartTransaction(
                connector_id=1, id_tag=request["id_tag"], meter_start=0, timestamp=now_text()
            ),
            suppress=False,
        )
        await log.wait_state(session_id, SessionState.ACTIVE)
        needs = await planned(api, "CP-NEEDS-2")
        assert needs is not None
        assert (needs.transaction_id, needs.energy_needed_kwh, needs.departure, needs.tier) == (
            str(started.transaction_id),
            20.0,
            leaves,
            "gold",
        )

        later = in_future(6)
        status, changed = await patch(
            api, "needs-bob", session_id, {"departure_at": iso(later), "energy_needed_kwh": 31.5}
        )
        assert status == 200
        needs = await planned(api, "CP-NEEDS-2")
        assert needs is not None
        assert (needs.energy_needed_kwh, needs.departure) == (31.5, later)
        status, changed = await patch(api, "needs-bob", session_id, {"departure_at": None})  # cleared
        assert (status, changed["departure_at"], changed["energy_needed_kwh"]) == (200, None, 31.5)
        needs = await planned(api, "CP-NEEDS-2")
        assert needs is not None
        assert (needs.energy_needed_kwh, needs.departure) == (31.5, None)

        # STOPPING: the needs are settled
        async with api.http.delete(
            f"{api.base_url}/v1/sessions/{session_id}", headers=api.headers("needs-bob")
        ) as r:
            assert r.status == 202
        status, problem = await patch(api, "needs-bob", session_id, {"energy_needed_kwh": 50})
        assert status == 409, problem
        assert await stored(api, session_id) == (None, 31.5)


async def test_an_rfid_session_tells_the_planner_its_drivers_tier_and_takes_needs_by_patch(
    api: RunningApi,
) -> None:
    log = event_log(api)
    await seed_driver(api, "needs-carl", rfid="RFID-NEEDS-CARL")
    await api.csms.database.pool.execute("UPDATE drivers SET tier = 'fleet' WHERE driver_id = 'needs-carl'")
    await register_charger(api, "CP-NEEDS-3")
    async with connected(Charger16, api.charger_url("CP-NEEDS-3"), "CP-NEEDS-3", "ocpp1.6") as charger:
        await booted16(charger)
        started = await charger.call(
            call16.StartTransaction(
                connector_id=1, id_tag="RFID-NEEDS-CARL", meter_start=0, timestamp=now_text()
            ),
            suppress=False,
        )
        active = await log.wait_for(lambda e: e.kind == "state" and e.state is SessionState.ACTIVE)
        needs = await planned(api, "CP-NEEDS-3")
        assert needs is not None
        assert (needs.transaction_id, needs.tier, needs.energy_needed_kwh, needs.departure) == (
            str(started.transaction_id),
            "fleet",
            None,
            None,
        )
        leaves = in_future(2)
        status, changed = await patch(
            api, "needs-carl", active.session_id, {"energy_needed_kwh": 18, "departure_at": iso(leaves)}
        )
        assert status == 200, changed
        needs = await planned(api, "CP-NEEDS-3")
        assert needs is not None
        assert (needs.energy_needed_kwh, needs.departure, needs.tier) == (18.0, leaves, "fleet")
