"""`fairwatt serve` as a real process: a charger boots through it, SIGTERM stops it with status 0."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import psycopg
import pytest
from ocpp.v16 import call

from csms.embedded import EmbeddedDatabaseError, find_binaries
from csms.storage.passwords import hash_password
from fairwatt.cli import main
from tests.csms.chargers import Charger16, basic_auth, connected
from tests.csms.test_tls import Pki, pki

__all__ = ["pki"]  # the certificates fixture of the TLS tests

_LISTENING = re.compile(r"wss?://[^:]+:(\d+)/ocpp/")


@asynccontextmanager
async def serving(
    *arguments: str, environ: dict[str, str]
) -> AsyncIterator[tuple[int, asyncio.subprocess.Process]]:
    """``fairwatt serve`` on a free port; yields the port once the process says it listens."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fairwatt.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--auto-register",
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(120):  # a safety net for a hung start, not a timing assertion
            line = (await process.stdout.readline()).decode()
        match = _LISTENING.search(line)
        if match is None:
            assert process.stderr is not None
            pytest.fail(f"no listening line: {line!r}; stderr: {(await process.stderr.read()).decode()}")
        yield int(match.group(1)), process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def boot_and_stop(port: int, process: asyncio.subprocess.Process) -> None:
    url = f"ws://127.0.0.1:{port}/ocpp/CP-SERVE"
    async with connected(Charger16, url, "CP-SERVE", "ocpp1.6") as charger:
        boot = await charger.call(
            call.BootNotification(charge_point_vendor="V", charge_point_model="M"), suppress=False
        )
        assert boot.status == "Accepted"
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            status = await process.wait()
    assert process.stderr is not None
    stderr = (await process.stderr.read()).decode()
    assert status == 0, stderr
    assert "Traceback" not in stderr


def _environment(**values: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    environ.update(values)
    return environ


@pytest.mark.asyncio
async def test_serve_with_database_url(database_url: str) -> None:
    async with serving(environ=_environment(DATABASE_URL=database_url)) as (port, process):
        await boot_and_stop(port, process)
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT auto_registered FROM chargers WHERE charger_id = 'CP-SERVE'"
        ).fetchone()
    assert row == (True,)


@pytest.fixture
def embedded_data_dir() -> Iterator[Path]:
    """A fresh data directory; not pytest's tmp_path, which the 'postgres' account cannot reach under root."""
    try:
        find_binaries()
    except EmbeddedDatabaseError as exc:
        pytest.skip(str(exc))
    parent = Path(tempfile.mkdtemp(prefix="fairwatt-embedded-"))
    parent.chmod(0o755)
    try:
        yield parent / "pg"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_serve_with_embedded_postgres(embedded_data_dir: Path) -> None:
    async with serving("--data-dir", str(embedded_data_dir), environ=_environment()) as (port, process):
        await boot_and_stop(port, process)
    assert (embedded_data_dir / "PG_VERSION").is_file()
    assert not (embedded_data_dir / "postmaster.pid").is_file()  # stopped with the server


def test_tls_profile_without_certificates_is_a_plain_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--security-profile", "2", "--port", "0"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("fairwatt: error: security profile 2 needs tls_certificate_file")
    assert "Traceback" not in error


@pytest.mark.asyncio
async def test_serve_a_tls_node_with_a_plain_port_for_profile_1_chargers(database_url: str, pki: Pki) -> None:
    tls = ("--tls-cert", pki.crt("server"), "--tls-key", pki.key("server"), "--tls-client-ca", pki.crt("ca"))
    environ = _environment(DATABASE_URL=database_url)
    async with serving("--security-profile", "3", *tls, "--plain-port", "0", environ=environ) as (
        port,
        process,
    ):
        assert process.stdout is not None
        plain = ""
        while "security profile 1 chargers on ws://" not in plain:  # after the API's (and secret's) lines
            plain = (await process.stdout.readline()).decode()
            assert plain, "no ws:// listener announced"
        match = _LISTENING.search(plain)
        assert match is not None
        plain_port = int(match.group(1))
        assert plain_port != port
        with psycopg.connect(database_url) as connection:
            connection.execute(
                "INSERT INTO chargers (charger_id, password_hash, security_profile) VALUES (%s, %s, 1)",
                ("CP-PLAIN-1", hash_password("plain-port-secret-16", iterations=1000)),
            )
        url = f"ws://127.0.0.1:{plain_port}/ocpp/"
        async with connected(
            Charger16, url + "CP-PLAIN-1", "CP-PLAIN-1", "ocpp1.6", password="plain-port-secret-16"
        ) as charger:
            boot = await charger.call(
                call.BootNotification(charge_point_vendor="V", charge_point_model="M"), suppress=False
            )
            assert boot.status == "Accepted"
        async with aiohttp.ClientSession() as http:
            # a charger held to the node's profile 3 (auto-registered, none of its own): refused here
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(
                    url + "CP-AUTO",
                    protocols=("ocpp1.6",),
                    headers={"Authorization": basic_auth("CP-AUTO", "anything")},
                )
            assert refused.value.status == 403
            async with http.get(f"http://127.0.0.1:{plain_port}/v1/openapi.json") as response:
                assert response.status == 404  # the APIs are not served without TLS
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            assert await process.wait() == 0


def test_a_plain_port_on_a_plain_node_is_a_plain_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--plain-port", "0", "--port", "0"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("fairwatt: error: plain_port is for a TLS node (security profile 2 or 3)")
    assert "Traceback" not in error
