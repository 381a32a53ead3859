"""Reservations of a connector by a driver: stored in PostgreSQL, sent to the charger, released.

A reservation holds one EVSE (the 1.6 connectorId, the API's ``connector_id``) from
``starts_at`` until ``expires_at`` = ``starts_at`` + min(duration, hold), the hold being the
charger's station's own when it has one, else the default. Its states:

``scheduled`` (starts later; nothing sent yet) -> ``pending`` (ReserveNow under way) ->
``active`` (the charger accepted) -> ``used`` (a session started on it) | ``cancelled`` (the
driver) | ``expired`` (not used within its hold: CancelReservation sent); ``rejected`` (the
charger refused) and ``failed`` (the charger could not be reached) end it too.

Two reservations holding the same EVSE never overlap in time: every insert checks under a
transaction-scoped advisory lock per EVSE (the same lock on every node, since they share the
database), and migration 0011 adds an exclusion constraint when ``btree_gist`` is available.
Starting and releasing are done by :meth:`Reservations.run`, a loop that claims due rows with
``FOR UPDATE SKIP LOCKED`` (one node acts on each) and so picks up where a restart left off.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from csms.commands import CommandBus
from csms.domain.events import DomainEvent, IdToken, ReservationStatusChanged, TransactionStarted
from csms.storage.database import Database
from sessions.errors import SessionsError

logger = logging.getLogger(__name__)

HOLDING = ("scheduled", "pending", "active")
_SEND_NOW_WITHIN = timedelta(seconds=2)
_COLUMNS = """reservation_id, driver_id, charger_id, evse_id, id_token, id_token_type, status, starts_at,
              ends_at, expires_at, failure_reason, created_at, updated_at"""


class ReservationStatus(enum.Enum):
    SCHEDULED = "scheduled"
    PENDING = "pending"
    ACTIVE = "active"
    USED = "used"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    FAILED = "failed"

    @property
    def holding(self) -> bool:
        return self.value in HOLDING


class ReservationError(SessionsError):
    """A reservation cannot be made (the API answers each subclass with its own status)."""


class ReservationOverlapError(ReservationError):
    """Another reservation holds the connector at an overlapping time."""


class UnknownConnectorError(ReservationError):
    """No such charger, or no such connector on it."""


class ChargerRefusedError(ReservationError):
    """The charger refused the ReserveNow or could not be reached; the reservation is ended."""

    def __init__(self, message: str, reservation: Reservation) -> None:
        super().__init__(message)
        self.reservation = reservation


@dataclass(frozen=True, slots=True)
class Reservation:
    reservation_id: int
    driver_id: str
    charger_id: str
    evse_id: int
    id_token: str
    id_token_type: str
    status: ReservationStatus
    starts_at: datetime
    ends_at: datetime
    expires_at: datetime
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The API's view (see ``Reservation`` in the OpenAPI document)."""
        return {
            "reservation_id": self.reservation_id,
            "charger_id": self.charger_id,
            "connector_id": self.evse_id,
            "status": self.status.value,
            "starts_at": self.starts_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "failure_reason": self.failure_reason,
            "created_at": self.created_at.isoformat(),
        }


