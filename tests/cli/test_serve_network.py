"""``fairwatt serve -f network.yaml``: one process serves the OCPP endpoint, the driver, operator,
demand-response and billing APIs and /metrics, with the network's stations planned."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
import pytest

from tests.cli.test_serve_cli import _environment, serving

ROOT = Path(__file__).resolve().parents[2]
SECRET = "a-test-token-secret-of-at-least-32-bytes"


@pytest.mark.asyncio
async def test_serve_runs_every_package_for_a_network(database_url: str, tmp_path: Path) -> None:
    environ = _environment(
        DATABASE_URL=database_url,
        FAIRWATT_TOKEN_SECRET=SECRET,
        FAIRWATT_PAYMENT_GATEWAY_URL="http://127.0.0.1:9",  # billing on; never called here
        FAIRWATT_PAYMENT_GATEWAY_KEY="sk_test",
        XDG_STATE_HOME=str(tmp_path),
    )
    network = str(ROOT / "examples" / "network.yaml")
    async with serving("-f", network, "--no-vens", environ=environ) as (port, process):
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/v1/openapi.json") as response:
                assert response.status == 200
                paths = (await response.json())["paths"]
            for path in (
                "/v1/sessions",
                "/v1/chargers/nearby",
                "/v1/reservations",
                "/v1/operator/network/apply",
                "/v1/operator/dr/events",
                "/v1/operator/billing/debts",
            ):
                assert path in paths, path
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 200
                assert "fairwatt" in await response.text()
            async with http.get(f"{base}/v1/operator/dr/events") as response:
                assert response.status == 401  # an operator key is needed
        process.send_signal(signal.SIGTERM)
        assert await process.wait() == 0
    assert process.stderr is not None
    stderr = (await process.stderr.read()).decode()
    assert "Traceback" not in stderr
    assert "billing is off" not in stderr
