"""``fairwatt serve``: run the whole system on one node.

    fairwatt serve [--host 0.0.0.0] [--port 9000] [--auto-register] [--data-dir DIR]
                   [-f network.yaml | --config station.yaml ...] [--pki-dir DIR]
                   [--security-profile {1,2,3} --tls-cert PEM --tls-key PEM [--tls-client-ca PEM]
                    [--plain-port PORT]]

One process serves the OCPP endpoint (``ws://HOST:PORT/ocpp/{charger_id}``), the driver and
operator APIs (``/v1/...``, described at ``/v1/openapi.json``), ``/metrics`` and the background
work: smart charging, demand response, billing, reservation expiry.

Security profiles: ``--security-profile`` is the node's (the listener's transport, and what a
charger whose network file names no ``security_profile`` must meet); a charger configured higher
than its connection is refused. At profile 2, ``--tls-client-ca`` lets the wss:// listener admit
profile-3 chargers by their client certificates too; ``--plain-port`` adds a ws:// listener (OCPP
only) for chargers configured at profile 1.

``-f network.yaml`` (a file or a folder) names the stations the smart-charging loop plans and the
demand-response programs that cap them; the registry itself (chargers, tariffs, local lists) is
loaded with ``fairwatt apply -f`` against the running server. ``--config`` takes plain station files
instead (each EVSE a connector of a charger). Bearer tokens (drivers, operators' API keys) are
signed with ``FAIRWATT_TOKEN_SECRET``; without it a secret is kept in ``DIR/token-secret`` beside
the data and its path printed (``fairwatt drivers token --secret-file``). Billing runs when a
payment provider is configured (``FAIRWATT_PAYMENT_GATEWAY_URL``, ``FAIRWATT_PAYMENT_GATEWAY_KEY``:
Stripe or ``python -m billing.test_gateway``). ``--pki-dir`` turns Plug & Charge on (see
``csms/pki/README.md``: ``contract-roots/*.pem``, optional ``station-ca.pem/.key``,
``v2g-ca.pem/.key``, ``local-mo-ca.pem/.key``).

With ``DATABASE_URL`` in the environment the server uses that PostgreSQL (and ``REDIS_URL``, when
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psycopg

from billing.app import BillingSettings
from csms.embedded import EmbeddedDatabaseError, EmbeddedPostgres, default_data_dir
from csms.errors import CsmsError
from csms.pki.settings import CaFiles, PkiSettings
from csms.settings import CsmsSettings
from csms.smart_charging import StationSetup
from csms.tls import build_server_context
from demand_response.config import Program
from fairwatt.assembly import AssemblyError, SystemSettings, build_app, serve_app, token_secret
from fairwatt.commands.stations import station_setup
from fairwatt.config import StationConfig, load_station
from fairwatt.config.network import load_network
from fairwatt.errors import FairwattError
from fairwatt.operator import OperatorSettings
from optimizer.errors import OptimizerError
from sessions.app import SessionsSettings

logger = logging.getLogger(__name__)

GATEWAY_URL_ENV = "FAIRWATT_PAYMENT_GATEWAY_URL"
GATEWAY_KEY_ENV = "FAIRWATT_PAYMENT_GATEWAY_KEY"


class ServeError(FairwattError):
    """The server cannot be started as configured."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the whole system: OCPP endpoint, driver and operator APIs, smart charging, DR, billing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")
    parser.add_argument("--port", type=int, default=9000, help="TCP port (default 9000; 0: any free port)")
    parser.add_argument(
        "--auto-register",
        action="store_true",
        help="admit chargers not in the registry (registering them without password; not at profile 2)",
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
    parser.add_argument(
        "--tls-client-ca",
        metavar="PEM",
        help="CA of the chargers' certificates (profile 3; at profile 2: admit profile 3 chargers too)",
    )
    parser.add_argument(
        "--plain-port",
        type=int,
        metavar="PORT",
        help="profiles 2 and 3: also serve the OCPP endpoint over ws:// on PORT (profile 1 chargers)",
    )
    parser.add_argument(
        "-f",
        "--network",
        type=Path,
        metavar="PATH",
        help="network YAML (file or folder): the stations to plan and their demand-response programs",
    )
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        default=[],
        metavar="STATION_YAML",
        help="a station file whose chargers to plan (repeat for more stations)",
    )
    parser.add_argument(
        "--no-vens",
        action="store_true",
        help="do not run the OpenADR VENs on this node (with several nodes, run them on one)",
    )
    parser.add_argument(
        "--no-websocket-compression",
        action="store_true",
        help="decline 2.0.1 stations' per-message deflate (saves ~100 KB of memory per connection)",
    )
    parser.add_argument("--pki-dir", type=Path, metavar="DIR", help="Plug & Charge certificates and CA keys")
    parser.add_argument("--pki-organization", metavar="NAME", help="the CPO name chargers' CSRs must carry")
    parser.set_defaults(handler=run)


