"""The one place that wires the whole system into one aiohttp application.

``fairwatt serve`` and ``fairwatt demo`` build their app here: the OCPP central system with the
smart-charging loop for the configured stations, kept current with their time-of-use rules.
Packages never import each other's wiring; this module knows every package and nothing imports
it but the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence

from aiohttp import web

from csms.server import create_app
from csms.settings import CsmsSettings
from csms.smart_charging import StationSetup
from fairwatt.commands.stations import keep_current_in
from fairwatt.config import StationConfig

logger = logging.getLogger(__name__)


def build_app(
    settings: CsmsSettings, configs: Sequence[StationConfig], stations: Sequence[StationSetup]
) -> web.Application:
    """The application of one node: OCPP endpoint and smart charging of ``stations`` (from ``configs``)."""
    app = create_app(settings, stations=stations)
    keep_current_in(app, configs)
    return app


async def serve_app(
    app: web.Application,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` until cancelled; ``ready`` gets the bound port once listening."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        bound_port = int(runner.addresses[0][1]) if runner.addresses else port
        if ready is not None:
            ready(bound_port)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
