"""The billing package's exceptions: one base class, and what a payment gateway can answer."""

from __future__ import annotations


class BillingError(Exception):
    """Base of every error raised by the billing package."""


class RatingError(BillingError):
    """A completed session cannot be rated (no tariff, missing meter values, ...)."""


class GatewayError(BillingError):
    """The payment provider did not do what was asked."""


class PaymentDeclinedError(GatewayError):
    """A definitive refusal (card declined, hold expired, invalid request): no money moved.

    A new attempt must use a new idempotency key (the provider replays the refusal for the old).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class OutcomeUnknownError(GatewayError):
    """A timeout, a lost connection or a 5xx: the request may or may not have taken effect.

    Retry with the *same* idempotency key: the provider then either does it once or replays it.
    """


class IdempotencyConflictError(GatewayError):
    """The same idempotency key was sent with different parameters: a bug on our side."""
