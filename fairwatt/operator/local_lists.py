"""Local authorisation lists reach chargers that were offline when the network was applied.

When a charger's boot is accepted, :class:`LocalListSync` looks up the list the applied network
gives it (``network_resources``, kind ``local_list``), asks the charger for its list version and
sends the full list when the versions differ. The send runs as a task of the app (a domain-event
listener must not await a call to its own charger).
"""

from __future__ import annotations

import logging
from typing import Any

from csms.commands import CommandBus
from csms.commands.payloads import LocalListEntry
from csms.domain.events import (
    Authorization,
    AuthorizationStatus,
    ChargerBooted,
    DomainEvent,
    IdToken,
    RegistrationStatus,
)
from csms.live_state import LiveState
from csms.storage.database import Database
from csms.tasks import TaskOwner

logger = logging.getLogger(__name__)


class LocalListSync:
    """Subscribe :meth:`on_event` to the charging service's domain events."""

    def __init__(
        self, database: Database, commands: CommandBus, live_state: LiveState, tasks: TaskOwner
    ) -> None:
        self._database = database
        self._commands = commands
        self._live_state = live_state
        self._tasks = tasks

    async def on_event(self, event: DomainEvent) -> None:
        if isinstance(event, ChargerBooted):
            charger = await self._live_state.get(event.charger_id)
            if charger is not None and charger.registration is RegistrationStatus.ACCEPTED:
                self._tasks.start(self._sync_quietly(event.charger_id), f"local-list-{event.charger_id}")

    async def _sync_quietly(self, charger_id: str) -> None:
        await self.sync(charger_id)

    async def list_of(self, charger_id: str) -> tuple[int, list[LocalListEntry]] | None:
        """``(version, entries)`` of the list the applied network gives ``charger_id``, if any."""
        row: Any = await self._database.pool.fetchrow(
            """SELECT version, body FROM network_resources
               WHERE kind = 'local_list' AND body->'chargers' ? $1""",
            charger_id,
        )
        if row is None:
            return None
        entries = [
            LocalListEntry(IdToken(e["id_token"], e["type"]), Authorization(AuthorizationStatus(e["status"])))
            for e in row["body"]["entries"]
        ]
        return int(row["version"]), entries

    async def sync(self, charger_id: str) -> bool:
        """Send the charger its list when its version differs; whether a list was sent and accepted."""
        wanted = await self.list_of(charger_id)
        if wanted is None:
            return False
        version, entries = wanted
        held = await self._commands.get_local_list_version(charger_id)
        if held.accepted and (held.payload.get("listVersion", held.payload.get("versionNumber")) == version):
            return False
        result = await self._commands.send_local_list(charger_id, version, entries, full=True)
        if result.accepted:
            logger.info("charger %s: local list version %d sent", charger_id, version)
        else:
            logger.warning(
                "charger %s: local list version %d not taken: %s", charger_id, version, result.outcome.value
            )
        return result.accepted
