"""The one place that wires the whole system into one aiohttp application.

``fairwatt serve`` and ``fairwatt demo`` build their app here, in this order: the OCPP central
system with the smart-charging loop for the configured stations (kept current with their
time-of-use rules), demand response over those stations, the driver API with the operator,
demand-response and billing operations in its one OpenAPI document, billing, Plug & Charge,
and ``/metrics``. Packages never import each other's wiring; this module knows every package and
nothing imports it but the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

import billing.api
import demand_response.api
from billing.app import BillingSettings
from billing.app import install as install_billing
from csms.pki.app import install as install_pki
from csms.pki.settings import PkiSettings
from csms.server import create_app
from csms.settings import CsmsSettings
from csms.smart_charging import StationSetup
from demand_response.app import install as install_demand_response
from demand_response.config import Program
from fairwatt.commands.direct import TOKEN_SECRET_ENV
from fairwatt.commands.stations import keep_current_in
from fairwatt.config import StationConfig
from fairwatt.errors import FairwattError
from fairwatt.operator import OperatorSettings, install_observability, operator_api
from sessions.app import ApiModule, SessionsSettings
from sessions.app import install as install_sessions

logger = logging.getLogger(__name__)


class AssemblyError(FairwattError):
    """The system cannot be assembled as configured."""


@dataclass(frozen=True, slots=True)
class SystemSettings:
    """Everything one node runs, as typed settings (the CLI builds them from flags, env and YAML)."""

    csms: CsmsSettings
    sessions: SessionsSettings
    operator: OperatorSettings = field(default_factory=OperatorSettings)
    billing: BillingSettings | None = None
    """None: sessions are not rated or charged (no payment gateway configured)."""
    pki: PkiSettings | None = None
    """None: no Plug & Charge (Authorize ignores certificates)."""
    demand_response: tuple[Program, ...] = ()
    """OpenADR programs; manual events work for every planned station without any."""
    run_vens: bool = True
    """Whether this node talks to the utilities' VTNs (with several nodes: exactly one does; every
    node enforces the events all of them store)."""


def build_app(
    system: SystemSettings, configs: Sequence[StationConfig], stations: Sequence[StationSetup]
) -> web.Application:
    """The application of one node: every package installed over ``stations`` (from ``configs``)."""
    app = create_app(system.csms, stations=stations)
    extra: list[ApiModule] = [operator_api(system.operator)]
    if stations:
        dr = install_demand_response(
            app, system.demand_response, stations=stations, start_vens=system.run_vens
        )
        keep_current_in(app, configs, refreshed=dr.enforcer.rebase)
        extra.append(demand_response.api.register)
    elif system.demand_response:
        raise AssemblyError("demand-response programs need stations planned by the smart-charging loop")
    if system.billing is not None:
        extra.append(billing.api.register)
    install_sessions(app, system.sessions, extra_api=extra)
    if system.billing is not None:
        install_billing(app, system.billing)
    if system.pki is not None:
        install_pki(app, system.pki)
    install_observability(app)
    return app


def token_secret(environ: dict[str, str] | None, state_dir: Path) -> tuple[str, Path | None]:
    """The platform's token secret: ``FAIRWATT_TOKEN_SECRET``, else one kept in ``state_dir``.

    Returns the secret and the file it lives in (``None`` when it came from the environment), so
    the operator can mint tokens with ``--secret-file``. Several nodes need the same secret: set
    the variable on each.
    """
    given = (environ or {}).get(TOKEN_SECRET_ENV)
    if given:
        if len(given.encode("utf-8")) < 32:
            raise AssemblyError(f"{TOKEN_SECRET_ENV} must be at least 32 bytes")
        return given, None
    path = state_dir / "token-secret"
    try:
        if path.exists():
            return path.read_text(encoding="utf-8").strip(), path
        state_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(secret + "\n", encoding="utf-8")
    except OSError as exc:
        raise AssemblyError(f"{path}: {exc.strerror}") from None
    return secret, path


async def serve_app(
    app: web.Application,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    ready: Callable[[int], None] | None = None,
    plain_port: int | None = None,
    plain_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` until cancelled; ``ready`` gets the bound port once listening.

    ``plain_port``: also serve it without TLS there (a TLS node's ws:// listener for security
    profile 1 chargers, ``CsmsSettings.plain_port``); ``plain_ready`` gets that bound port."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        bound_port = int(runner.addresses[0][1]) if runner.addresses else port
        if plain_port is not None:
            await web.TCPSite(runner, host, plain_port).start()
        if ready is not None:
            ready(bound_port)
        if plain_port is not None and plain_ready is not None:
            plain_ready(int(runner.addresses[-1][1]) if len(runner.addresses) > 1 else plain_port)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
