"""The payment gateway interface billing speaks, in the provider's own terms (PaymentIntents).

One hold per session (``authorize``: a manual-capture PaymentIntent), captured with the final
amount when the session is rated (``capture``: the rest of the hold is released by the
provider), released when nothing is owed (``release``), or, when the hold cannot cover the
amount or is gone, a fresh off-session ``charge``. ``refund`` returns money of a captured
intent. Every call carries an idempotency key derived from the session id: the provider
returns the first result for a key it has seen with the same parameters, and refuses the key
with different ones (:class:`billing.errors.IdempotencyConflictError`).

Errors: :class:`~billing.errors.PaymentDeclinedError` (definitive, nothing moved: the next
attempt gets a new key), :class:`~billing.errors.OutcomeUnknownError` (timeout / 5xx: retry
the same key). Amounts are integers in the currency's minor unit, as providers take them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from billing.errors import BillingError
from tariffs.money import minor_units


class IntentStatus(enum.Enum):
    """The PaymentIntent statuses billing acts on (Stripe's names)."""

    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class PaymentIntent:
    intent_id: str
    status: IntentStatus
    amount_minor: int
    amount_received_minor: int
    currency: str
    replayed: bool = False
    """The provider answered from its idempotency record (``Idempotent-Replayed: true``)."""


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    intent_id: str
    amount_minor: int
    status: str


class PaymentGateway(Protocol):
    """What billing needs of a payment provider (see the module docstring)."""

    async def authorize(
        self,
        *,
        idempotency_key: str,
        payment_token: str,
        amount_minor: int,
        currency: str,
        metadata: Mapping[str, str],
    ) -> PaymentIntent: ...

    async def charge(
        self,
        *,
        idempotency_key: str,
        payment_token: str,
        amount_minor: int,
        currency: str,
        metadata: Mapping[str, str],
    ) -> PaymentIntent: ...

    async def capture(
        self, *, idempotency_key: str, intent_id: str, amount_minor: int, currency: str | None = None
    ) -> PaymentIntent:
        """Capture ``amount_minor`` of a hold; ``currency`` (the hold's) lets an adapter whose
        provider counts in other units than ISO minor units (Stripe's ISK) convert the amount."""
        ...

    async def release(self, *, idempotency_key: str, intent_id: str) -> PaymentIntent: ...

    async def refund(
        self, *, idempotency_key: str, intent_id: str, amount_minor: int, currency: str | None = None
    ) -> Refund: ...


def to_minor(amount: Decimal, currency: str) -> int:
    """``amount`` (already rounded to the currency) in minor units: ``Decimal('12.34')`` EUR -> 1234."""
    scaled = amount.scaleb(minor_units(currency))
    if scaled != scaled.to_integral_value():
        raise BillingError(f"{amount} {currency} is not rounded to the currency's minor unit")
    return int(scaled)


def from_minor(amount_minor: int, currency: str) -> Decimal:
    """Minor units back to an amount: 1234 EUR -> ``Decimal('12.34')``."""
    return Decimal(amount_minor).scaleb(-minor_units(currency))
