"""The settings the CSMS needs, as one frozen object the CLI builds from YAML and passes down."""

from __future__ import annotations

from dataclasses import dataclass

from csms.domain.events import RegistrationStatus
from csms.errors import SettingsError


@dataclass(frozen=True, slots=True)
class CsmsSettings:
    """Settings of the OCPP central system.

    ``max_message_bytes`` is the largest message answered normally; a bigger one (up to
    ``hard_max_message_bytes``) is answered with a FormatViolation CALLERROR, and beyond that the
    WebSocket closes with 1009.
    """

    database_dsn: str
    heartbeat_interval_s: int = 300
    pending_retry_interval_s: int = 60
    max_message_bytes: int = 65_536
    hard_max_message_bytes: int = 1_048_576
    response_timeout_s: float = 30.0
    websocket_ping_interval_s: float | None = 60.0
    websocket_compression: bool = True
    """RFC 7692 per-message deflate for 2.0.1 stations that offer it (2.0.1 Part 4 §3.3: the CSMS
    SHALL support it; never for 1.6). Each compressed connection keeps its zlib state: measured
    ~114 KB per connection against ~16 KB without (aiohttp, 1,000 connections), so a node holding
    many chargers on cheap links may turn it off (``fairwatt serve --no-websocket-compression``)."""
    auto_register: bool = False
    """Register an unknown charger on its first connection (without password; not at profile 2)."""
    auto_register_status: RegistrationStatus = RegistrationStatus.ACCEPTED
    ocpp_path_prefix: str = "/ocpp"
    database_max_connections: int = 10
    redis_url: str | None = None
    """Redis for live state, charger -> node routing and the command channel; None: one node."""
    redis_key_prefix: str = "fairwatt:csms:"
    node_id: str | None = None
    """This node's id in the routing table; None: host, pid and a random suffix."""
    route_ttl_s: float = 300.0
    node_ttl_s: float = 15.0
    """How long a node's liveness key outlives its last renewal [s]: the chargers of a node that died
    without cleaning up read as disconnected on every node within this time."""
    redis_max_connections: int = 64  # per node; callers beyond it wait for a free connection
    redis_pool_timeout_s: float = 5.0  # how long they wait before the call fails
    gc_freeze_every_s: float | None = None  # see csms.gc_pacing (`fairwatt serve`: 5 s); None: off
    gc_collect_every_s: float = 3600.0
    meter_series_batch_size: int = 1000
    meter_series_flush_interval_s: float = 2.0
    security_profile: int = 1
    """The node's OCPP security profile: 1 ws:// + Basic auth, 2 wss:// + Basic auth, 3 wss:// + client
    certificates. It is the transport of the main listener and the profile a charger without one of
    its own (``ChargerRecord.security_profile``) must meet. At profile 1 a charger registered without
    a password is admitted without credentials (legacy chargers); at profile 2 every charger needs a
    password."""
    tls_certificate_file: str | None = None
    tls_private_key_file: str | None = None
    tls_client_ca_file: str | None = None
    """CA file that signs chargers' client certificates: required at profile 3; at profile 2 it lets
    the same wss:// listener also admit chargers by client certificate (profile 3 chargers)."""
    plain_port: int | None = None
    """At profile 2 or 3: also serve the OCPP endpoint over ws:// on this TCP port (0: any free one),
    for chargers configured at profile 1; chargers held to a higher profile are refused there, and
    nothing but the OCPP endpoint is served on it. ``None``: one listener."""

    def __post_init__(self) -> None:
        if self.max_message_bytes > self.hard_max_message_bytes:
            raise SettingsError("max_message_bytes must not exceed hard_max_message_bytes")
        if self.heartbeat_interval_s <= 0 or self.response_timeout_s <= 0:
            raise SettingsError("intervals and timeouts must be positive")
        if self.route_ttl_s <= 0 or self.node_ttl_s <= 0:
            raise SettingsError("route_ttl_s and node_ttl_s must be positive")
        if self.plain_port is not None:
            if self.security_profile < 2:
                raise SettingsError(
                    "plain_port is for a TLS node (security profile 2 or 3): at profile 1 the main"
                    " listener is ws:// already"
                )
            if not 0 <= self.plain_port <= 65535:
                raise SettingsError(f"plain_port {self.plain_port}: not a TCP port")
        if self.auto_register and self.security_profile == 2:
            # An auto-registered charger has no password, and profile 2 admits none without one.
            raise SettingsError(
                "auto_register cannot be used with security profile 2: a charger registered on first"
                " connect has no password, and profile 2 requires HTTP Basic authentication;"
                " register chargers with passwords instead (fairwatt apply)"
            )
