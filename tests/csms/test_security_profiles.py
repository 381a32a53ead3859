"""Per-charger security profiles against the real server: one node with a ws:// listener (``plain_port``)
and a wss:// listener that takes HTTP Basic or a client certificate (profile 2 with a client CA), so a
charger can reach every profile and only its own is the limit (OCPP A00.FR.002, A05)."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from csms.errors import SettingsError
from csms.server import CSMS, CsmsRuntime, create_app
from csms.settings import CsmsSettings
from csms.storage.chargers import ChargerRecord
from csms.storage.passwords import hash_password
from csms.tls import build_server_context, offered_profiles
from tests.csms.chargers import Charger16, basic_auth, connected
from tests.csms.conftest import RunningCsms, make_settings
from tests.csms.test_tls import Pki, boots, pki, tls_charger

__all__ = ["pki"]  # the module-scoped certificates fixture of test_tls

pytestmark = pytest.mark.asyncio

PASSWORD = "per-charger-profile-16"


def _free_socket() -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    return listener


@dataclass
class MixedNode:
    """A node at profile 2 with a client CA and a ws:// listener: it offers profiles 1, 2 and 3."""

    runtime: CsmsRuntime
    tls_port: int
    plain_port: int
    pki: Pki

    def wss(self, charger_id: str) -> str:
        return f"wss://127.0.0.1:{self.tls_port}/ocpp/{charger_id}"

    def ws(self, charger_id: str) -> str:
        return f"ws://127.0.0.1:{self.plain_port}/ocpp/{charger_id}"

    def context(self, certificate: str | None = None) -> ssl.SSLContext:
        return self.pki.client_context(certificate)

    async def register(self, charger_id: str, security_profile: int | None, *, password: bool = True) -> None:
        await self.runtime.chargers.save(
            ChargerRecord(
                charger_id,
                password_hash=hash_password(PASSWORD, iterations=1000) if password else None,
                security_profile=security_profile,
            )
        )


def mixed_settings(database_dsn: str, pki: Pki, plain_port: int) -> CsmsSettings:
    return make_settings(
        database_dsn,
        security_profile=2,
        tls_certificate_file=pki.crt("server"),
        tls_private_key_file=pki.key("server"),
        tls_client_ca_file=pki.crt("ca"),
        plain_port=plain_port,
    )


@pytest_asyncio.fixture
async def node(database_dsn: str, pki: Pki) -> AsyncIterator[MixedNode]:
    tls_listener, plain_listener = _free_socket(), _free_socket()
    settings = mixed_settings(database_dsn, pki, plain_listener.getsockname()[1])
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, tls_listener, ssl_context=build_server_context(settings)).start()
    await web.SockSite(runner, plain_listener).start()
    try:
        yield MixedNode(app[CSMS], tls_listener.getsockname()[1], plain_listener.getsockname()[1], pki)
    finally:
        await runner.cleanup()


async def handshake_status(
    url: str, context: ssl.SSLContext | None = None, *, password: str | None = None, charger_id: str = ""
) -> int:
    """The HTTP status a refused WebSocket upgrade got (fails the test if it was accepted)."""
    headers = {"Authorization": basic_auth(charger_id, password)} if password is not None else {}
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as failure:
            await http.ws_connect(url, protocols=("ocpp1.6",), ssl=context or True, headers=headers)
    return failure.value.status


def refusals(caplog: pytest.LogCaptureFixture, charger_id: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "csms.server" and r.getMessage().startswith(f"charger {charger_id}: security profile")
    ]


async def test_a_profile_2_charger_is_refused_over_ws_and_admitted_over_tls_with_its_password(
    node: MixedNode, caplog: pytest.LogCaptureFixture
) -> None:
    await node.register("CP-P2", 2)
    # its right password, over ws://: the transport is below its profile
    assert await handshake_status(node.ws("CP-P2"), password=PASSWORD, charger_id="CP-P2") == 403
    assert refusals(caplog, "CP-P2") == [
        "charger CP-P2: security profile 2 (its own) required, the connection offers profile 1"
        " (ws:// without TLS): refused"
    ]
    # over TLS the password is still checked
    assert await handshake_status(node.wss("CP-P2"), node.context()) == 401
    assert (
        await handshake_status(node.wss("CP-P2"), node.context(), password="wrong", charger_id="CP-P2") == 401
    )
    auth = {"Authorization": basic_auth("CP-P2", PASSWORD)}
    async with tls_charger(node.wss("CP-P2"), "CP-P2", node.context(), auth) as charger:
        assert await boots(charger) == "Accepted"


