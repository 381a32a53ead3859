"""Diff and apply an operator's network against the running system.

The network as last applied is kept per resource (``network_resources``: kind, id, canonical
JSON); :func:`plan` compares a parsed :class:`Network` with it. :func:`apply` recomputes the plan
under the operator's advisory lock and writes every change in ONE transaction: the resource rows,
their projections into the tables the rest of the system reads (``stations``, ``chargers`` and
``connectors``, ``tariffs`` versions and ``tariff_assignments``) and one audit row per change.
Any failure (a secret that cannot be resolved, an id another operator owns, a charger that cannot
be removed because it has transactions) rolls everything back. Applying the same network twice
finds no change and writes nothing.

What happens after the commit (re-solving stations, pushing local lists) is done by the caller
(:mod:`fairwatt.operator.effects`), because it talks to chargers and must not hold the transaction.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from csms.storage.passwords import hash_password
from fairwatt.config.network_model import Network, SecretError, SecretRef
from fairwatt.errors import FairwattError
from sessions.tariff_store import TariffStore

KIND_ORDER = ("tariff", "station", "charger", "local_list", "demand_response")
"""Creates and updates run in this order, deletes in the reverse one."""
GLOBAL_KINDS = ("tariff", "station", "charger")
"""Ids unique across operators; local lists and demand-response programmes are named per operator."""


class ApplyError(FairwattError):
    """A change that cannot be applied; nothing was changed. ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Change:
    """One resource to create, update or delete; ``fields`` names the top-level fields that differ."""

    action: str
    kind: str
    resource_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    fields: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kind": self.kind,
            "id": self.resource_id,
            "fields": list(self.fields),
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    changes: tuple[Change, ...]
    versions: dict[tuple[str, str], int] = field(default_factory=dict)
    """The stored version of each changed resource after the apply (local lists: the listVersion)."""


def _decoded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _normal(body: Mapping[str, Any]) -> Any:
    """A body as JSON round-trips it (tuples become lists, ints in float fields stay comparable)."""
    return json.loads(json.dumps(body, sort_keys=True))


def diff(
    desired: Mapping[tuple[str, str], dict[str, Any]], current: Mapping[tuple[str, str], Any]
) -> list[Change]:
    """The changes that turn ``current`` into ``desired`` (both ``(kind, id) -> body``), in apply order."""
    changes: list[Change] = []
    for key in sorted(desired, key=lambda k: (KIND_ORDER.index(k[0]), k[1])):
        want = _normal(desired[key])
        have = current.get(key)
        if have is None:
            changes.append(Change("create", key[0], key[1], None, want, tuple(sorted(want))))
        elif have != want:
            names = sorted(set(want) | set(have))
            changed = tuple(n for n in names if want.get(n) != have.get(n))
            changes.append(Change("update", key[0], key[1], have, want, changed))
    for key in sorted(
        (k for k in current if k not in desired), key=lambda k: (-KIND_ORDER.index(k[0]), k[1])
    ):
        changes.append(Change("delete", key[0], key[1], current[key], None, ()))
    return changes


async def current_resources(connection: Any, cpo_id: str) -> dict[tuple[str, str], Any]:
    rows = await connection.fetch(
        "SELECT kind, resource_id, body FROM network_resources WHERE cpo_id = $1", cpo_id
    )
    return {(row["kind"], row["resource_id"]): _decoded(row["body"]) for row in rows}


async def plan(pool: Any, cpo_id: str, network: Network) -> list[Change]:
    """What applying ``network`` for ``cpo_id`` would change now."""
    _check_operator(network, cpo_id)
    async with pool.acquire() as connection:
        return diff(network.resources(), await current_resources(connection, cpo_id))


def _check_operator(network: Network, cpo_id: str) -> None:
    if network.cpo_id is not None and network.cpo_id != cpo_id:
        raise ApplyError(
            f"the file is for operator {network.cpo_id!r}, but this key belongs to {cpo_id!r}", status=403
        )


