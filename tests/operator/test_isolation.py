"""An operator sees and controls only its own network; keys can be revoked; the API is documented."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from fairwatt.cli import main
from fairwatt.operator.keys import mint_key, revoke_key
from sessions.auth import Role
from tests.csms.chargers import Charger16, connected
from tests.operator.conftest import CHARGER_PASSWORD, TOKEN_SECRET, RunningOperatorApi, network_files


@pytest.mark.asyncio
async def test_another_operators_chargers_sessions_stations_and_tariffs_are_404(
    operator: RunningOperatorApi,
) -> None:
    assert (await operator.call("POST", "/v1/operator/network/apply", json=network_files()))[0] == 200
    pool = operator.csms.database.pool
    session_id = uuid.uuid4()
    await pool.execute(
        """INSERT INTO charging_sessions (session_id, charger_id, evse_id, state, origin, transaction_id)
           VALUES ($1, 'depot-1', 1, 'ACTIVE', 'rfid', '7')""",
        session_id,
    )
    other = operator.other_key
    status, listing = await operator.call("GET", "/v1/operator/chargers", key=other)
    assert (status, listing["chargers"]) == (200, [])
    status, listing = await operator.call("GET", "/v1/operator/sessions", key=other)
    assert (status, listing["sessions"]) == (200, [])
    status, listing = await operator.call("GET", "/v1/operator/stations", key=other)
    assert (status, listing["stations"]) == (200, [])
    url = operator.charger_url("depot-1")
    async with connected(Charger16, url, "depot-1", "ocpp1.6", password=CHARGER_PASSWORD) as charger:
        for method, path, body in (
            ("GET", "/v1/operator/chargers/depot-1", None),
            ("POST", "/v1/operator/chargers/depot-1/reset", {"type": "hard"}),
            ("POST", "/v1/operator/chargers/depot-1/unlock", {}),
            ("GET", "/v1/operator/chargers/depot-1/config", None),
            ("GET", "/v1/operator/chargers/depot-1/logs", None),
            ("GET", f"/v1/operator/sessions/{session_id}", None),
            ("POST", f"/v1/operator/sessions/{session_id}/stop", {}),
            ("GET", "/v1/operator/stations/depot-berlin/schedule", None),
            ("GET", "/v1/operator/tariffs/acme-standard", None),
            ("PUT", "/v1/operator/tariffs/acme-standard", {"currency": "EUR", "elements": []}),
        ):
            status, problem = await operator.call(method, path, key=other, json=body)
            assert status == 404, (method, path, problem)
            assert "in your network" in problem["detail"]
        assert charger.received.empty()  # nothing reached the charger
        status, answer = await operator.call(
            "POST", "/v1/operator/chargers/depot-1/reset", json={"type": "hard"}
        )
        assert (status, answer["status"]) == (200, "Rejected")  # its own operator reaches it
    assert await pool.fetchval("SELECT max(version) FROM tariffs WHERE tariff_id = 'acme-standard'") == 1


@pytest.mark.asyncio
async def test_keys_roles_and_revocation(operator: RunningOperatorApi) -> None:
    key_id, key = mint_key(operator.sessions.issuer, "acme", "carol")
    assert key_id.startswith("carol.")
    assert (await operator.call("GET", "/v1/operator/chargers", key=key))[0] == 200
    assert await revoke_key(operator.csms.database, key_id, "acme")
    assert not await revoke_key(operator.csms.database, key_id, "acme")
    fresh_id, fresh = mint_key(operator.sessions.issuer, "acme", "dave")
    await revoke_key(operator.csms.database, fresh_id)
    status, problem = await operator.call("GET", "/v1/operator/chargers", key=fresh)
    assert (status, problem["detail"]) == (401, "this operator key has been revoked")
    driver = operator.sessions.issuer.mint("driver-1", Role.DRIVER)
    assert (await operator.call("GET", "/v1/operator/chargers", key=driver))[0] == 403
    async with operator.http.get(f"{operator.base_url}/v1/operator/chargers") as response:
        assert response.status == 401
    with pytest.raises(ValueError, match="key name"):
        mint_key(operator.sessions.issuer, "acme", "has space")


@pytest.mark.asyncio
async def test_bad_parameters_are_400_problems(operator: RunningOperatorApi) -> None:
    assert (await operator.call("POST", "/v1/operator/network/apply", json=network_files()))[0] == 200
    for method, path, body, words in (
        ("GET", "/v1/operator/chargers/depot-1/logs?since=yesterday", None, "ISO 8601"),
        ("GET", "/v1/operator/chargers/depot-1/logs?limit=0", None, "between 1 and 5000"),
        ("POST", "/v1/operator/chargers/depot-1/reset", {"type": "gentle"}, "soft or hard"),
        ("POST", "/v1/operator/chargers/depot-1/availability", {"operative": "yes"}, "true or false"),
        ("GET", "/v1/operator/sessions?state=RUNNING", None, "'state' must be one of"),
        ("POST", "/v1/operator/network/diff", {"files": {}}, "'files'"),
    ):
        status, problem = await operator.call(method, path, json=body)
        assert status == 400, (path, problem)
        assert words in problem["detail"]
    status, problem = await operator.call("POST", "/v1/operator/chargers/depot-1/reset", json={})
    assert (status, problem["detail"]) == (409, "charger depot-1 is not connected")


@pytest.mark.asyncio
async def test_the_operator_api_is_in_the_openapi_document(operator: RunningOperatorApi) -> None:
    async with operator.http.get(f"{operator.base_url}/v1/openapi.json") as response:
        document = await response.json()
    paths = document["paths"]
    for path in (
        "/v1/operator/network/apply",
        "/v1/operator/chargers/{charger_id}/firmware",
        "/v1/operator/sessions/{session_id}/stop",
        "/v1/operator/stations/{station_id}/schedule",
        "/v1/operator/tariffs/{tariff_id}",
    ):
        assert path in paths
    assert paths["/v1/operator/network/apply"]["post"]["security"] == [{"bearer": []}]


@pytest.mark.asyncio
async def test_create_key_and_revoke_key_commands(
    operator: RunningOperatorApi,
    database_dsn: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAIRWATT_TOKEN_SECRET", TOKEN_SECRET)
    assert main(["operators", "create-key", "--cpo", "acme", "--name", "erin", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["key_id"].startswith("erin.")
    assert (await operator.call("GET", "/v1/operator/chargers", key=created["key"]))[0] == 200
    monkeypatch.setenv("DATABASE_URL", database_dsn)
    assert await asyncio.to_thread(main, ["operators", "revoke-key", created["key_id"]]) == 0
    assert capsys.readouterr().out.strip() == f"key {created['key_id']} revoked"
    revoked = await operator.csms.database.pool.fetchval(
        "SELECT count(*) FROM operator_key_revocations WHERE key_id = $1", created["key_id"]
    )
    assert revoked == 1
    monkeypatch.delenv("FAIRWATT_TOKEN_SECRET")
    assert main(["operators", "create-key", "--cpo", "acme"]) == 1
    assert "FAIRWATT_TOKEN_SECRET" in capsys.readouterr().err