def _reservation(row: Any) -> Reservation:
    return Reservation(
        reservation_id=row["reservation_id"],
        driver_id=row["driver_id"],
        charger_id=row["charger_id"],
        evse_id=row["evse_id"],
        id_token=row["id_token"],
        id_token_type=row["id_token_type"],
        status=ReservationStatus(row["status"]),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        expires_at=row["expires_at"],
        failure_reason=row["failure_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


Changed = Callable[[], Awaitable[None]]


class Reservations:
    """The reservation store and its charger commands; also the sessions' :class:`ReservationClaims`."""

    def __init__(
        self,
        database: Database,
        commands: CommandBus,
        *,
        hold_s: float,
        hold_by_station_s: Mapping[str, float] | None = None,
        check_interval_s: float = 1.0,
        on_change: Changed | None = None,
    ) -> None:
        self._database = database
        self._commands = commands
        self._hold = timedelta(seconds=hold_s)
        self._hold_by_station = {k: timedelta(seconds=v) for k, v in (hold_by_station_s or {}).items()}
        self._check_interval_s = check_interval_s
        self._on_change = on_change
        self._wake = asyncio.Event()

    # -- making and ending ------------------------------------------------------------------------

    async def create(
        self,
        driver_id: str,
        charger_id: str,
        evse_id: int,
        starts_at: datetime,
        duration_s: float,
        now: datetime,
    ) -> Reservation:
        """Store a reservation (409-worthy :class:`ReservationOverlapError` if the EVSE is held) and,
        when it starts now, send ReserveNow and wait for the charger's answer."""
        starts_at = max(starts_at, now)
        ends_at = starts_at + timedelta(seconds=duration_s)
        send_now = starts_at - now <= _SEND_NOW_WITHIN
        async with self._database.pool.acquire() as connection, connection.transaction():
            station_id = await self._check_connector(connection, charger_id, evse_id)
            hold = self._hold_by_station.get(station_id, self._hold) if station_id else self._hold
            expires_at = min(ends_at, starts_at + hold)
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext('reservation'), hashtext($1))",
                f"{charger_id}:{evse_id}",
            )
            overlapping = await connection.fetchval(
                """SELECT reservation_id FROM reservations
                   WHERE charger_id = $1 AND evse_id = $2 AND status = ANY($3::text[])
                     AND starts_at < $5 AND expires_at > $4 LIMIT 1""",
                charger_id,
                evse_id,
                list(HOLDING),
                starts_at,
                expires_at,
            )
            if overlapping is not None:
                raise ReservationOverlapError(
                    f"connector {evse_id} of charger {charger_id} is already reserved for that time"
                )
            token = await connection.fetchrow(
                """SELECT id_token, token_type FROM driver_tokens
                   WHERE driver_id = $1 AND status = 'Accepted' AND (expires_at IS NULL OR expires_at > $2)
                   ORDER BY created_at, id_token LIMIT 1""",
                driver_id,
                ends_at,
            )
            try:
                row = await connection.fetchrow(
                    f"""INSERT INTO reservations (reservation_id, driver_id, charger_id, evse_id, id_token,
                            id_token_type, status, starts_at, ends_at, expires_at)
                        SELECT id, $1, $2, $3, coalesce($4, 'RSV' || id), coalesce($5, 'Central'),
                               $6, $7, $8, $9
                        FROM (SELECT nextval('reservation_ids')::integer AS id) AS next
                        RETURNING {_COLUMNS}""",
                    driver_id,
                    charger_id,
                    evse_id,
                    None if token is None else token["id_token"],
                    None if token is None else token["token_type"],
                    "pending" if send_now else "scheduled",
                    starts_at,
                    ends_at,
                    expires_at,
                )
            except asyncpg.ExclusionViolationError:
                raise ReservationOverlapError(
                    f"connector {evse_id} of charger {charger_id} is already reserved for that time"
                ) from None
        reservation = _reservation(row)
        if not send_now:
            self._wake.set()
            return reservation
        reservation = await self._reserve_at_charger(reservation)
        await self._changed()
        if not reservation.status.holding:
            raise ChargerRefusedError(reservation.failure_reason or "the charger refused", reservation)
        return reservation

    async def _check_connector(self, connection: Any, charger_id: str, evse_id: int) -> str | None:
        """The charger's station (:class:`UnknownConnectorError` without such a connector)."""
        rows = await connection.fetch(
            """SELECT c.station_id, k.evse_id FROM chargers c
               LEFT JOIN connectors k ON k.charger_id = c.charger_id
               WHERE c.charger_id = $1 AND c.registration_status <> 'Rejected'""",
            charger_id,
        )
        if not rows:
            raise UnknownConnectorError(f"no charger {charger_id}")
        known = {row["evse_id"] for row in rows if row["evse_id"] is not None}
        if known and evse_id not in known:
            raise UnknownConnectorError(f"charger {charger_id} has no connector {evse_id}")
        station_id: str | None = rows[0]["station_id"]
        return station_id

    async def _reserve_at_charger(self, reservation: Reservation) -> Reservation:
        """Send ReserveNow for a pending reservation; store what came of it."""
        result = await self._commands.reserve_now(
            reservation.charger_id,
            reservation.reservation_id,
            reservation.evse_id,
            IdToken(reservation.id_token, reservation.id_token_type),
            reservation.expires_at,
        )
        if result.accepted:
            status, reason = "active", None
        elif result.status is not None:
            status, reason = "rejected", f"the charger refused the reservation: {result.status}"
        else:
            status, reason = "failed", f"the charger could not be reached ({result.outcome.value})"
        logger.info(
            "charger %s: reservation %d %s",
            reservation.charger_id,
            reservation.reservation_id,
            reason or status,
        )
        row = await self._database.pool.fetchrow(
            f"""UPDATE reservations SET status = $2, failure_reason = $3, updated_at = now()
                WHERE reservation_id = $1 AND status = 'pending' RETURNING {_COLUMNS}""",
            reservation.reservation_id,
            status,
            reason,
        )
        if row is None:  # cancelled or expired meanwhile: the release already told the charger
            found = await self.get(reservation.reservation_id)
            assert found is not None
            return found
        return _reservation(row)

    async def get(self, reservation_id: int) -> Reservation | None:
        row = await self._database.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM reservations WHERE reservation_id = $1", reservation_id
        )
        return None if row is None else _reservation(row)

    async def of_driver(self, driver_id: str, *, limit: int) -> list[Reservation]:
        """The driver's reservations, newest first."""
        rows = await self._database.pool.fetch(
            f"""SELECT {_COLUMNS} FROM reservations WHERE driver_id = $1
                ORDER BY created_at DESC, reservation_id DESC LIMIT $2""",
            driver_id,
            limit,
        )
        return [_reservation(row) for row in rows]

    async def cancel(self, reservation_id: int, driver_id: str) -> Reservation | None:
        """The driver cancels (``None`` if not theirs); cancelling an ended reservation changes nothing."""
        ended = await self._end(
            "cancelled",
            "status = ANY($1::text[]) AND reservation_id = $2 AND driver_id = $3",
            reservation_id,
            driver_id,
        )
        if not ended:
            found = await self.get(reservation_id)
            return found if found is not None and found.driver_id == driver_id else None
        return ended[0]

    async def _end(self, status: str, where: str, *arguments: Any) -> list[Reservation]:
        """End the holding reservations matching ``where`` (``$1`` is the holding statuses, then
        ``arguments``): tell their chargers (CancelReservation) when they had been sent there."""
        rows = await self._database.pool.fetch(
            f"""WITH ending AS (
                    SELECT reservation_id, status AS was FROM reservations WHERE {where}
                    ORDER BY reservation_id LIMIT 100 FOR UPDATE SKIP LOCKED)
                UPDATE reservations r SET status = '{status}', updated_at = now()
                FROM ending WHERE r.reservation_id = ending.reservation_id
                RETURNING ending.was, {", ".join("r." + c.strip() for c in _COLUMNS.split(","))}""",
            list(HOLDING),
            *arguments,
        )
        if not rows:
            return []
        await self._changed()
        await asyncio.gather(
            *(
                self._cancel_at_charger(row["charger_id"], row["reservation_id"], status)
                for row in rows
                if row["was"] in ("pending", "active")
            )
        )
        return [_reservation(row) for row in rows]

    async def _cancel_at_charger(self, charger_id: str, reservation_id: int, why: str) -> None:
        result = await self._commands.cancel_reservation(charger_id, reservation_id)
        logger.info(
            "charger %s: reservation %d %s, CancelReservation: %s",
            charger_id,
            reservation_id,
            why,
            result.status or result.outcome.value,
        )

    async def _changed(self) -> None:
        if self._on_change is not None:
            await self._on_change()

    async def _ended_by_charger(self, event: ReservationStatusChanged) -> None:
        status = "expired" if event.status == "Expired" else "cancelled"
        row = await self._database.pool.fetchval(
            """UPDATE reservations SET status = $3, updated_at = now()
               WHERE reservation_id = $1 AND charger_id = $2 AND status = ANY($4::text[])
               RETURNING reservation_id""",
            event.reservation_id,
            event.charger_id,
            status,
            list(HOLDING),
        )
        if row is not None:
            logger.info("charger %s: reservation %d %s at the charger", event.charger_id, row, status)
            await self._changed()

    # -- the sessions' port (ReservationClaims) ---------------------------------------------------

    async def held_by_other(self, driver_id: str, charger_id: str, connector_id: int, at: datetime) -> bool:
        found = await self._database.pool.fetchval(
            """SELECT 1 FROM reservations
               WHERE charger_id = $1 AND evse_id = $2 AND driver_id <> $3 AND status = ANY($4::text[])
                 AND starts_at <= $5 AND expires_at > $5 LIMIT 1""",
            charger_id,
            connector_id,
            driver_id,
            list(HOLDING),
            at,
        )
        return found is not None

    async def own_at(self, driver_id: str, charger_id: str, connector_id: int, at: datetime) -> int | None:
        """The id of the driver's reservation holding the connector at ``at`` (nothing changes)."""
        found: int | None = await self._database.pool.fetchval(
            """SELECT reservation_id FROM reservations
               WHERE charger_id = $1 AND evse_id = $2 AND driver_id = $3 AND status = ANY($4::text[])
                 AND starts_at <= $5 AND expires_at > $5
               ORDER BY starts_at LIMIT 1""",
            charger_id,
            connector_id,
            driver_id,
            list(HOLDING),
            at,
        )
        return found

    async def claim(self, driver_id: str, charger_id: str, connector_id: int, at: datetime) -> int | None:
        """Mark the driver's reservation in force at ``at`` used; the charger's reservation is
        cancelled so the app's remote start (with its own id token) is accepted on the connector."""
        used = await self._end(
            "used",
            """status = ANY($1::text[]) AND charger_id = $2 AND evse_id = $3 AND driver_id = $4
               AND starts_at <= $5 AND expires_at > $5""",
            charger_id,
            connector_id,
            driver_id,
            at,
        )
        return used[0].reservation_id if used else None

    async def on_event(self, event: DomainEvent) -> None:
        """Subscribed to the charging service: a transaction started on a reservation uses it; a
        charger that ended one itself (2.0.1 ReservationStatusUpdate) frees the connector."""
        if isinstance(event, ReservationStatusChanged):
            await self._ended_by_charger(event)
            return
        if not isinstance(event, TransactionStarted) or event.reservation_id is None:
            return
        row = await self._database.pool.fetchval(
            """UPDATE reservations SET status = 'used', updated_at = now()
               WHERE reservation_id = $1 AND charger_id = $2 AND status = ANY($3::text[])
               RETURNING reservation_id""",
            event.reservation_id,
            event.charger_id,
            list(HOLDING),
        )
        if row is not None:
            logger.info("charger %s: reservation %d used", event.charger_id, event.reservation_id)
            await self._changed()

    # -- the worker -------------------------------------------------------------------------------

    async def run_due(self, now: datetime) -> int:
        """Release reservations past their hold and send ReserveNow for those starting; how many."""
        released = await self._end("expired", "status = ANY($1::text[]) AND expires_at <= $2", now)
        rows = await self._database.pool.fetch(
            f"""WITH due AS (
                    SELECT reservation_id FROM reservations
                    WHERE status = 'scheduled' AND starts_at <= $1 AND expires_at > $1
                    ORDER BY starts_at LIMIT 100 FOR UPDATE SKIP LOCKED)
                UPDATE reservations r SET status = 'pending', updated_at = now()
                FROM due WHERE r.reservation_id = due.reservation_id
                RETURNING {", ".join("r." + c.strip() for c in _COLUMNS.split(","))}""",
            now,
        )
        await asyncio.gather(*(self._reserve_at_charger(_reservation(row)) for row in rows))
        if rows:
            await self._changed()
        return len(released) + len(rows)

    async def run(self, clock: Callable[[], datetime]) -> None:
        """Run :meth:`run_due` every ``check_interval_s`` (sooner after a scheduled reservation)."""
        while True:
            try:
                await self.run_due(clock())
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                logger.warning("reservations: due check failed, retrying: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._check_interval_s)
            self._wake.clear()
