"""Each operations command of the CLI end to end: ``fairwatt`` -> operator API -> command bus -> an
``ocpp``-package charger on 127.0.0.1, over a real server and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ocpp.v16 import call as call16

from csms.smart_charging import SMART_CHARGING
from tests.csms.chargers import connected
from tests.operator.chargers import OperatedCharger16, OperatedCharger201
from tests.operator.conftest import CHARGER_PASSWORD, EXAMPLE, Cli, RunningOperatorApi, next_received


@pytest.mark.asyncio
async def test_diff_apply_and_charger_commands(operator: RunningOperatorApi, cli: Cli) -> None:
    code, out, _ = await cli("diff", "-f", str(EXAMPLE), "--exit-code")
    assert code == 2
    assert "+ station depot-berlin" in out
    assert "9 to create, 0 to update, 0 to delete" in out
    code, out, _ = await cli("apply", "-f", str(EXAMPLE))
    assert code == 0
    assert "9 to create" in out
    assert ["depot-berlin", "re-solved"] in [line.split() for line in out.splitlines()]
    code, out, _ = await cli("apply", "-f", str(EXAMPLE))
    assert (code, out.splitlines()[0]) == (0, "no changes: the running system matches the file")

    url = operator.charger_url
    async with (
        connected(
            OperatedCharger16, url("depot-1"), "depot-1", "ocpp1.6", password=CHARGER_PASSWORD
        ) as depot,
        connected(OperatedCharger201, url("office-1"), "office-1", "ocpp2.0.1") as office,
    ):
        listing = await cli.json("chargers", "list")
        assert [(c["charger_id"], c["connected"]) for c in listing["chargers"]] == [
            ("depot-1", True),
            ("depot-2", False),
            ("office-1", True),
        ]
        code, out, _ = await cli("chargers", "list", "--station", "office-munich")
        assert out.splitlines()[0].split()[:2] == ["CHARGER_ID", "STATION_ID"]
        assert [line.split()[0] for line in out.splitlines()[1:]] == ["office-1"]
        shown = await cli.json("chargers", "show", "depot-1")
        assert (shown["ocpp_version"], shown["model"]) == ("1.6", "Eve Double Pro-line")
        assert [c["evse_id"] for c in shown["connectors"]] == [1, 2]

        code, out, _ = await cli("chargers", "restart", "depot-1", "--hard")
        assert (code, out.strip()) == (0, "depot-1: Reset accepted (Accepted)")
        assert (await next_received(depot, "Reset"))["type"] == "Hard"
        code, out, _ = await cli("chargers", "restart", "office-1")
        assert code == 0
        assert (await next_received(office, "Reset"))["type"] == "OnIdle"

        code, _, _ = await cli("chargers", "availability", "depot-1", "inoperative", "--evse", "2")
        assert code == 0
        assert await next_received(depot, "ChangeAvailability") == {"connector_id": 2, "type": "Inoperative"}
        code, out, _ = await cli("chargers", "unlock", "depot-1", "--evse", "1")
        assert (code, out.strip()) == (0, "depot-1: UnlockConnector accepted (Unlocked)")

        code, out, _ = await cli("chargers", "config", "get", "depot-1", "HeartbeatInterval", "NoSuchKey")
        assert code == 0
        rows = [line.split()[:2] for line in out.splitlines()[1:]]
        assert rows == [["HeartbeatInterval", "300"], ["NoSuchKey", "(unknown"]]
        code, _, _ = await cli("chargers", "config", "set", "depot-1", "HeartbeatInterval", "60")
        assert code == 0
        assert await next_received(depot, "ChangeConfiguration") == {
            "key": "HeartbeatInterval",
            "value": "60",
        }
        code, out, _ = await cli("chargers", "config", "get", "office-1", "OCPPCommCtrlr.HeartbeatInterval")
        assert out.splitlines()[1].split()[:2] == ["OCPPCommCtrlr.HeartbeatInterval", "300"]
        code, _, _ = await cli(
            "chargers", "config", "set", "office-1", "OCPPCommCtrlr.HeartbeatInterval", "60"
        )
        assert code == 0
        request = await next_received(office, "SetVariables")
        assert request["set_variable_data"][0]["attribute_value"] == "60"

        code, _, _ = await cli("chargers", "diagnostics", "depot-1", "--location", "ftp://logs.example/acme/")
        assert code == 0
        assert (await next_received(depot, "GetDiagnostics"))["location"] == "ftp://logs.example/acme/"

        # a rollout to three chargers, one of them offline: progress per charger, exit status 1
        code, out, err = await cli(
            "chargers",
            "firmware",
            "update",
            "depot-1",
            "office-1",
            "depot-2",
            "--location",
            "https://fw.example/2.1",
        )
        assert code == 1
        assert err.splitlines() == [
            "[1/3] depot-1: accepted",
            "[2/3] office-1: accepted (Accepted)",
            "[3/3] depot-2: failed: 409 Conflict: charger depot-2 is not connected",
        ]
        assert out.strip() == "firmware update accepted by 2 of 3 chargers"
        assert (await next_received(depot, "UpdateFirmware"))["location"] == "https://fw.example/2.1"
        code, out, err = await cli(
            "chargers",
            "firmware",
            "update",
            "--station",
            "office-munich",
            "--location",
            "https://fw.example/2.2",
        )
        assert (code, err.strip()) == (0, "[1/1] office-1: accepted (Accepted)")

        await operator.csms.message_log.flush()
        logs = await cli.json("chargers", "logs", "depot-1", "--since", "2000-01-01T00:00:00Z")
        actions = [m["action"] for m in logs["messages"] if m["direction"] == "out"]
        assert {"Reset", "ChangeAvailability", "UnlockConnector", "UpdateFirmware"} <= set(actions)
        code, out, _ = await cli("chargers", "logs", "depot-1", "--since", "2000-01-01T00:00:00Z")
        assert any("-> CALL   Reset" in line for line in out.splitlines())
        # --follow: the first poll prints the history, a later one what arrived since
        followed = asyncio.create_task(
            cli(
                "chargers",
                "logs",
                "depot-1",
                "--follow",
                "--interval",
                "0.05",
                "--polls",
                "40",
                "--limit",
                "1000",
            )
        )
        await asyncio.sleep(0.2)
        await depot.call(call16.Heartbeat())
        await operator.csms.message_log.flush()
        code, out, _ = await followed
        assert code == 0
        assert "<- CALL   Heartbeat" in out
        assert out.index("-> CALL   Reset") < out.index("<- CALL   Heartbeat")

        audit = await operator.csms.database.pool.fetch(
            "SELECT action FROM operator_audit_log"
            " WHERE kind = 'charger' AND resource_id = 'depot-1' ORDER BY id"
        )
        assert "charger.reset" in [row["action"] for row in audit]

    async with operator.http.get(f"{operator.base_url}/metrics") as response:
        assert response.status == 200
        metrics = await response.text()
    assert 'fairwatt_ocpp_messages_total{action="Reset",direction="out"} 2.0' in metrics
    assert 'fairwatt_command_latency_seconds_count{action="UpdateFirmware",outcome="accepted"} 3.0' in metrics
    assert "fairwatt_connected_chargers 0.0" in metrics
    assert 'fairwatt_sessions{state="ACTIVE"} 0.0' in metrics


@pytest.mark.asyncio
async def test_sessions_schedule_and_tariffs(operator: RunningOperatorApi, cli: Cli, tmp_path: Path) -> None:
    unresolvable = tmp_path / "network.yaml"
    unresolvable.write_text(
        EXAMPLE.read_text(encoding="utf-8").replace("env:DEPOT_1_PASSWORD", "env:NOT_SET_HERE"),
        encoding="utf-8",
    )
    code, _, err = await cli("apply", "-f", str(unresolvable))
    assert code == 1
    assert err.strip() == (
        "fairwatt: error: 422 Unprocessable Entity: nothing was changed: charger depot-1: "
        "secret env:NOT_SET_HERE: environment variable NOT_SET_HERE is not set"
    )
    assert (await cli("apply", "-f", str(EXAMPLE)))[0] == 0
    url = operator.charger_url("depot-1")
    async with connected(OperatedCharger16, url, "depot-1", "ocpp1.6", password=CHARGER_PASSWORD) as depot:
        started = await depot.call(
            call16.StartTransaction(
                connector_id=1, id_tag="04A1B2C3D4", meter_start=0, timestamp=datetime.now(UTC).isoformat()
            )
        )
        transaction_id = str(started.transaction_id)
        pool = operator.csms.database.pool
        session_id = await pool.fetchval(
            "SELECT session_id FROM charging_sessions WHERE charger_id = 'depot-1' AND transaction_id = $1",
            transaction_id,
        )
        assert session_id is not None  # the session lifecycle opened an RFID session
        listing = await cli.json("sessions", "list", "--state", "ACTIVE")
        assert [s["session_id"] for s in listing["sessions"]] == [str(session_id)]
        shown = await cli.json("sessions", "show", str(session_id))
        assert (shown["charger_id"], shown["transaction_id"]) == ("depot-1", transaction_id)
        code, out, _ = await cli("sessions", "stop", str(session_id))
        assert (code, out.strip()) == (0, "depot-1: RemoteStopTransaction accepted (Accepted)")
        assert (await next_received(depot, "RemoteStopTransaction"))["transaction_id"] == int(transaction_id)
        assert operator.sessions.lifecycle is not None  # the stop went through the session lifecycle
        state = await pool.fetchval("SELECT state FROM charging_sessions WHERE session_id = $1", session_id)
        assert state == "STOPPING"

        await operator.app[SMART_CHARGING].wait_idle()
        plot = tmp_path / "schedule.png"
        code, out, _ = await cli("stations", "schedule", "depot-berlin", "--plot", str(plot))
        assert code == 0
        assert "station depot-berlin: grid limit 60 kW" in out
        assert "station kW" in out
        assert plot.stat().st_size > 1000
        document = await cli.json("stations", "schedule", "depot-berlin", "--periods", "4")
        [evse] = document["schedule"]["evses"]
        assert (evse["evse_id"], evse["charger_id"], evse["connector_id"]) == ("depot-1-1", "depot-1", 1)
        assert len(evse["current_a"]) == 4
        assert 6 <= evse["current_a"][0] <= 32

    tariff = tmp_path / "promo.json"
    tariff.write_text(
        json.dumps(
            {
                "id": "acme-promo",
                "currency": "EUR",
                "elements": [{"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]}],
            }
        ),
        encoding="utf-8",
    )
    code, out, _ = await cli("tariffs", "set", "--file", str(tariff), "--station", "office-munich")
    assert (code, out.strip()) == (0, "tariff acme-promo: version 1 published")
    code, out, _ = await cli("tariffs", "show", "acme-promo")
    assert "element 0: ENERGY 0.25" in out
    assert "station  office-munich" in out
    listing = await cli.json("tariffs", "show")
    assert [t["tariff_id"] for t in listing["tariffs"]] == ["acme-night", "acme-promo", "acme-standard"]
    priced = await operator.sessions.tariffs.for_charger("office-1", fresh=True)
    assert priced is not None
    assert priced.tariff_id == "acme-promo"
