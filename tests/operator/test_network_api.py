"""Network diff and apply through the operator API: idempotent, atomic, audited, scoped to one CPO."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.v16 import call as call16

from csms.smart_charging import SMART_CHARGING
from fairwatt.client import ClientError, OperatorClient
from fairwatt.operator.local_lists import LocalListSync
from tests.csms.chargers import connected
from tests.operator.chargers import OperatedCharger16
from tests.operator.conftest import CHARGER_PASSWORD, EXAMPLE, RunningOperatorApi, network_files

BASE_OTHER = """\
operator: other
stations:
  - id: elsewhere
    time_zone: Europe/Paris
    grid_limit_kw: 22
    limits: {id: main, limit_a: 32, evses: [else-1]}
    chargers:
      - {id: else-1, connection: 3P, voltage_v: 230, max_current_a: 32}
local_lists:
  - {id: fleet-cards, chargers: [else-1], entries: [{id_token: 0411}]}   # acme has one of that name too
demand_response:
  programs:
    - name: other-peak
      vtn_url: http://127.0.0.1:8081/OpenADR2/Simple/2.0b
      ven_name: other
      stations: [elsewhere]
"""

TABLES = (
    "SELECT station_id, cpo_id, name, time_zone FROM stations ORDER BY 1",
    "SELECT charger_id, station_id, cpo_id, model, password_hash IS NOT NULL AS pw FROM chargers ORDER BY 1",
    "SELECT charger_id, evse_id, connector_id, connector_type, max_power_kw FROM connectors ORDER BY 1, 2",
    "SELECT tariff_id, version, cpo_id FROM tariffs ORDER BY 1, 2",
    "SELECT scope, scope_id, tariff_id FROM tariff_assignments ORDER BY 1, 2",
    "SELECT kind, resource_id, cpo_id, version FROM network_resources ORDER BY 1, 2",
    "SELECT count(*) FROM operator_audit_log",
)


async def system_state(api: RunningOperatorApi) -> list[list[tuple[Any, ...]]]:
    pool = api.csms.database.pool
    return [[tuple(row.values()) for row in await pool.fetch(sql)] for sql in TABLES]


@pytest.mark.asyncio
async def test_diff_then_apply_then_apply_again_changes_nothing(operator: RunningOperatorApi) -> None:
    status, diff = await operator.call("POST", "/v1/operator/network/diff", json=network_files())
    assert status == 200
    created = {(c["kind"], c["id"]) for c in diff["changes"] if c["action"] == "create"}
    assert created == {
        ("tariff", "acme-standard"),
        ("tariff", "acme-night"),
        ("station", "depot-berlin"),
        ("station", "office-munich"),
        ("charger", "depot-1"),
        ("charger", "depot-2"),
        ("charger", "office-1"),
        ("local_list", "fleet-cards"),
        ("demand_response", "grid-peak"),
    }
    assert await system_state(operator) == [[], [], [], [], [], [], [(0,)]]  # diff changes nothing

    status, applied = await operator.call("POST", "/v1/operator/network/apply", json=network_files())
    assert status == 200, applied
    assert len(applied["changes"]) == 9
    pool = operator.csms.database.pool
    depot = await pool.fetchrow("SELECT * FROM chargers WHERE charger_id = 'depot-1'")
    assert (depot["station_id"], depot["cpo_id"], depot["model"]) == (
        "depot-berlin",
        "acme",
        "Eve Double Pro-line",
    )
    assert depot["password_hash"].startswith("pbkdf2_sha256$")  # resolved from env:DEPOT_1_PASSWORD, hashed
    assert (
        await pool.fetchval("SELECT tariff_id FROM tariff_assignments WHERE scope_id = 'depot-2'")
        == "acme-night"
    )
    audit = await pool.fetch("SELECT actor, action, kind FROM operator_audit_log ORDER BY id")
    assert len(audit) == 9
    assert {row["actor"].split(".")[0] for row in audit} == {"alice"}
    # local list pushed to its chargers: none connected, each reported
    assert {(p["charger_id"], p["outcome"]) for p in applied["effects"]["local_lists"]} == {
        ("depot-1", "not_connected"),
        ("depot-2", "not_connected"),
    }

    before = await system_state(operator)
    status, again = await operator.call("POST", "/v1/operator/network/apply", json=network_files())
    assert status == 200
    assert again["changes"] == []
    assert await system_state(operator) == before  # no new tariff version, no audit row
    status, diff = await operator.call("POST", "/v1/operator/network/diff", json=network_files())
    assert diff["changes"] == []


@pytest.mark.asyncio
async def test_an_update_names_its_fields_and_publishes_a_new_tariff_version(
    operator: RunningOperatorApi,
) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert (await operator.call("POST", "/v1/operator/network/apply", json=network_files(text)))[0] == 200
    changed = text.replace("name: Acme office Munich", "name: Acme Munich").replace(
        "price: 0.39", "price: 0.42"
    )
    status, diff = await operator.call("POST", "/v1/operator/network/diff", json=network_files(changed))
    assert status == 200
    assert [(c["action"], c["kind"], c["id"], c["fields"]) for c in diff["changes"]] == [
        ("update", "tariff", "acme-standard", ["elements"]),
        ("update", "station", "office-munich", ["name"]),
    ]
    status, _ = await operator.call("POST", "/v1/operator/network/apply", json=network_files(changed))
    assert status == 200
    pool = operator.csms.database.pool
    assert await pool.fetchval("SELECT max(version) FROM tariffs WHERE tariff_id = 'acme-standard'") == 2
    assert (
        await pool.fetchval("SELECT name FROM stations WHERE station_id = 'office-munich'") == "Acme Munich"
    )
    versions = await operator.sessions.tariffs.versions("acme-standard", fresh=True)
    assert versions is not None
    assert str(versions.versions[-1].elements[0].price_components[0].price) == "0.42"


@pytest.mark.asyncio
async def test_a_failing_change_leaves_the_system_as_it_was(operator: RunningOperatorApi) -> None:
    # an unresolvable secret, met after the tariffs and stations were already written
    text = EXAMPLE.read_text(encoding="utf-8").replace("env:DEPOT_1_PASSWORD", "env:NOT_SET_ANYWHERE")
    status, problem = await operator.call("POST", "/v1/operator/network/apply", json=network_files(text))
    assert status == 422
    assert "nothing was changed" in problem["detail"]
    assert "NOT_SET_ANYWHERE" in problem["detail"]
    assert await system_state(operator) == [[], [], [], [], [], [], [(0,)]]

    # a charger that cannot be removed (it has a transaction), in the same apply as a new station
    assert (await operator.call("POST", "/v1/operator/network/apply", json=network_files()))[0] == 200
    pool = operator.csms.database.pool
    await pool.execute(
        """INSERT INTO transactions (charger_id, ocpp_version, transaction_id, evse_id)
           VALUES ('office-1', '1.6', '1', 1)"""
    )
    before = await system_state(operator)
    without_office = EXAMPLE.read_text(encoding="utf-8").split("  - id: office-munich")[0] + (
        EXAMPLE.read_text(encoding="utf-8").split("local_lists:")[1].join(["local_lists:", ""])
    )
    changed = without_office.replace("name: Acme depot Berlin", "name: renamed")
    status, problem = await operator.call("POST", "/v1/operator/network/apply", json=network_files(changed))
    assert status == 409, problem
    assert "office-1 cannot be removed" in problem["detail"]
    assert await system_state(operator) == before


@pytest.mark.asyncio
async def test_an_invalid_file_is_422_with_every_error_located(operator: RunningOperatorApi) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace("grid_limit_kw: 22", "grid_limt_kw: 22")
    text = text.replace("password: env:DEPOT_1_PASSWORD", "password: hunter2")
    status, problem = await operator.call("POST", "/v1/operator/network/apply", json=network_files(text))
    assert status == 422
    located = [(e["file"], e["line"]) for e in problem["errors"]]
    lines = text.splitlines()
    assert located == [
        ("network.yaml", next(k + 1 for k, line in enumerate(lines) if "hunter2" in line)),
        ("network.yaml", next(k + 1 for k, line in enumerate(lines) if "grid_limt_kw" in line)),
    ]


@pytest.mark.asyncio
async def test_operators_own_their_ids(operator: RunningOperatorApi) -> None:
    assert (await operator.call("POST", "/v1/operator/network/apply", json=network_files()))[0] == 200
    # the file names operator acme: another CPO's key may not apply it
    status, problem = await operator.call(
        "POST", "/v1/operator/network/apply", key=operator.other_key, json=network_files()
    )
    assert status == 403
    # without the operator line, the ids are still acme's
    text = EXAMPLE.read_text(encoding="utf-8").replace("operator: acme\n", "")
    status, problem = await operator.call(
        "POST", "/v1/operator/network/apply", key=operator.other_key, json=network_files(text)
    )
    assert status == 409
    assert "belongs to another operator" in problem["detail"]
    # another operator's own network, with a programme and a station of its own, applies beside acme's
    own = BASE_OTHER
    status, applied = await operator.call(
        "POST", "/v1/operator/network/apply", key=operator.other_key, json=network_files(own)
    )
    assert status == 200, applied
    assert {(c["kind"], c["id"]) for c in applied["changes"]} == {
        ("station", "elsewhere"),
        ("charger", "else-1"),
        ("local_list", "fleet-cards"),
        ("demand_response", "other-peak"),
    }
    status, audit = await operator.call("GET", "/v1/operator/audit", key=operator.other_key)
    assert [e["resource_id"] for e in audit["entries"]] == [
        "other-peak",
        "fleet-cards",
        "else-1",
        "elsewhere",
    ]  # newest first
    status, audit = await operator.call("GET", "/v1/operator/audit?limit=2")
    assert len(audit["entries"]) == 2


@pytest.mark.asyncio
async def test_applying_a_station_keeps_its_demand_response_caps(operator: RunningOperatorApi) -> None:
    assert (await operator.call("POST", "/v1/operator/network/apply", json=network_files()))[0] == 200
    start = datetime.now(UTC) + timedelta(minutes=10)
    declaration = {
        "stations": ["depot-berlin"],
        "cut_percent": 50,
        "start": start.isoformat(),
        "duration_s": 3600,
    }
    status, event = await operator.call("POST", "/v1/operator/dr/events", json=declaration)
    assert status == 201, event
    loop = operator.app[SMART_CHARGING]

    def demand_response_caps() -> list[float]:
        caps = loop.state("depot-berlin").site.caps
        return [c.limit_kw for c in caps if c.source.startswith("dr") and c.limit_kw is not None]

    assert demand_response_caps() == [30.0]  # half of the 60 kW grid connection
    async with operator.http.get(f"{operator.base_url}/metrics") as response:
        assert "fairwatt_dr_events_active 0.0" in await response.text()  # declared, not in force yet
    now = {**declaration, "start": datetime.now(UTC).isoformat(), "cut_percent": 20}
    assert (await operator.call("POST", "/v1/operator/dr/events", json=now))[0] == 201
    async with operator.http.get(f"{operator.base_url}/metrics") as response:
        assert "fairwatt_dr_events_active 1.0" in await response.text()
    assert sorted(demand_response_caps()) == [30.0, 48.0]
    text = EXAMPLE.read_text(encoding="utf-8").replace("name: Acme depot Berlin", "name: Depot Berlin")
    status, applied = await operator.call("POST", "/v1/operator/network/apply", json=network_files(text))
    assert status == 200
    assert applied["effects"]["stations"] == [{"station": "depot-berlin", "effect": "re-solved"}]
    assert sorted(demand_response_caps()) == [30.0, 48.0]  # laid over the station's refreshed caps again


@pytest.mark.asyncio
async def test_a_charger_offline_at_apply_gets_its_local_list_when_it_boots(
    operator: RunningOperatorApi,
) -> None:
    _, applied = await operator.call("POST", "/v1/operator/network/apply", json=network_files())
    assert {p["outcome"] for p in applied["effects"]["local_lists"]} == {"not_connected"}
    url = operator.charger_url("depot-1")
    async with connected(OperatedCharger16, url, "depot-1", "ocpp1.6", password=CHARGER_PASSWORD) as charger:
        await charger.call(call16.BootNotification(charge_point_vendor="Alfen", charge_point_model="Eve"))
        while (received := await asyncio.wait_for(charger.received.get(), timeout=5))[0] != "SendLocalList":
            pass
        request = received[1]
        assert (request["list_version"], request["update_type"]) == (1, "Full")
        assert {(e["id_tag"], e["id_tag_info"]["status"]) for e in request["local_authorization_list"]} == {
            ("04A1B2C3D4", "Accepted"),
            ("04E5F6A7B8", "Accepted"),
            ("04DEADBEEF", "Blocked"),
        }
        # a charger holding the version already is not sent it again
        csms = operator.csms
        sync = LocalListSync(csms.database, csms.commands, csms.live_state, csms.tasks)
        assert not await sync.sync("depot-1")
        queued = []
        while not charger.received.empty():
            queued.append(charger.received.get_nowait()[0])
        assert [a for a in queued if a != "SetChargingProfile"] == ["GetLocalListVersion"]  # no SendLocalList


@pytest.mark.asyncio
async def test_the_client_prints_the_servers_located_errors(operator: RunningOperatorApi) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace("grid_limit_kw: 22", "grid_limt_kw: 22")
    client = OperatorClient(operator.base_url, operator.acme_key)
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(client.post, "/v1/operator/network/diff", network_files(text))
    line = next(k + 1 for k, row in enumerate(text.splitlines()) if "grid_limt_kw" in row)
    first, located = str(caught.value).splitlines()
    assert first == "422 Unprocessable Entity: the network file has 1 error(s)"
    assert located.startswith(f"network.yaml:{line}:5: stations[1].grid_limt_kw: unknown key (did you mean")


@pytest.mark.asyncio
async def test_a_changed_list_reaches_a_charger_holding_the_last_one_as_a_differential_update(
    operator: RunningOperatorApi,
) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    await operator.call("POST", "/v1/operator/network/apply", json=network_files(text))
    url = operator.charger_url("depot-1")
    async with connected(OperatedCharger16, url, "depot-1", "ocpp1.6", password=CHARGER_PASSWORD) as charger:
        await charger.call(call16.BootNotification(charge_point_vendor="Alfen", charge_point_model="Eve"))
        while (received := await asyncio.wait_for(charger.received.get(), timeout=5))[0] != "SendLocalList":
            pass
        assert (received[1]["list_version"], received[1]["update_type"]) == (1, "Full")
        # one card blocked, one taken off the list, one added
        changed = (
            text.replace("{id_token: 04A1B2C3D4, type: ISO14443}", "{id_token: 04A1B2C3D4, status: Blocked}")
            .replace("      - {id_token: 04E5F6A7B8, type: ISO14443}\n", "")
            .replace(
                "{id_token: 04DEADBEEF, status: Blocked}",
                "{id_token: 04DEADBEEF, status: Blocked}\n      - {id_token: 04NEW00001}",
            )
        )
        _, applied = await operator.call("POST", "/v1/operator/network/apply", json=network_files(changed))
        depot_1 = [p for p in applied["effects"]["local_lists"] if p["charger_id"] == "depot-1"]
        assert [(p["update"], p["outcome"], p["version"]) for p in depot_1] == [
            ("Differential", "accepted", 2)
        ]
        sent = []
        while not charger.received.empty():
            action, request = charger.received.get_nowait()
            if action == "SendLocalList":
                sent.append(request)
        assert (sent[-1]["list_version"], sent[-1]["update_type"]) == (2, "Differential")
        entries = sent[-1]["local_authorization_list"]
        assert {(e["id_tag"], (e.get("id_tag_info") or {}).get("status")) for e in entries} == {
            ("04A1B2C3D4", "Blocked"),
            ("04NEW00001", "Accepted"),
            ("04E5F6A7B8", None),  # removed
        }
