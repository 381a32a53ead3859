"""What a later 2.0.1 TransactionEvent tells the session of a transaction already running.

A station may start a transaction before it knows who charges (E02: cable plugged in first) or
without naming the EVSE in its first event (E01/E02). A later event brings them: the session then
takes the EVSE, and the driver whose token authorised it (their tier goes to the planner). An
event is looked up only when it could add one of them: a session known to have its EVSE is not
looked up for an event without a token, nor one known to have its token for any event.
"""

from __future__ import annotations

import logging

from csms.domain.events import IdToken, TransactionEventReceived
from csms.server import CsmsRuntime
from csms.storage.database import Database
from sessions.events import SessionOrigin
from sessions.needs import tell_planner
from sessions.session_store import SessionStore

logger = logging.getLogger(__name__)

# how many transactions each of the sets below remembers at most
_KEPT = 200_000


def origin_of(id_token: IdToken | None) -> SessionOrigin:
    """How a session the charger started was authorised."""
    if id_token is None or id_token.token_type == "NoAuthorization":
        return SessionOrigin.FREE_VEND
    if id_token.token_type == "eMAID":
        return SessionOrigin.PLUG_AND_CHARGE
    return SessionOrigin.RFID


async def driver_of(database: Database, id_token: str | None) -> str | None:
    """The driver whose token this is (tokens compare case-insensitively; an exact match wins)."""
    if id_token is None:
        return None
    found: str | None = await database.pool.fetchval(
        """SELECT driver_id FROM driver_tokens WHERE lower(id_token) = lower($1)
           ORDER BY id_token = $1 DESC LIMIT 1""",
        id_token,
    )
    return found


class LateEvents:
    """Completes running sessions from later 2.0.1 transaction events."""

    def __init__(self, store: SessionStore, csms: CsmsRuntime) -> None:
        self._store = store
        self._csms = csms
        self._placed: set[tuple[str, str]] = set()  # transactions whose session has its EVSE
        self._identified: set[tuple[str, str]] = set()  # ... and those whose session has its token

    def forget(self, charger_id: str, transaction_id: str) -> None:
        """The transaction ended."""
        self._placed.discard((charger_id, transaction_id))
        self._identified.discard((charger_id, transaction_id))

    def _note(self, known: set[tuple[str, str]], key: tuple[str, str]) -> None:
        if len(known) >= _KEPT:
            known.clear()  # (transactions whose end never came: start over)
        known.add(key)

    async def on_event(self, event: TransactionEventReceived) -> None:
        """A later 2.0.1 event completes what the transaction's open session lacks: the EVSE its first
        event did not name (E01/E02), and the driver whose token authorised it after the start (E02:
        cable plugged in first, then an Updated event with triggerReason Authorized)."""
        key = (event.charger_id, event.transaction_id)
        if key in self._identified:
            return
        if event.id_token is None and (not event.evse_id or key in self._placed):
            return
        record = await self._store.by_transaction(event.charger_id, event.transaction_id)
        if record is None or record.state.final:
            return
        if event.evse_id and record.evse_id == 0:
            placed = await self._store.place_on_evse(record.session_id, event.evse_id)
            if placed is not None:
                logger.info(
                    "charger %s: session %s is on EVSE %d", event.charger_id, record.session_id, event.evse_id
                )
                record = placed
        if record.evse_id:
            self._note(self._placed, key)
        if record.id_token is not None:
            self._note(self._identified, key)
        token = event.id_token
        if token is None or record.id_token is not None:
            return
        driver_id = await driver_of(self._csms.database, token.value)
        origin = origin_of(token)
        if driver_id is None:  # F01 (remote start after plug-in): our app token, its session's driver
            app = await self._store.awaiting_start(record.charger_id, record.evse_id, token.value, None)
            if app is not None:
                driver_id, origin = app.driver_id, SessionOrigin.APP
        identified = await self._store.identify(record.session_id, driver_id, token.value, origin)
        if identified is None:
            return
        self._note(self._identified, key)
        logger.info(
            "charger %s: session %s authorised after its start by %s",
            event.charger_id,
            record.session_id,
            f"driver {driver_id}" if driver_id is not None else "a token of no driver",
        )
        if driver_id is not None:
            await tell_planner(self._csms, identified)  # the driver's tier counts from now on
