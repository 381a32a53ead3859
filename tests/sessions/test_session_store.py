"""The session store on the real PostgreSQL: transitions are conditional, so repeats and races
change a session once; idempotency keys give one session per key."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from sessions.events import SessionOrigin, SessionState
from sessions.session_store import Changes, IdempotencyConflictError, NewSession, SessionStore
from tests.sessions.conftest import RunningApi
from tests.sessions.helpers import register_charger, seed_driver

pytestmark = pytest.mark.asyncio


def app_session(driver_id: str, charger_id: str) -> NewSession:
    return NewSession(
        driver_id=driver_id,
        charger_id=charger_id,
        evse_id=1,
        state=SessionState.INITIATED,
        origin=SessionOrigin.APP,
        id_token="FW" + uuid.uuid4().hex[:18],
    )


async def test_racing_transitions_change_a_session_once(api: RunningApi) -> None:
    await seed_driver(api, "vic")
    await register_charger(api, "CP-V")
    store = SessionStore(api.csms.database)
    made = await store.create_idempotent(app_session("vic", "CP-V"), key="k", request_hash="h", data={})
    session_id = made.record.session_id
    outcomes = await asyncio.gather(
        *(
            store.transition(
                session_id,
                target,
                [SessionState.INITIATED],
                Changes(failure_reason="timeout" if target is SessionState.FAILED else None),
                {"state": target.value},
            )
            for target in [SessionState.ACTIVE, SessionState.FAILED] * 5
        )
    )
    winners = [outcome for outcome in outcomes if outcome is not None]
    assert len(winners) == 1
    record, event = winners[0]
    assert (event.kind, event.state) == ("state", record.state)
    stored = await store.events_after(session_id, 0)
    assert [e.state for e in stored] == [SessionState.INITIATED, record.state]
    assert await store.transition(session_id, record.state, [SessionState.INITIATED], Changes(), {}) is None


async def test_one_session_per_idempotency_key_even_when_requests_race(api: RunningApi) -> None:
    await seed_driver(api, "wes")
    await register_charger(api, "CP-W")
    store = SessionStore(api.csms.database)
    results = await asyncio.gather(
        *(
            store.create_idempotent(app_session("wes", "CP-W"), key="same", request_hash="h", data={})
            for _ in range(8)
        )
    )
    assert len({r.record.session_id for r in results}) == 1
    assert sum(r.event is not None for r in results) == 1
    with pytest.raises(IdempotencyConflictError):
        await store.create_idempotent(app_session("wes", "CP-W"), key="same", request_hash="other", data={})
    count = await api.csms.database.pool.fetchval(
        "SELECT count(*) FROM charging_sessions WHERE driver_id = 'wes'"
    )
    assert count == 1
