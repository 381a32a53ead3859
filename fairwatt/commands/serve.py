"""``fairwatt serve``: run the OCPP central system.

    fairwatt serve [--host 0.0.0.0] [--port 9000] [--auto-register] [--data-dir DIR]
                   [--security-profile {1,2,3} --tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]

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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import asyncpg
import psycopg

from csms.embedded import EmbeddedDatabaseError, EmbeddedPostgres
from csms.errors import CsmsError
from csms.server import run as run_csms
from csms.settings import CsmsSettings
from csms.tls import build_server_context
from fairwatt.errors import FairwattError

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
    parser.set_defaults(handler=run)


def build_settings(database_dsn: str, args: argparse.Namespace, environ: Mapping[str, str]) -> CsmsSettings:
    """The CSMS settings from the command line and the environment."""
    overrides: dict[str, Any] = {
        "auto_register": bool(args.auto_register),
        "security_profile": args.security_profile,
        "tls_certificate_file": args.tls_cert,
        "tls_private_key_file": args.tls_key,
        "tls_client_ca_file": args.tls_client_ca,
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


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise ServeError(f"--port {args.port}: not a TCP port")
    build_settings("postgresql://", args, os.environ)  # check the options before starting anything
    database_url = os.environ.get("DATABASE_URL")
    if database_url:
        if args.data_dir is not None:
            raise ServeError("--data-dir is for the embedded database; DATABASE_URL is set")
        return _serve(args, build_settings(database_url, args, os.environ))
    embedded = EmbeddedPostgres(args.data_dir)
    try:
        dsn = embedded.start()
    except EmbeddedDatabaseError as exc:
        raise ServeError(str(exc)) from None
    try:
        return _serve(args, build_settings(dsn, args, os.environ))
    finally:
        try:
            embedded.stop()
        except EmbeddedDatabaseError as exc:
            logger.error("%s", exc)


def _serve(args: argparse.Namespace, settings: CsmsSettings) -> int:
    def announce(port: int) -> None:
        scheme = "wss" if settings.security_profile >= 2 else "ws"
        print(
            f"fairwatt: OCPP endpoint on {scheme}://{args.host}:{port}{settings.ocpp_path_prefix}/{{charger_id}}"
        )
        sys.stdout.flush()

    try:
        asyncio.run(_until_signalled(args.host, args.port, settings, announce))
    except (asyncpg.PostgresError, psycopg.Error) as exc:
        raise ServeError(f"database: {exc}") from None
    except OSError as exc:
        raise ServeError(f"cannot start on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except CsmsError as exc:
        raise ServeError(str(exc)) from None
    return 0


async def _until_signalled(
    host: str, port: int, settings: CsmsSettings, announce: Callable[[int], None]
) -> None:
    """Run the server until SIGINT or SIGTERM, then let it shut down cleanly."""
    loop = asyncio.get_running_loop()
    server = asyncio.create_task(run_csms(host, port, settings, ready=announce), name="csms-server")
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