def build_settings(database_dsn: str, args: argparse.Namespace, environ: Mapping[str, str]) -> CsmsSettings:
    """The CSMS settings from the command line and the environment."""
    overrides: dict[str, Any] = {
        "auto_register": bool(args.auto_register),
        "security_profile": args.security_profile,
        "tls_certificate_file": args.tls_cert,
        "tls_private_key_file": args.tls_key,
        "tls_client_ca_file": args.tls_client_ca,
        "plain_port": args.plain_port,
        # a served process keeps full garbage collections off the request path (csms.gc_pacing):
        # measured at 10,000 chargers, p99 Heartbeat 374 ms -> 7.4 ms
        "gc_freeze_every_s": 5.0,
        "websocket_compression": not args.no_websocket_compression,
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


@dataclass(frozen=True, slots=True)
class Plan:
    """What the command line asks this node to run (everything but the database)."""

    configs: tuple[StationConfig, ...]
    programs: tuple[Program, ...]
    reservation_hold_s: int
    reservation_holds_s: dict[str, int]
    secrets_dir: Path | None


def read_plan(args: argparse.Namespace) -> Plan:
    """The stations and programs of ``-f`` and ``--config`` (``ConfigError`` on a broken file)."""
    configs = load_stations(args.config)
    if args.network is None:
        return Plan(tuple(configs), (), 900, {}, None)
    network = load_network(args.network)
    taken = {c.station_id for c in configs}
    for config in network.station_configs:
        if config.station_id in taken:
            raise ServeError(f"station {config.station_id} is in {args.network} and in a --config file")
    base = args.network if args.network.is_dir() else args.network.parent
    return Plan(
        (*configs, *network.station_configs),
        network.demand_response,
        network.reservation_hold_s,
        network.reservation_holds_s,
        base,
    )


def billing_settings(environ: Mapping[str, str]) -> BillingSettings | None:
    """Billing when a payment provider is configured, else ``None`` (logged)."""
    url = environ.get(GATEWAY_URL_ENV)
    if not url:
        logger.warning(
            "billing is off: set %s (and %s) to rate and charge sessions", GATEWAY_URL_ENV, GATEWAY_KEY_ENV
        )
        return None
    return BillingSettings(gateway_url=url, gateway_api_key=environ.get(GATEWAY_KEY_ENV, ""))


def pki_settings(args: argparse.Namespace) -> PkiSettings | None:
    """Plug & Charge from ``--pki-dir`` (None without it)."""
    directory: Path | None = args.pki_dir
    if directory is None:
        return None
    if not directory.is_dir():
        raise ServeError(f"--pki-dir {directory}: not a directory")

    def pair(name: str) -> CaFiles | None:
        certificate, key = directory / f"{name}.pem", directory / f"{name}.key"
        return CaFiles(str(certificate), str(key)) if certificate.exists() and key.exists() else None

    roots = tuple(str(p) for p in sorted((directory / "contract-roots").glob("*.pem")))
    if not roots:
        raise ServeError(f"--pki-dir {directory}: no contract-roots/*.pem (the mobility operators' roots)")
    return PkiSettings(
        contract_root_files=roots,
        contract_sub_ca_files=tuple(str(p) for p in sorted((directory / "contract-sub-cas").glob("*.pem"))),
        station_ca=pair("station-ca"),
        v2g_ca=pair("v2g-ca"),
        local_mo_ca=pair("local-mo-ca"),
        organization_name=args.pki_organization,
    )


def system_settings(
    csms: CsmsSettings, args: argparse.Namespace, plan: Plan, environ: Mapping[str, str], state_dir: Path
) -> tuple[SystemSettings, Path | None]:
    """Every package's settings for this node, and the token secret's file (when not from the env)."""
    try:
        secret, secret_file = token_secret(dict(environ), state_dir)
        sessions = SessionsSettings(
            token_secret=secret,
            reservation_hold_s=plan.reservation_hold_s,
            reservation_hold_by_station_s=plan.reservation_holds_s,
        )
    except AssemblyError as exc:
        raise ServeError(str(exc)) from None
    system = SystemSettings(
        csms=csms,
        sessions=sessions,
        operator=OperatorSettings(environ=dict(environ), secrets_dir=plan.secrets_dir),
        billing=billing_settings(environ),
        pki=pki_settings(args),
        demand_response=plan.programs,
        run_vens=not args.no_vens,
    )
    return system, secret_file


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise ServeError(f"--port {args.port}: not a TCP port")
    build_settings("postgresql://", args, os.environ)  # check the options before starting anything
    plan = read_plan(args)
    build_stations(plan.configs, datetime.now(UTC))
    pki_settings(args)
    database_url = os.environ.get("DATABASE_URL")
    state_dir = (args.data_dir or default_data_dir()).expanduser().absolute().parent
    if database_url:
        if args.data_dir is not None:
            raise ServeError("--data-dir is for the embedded database; DATABASE_URL is set")
        return _serve(args, build_settings(database_url, args, os.environ), plan, state_dir)
    embedded = EmbeddedPostgres(args.data_dir)
    try:
        dsn = embedded.start()
    except EmbeddedDatabaseError as exc:
        raise ServeError(str(exc)) from None
    try:
        return _serve(args, build_settings(dsn, args, os.environ), plan, state_dir)
    finally:
        try:
            embedded.stop()
        except EmbeddedDatabaseError as exc:
            logger.error("%s", exc)


def _serve(args: argparse.Namespace, settings: CsmsSettings, plan: Plan, state_dir: Path) -> int:
    system, secret_file = system_settings(settings, args, plan, os.environ, state_dir)

    def announce(port: int) -> None:
        scheme = "wss" if settings.security_profile >= 2 else "ws"
        http = "https" if settings.security_profile >= 2 else "http"
        print(
            f"fairwatt: OCPP endpoint on {scheme}://{args.host}:{port}{settings.ocpp_path_prefix}/{{charger_id}}"
        )
        print(f"fairwatt: API on {http}://{args.host}:{port}/v1 (described at /v1/openapi.json), /metrics")
        if secret_file is not None:
            print(f"fairwatt: tokens are signed with the secret in {secret_file}")
        sys.stdout.flush()

    def announce_plain(port: int) -> None:
        print(
            f"fairwatt: OCPP endpoint for security profile 1 chargers on"
            f" ws://{args.host}:{port}{settings.ocpp_path_prefix}/{{charger_id}}"
        )
        sys.stdout.flush()

    try:
        asyncio.run(_until_signalled(args.host, args.port, system, plan, announce, announce_plain))
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
    system: SystemSettings,
    plan: Plan,
    announce: Callable[[int], None],
    announce_plain: Callable[[int], None] | None = None,
) -> None:
    """Run the server until SIGINT or SIGTERM, then let it shut down cleanly."""
    loop = asyncio.get_running_loop()
    try:
        app = build_app(system, plan.configs, build_stations(plan.configs, datetime.now(UTC)))
    except AssemblyError as exc:
        raise ServeError(str(exc)) from None
    serving = serve_app(
        app,
        host,
        port,
        ssl_context=build_server_context(system.csms),
        ready=announce,
        plain_port=system.csms.plain_port,
        plain_ready=announce_plain,
    )
    server = asyncio.create_task(serving, name="fairwatt-server")
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
