"""``fairwatt drivers``: create a driver with an RFID and payment token, mint a bearer token the API
accepts, and clear errors for what a user can fix."""

from __future__ import annotations

import asyncio
import json

import pytest

from fairwatt.cli import main
from sessions.auth import Role
from tests.sessions.conftest import TOKEN_SECRET, RunningApi


@pytest.mark.asyncio
async def test_create_a_driver_and_use_its_token(
    api: RunningApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = api.csms.settings.database_dsn
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("FAIRWATT_TOKEN_SECRET", TOKEN_SECRET)

    # the CLI runs its own event loop: run it in a thread, as a separate process would
    async def cli(*argv: str) -> int:
        return await asyncio.to_thread(main, list(argv))

    assert (
        await cli("drivers", "create", "olga", "--rfid", "04A1B2", "--payment-token", "tok_1", "--json") == 0
    )
    created = json.loads(capsys.readouterr().out)
    assert created == {"driver_id": "olga", "rfid_tokens": ["04A1B2"], "payment_method_id": "PM-olga"}
    assert await cli("drivers", "create", "olga", "--rfid", "04A1B2", "--rfid", "04FFFF") == 0  # re-runnable
    capsys.readouterr()
    rows = await api.csms.database.pool.fetch("SELECT id_token FROM driver_tokens WHERE driver_id = 'olga'")
    assert sorted(r["id_token"] for r in rows) == ["04A1B2", "04FFFF"]
    assert await cli("drivers", "token", "olga", "--ttl-s", "60") == 0
    token = capsys.readouterr().out.strip()
    principal = api.sessions.issuer.verify(token)
    assert (principal.subject, principal.role) == ("olga", Role.DRIVER)
    async with api.http.get(f"{api.base_url}/v1/sessions", headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200

    assert await cli("drivers", "create", "pete", "--rfid", "04A1B2") == 1  # olga's tag
    assert "belongs to another driver" in capsys.readouterr().err
    assert await cli("drivers", "token", "nobody") == 1
    assert "no driver nobody" in capsys.readouterr().err
    monkeypatch.delenv("FAIRWATT_TOKEN_SECRET")
    assert await cli("drivers", "token", "olga") == 1
    assert "token secret" in capsys.readouterr().err