async def test_a_profile_3_charger_is_refused_with_basic_auth_and_admitted_with_its_certificate(
    node: MixedNode, caplog: pytest.LogCaptureFixture
) -> None:
    await node.register("CP-TLS3", 3)  # it has a password too: that is not enough any more
    url = node.wss("CP-TLS3")
    assert await handshake_status(url, node.context(), password=PASSWORD, charger_id="CP-TLS3") == 403
    assert await handshake_status(node.ws("CP-TLS3"), password=PASSWORD, charger_id="CP-TLS3") == 403
    assert refusals(caplog, "CP-TLS3") == [
        "charger CP-TLS3: security profile 3 (its own) required, the connection offers profile 2"
        " (wss:// without a client certificate): refused",
        "charger CP-TLS3: security profile 3 (its own) required, the connection offers profile 1"
        " (ws:// without TLS): refused",
    ]
    # another charger's certificate is refused as before; its own admits it without a password
    assert await handshake_status(url, node.context("CP-OTHER")) == 403
    async with tls_charger(url, "CP-TLS3", node.context("CP-TLS3")) as charger:
        assert await boots(charger) == "Accepted"


async def test_a_charger_without_a_profile_is_held_to_the_nodes(
    node: MixedNode, caplog: pytest.LogCaptureFixture
) -> None:
    await node.register("CP-NODE", None)
    assert await handshake_status(node.ws("CP-NODE"), password=PASSWORD, charger_id="CP-NODE") == 403
    assert refusals(caplog, "CP-NODE") == [
        "charger CP-NODE: security profile 2 (the node's, none configured for it) required, the"
        " connection offers profile 1 (ws:// without TLS): refused"
    ]
    assert await handshake_status(node.wss("CP-NODE"), node.context()) == 401  # Basic, as at profile 2
    auth = {"Authorization": basic_auth("CP-NODE", PASSWORD)}
    async with tls_charger(node.wss("CP-NODE"), "CP-NODE", node.context(), auth) as charger:
        assert await boots(charger) == "Accepted"


async def test_a_charger_without_a_profile_on_a_plain_node_is_unchanged(csms: RunningCsms) -> None:
    await csms.runtime.chargers.save(
        ChargerRecord("CP-PLAIN", password_hash=hash_password(PASSWORD, iterations=1000))
    )
    assert await handshake_status(csms.url("CP-PLAIN")) == 401
    async with connected(
        Charger16, csms.url("CP-PLAIN"), "CP-PLAIN", "ocpp1.6", password=PASSWORD
    ) as charger:
        assert await boots(charger) == "Accepted"
    await csms.runtime.chargers.save(ChargerRecord("CP-PLAIN-LEGACY"))  # no password: admitted as before
    async with connected(Charger16, csms.url("CP-PLAIN-LEGACY"), "CP-PLAIN-LEGACY", "ocpp1.6") as charger:
        assert await boots(charger) == "Accepted"


async def test_a_profile_1_charger_uses_either_listener_under_its_rules(node: MixedNode) -> None:
    await node.register("CP-P1", 1)
    assert await handshake_status(node.ws("CP-P1")) == 401  # it has a password: Basic over ws://
    async with connected(Charger16, node.ws("CP-P1"), "CP-P1", "ocpp1.6", password=PASSWORD) as charger:
        assert await boots(charger) == "Accepted"
    auth = {"Authorization": basic_auth("CP-P1", PASSWORD)}
    async with tls_charger(node.wss("CP-P1"), "CP-P1", node.context(), auth) as charger:
        assert await boots(charger) == "Accepted"
    # without a password: admitted over ws:// (a legacy charger), refused over wss:// (profile 2 rules)
    await node.register("CP-P1-LEGACY", 1, password=False)
    async with connected(Charger16, node.ws("CP-P1-LEGACY"), "CP-P1-LEGACY", "ocpp1.6") as charger:
        assert await boots(charger) == "Accepted"
    assert await handshake_status(node.wss("CP-P1-LEGACY"), node.context()) == 401


