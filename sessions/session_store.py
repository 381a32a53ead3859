"""Charging sessions and their events in PostgreSQL: every state change is conditional and durable.

A transition is one ``UPDATE ... WHERE state = ANY(from)`` and, when it changed a row, the
``session_events`` row recording it, in one database transaction: a repeated or late transition
changes nothing (idempotent), and two nodes racing for the same session cannot both win.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from csms.storage.database import Database
from sessions.errors import SessionsError
from sessions.events import SessionEvent, SessionOrigin, SessionState

OPEN_STATES = (SessionState.INITIATED.value, SessionState.ACTIVE.value, SessionState.STOPPING.value)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One row of ``charging_sessions``; energy in Wh, power in W, times UTC."""

    session_id: str
    driver_id: str | None
    charger_id: str
    evse_id: int
    connector_id: int
    state: SessionState
    origin: SessionOrigin
    failure_reason: str | None
    id_token: str | None
    payment_method_id: str | None
    remote_start_id: int | None
    reservation_id: int | None
    transaction_ref: int | None
    transaction_id: str | None
    tariff_id: str | None
    time_zone: str
    meter_start_wh: float | None
    meter_last_wh: float | None
    meter_stop_wh: float | None
    power_w: float | None
    offline: bool
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    departure_at: datetime | None = None  # when the driver said the car leaves
    energy_needed_kwh: float | None = None  # the session's total energy the driver asked for

    @property
    def energy_wh(self) -> float:
        """Energy delivered so far (final once the charger reported the stop meter value)."""
        if self.meter_start_wh is None:
            return 0.0
        latest = self.meter_stop_wh if self.meter_stop_wh is not None else self.meter_last_wh
        return max(0.0, (latest if latest is not None else self.meter_start_wh) - self.meter_start_wh)


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session to insert; ``state`` is INITIATED for the app, ACTIVE/COMPLETED for the charger's."""

    driver_id: str | None
    charger_id: str
    evse_id: int
    state: SessionState
    origin: SessionOrigin
    connector_id: int = 1
    id_token: str | None = None
    payment_method_id: str | None = None
    remote_start_id: int | None = None
    reservation_id: int | None = None
    transaction_ref: int | None = None
    transaction_id: str | None = None
    tariff_id: str | None = None
    time_zone: str = "UTC"
    meter_start_wh: float | None = None
    meter_stop_wh: float | None = None
    offline: bool = False
    started_at: datetime | None = None
    ended_at: datetime | None = None
    session_id: str | None = None
    departure_at: datetime | None = None
    energy_needed_kwh: float | None = None


@dataclass(frozen=True, slots=True)
class Changes:
    """Columns a transition sets; ``None`` leaves a column as it is."""

    failure_reason: str | None = None
    transaction_ref: int | None = None
    transaction_id: str | None = None
    tariff_id: str | None = None
    time_zone: str | None = None
    meter_start_wh: float | None = None
    meter_stop_wh: float | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    reservation_id: int | None = None
    offline: bool = False


@dataclass(frozen=True, slots=True)
class NeedsChange:
    """What a driver changes of their needs: each name in ``fields`` (``departure_at``,
    ``energy_needed_kwh``) is set to its value here, ``None`` clearing it; the others stay."""

    departure_at: datetime | None = None
    energy_needed_kwh: float | None = None
    fields: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class IdempotentCreate:
    """What ``create_idempotent`` found: the session, and whether this call created it."""

    record: SessionRecord
    created: bool
    event: SessionEvent | None


class IdempotencyConflictError(SessionsError):
    """The key was used before with a different request body."""

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id)
        self.session_id = session_id


_SELECT = "SELECT * FROM charging_sessions"
_OPEN = "state IN ('INITIATED', 'ACTIVE', 'STOPPING')"
"""Spelled out (not ``= ANY($n)``) so a generic plan can still use the partial indexes on open sessions."""


