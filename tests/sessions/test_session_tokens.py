"""Session-scoped tokens: they watch one session, nothing else, and expire with it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.sessions.conftest import RunningApi
from tests.sessions.helpers import seed_driver

pytestmark = pytest.mark.asyncio


async def _session(api: RunningApi, driver_id: str, state: str = "ACTIVE") -> str:
    session_id = str(uuid.uuid4())
    await api.csms.database.pool.execute(
        """INSERT INTO charging_sessions
               (session_id, driver_id, charger_id, evse_id, state, origin, started_at)
           VALUES ($1, $2, 'CP-T', 1, $3, 'plug_and_charge', now())""",
        uuid.UUID(session_id),
        driver_id,
        state,
    )
    return session_id


async def test_a_session_token_reads_its_session_only_and_expires_with_it(api: RunningApi) -> None:
    alice, bob = f"alice-{uuid.uuid4().hex[:8]}", f"bob-{uuid.uuid4().hex[:8]}"  # one database per run
    await seed_driver(api, alice)
    await seed_driver(api, bob)
    mine = await _session(api, alice)
    other = await _session(api, bob)
    base = f"{api.base_url}/v1/sessions"

    async with api.http.post(f"{base}/{mine}/token", headers=api.headers(bob)) as response:
        assert response.status == 404  # not bob's session
    async with api.http.post(f"{base}/{mine}/token", headers=api.headers(alice)) as response:
        assert response.status == 201
        minted = await response.json()
    assert minted["session_id"] == mine
    scoped = {"Authorization": f"Bearer {minted['token']}"}

    async with api.http.get(f"{base}/{mine}", headers=scoped) as response:
        assert response.status == 200
        assert (await response.json())["session_id"] == mine
    async with api.http.get(f"{base}/{other}", headers=scoped) as response:
        assert response.status == 404
    async with api.http.post(f"{base}/{mine}/token", headers=scoped) as response:
        assert response.status == 403  # a session token mints nothing
    async with api.http.post(
        base, headers={**scoped, "Idempotency-Key": "k"}, json={"charger_id": "CP-T", "connector_id": 1}
    ) as response:
        assert response.status == 403  # nor starts anything

    await api.csms.database.pool.execute(
        "UPDATE charging_sessions SET state = 'COMPLETED', ended_at = $2 WHERE session_id = $1",
        uuid.UUID(mine),
        datetime.now(UTC) - timedelta(minutes=10),
    )
    async with api.http.get(f"{base}/{mine}", headers=scoped) as response:
        assert response.status == 401
        assert "expired with its session" in (await response.json())["detail"]
    async with api.http.post(f"{base}/{mine}/token", headers=api.headers(alice)) as response:
        assert response.status == 409