async def test_the_plain_listener_of_a_tls_node_serves_only_ocpp(node: MixedNode) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{node.plain_port}/metrics") as response:
            assert response.status == 404
            assert "serves only the OCPP endpoint" in await response.text()
        async with http.get(f"https://127.0.0.1:{node.tls_port}/metrics", ssl=node.context()) as response:
            assert "serves only the OCPP endpoint" not in await response.text()


async def test_a_charger_above_what_the_node_offers_is_named_at_start_and_at_refusal(
    csms: RunningCsms, database_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    await csms.runtime.chargers.save(
        ChargerRecord(
            "CP-NEEDS-TLS", password_hash=hash_password(PASSWORD, iterations=1000), security_profile=2
        )
    )
    await csms.runtime.chargers.save(ChargerRecord("CP-NEEDS-CERT", security_profile=3))
    assert (
        await handshake_status(csms.url("CP-NEEDS-TLS"), password=PASSWORD, charger_id="CP-NEEDS-TLS") == 403
    )
    assert refusals(caplog, "CP-NEEDS-TLS") == [
        "charger CP-NEEDS-TLS: security profile 2 (its own) required, the connection offers profile 1"
        " (ws:// without TLS): refused; this node offers profiles 1: no listener serves TLS: serve"
        " security profile 2 or 3 (fairwatt serve --security-profile)"
    ]
    caplog.clear()
    runner = web.AppRunner(create_app(make_settings(database_dsn)))  # a node starting on that registry
    await runner.setup()
    await runner.cleanup()
    warnings = {
        r.getMessage().split(" cannot connect")[0]: r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "csms.security_profiles"
    }
    # the session's database may hold other tests' chargers too: each line names its profile's
    at_2 = next(m for head, m in warnings.items() if head.endswith("configured for security profile 2"))
    at_3 = next(m for head, m in warnings.items() if head.endswith("configured for security profile 3"))
    assert len(warnings) == 2
    assert "whose listeners offer profiles 1 (no listener serves TLS: serve security profile 2 or 3" in at_2
    assert "CP-NEEDS-TLS" in at_2.rsplit("): ", 1)[1].split(", ")
    assert "no listener verifies client certificates" in at_3
    assert "CP-NEEDS-CERT" in at_3.rsplit("): ", 1)[1].split(", ")
    assert "CP-NEEDS-CERT" not in at_2
    assert "CP-NEEDS-TLS" not in at_3
    await csms.runtime.database.pool.execute(  # the next nodes in this session need not hear of them
        "UPDATE chargers SET security_profile = NULL WHERE charger_id IN ('CP-NEEDS-TLS', 'CP-NEEDS-CERT')"
    )


async def test_what_each_node_offers(database_dsn: str, pki: Pki) -> None:
    tls = {"tls_certificate_file": pki.crt("server"), "tls_private_key_file": pki.key("server")}
    assert offered_profiles(make_settings(database_dsn)) == {1}
    assert offered_profiles(make_settings(database_dsn, security_profile=2, **tls)) == {2}
    assert offered_profiles(mixed_settings(database_dsn, pki, 9999)) == {1, 2, 3}
    assert offered_profiles(
        make_settings(database_dsn, security_profile=3, tls_client_ca_file=pki.crt("ca"), **tls)
    ) == {3}
    with pytest.raises(SettingsError, match="plain_port is for a TLS node"):
        make_settings(database_dsn, plain_port=9999)
    with pytest.raises(SettingsError, match="not a TCP port"):
        make_settings(database_dsn, security_profile=2, plain_port=70000, **tls)