def _record(row: Any) -> SessionRecord:
    return SessionRecord(
        session_id=str(row["session_id"]),
        driver_id=row["driver_id"],
        charger_id=row["charger_id"],
        evse_id=row["evse_id"],
        connector_id=row["connector_id"],
        state=SessionState(row["state"]),
        origin=SessionOrigin(row["origin"]),
        failure_reason=row["failure_reason"],
        id_token=row["id_token"],
        payment_method_id=row["payment_method_id"],
        remote_start_id=row["remote_start_id"],
        reservation_id=row["reservation_id"],
        transaction_ref=row["transaction_ref"],
        transaction_id=row["transaction_id"],
        tariff_id=row["tariff_id"],
        time_zone=row["time_zone"],
        meter_start_wh=row["meter_start_wh"],
        meter_last_wh=row["meter_last_wh"],
        meter_stop_wh=row["meter_stop_wh"],
        power_w=row["power_w"],
        offline=row["offline"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        departure_at=row["departure_at"],
        energy_needed_kwh=row["energy_needed_kwh"],
    )


def _event(row: Any) -> SessionEvent:
    return SessionEvent(
        seq=row["seq"],
        session_id=str(row["session_id"]),
        kind=row["kind"],
        state=SessionState(row["state"]),
        at=row["at"],
        data=dict(row["data"]),
    )


_SESSION_COLUMNS = """session_id, driver_id, charger_id, evse_id, connector_id, state, origin, id_token,
    payment_method_id, remote_start_id, reservation_id, transaction_ref, transaction_id, tariff_id, time_zone,
    meter_start_wh, meter_last_wh, meter_stop_wh, offline, started_at, ended_at, departure_at,
    energy_needed_kwh"""
_SESSION_VALUES = """$1::uuid, $2::text, $3::text, $4::integer, $5::integer, $6::text, $7::text, $8::text,
    $9::text, $10::integer, $11::integer, $12::bigint, $13::text, $14::text, $15::text, $16::float8,
    $16::float8, $17::float8, $18::boolean, $19::timestamptz, $20::timestamptz, $23::timestamptz,
    $24::float8"""


def _insert_with_event(*, claim_key: bool) -> str:
    """One statement inserting a session and its first event (and claiming the idempotency key).

    ``claim_key``: the session is inserted only if the key ($25, hash $26) was not taken; no row
    comes back otherwise. Without it, no row comes back when the transaction has a session already.
    """
    claim = (
        """claimed AS (
               INSERT INTO idempotency_keys (driver_id, key, request_hash, session_id)
               VALUES ($2, $25, $26, $1) ON CONFLICT DO NOTHING RETURNING 1),"""
        if claim_key
        else ""
    )
    return f"""WITH {claim} created AS (
            INSERT INTO charging_sessions ({_SESSION_COLUMNS})
            SELECT {_SESSION_VALUES} {"FROM claimed" if claim_key else ""}
            ON CONFLICT (transaction_ref) DO NOTHING RETURNING *),
        event AS (
            INSERT INTO session_events (session_id, kind, state, at, data)
            SELECT session_id, 'state', state, $21::timestamptz, $22::jsonb FROM created
            RETURNING seq, at, data)
        SELECT created.*, event.seq AS event_seq, event.at AS event_at, event.data AS event_data
        FROM created, event"""


_CREATE = _insert_with_event(claim_key=False)
_CREATE_IDEMPOTENT = _insert_with_event(claim_key=True)


def _arguments(new: NewSession, data: dict[str, Any]) -> list[Any]:
    return [
        uuid.UUID(new.session_id) if new.session_id else uuid.uuid4(),
        new.driver_id,
        new.charger_id,
        new.evse_id,
        new.connector_id,
        new.state.value,
        new.origin.value,
        new.id_token,
        new.payment_method_id,
        new.remote_start_id,
        new.reservation_id,
        new.transaction_ref,
        new.transaction_id,
        new.tariff_id,
        new.time_zone,
        new.meter_start_wh,
        new.meter_stop_wh,
        new.offline,
        new.started_at,
        new.ended_at,
        datetime.now(UTC),
        data,
        new.departure_at,
        new.energy_needed_kwh,
    ]


def _created(row: Any) -> tuple[SessionRecord, SessionEvent]:
    record = _record(row)
    event = SessionEvent(
        seq=row["event_seq"],
        session_id=record.session_id,
        kind="state",
        state=record.state,
        at=row["event_at"],
        data=dict(row["event_data"]),
    )
    return record, event


class SessionStore:
    """Reads and writes ``charging_sessions``, ``session_events`` and ``idempotency_keys``."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, session_id: str) -> SessionRecord | None:
        row = await self._database.pool.fetchrow(f"{_SELECT} WHERE session_id = $1", uuid.UUID(session_id))
        return None if row is None else _record(row)

    async def create_idempotent(
        self, new: NewSession, *, key: str, request_hash: str, data: dict[str, Any]
    ) -> IdempotentCreate:
        """Insert ``new`` under the driver's idempotency ``key`` unless the key was used before.

        The same key with the same ``request_hash`` gives the earlier session back; with another
        hash it raises :class:`IdempotencyConflictError`.
        """
        assert new.driver_id is not None
        row = await self._database.pool.fetchrow(
            _CREATE_IDEMPOTENT, *_arguments(new, data), key, request_hash
        )
        if row is not None:
            record, event = _created(row)
            return IdempotentCreate(record, True, event)
        found = await self.find_key(new.driver_id, key)
        assert found is not None
        if found[0] != request_hash:
            raise IdempotencyConflictError(found[1])
        existing = await self.get(found[1])
        assert existing is not None
        return IdempotentCreate(existing, False, None)

    async def find_key(self, driver_id: str, key: str) -> tuple[str, str] | None:
        """The request hash and session id stored under the driver's idempotency ``key``."""
        row = await self._database.pool.fetchrow(
            "SELECT request_hash, session_id FROM idempotency_keys WHERE driver_id = $1 AND key = $2",
            driver_id,
            key,
        )
        return None if row is None else (row["request_hash"], str(row["session_id"]))

    async def create(
        self, new: NewSession, data: dict[str, Any]
    ) -> tuple[SessionRecord, SessionEvent] | None:
        """Insert a session the charger started (``None`` when its transaction already has one)."""
        row = await self._database.pool.fetchrow(_CREATE, *_arguments(new, data))
        return None if row is None else _created(row)

    async def transition(
        self,
        session_id: str,
        to: SessionState,
        from_states: Sequence[SessionState],
        changes: Changes,
        data: dict[str, Any],
    ) -> tuple[SessionRecord, SessionEvent] | None:
        """Move the session to ``to`` if it is in one of ``from_states``; ``None`` when it was not."""
        row = await self._database.pool.fetchrow(
            """WITH moved AS (
                   UPDATE charging_sessions SET state = $2, updated_at = now(),
                       failure_reason = COALESCE($4, failure_reason),
                       transaction_ref = COALESCE($5, transaction_ref),
                       transaction_id = COALESCE($6, transaction_id),
                       tariff_id = COALESCE($7, tariff_id), time_zone = COALESCE($8, time_zone),
                       meter_start_wh = COALESCE(meter_start_wh, $9),
                       meter_last_wh = COALESCE($10, meter_last_wh, $9),
                       meter_stop_wh = COALESCE(meter_stop_wh, $10),
                       started_at = COALESCE(started_at, $11), ended_at = COALESCE(ended_at, $12),
                       reservation_id = COALESCE(reservation_id, $13), offline = offline OR $14,
                       power_w = CASE WHEN $2 IN ('COMPLETED', 'FAILED') THEN 0 ELSE power_w END
                   WHERE session_id = $1 AND state = ANY($3::text[]) RETURNING *),
               event AS (
                   INSERT INTO session_events (session_id, kind, state, at, data)
                   SELECT session_id, 'state', state, $15, $16::jsonb FROM moved RETURNING seq, at, data)
               SELECT moved.*, event.seq AS event_seq, event.at AS event_at, event.data AS event_data
               FROM moved, event""",
            uuid.UUID(session_id),
            to.value,
            [state.value for state in from_states],
            changes.failure_reason,
            changes.transaction_ref,
            changes.transaction_id,
            changes.tariff_id,
            changes.time_zone,
            changes.meter_start_wh,
            changes.meter_stop_wh,
            changes.started_at,
            changes.ended_at,
            changes.reservation_id,
            changes.offline,
            datetime.now(UTC),
            data,
        )
        return None if row is None else _created(row)

    async def attach_transaction(self, session_id: str, changes: Changes) -> SessionRecord | None:
        """Link a STOPPING session (stopped before the charger started) to its transaction."""
        row = await self._database.pool.fetchrow(
            """UPDATE charging_sessions SET transaction_ref = $2, transaction_id = $3,
                   meter_start_wh = COALESCE(meter_start_wh, $4), meter_last_wh = COALESCE(meter_last_wh, $4),
                   started_at = COALESCE(started_at, $5), updated_at = now()
               WHERE session_id = $1 AND transaction_ref IS NULL RETURNING *""",
            uuid.UUID(session_id),
            changes.transaction_ref,
            changes.transaction_id,
            changes.meter_start_wh,
            changes.started_at,
        )
        return None if row is None else _record(row)

    async def identify(
        self, session_id: str, driver_id: str | None, id_token: str, origin: SessionOrigin
    ) -> SessionRecord | None:
        """Give a session that has no token yet the token that authorised its transaction after the
        start, and that token's driver (2.0.1 E02); a session started without authorisation (free
        vend) takes ``origin``. ``None`` when the session has a token already."""
        row = await self._database.pool.fetchrow(
            """UPDATE charging_sessions SET id_token = $3, driver_id = COALESCE(driver_id, $2),
                   origin = CASE WHEN origin = 'free_vend' THEN $4 ELSE origin END, updated_at = now()
               WHERE session_id = $1 AND id_token IS NULL RETURNING *""",
            uuid.UUID(session_id),
            driver_id,
            id_token,
            origin.value,
        )
        return None if row is None else _record(row)

    async def place_on_evse(self, session_id: str, evse_id: int) -> SessionRecord | None:
        """Put a session opened on EVSE 0 (its transaction's first event named no EVSE) on ``evse_id``;
        ``None`` when it is on an EVSE already."""
        row = await self._database.pool.fetchrow(
            """UPDATE charging_sessions SET evse_id = $2, updated_at = now()
               WHERE session_id = $1 AND evse_id = 0 RETURNING *""",
            uuid.UUID(session_id),
            evse_id,
        )
        return None if row is None else _record(row)

    async def change_needs(
        self, session_id: str, driver_id: str, change: NeedsChange
    ) -> SessionRecord | None:
        """Set the driver's needs of their INITIATED or ACTIVE session (``None``: no such session
        of theirs in those states)."""
        row = await self._database.pool.fetchrow(
            """UPDATE charging_sessions SET
                   departure_at = CASE WHEN $3 THEN $4::timestamptz ELSE departure_at END,
                   energy_needed_kwh = CASE WHEN $5 THEN $6::float8 ELSE energy_needed_kwh END,
                   updated_at = now()
               WHERE session_id = $1 AND driver_id = $2 AND state IN ('INITIATED', 'ACTIVE')
               RETURNING *""",
            uuid.UUID(session_id),
            driver_id,
            "departure_at" in change.fields,
            change.departure_at,
            "energy_needed_kwh" in change.fields,
            change.energy_needed_kwh,
        )
        return None if row is None else _record(row)

    async def record_progress(
        self, session_id: str, meter_wh: float | None, power_w: float | None, data: dict[str, Any]
    ) -> SessionEvent | None:
        """Store the latest meter reading and a ``progress`` event (``None`` once the session ended)."""
        row = await self._database.pool.fetchrow(
            """WITH updated AS (
                   UPDATE charging_sessions SET meter_last_wh = COALESCE($2, meter_last_wh),
                       meter_start_wh = COALESCE(meter_start_wh, $2),
                       power_w = COALESCE($3, power_w), updated_at = now()
                   WHERE session_id = $1 AND state = ANY($4::text[]) RETURNING session_id, state)
               INSERT INTO session_events (session_id, kind, state, at, data)
               SELECT session_id, 'progress', state, $5, $6::jsonb FROM updated RETURNING *""",
            uuid.UUID(session_id),
            meter_wh,
            power_w,
            list(OPEN_STATES),
            datetime.now(UTC),
            data,
        )
        return None if row is None else _event(row)

    async def by_transaction(self, charger_id: str, transaction_id: str) -> SessionRecord | None:
        row = await self._database.pool.fetchrow(
            f"{_SELECT} WHERE charger_id = $1 AND transaction_id = $2 ORDER BY created_at DESC LIMIT 1",
            charger_id,
            transaction_id,
        )
        return None if row is None else _record(row)

    async def awaiting_start(
        self, charger_id: str, evse_id: int, id_token: str | None, remote_start_id: int | None
    ) -> SessionRecord | None:
        """The app session a transaction the charger just started belongs to, if any."""
        row = await self._database.pool.fetchrow(
            f"""{_SELECT} WHERE charger_id = $1 AND state IN ('INITIATED', 'STOPPING')
                   AND transaction_ref IS NULL AND origin = 'app'
                   AND (lower(id_token) = lower($2) OR ($3::integer IS NOT NULL AND remote_start_id = $3))
                   AND (evse_id = $4 OR $4 = 0)
                ORDER BY created_at DESC LIMIT 1""",
            charger_id,
            id_token,
            remote_start_id,
            evse_id,
        )
        return None if row is None else _record(row)

    async def open_on_evse(self, charger_id: str, evse_id: int) -> SessionRecord | None:
        row = await self._database.pool.fetchrow(
            f"""{_SELECT} WHERE charger_id = $1 AND evse_id = $2 AND {_OPEN}
                ORDER BY created_at DESC LIMIT 1""",
            charger_id,
            evse_id,
        )
        return None if row is None else _record(row)

    async def open_with_token(self, charger_id: str, id_token: str) -> bool:
        """Whether an open app session on ``charger_id`` was started with ``id_token``."""
        found = await self._database.pool.fetchval(
            f"""SELECT true FROM charging_sessions
                WHERE charger_id = $1 AND lower(id_token) = lower($2) AND {_OPEN} LIMIT 1""",
            charger_id,
            id_token,
        )
        return bool(found)

    async def waiting_for_charger(self) -> list[SessionRecord]:
        """App sessions the charger has not started yet (their start timeout is still running)."""
        rows = await self._database.pool.fetch(
            f"""{_SELECT} WHERE state IN ('INITIATED', 'STOPPING') AND transaction_ref IS NULL
                   AND origin = 'app'"""
        )
        return [_record(row) for row in rows]

    async def active_with_transaction(self) -> list[SessionRecord]:
        """The ACTIVE sessions whose transaction is known, oldest first."""
        rows = await self._database.pool.fetch(
            f"{_SELECT} WHERE state = 'ACTIVE' AND transaction_id IS NOT NULL ORDER BY created_at"
        )
        return [_record(row) for row in rows]

    async def events_after(self, session_id: str, after_seq: int, limit: int = 500) -> list[SessionEvent]:
        rows = await self._database.pool.fetch(
            "SELECT * FROM session_events WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            uuid.UUID(session_id),
            after_seq,
            limit,
        )
        return [_event(row) for row in rows]

    async def for_driver(
        self, driver_id: str, *, limit: int, before: datetime | None = None
    ) -> list[SessionRecord]:
        """The driver's sessions, newest first (``before``: created before that instant)."""
        rows = await self._database.pool.fetch(
            f"""{_SELECT} WHERE driver_id = $1 AND ($2::timestamptz IS NULL OR created_at < $2)
                ORDER BY created_at DESC LIMIT $3""",
            driver_id,
            before,
            limit,
        )
        return [_record(row) for row in rows]
