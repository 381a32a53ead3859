"""``fairwatt serve``: run the OCPP central system.

    fairwatt serve [--host 0.0.0.0] [--port 9000] [--auto-register] [--data-dir DIR]
                   [--security-profile {1,2,3} --tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]
                   [--config station.yaml ...]

With ``--config`` (once per station file) the smart-charging loop plans those stations: each
EVSE of the file is a connector of a charger (``charger``/``connector`` in the file), which
gets a failsafe default profile when it boots and Tx profiles while it charges.

With ``DATABASE_URL`` in the environment the CSMS uses that PostgreSQL (and ``REDIS_URL``, when
set, for live state and routing between nodes). With no database configured it starts an
embedded PostgreSQL (data in ``--data-dir``, by default the user's state directory), runs as a
single node and stops the database again on exit. SIGINT or SIGTERM stop the server cleanly:
chargers are disconnected, queued log lines and meter values are stored, exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psycopg

from csms.embedded import EmbeddedDatabaseError, EmbeddedPostgres
from csms.errors import CsmsError
from csms.server import run as run_csms
from csms.settings import CsmsSettings
from csms.smart_charging import StationSetup
from csms.tls import build_server_context
from fairwatt.commands.stations import keep_current_in, station_setup
from fairwatt.config import StationConfig, load_station
from fairwatt.errors import FairwattError
from optimizer.errors import OptimizerError

logger = logging.getLogger(__name__)


class ServeError(FairwattError):
    """The server cannot be started as configured."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the OCPP central system (embedded PostgreSQL unless DATABASE_URL is set)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")
    parser.add_argument("--port", type=int, default=9000, help="TCP port (default 9000; 0: any free port)")
    parser.add_argument(
        "--auto-register", action="store_true", help="admit chargers not in the registry (registering them)"
    )
    parser.add_argument(
        "--data-dir", type=Path, metavar="DIR", help="embedded PostgreSQL data directory (no DATABASE_URL)"
    )
    parser.add_argument(
        "--security-profile",
        type=int,
        choices=(1, 2, 3),
        default=1,
        help="OCPP security profile: 1 ws:// + Basic auth, 2 wss:// + Basic auth, 3 wss:// + client certs",
    )
    parser.add_argument("--tls-cert", metavar="PEM", help="server certificate chain (profiles 2 and 3)")
    parser.add_argument("--tls-key", metavar="PEM", help="server private key (profiles 2 and 3)")
    parser.add_argument("--tls-client-ca", metavar="PEM", help="CA of the chargers' certificates (profile 3)")
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        default=[],
        metavar="STATION_YAML",
        help="a station file whose chargers to plan (repeat for more stations)",
    )
    parser.set_defaults(handler=run)


def build_settings(database_dsn: str, args: argparse.Namespace, environ: Mapping[str, str]) -> CsmsSettings:
    """The CSMS settings from the command line and the environment."""
    overrides: dict[str, Any] = {
        "auto_register": bool(args.auto_register),
        "security_profile": args.security_profile,
        "tls_certificate_file": args.tls_cert,
        "tls_private_key_file": args.tls_key,
        "tls_client_ca_file": args.tls_client_ca,
        # a served process keeps full garbage collections off the request path (csms.gc_pacing):
        # measured at 10,000 chargers, p99 Heartbeat 374 ms -> 7.4 ms
        "gc_freeze_every_s": 5.0,
    }
    redis_url = environ.get("REDIS_URL")
    if redis_url:
        if "redis_url" not in {field.name for field in dataclasses.fields(CsmsSettings)}:
            raise ServeError("REDIS_URL is set but this build of fairwatt has no Redis support")
        overrides["redis_url"] = redis_url
    try:
        settings = CsmsSettings(database_dsn=database_dsn, **overrides)
        build_server_context(settings)  # fail on unreadable certificates before any database starts
    except CsmsError as exc:
        raise ServeError(str(exc)) from None
    return settings


def load_stations(paths: Sequence[Path]) -> list[StationConfig]:
    """The station files, each station id once (``ConfigError`` names a broken file's line)."""
    configs: list[StationConfig] = []
    for path in paths:
        config = load_station(path)
        if any(c.station_id == config.station_id for c in configs):
            raise ServeError(f"{path}: station {config.station_id} is configured twice")
        configs.append(config)
    return configs


def build_stations(configs: Sequence[StationConfig], now: datetime) -> list[StationSetup]:
    """The smart-charging loop's stations at ``now`` (UTC)."""
    setups: list[StationSetup] = []
    for config in configs:
        try:
            setups.append(station_setup(config, now))
        except (CsmsError, OptimizerError) as exc:
            raise ServeError(f"{config.source}: {exc}") from None
    placed: dict[tuple[str, int], str] = {}
    for setup in setups:
        for binding in setup.evses:
            where = (binding.charger_id, binding.ocpp_evse_id)
            if where in placed:
                raise ServeError(
                    f"charger {where[0]} connector {where[1]} is in stations {placed[where]} "
                    f"and {setup.station_id}"
                )
            placed[where] = setup.station_id
    return setups


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise ServeError(f"--port {args.port}: not a TCP port")
    build_settings("postgresql://", args, os.environ)  # check the options before starting anything
    configs = load_stations(args.config)
    build_stations(configs, datetime.now(UTC))
    database_url = os.environ.get("DATABASE_URL")
    if database_url:
        if args.data_dir is not None:
            raise ServeError("--data-dir is for the embedded database; DATABASE_URL is set")
        return _serve(args, build_settings(database_url, args, os.environ), configs)
    embedded = EmbeddedPostgres(args.data_dir)
    try:
        dsn = embedded.start()
    except EmbeddedDatabaseError as exc:
        raise ServeError(str(exc)) from None
    try:
        return _serve(args, build_settings(dsn, args, os.environ), configs)
    finally:
        try:
            embedded.stop()
        except EmbeddedDatabaseError as exc:
            logger.error("%s", exc)


def _serve(args: argparse.Namespace, settings: CsmsSettings, configs: Sequence[StationConfig]) -> int:
    def announce(port: int) -> None:
        scheme = "wss" if settings.security_profile >= 2 else "ws"
        print(
            f"fairwatt: OCPP endpoint on {scheme}://{args.host}:{port}{settings.ocpp_path_prefix}/{{charger_id}}"
        )
        sys.stdout.flush()

    try:
        asyncio.run(_until_signalled(args.host, args.port, settings, configs, announce))
    except (asyncpg.PostgresError, psycopg.Error) as exc:
        raise ServeError(f"database: {exc}") from None
    except OSError as exc:
        raise ServeError(f"cannot start on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except CsmsError as exc:
        raise ServeError(str(exc)) from None
    return 0


async def _until_signalled(
    host: str,
    port: int,
    settings: CsmsSettings,
    configs: Sequence[StationConfig],
    announce: Callable[[int], None],
) -> None:
    """Run the server until SIGINT or SIGTERM, then let it shut down cleanly."""
    loop = asyncio.get_running_loop()
    serving = run_csms(
        host,
        port,
        settings,
        ready=announce,
        stations=build_stations(configs, datetime.now(UTC)),
        configure=lambda app: keep_current_in(app, configs),
    )
    server = asyncio.create_task(serving, name="csms-server")
    signals = (signal.SIGINT, signal.SIGTERM)
    for number in signals:
        loop.add_signal_handler(number, server.cancel)
    try:
        await server
    except asyncio.CancelledError:
        if not server.cancelled():  # we were cancelled ourselves, not stopped by a signal
            raise
        logger.info("stopped by signal")
    finally:
        for number in signals:
            loop.remove_signal_handler(number)