class Applier:
    """Applies one plan in one transaction (see the module docstring)."""

    def __init__(
        self,
        pool: Any,
        tariffs: TariffStore,
        *,
        environ: Mapping[str, str],
        secrets_dir: Path | None = None,
    ) -> None:
        self._pool = pool
        self._tariffs = tariffs
        self._environ = environ
        self._secrets_dir = secrets_dir

    async def apply(self, cpo_id: str, actor: str, network: Network) -> ApplyOutcome:
        _check_operator(network, cpo_id)
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"network:{cpo_id}")
            changes = diff(network.resources(), await current_resources(connection, cpo_id))
            versions: dict[tuple[str, str], int] = {}
            for change in changes:
                await self._check_owner(connection, change, cpo_id)
                try:
                    await self._project(connection, change, cpo_id, actor)
                except asyncpg.ForeignKeyViolationError:
                    raise ApplyError(
                        f"{change.kind} {change.resource_id} cannot be removed: other records refer to it "
                        "(a charger with transactions stays; take it off the network's stations instead)"
                    ) from None
                versions[(change.kind, change.resource_id)] = await self._record(
                    connection, change, cpo_id, actor
                )
        return ApplyOutcome(tuple(changes), versions)

    async def _check_owner(self, connection: Any, change: Change, cpo_id: str) -> None:
        if change.kind not in GLOBAL_KINDS:
            return  # named per operator
        owner = await connection.fetchval(
            "SELECT cpo_id FROM network_resources WHERE kind = $1 AND resource_id = $2 AND cpo_id <> $3",
            change.kind,
            change.resource_id,
            cpo_id,
        )
        if owner is None and change.kind in ("station", "charger"):
            table, column = (
                ("stations", "station_id") if change.kind == "station" else ("chargers", "charger_id")
            )
            owner = await connection.fetchval(
                f"SELECT cpo_id FROM {table} WHERE {column} = $1", change.resource_id
            )
        if owner is None and change.kind == "tariff":
            owner = await connection.fetchval(
                "SELECT cpo_id FROM tariffs WHERE tariff_id = $1 ORDER BY version DESC LIMIT 1",
                change.resource_id,
            )
        if owner is not None and owner != cpo_id:
            raise ApplyError(f"{change.kind} {change.resource_id} belongs to another operator")

    async def _record(self, connection: Any, change: Change, cpo_id: str, actor: str) -> int:
        if change.action == "delete":  # the version a replacement would have had (an emptied list's)
            version = await connection.fetchval(
                """DELETE FROM network_resources WHERE cpo_id = $1 AND kind = $2 AND resource_id = $3
                   RETURNING version + 1""",
                cpo_id,
                change.kind,
                change.resource_id,
            )
        else:
            version = await connection.fetchval(
                """INSERT INTO network_resources (kind, resource_id, cpo_id, body, applied_by)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (cpo_id, kind, resource_id) DO UPDATE
                   SET body = excluded.body, version = network_resources.version + 1,
                       applied_at = now(), applied_by = excluded.applied_by
                   RETURNING version""",
                change.kind,
                change.resource_id,
                cpo_id,
                change.after,
                actor,
            )
        await connection.execute(
            """INSERT INTO operator_audit_log
                   (cpo_id, actor, action, kind, resource_id, before, after, detail)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            cpo_id,
            actor,
            f"network.{change.action}",
            change.kind,
            change.resource_id,
            change.before,
            change.after,
            {"fields": list(change.fields)},
        )
        return int(version)

    # -- projections into the tables the rest of the system reads ---------------------------------

    async def _project(self, connection: Any, change: Change, cpo_id: str, actor: str) -> None:
        if change.kind == "tariff":
            if change.after is not None:
                await self._tariffs.publish(
                    change.after, cpo_id=cpo_id, created_by=actor, connection=connection
                )
        elif change.kind == "station":
            await self._station(connection, change, cpo_id)
        elif change.kind == "charger":
            await self._charger(connection, change, cpo_id)
        # local lists and demand-response programmes live in network_resources only

    async def _station(self, connection: Any, change: Change, cpo_id: str) -> None:
        station_id = change.resource_id
        if change.after is None:
            await connection.execute("DELETE FROM stations WHERE station_id = $1", station_id)
            await _assign(connection, "station", station_id, None)
            return
        body = change.after
        location = body["location"]
        await connection.execute(
            """INSERT INTO stations
                   (station_id, cpo_id, name, time_zone, latitude_deg, longitude_deg, address)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (station_id) DO UPDATE SET cpo_id = excluded.cpo_id, name = excluded.name,
                   time_zone = excluded.time_zone, latitude_deg = excluded.latitude_deg,
                   longitude_deg = excluded.longitude_deg, address = excluded.address""",
            station_id,
            cpo_id,
            body["name"],
            body["time_zone"],
            location["latitude_deg"],
            location["longitude_deg"],
            location["address"],
        )
        await _assign(connection, "station", station_id, body["tariff"])

    async def _charger(self, connection: Any, change: Change, cpo_id: str) -> None:
        charger_id = change.resource_id
        if change.after is None:
            await connection.execute("DELETE FROM chargers WHERE charger_id = $1", charger_id)
            await _assign(connection, "charger", charger_id, None)
            return
        body = change.after
        password_changed = change.before is None or change.before.get("password") != body["password"]
        await connection.execute(
            """INSERT INTO chargers
                   (charger_id, station_id, cpo_id, vendor, model, security_profile, registration_status)
               VALUES ($1, $2, $3, $4, $5, $6, 'Accepted')
               ON CONFLICT (charger_id) DO UPDATE SET station_id = excluded.station_id,
                   cpo_id = excluded.cpo_id, vendor = excluded.vendor, model = excluded.model,
                   security_profile = excluded.security_profile, auto_registered = false""",
            charger_id,
            body["station"],
            cpo_id,
            body["vendor"],
            body["model"],
            body.get("security_profile"),  # None: the node's profile
        )
        if password_changed:
            password_hash = None
            if body["password"] is not None:
                scheme, _, name = body["password"].partition(":")
                try:
                    secret = SecretRef(scheme, name).resolve(self._environ, self._secrets_dir)
                except SecretError as exc:
                    raise ApplyError(f"charger {charger_id}: {exc}", status=422) from None
                password_hash = await asyncio.to_thread(hash_password, secret)
            await connection.execute(
                "UPDATE chargers SET password_hash = $2 WHERE charger_id = $1", charger_id, password_hash
            )
        await connection.execute("DELETE FROM connectors WHERE charger_id = $1", charger_id)
        await connection.executemany(
            """INSERT INTO connectors (charger_id, evse_id, connector_id, connector_type, max_power_kw)
               VALUES ($1, $2, 1, $3, $4)""",
            [(charger_id, c["id"], c["type"], c["max_power_kw"]) for c in body["connectors"]],
        )
        await _assign(connection, "charger", charger_id, body["tariff"])


async def _assign(connection: Any, scope: str, scope_id: str, tariff_id: str | None) -> None:
    if tariff_id is None:
        await connection.execute(
            "DELETE FROM tariff_assignments WHERE scope = $1 AND scope_id = $2", scope, scope_id
        )
        return
    await connection.execute(
        """INSERT INTO tariff_assignments (scope, scope_id, tariff_id) VALUES ($1, $2, $3)
           ON CONFLICT (scope, scope_id) DO UPDATE SET tariff_id = excluded.tariff_id""",
        scope,
        scope_id,
        tariff_id,
    )
