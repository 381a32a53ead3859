"""A charger's ``security_profile`` from the network file: diffed, applied into the registry, enforced
by the OCPP endpoint, and carried over from bodies applied before the column existed."""

from __future__ import annotations

import aiohttp
import pytest

from csms.storage.database import CSMS_MIGRATIONS, apply_migrations
from fairwatt.operator import FAIRWATT_MIGRATIONS
from tests.csms.chargers import Charger16, basic_auth, connected
from tests.operator.conftest import CHARGER_PASSWORD, EXAMPLE, RunningOperatorApi, network_files

pytestmark = pytest.mark.asyncio

PROFILE_LINE = "        security_profile: 1\n"  # depot-1's, in the example network


async def profiles(api: RunningOperatorApi) -> dict[str, int | None]:
    rows = await api.csms.database.pool.fetch("SELECT charger_id, security_profile FROM chargers")
    return {row["charger_id"]: row["security_profile"] for row in rows}


async def upgrade_status(api: RunningOperatorApi, charger_id: str, password: str) -> int:
    """The HTTP status of a refused WebSocket upgrade over the API's ws:// listener."""
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as failure:
            await http.ws_connect(
                api.charger_url(charger_id),
                protocols=("ocpp1.6",),
                headers={"Authorization": basic_auth(charger_id, password)},
            )
    return failure.value.status


async def test_apply_stores_each_chargers_profile_and_the_endpoint_enforces_it(
    operator: RunningOperatorApi,
) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert PROFILE_LINE in text
    status, applied = await operator.call("POST", "/v1/operator/network/apply", json=network_files(text))
    assert status == 200, applied
    # depot-1 names profile 1; the others name none: the node's profile (NULL)
    assert await profiles(operator) == {"depot-1": 1, "depot-2": None, "office-1": None}
    async with connected(
        Charger16, operator.charger_url("depot-1"), "depot-1", "ocpp1.6", password=CHARGER_PASSWORD
    ):
        pass  # profile 1 over this node's ws:// listener, with its password

    raised = text.replace(PROFILE_LINE, "        security_profile: 2\n")
    status, diff = await operator.call("POST", "/v1/operator/network/diff", json=network_files(raised))
    assert status == 200
    assert [(c["action"], c["id"], c["fields"]) for c in diff["changes"]] == [
        ("update", "depot-1", ["security_profile"])
    ]
    assert (await profiles(operator))["depot-1"] == 1  # diff writes nothing
    status, applied = await operator.call("POST", "/v1/operator/network/apply", json=network_files(raised))
    assert status == 200, applied
    assert (await profiles(operator))["depot-1"] == 2
    # the same charger, the same password, the same ws:// listener: now below its profile
    assert await upgrade_status(operator, "depot-1", CHARGER_PASSWORD) == 403

    unset = text.replace(PROFILE_LINE, "")
    status, diff = await operator.call("POST", "/v1/operator/network/diff", json=network_files(unset))
    change = diff["changes"][0]
    assert (change["id"], change["fields"], change["after"]["security_profile"]) == (
        "depot-1",
        ["security_profile"],
        None,
    )
    status, applied = await operator.call("POST", "/v1/operator/network/apply", json=network_files(unset))
    assert status == 200, applied
    assert (await profiles(operator))["depot-1"] is None


async def test_an_upgrade_copies_the_applied_profiles_into_the_registry(operator: RunningOperatorApi) -> None:
    raised = EXAMPLE.read_text(encoding="utf-8").replace(PROFILE_LINE, "        security_profile: 3\n")
    status, applied = await operator.call("POST", "/v1/operator/network/apply", json=network_files(raised))
    assert status == 200, applied
    pool = operator.csms.database.pool
    # as a database applied before csms migration 0008 looks: the profile in the body only
    await pool.execute("UPDATE chargers SET security_profile = NULL")
    await pool.execute("DELETE FROM schema_migrations WHERE component = 'fairwatt' AND version = 3")
    applied_now = await apply_migrations(pool, [CSMS_MIGRATIONS, FAIRWATT_MIGRATIONS])
    assert applied_now == [("fairwatt", 3)]
    assert await profiles(operator) == {"depot-1": 3, "depot-2": None, "office-1": None}
