"""Collecting what each rated session owes, exactly once: the payment state machine per revision.

``rated -> capture_pending -> captured``; a decline goes to ``retrying`` (exponential backoff, the
driver is notified) and back to ``capture_pending``; after ``max_declines`` the amount becomes a
``debt``: the receivable is closed by a compensating ``to_debt`` entry and a ``debt`` entry
keeps it on the driver's account, visible to operators. The charger is not involved: the
session is complete and its stall already released when billing runs.

Exactly once:

* a worker claims due rows with ``FOR UPDATE SKIP LOCKED`` and stamps them with a claim token and
  a lease (``next_attempt_at``), then talks to the provider outside any transaction; a worker that
  dies mid-step leaves the row to be claimed again when the lease ends;
* every provider call has an idempotency key derived from the session id (``capture:<id>``,
  ``release:<id>``, ``charge:<id>:<revision>:<declines>``, ``refund:<id>:<revision>``): a repeated
  step after a crash, a timeout or a 5xx (outcome unknown) reuses the key, so the provider does
  it once and replays its answer; only a definitive decline moves to a new key;
* the result is recorded only by the claim holder (``claim_token``), and the ledger entries are
  keyed, so a late answer from an expired claim books nothing twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from billing.documents import LedgerEntry, book
from billing.errors import (
    IdempotencyConflictError,
    OutcomeUnknownError,
    PaymentDeclinedError,
)
from billing.gateway import IntentStatus, PaymentGateway, PaymentIntent, from_minor, to_minor

logger = logging.getLogger(__name__)

_NEEDS_DRIVER = frozenset(
    {IntentStatus.REQUIRES_PAYMENT_METHOD, IntentStatus.REQUIRES_ACTION, IntentStatus.CANCELED}
)

Checkpoint = Callable[[str, str], Awaitable[None]]
"""Called with ``(step, session_id)`` between steps; tests use it to crash a worker there."""

_CLAIM = """
WITH due AS (
    SELECT p.session_id, p.revision FROM billing_payments p
    WHERE p.state IN ('rated', 'capture_pending', 'retrying') AND p.next_attempt_at <= now()
      AND NOT EXISTS (SELECT 1 FROM billing_payments q
                      WHERE q.session_id = p.session_id AND q.revision < p.revision
                        AND q.state NOT IN ('captured', 'debt'))
    ORDER BY p.next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE billing_payments p
SET state = 'capture_pending', claim_token = $2, updated_at = now(),
    next_attempt_at = now() + $3 * interval '1 second'
FROM due
WHERE p.session_id = due.session_id AND p.revision = due.revision
RETURNING p.session_id::text AS session_id, p.revision, p.driver_id, p.currency, p.amount,
          p.declines, p.unknown_outcomes,
          (SELECT pm.provider_token FROM payment_methods pm
           WHERE pm.payment_method_id = p.payment_method_id) AS payment_token,
          (SELECT to_jsonb(h) FROM billing_holds h WHERE h.session_id = p.session_id) AS hold,
          (SELECT bool_or(q.state = 'debt') FROM billing_payments q
           WHERE q.session_id = p.session_id AND q.revision < p.revision) AS prior_debt
"""


@dataclass(frozen=True, slots=True)
class PaymentPolicy:
    """How hard billing tries: retries after declines, and the backoff of both kinds of retry."""

    max_declines: int = 4
    """Declines before the amount becomes a debt (each decline is notified)."""
    decline_backoff_s: float = 3600.0
    """Wait after the first decline; doubles after each further one."""
    unknown_backoff_s: float = 5.0
    """Wait after a timeout/5xx; doubles each time, up to ``unknown_backoff_max_s``."""
    unknown_backoff_max_s: float = 600.0
    lease_s: float = 60.0
    """How long a claim is held; must exceed the gateway's timeout."""


@dataclass(frozen=True, slots=True)
class Claimed:
    session_id: str
    revision: int
    driver_id: str | None
    currency: str
    amount: Decimal
    declines: int
    unknown_outcomes: int
    payment_token: str | None
    hold: dict[str, Any] | None
    prior_debt: bool
    claim_token: uuid.UUID


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the provider said about one claimed row."""

    kind: str  # "captured" | "declined" | "unknown" | "debt_offset"
    intent_id: str | None = None
    captured_amount: Decimal | None = None
    hold_status: str | None = None
    error: str | None = None
    refunds: tuple[tuple[str, str, Decimal], ...] = ()
    """``(intent_id, refund_id, amount)`` of each refund a negative revision made."""


def _collected(c: Claimed, intent: PaymentIntent, hold_status: str | None) -> Outcome:
    """A capture's or charge's answer: collected only when the intent ``succeeded``.

    Any other status moved no money yet: ``requires_payment_method``/``requires_action``/
    ``canceled`` need the driver (a decline: the next attempt gets a new key); ``processing`` and
    anything else are not final (the outcome is unknown: retried under the same key, visible as
    ``last_error``), never booked as paid.
    """
    if intent.status is IntentStatus.SUCCEEDED:
        return Outcome(
            "captured", intent.intent_id, from_minor(intent.amount_received_minor, c.currency), hold_status
        )
    message = f"payment intent {intent.intent_id} is {intent.status.value}: nothing collected"
    if intent.status in _NEEDS_DRIVER:
        return Outcome("declined", error=f"payment_intent_{intent.status.value}: {message}")
    return Outcome("unknown", error=message)


async def _no_checkpoint(step: str, session_id: str) -> None:
    return None


class PaymentSettler:
    """Claims due payment rows and settles each with the gateway (see the module docstring)."""

    def __init__(
        self,
        database: Any,
        gateway: PaymentGateway,
        policy: PaymentPolicy,
        *,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self._database = database
        self._gateway = gateway
        self._policy = policy
        self._checkpoint = checkpoint or _no_checkpoint

    async def settle_batch(self, limit: int = 50) -> int:
        """Claim up to ``limit`` due rows and settle them one by one; the number claimed."""
        token = uuid.uuid4()
        rows = await self._database.pool.fetch(_CLAIM, limit, token, self._policy.lease_s)
        for row in rows:
            claimed = Claimed(
                session_id=row["session_id"],
                revision=row["revision"],
                driver_id=row["driver_id"],
                currency=row["currency"],
                amount=row["amount"],
                declines=row["declines"],
                unknown_outcomes=row["unknown_outcomes"],
                payment_token=row["payment_token"],
                hold=row["hold"],
                prior_debt=bool(row["prior_debt"]),
                claim_token=token,
            )
            await self._checkpoint("claimed", claimed.session_id)
            if not await self._renew(claimed):
                continue  # the lease ran out while earlier rows of the batch were settled
            outcome = await self._settle(claimed)
            await self._checkpoint("settled", claimed.session_id)
            await self._record(claimed, outcome)
            await self._checkpoint("recorded", claimed.session_id)
        return len(rows)

    async def _renew(self, c: Claimed) -> bool:
        """Extend this row's lease before talking to the provider; False when it is no longer ours."""
        renewed = await self._database.pool.fetchval(
            """UPDATE billing_payments SET next_attempt_at = now() + $4 * interval '1 second'
               WHERE session_id = $1 AND revision = $2 AND claim_token = $3 AND state = 'capture_pending'
               RETURNING true""",
            uuid.UUID(c.session_id),
            c.revision,
            c.claim_token,
            self._policy.lease_s,
        )
        return bool(renewed)

    async def _settle(self, c: Claimed) -> Outcome:
        try:
            if c.amount < 0:
                return await self._refund(c)
            return await self._collect(c)
        except PaymentDeclinedError as exc:
            return Outcome("declined", error=str(exc))
        except OutcomeUnknownError as exc:
            return Outcome("unknown", error=str(exc))
        except IdempotencyConflictError as exc:
            logger.error("session %s: idempotency conflict at the payment provider: %s", c.session_id, exc)
            return Outcome("unknown", error=str(exc))

    async def _collect(self, c: Claimed) -> Outcome:
        hold = c.hold if c.revision == 1 and c.hold and c.hold.get("status") == "authorized" else None
        amount_minor = to_minor(c.amount, c.currency)
        if hold is not None:
            covers = (
                c.declines == 0
                and str(hold["currency"]).upper() == c.currency.upper()
                and Decimal(str(hold["amount"])) >= c.amount
                and amount_minor > 0
            )
            if covers:
                intent = await self._gateway.capture(
                    idempotency_key=f"capture:{c.session_id}",
                    intent_id=hold["intent_id"],
                    amount_minor=amount_minor,
                    currency=c.currency,
                )
                return _collected(c, intent, "captured")
            try:
                await self._gateway.release(
                    idempotency_key=f"release:{c.session_id}", intent_id=hold["intent_id"]
                )
            except PaymentDeclinedError as exc:  # already captured/cancelled or expired: nothing held
                logger.info("session %s: hold not released: %s", c.session_id, exc)
            await self._checkpoint("released", c.session_id)
        if amount_minor == 0:
            return Outcome("captured", None, Decimal(0), "released" if hold else None)
        if not c.payment_token:
            return Outcome("declined", error="no_payment_method: the driver has no payment method on file")
        intent = await self._gateway.charge(
            idempotency_key=f"charge:{c.session_id}:{c.revision}:{c.declines}",
            payment_token=c.payment_token,
            amount_minor=amount_minor,
            currency=c.currency,
            metadata={"session_id": c.session_id, "revision": str(c.revision)},
        )
        return _collected(c, intent, "released" if hold else None)

    async def _refund(self, c: Claimed) -> Outcome:
        """Refund ``-amount`` from what this session's earlier revisions collected, oldest intent
        first, each intent at most what is left of it (a provider refuses more): one refund under
        ``refund:<id>:<revision>`` when one intent covers it, else one per intent under
        ``refund:<id>:<revision>:<intent>``. The plan depends only on recorded (final) revisions,
        so a retry after a crash or a timeout sends the same keys with the same amounts."""
        sources = await self._database.pool.fetch(
            """SELECT p.intent_id, sum(p.captured_amount)
                      - coalesce((SELECT sum(r.amount) FROM billing_refunds r
                                  WHERE r.session_id = $1 AND r.intent_id = p.intent_id), 0) AS remaining
               FROM billing_payments p
               WHERE p.session_id = $1 AND p.revision < $2 AND p.state = 'captured'
                 AND p.captured_amount > 0 AND p.intent_id IS NOT NULL
               GROUP BY p.intent_id ORDER BY min(p.revision)""",
            uuid.UUID(c.session_id),
            c.revision,
        )
        plan: list[tuple[str, Decimal]] = []
        needed = -c.amount
        for source in sources:
            if needed <= 0:
                break
            take = min(Decimal(source["remaining"]), needed)
            if take > 0:
                plan.append((source["intent_id"], take))
                needed -= take
        if not plan:
            # Nothing was collected (the earlier revision is a debt): the credit lowers the debt.
            return Outcome("debt_offset")
        if needed > 0:
            # Part collected, part owed as debt: not split automatically (see README, Limits).
            return Outcome(
                "declined",
                error=f"refund_exceeds_collected: {-c.amount} {c.currency} to refund, "
                f"{-c.amount - needed} collected",
            )
        refunds: list[tuple[str, str, Decimal]] = []
        for intent_id, amount in plan:
            key = f"refund:{c.session_id}:{c.revision}"
            refund = await self._gateway.refund(
                idempotency_key=key if len(plan) == 1 else f"{key}:{intent_id}",
                intent_id=intent_id,
                amount_minor=to_minor(amount, c.currency),
                currency=c.currency,
            )
            refunds.append((refund.intent_id, refund.refund_id, from_minor(refund.amount_minor, c.currency)))
        refunded = sum((amount for _, _, amount in refunds), Decimal(0))
        return Outcome("captured", refunds[0][0], -refunded, refunds=tuple(refunds))

    async def _record(self, c: Claimed, outcome: Outcome) -> None:
        policy = self._policy
        async with self._database.pool.acquire() as connection, connection.transaction():
            key = (uuid.UUID(c.session_id), c.revision, c.claim_token)
            if outcome.kind == "captured":
                done = await connection.fetchval(
                    """UPDATE billing_payments SET state = 'captured', intent_id = $4, captured_amount = $5,
                           last_error = NULL, claim_token = NULL, updated_at = now()
                       WHERE session_id = $1 AND revision = $2 AND claim_token = $3 RETURNING true""",
                    *key,
                    outcome.intent_id,
                    outcome.captured_amount,
                )
                if not done:
                    return
                captured = outcome.captured_amount or Decimal(0)
                if captured:
                    kind = "refund" if captured < 0 else "payment"
                    await book(
                        connection,
                        [
                            LedgerEntry(
                                f"{kind}:{c.session_id}:{c.revision}",
                                c.driver_id,
                                c.session_id,
                                c.revision,
                                "receivable",
                                kind,
                                c.currency,
                                -captured,
                            )
                        ],
                    )
                if outcome.refunds:
                    await connection.executemany(
                        """INSERT INTO billing_refunds (session_id, revision, intent_id, refund_id, amount)
                           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
                        [(key[0], c.revision, i, r, amount) for i, r, amount in outcome.refunds],
                    )
                if outcome.hold_status is not None:
                    await connection.execute(
                        "UPDATE billing_holds SET status = $2, updated_at = now() WHERE session_id = $1",
                        uuid.UUID(c.session_id),
                        outcome.hold_status,
                    )
            elif outcome.kind == "unknown":
                delay = min(policy.unknown_backoff_s * 2**c.unknown_outcomes, policy.unknown_backoff_max_s)
                await connection.execute(
                    """UPDATE billing_payments SET unknown_outcomes = unknown_outcomes + 1, last_error = $4,
                           next_attempt_at = now() + $5 * interval '1 second', claim_token = NULL,
                           updated_at = now()
                       WHERE session_id = $1 AND revision = $2 AND claim_token = $3""",
                    *key,
                    outcome.error,
                    delay,
                )
                logger.warning(
                    "session %s: payment outcome unknown, retrying in %.0f s: %s",
                    c.session_id,
                    delay,
                    outcome.error,
                )
            elif outcome.kind == "debt_offset" or c.declines + 1 >= policy.max_declines:
                await self._to_debt(connection, c, outcome, key)
            else:
                declines = c.declines + 1
                delay = policy.decline_backoff_s * 2 ** (declines - 1)
                retry_at = await connection.fetchval(
                    """UPDATE billing_payments SET state = 'retrying', declines = $4, last_error = $5,
                           next_attempt_at = now() + $6 * interval '1 second', claim_token = NULL,
                           updated_at = now()
                       WHERE session_id = $1 AND revision = $2 AND claim_token = $3
                       RETURNING next_attempt_at""",
                    *key,
                    declines,
                    outcome.error,
                    delay,
                )
                if retry_at is not None:
                    await _notify(
                        connection,
                        f"declined:{c.session_id}:{c.revision}:{declines}",
                        c,
                        "payment_declined",
                        {"reason": outcome.error, "retry_at": retry_at.isoformat(), "attempt": declines},
                    )
                logger.info(
                    "session %s: payment declined (%d), retry in %.0f s", c.session_id, declines, delay
                )

    async def _to_debt(self, connection: Any, c: Claimed, outcome: Outcome, key: tuple[Any, ...]) -> None:
        declines = c.declines + (0 if outcome.kind == "debt_offset" else 1)
        done = await connection.fetchval(
            """UPDATE billing_payments SET state = 'debt', declines = $4, last_error = $5, claim_token = NULL,
                   updated_at = now()
               WHERE session_id = $1 AND revision = $2 AND claim_token = $3 RETURNING true""",
            *key,
            declines,
            outcome.error,
        )
        if not done:
            return
        entries = [
            LedgerEntry(
                f"to_debt:{c.session_id}:{c.revision}",
                c.driver_id,
                c.session_id,
                c.revision,
                "receivable",
                "to_debt",
                c.currency,
                -c.amount,
            ),
            LedgerEntry(
                f"debt:{c.session_id}:{c.revision}",
                c.driver_id,
                c.session_id,
                c.revision,
                "debt",
                "debt",
                c.currency,
                c.amount,
            ),
        ]
        await book(connection, entries)
        if outcome.kind != "debt_offset":
            await _notify(
                connection,
                f"debt:{c.session_id}:{c.revision}",
                c,
                "payment_debt",
                {"reason": outcome.error, "amount": str(c.amount), "currency": c.currency},
            )
        logger.warning(
            "session %s: %s %s left as debt after %d declines", c.session_id, c.amount, c.currency, declines
        )


async def _notify(connection: Any, key: str, c: Claimed, kind: str, body: dict[str, Any]) -> None:
    await connection.execute(
        """INSERT INTO billing_notifications (notification_key, driver_id, session_id, kind, body)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (notification_key) DO NOTHING""",
        key,
        c.driver_id,
        uuid.UUID(c.session_id),
        kind,
        {
            "session_id": c.session_id,
            "revision": c.revision,
            "amount": str(c.amount),
            "currency": c.currency,
            **body,
        },
    )


def next_backoff(policy: PaymentPolicy, declines: int) -> timedelta:
    """The wait after the ``declines``-th decline (for documentation and tests)."""
    return timedelta(seconds=policy.decline_backoff_s * 2 ** (declines - 1))
