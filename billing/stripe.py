"""A payment gateway speaking Stripe's PaymentIntents API over HTTP (form-encoded, ``Idempotency-Key``).

Works against Stripe itself (``https://api.stripe.com``) and against the local test gateway
(:mod:`billing.test_gateway`), which follows the same protocol. Mapping of answers:

* 2xx: the PaymentIntent (or Refund) JSON;
* 402 ``card_error`` and other 4xx (``invalid_request_error``: e.g. the hold was cancelled or
  expired): :class:`PaymentDeclinedError` - definitive, nothing moved;
* 400 ``idempotency_error``: :class:`IdempotencyConflictError`;
* 5xx, 429, 409 (the same key still in flight), a timeout or a broken connection:
  :class:`OutcomeUnknownError` - the request may have taken effect; billing retries it under the
  same idempotency key.

Amounts: billing speaks ISO 4217 minor units (``tariffs.money``); Stripe's API unit differs for
ISK, which Stripe keeps two-decimal in its API although the króna is charged whole (ISK 5 is
``amount=500``, and amounts must be multiples of 100). :func:`to_api` / :func:`from_api` translate
at this edge, so an ISK receipt is not charged at a hundredth of its total.

Only provider tokens (``pm_...``) pass through here; no card data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from billing.errors import BillingError, IdempotencyConflictError, OutcomeUnknownError, PaymentDeclinedError
from billing.gateway import IntentStatus, PaymentIntent, Refund

_API_SCALE: dict[str, int] = {"ISK": 100}
"""Stripe API units per ISO minor unit where they differ (docs: stripe.com/docs/currencies, special cases)."""


def to_api(amount_minor: int, currency: str) -> int:
    """ISO minor units as Stripe's API amount (``500`` for ISK 5, ``1234`` for EUR 12.34)."""
    return amount_minor * _API_SCALE.get(currency.upper(), 1)


def from_api(amount: int, currency: str) -> int:
    """Stripe's API amount back to ISO minor units."""
    scale = _API_SCALE.get(currency.upper(), 1)
    whole, rest = divmod(amount, scale)
    if rest:
        raise BillingError(f"{amount} {currency} from the provider is not a whole minor unit")
    return whole


class StripeGateway:
    """:class:`billing.gateway.PaymentGateway` over Stripe's HTTP API; call :meth:`close` when done."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 20.0) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        return self._http

    async def _post(
        self, path: str, idempotency_key: str, form: Mapping[str, str]
    ) -> tuple[dict[str, Any], bool]:
        headers = {"Authorization": f"Bearer {self._api_key}", "Idempotency-Key": idempotency_key}
        try:
            async with self._session().post(
                self._base_url + path, data=dict(form), headers=headers
            ) as response:
                text = await response.text()
                status = response.status
                replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise OutcomeUnknownError(f"POST {path}: {type(exc).__name__}: {exc}") from exc
        try:
            body = json.loads(text) if text else {}
        except json.JSONDecodeError:
            body = {}
        if 200 <= status < 300 and isinstance(body, dict):
            return body, replayed
        error = body.get("error", {}) if isinstance(body, dict) else {}
        kind = str(error.get("type", ""))
        message = str(error.get("message", text[:200]))
        if status >= 500 or status in (409, 429) or not isinstance(body, dict):
            # 409: a request with this key is still being processed; its outcome is not known yet.
            raise OutcomeUnknownError(f"POST {path}: HTTP {status}: {message}")
        if kind == "idempotency_error":
            raise IdempotencyConflictError(f"POST {path} key {idempotency_key}: {message}")
        code = str(error.get("decline_code") or error.get("code") or kind or f"http_{status}")
        raise PaymentDeclinedError(code, message)

    async def authorize(
        self,
        *,
        idempotency_key: str,
        payment_token: str,
        amount_minor: int,
        currency: str,
        metadata: Mapping[str, str],
    ) -> PaymentIntent:
        form = _intent_form(payment_token, amount_minor, currency, metadata)
        form["capture_method"] = "manual"
        return _intent(*await self._post("/v1/payment_intents", idempotency_key, form))

    async def charge(
        self,
        *,
        idempotency_key: str,
        payment_token: str,
        amount_minor: int,
        currency: str,
        metadata: Mapping[str, str],
    ) -> PaymentIntent:
        form = _intent_form(payment_token, amount_minor, currency, metadata)
        form["capture_method"] = "automatic"
        form["off_session"] = "true"
        return _intent(*await self._post("/v1/payment_intents", idempotency_key, form))

    async def capture(
        self, *, idempotency_key: str, intent_id: str, amount_minor: int, currency: str | None = None
    ) -> PaymentIntent:
        amount = amount_minor if currency is None else to_api(amount_minor, currency)
        form = {"amount_to_capture": str(amount)}
        return _intent(*await self._post(f"/v1/payment_intents/{intent_id}/capture", idempotency_key, form))

    async def release(self, *, idempotency_key: str, intent_id: str) -> PaymentIntent:
        form = {"cancellation_reason": "abandoned"}
        return _intent(*await self._post(f"/v1/payment_intents/{intent_id}/cancel", idempotency_key, form))

    async def refund(
        self, *, idempotency_key: str, intent_id: str, amount_minor: int, currency: str | None = None
    ) -> Refund:
        amount = amount_minor if currency is None else to_api(amount_minor, currency)
        form = {"payment_intent": intent_id, "amount": str(amount)}
        body, _ = await self._post("/v1/refunds", idempotency_key, form)
        try:
            refunded = from_api(int(body["amount"]), str(body.get("currency") or currency or ""))
            return Refund(str(body["id"]), str(body["payment_intent"]), refunded, str(body["status"]))
        except (KeyError, ValueError, TypeError, BillingError) as exc:
            raise OutcomeUnknownError(f"unexpected Refund from the provider: {exc}") from exc


def _intent_form(
    payment_token: str, amount_minor: int, currency: str, metadata: Mapping[str, str]
) -> dict[str, str]:
    form = {
        "amount": str(to_api(amount_minor, currency)),
        "currency": currency.lower(),
        "payment_method": payment_token,
        "confirm": "true",
    }
    form.update({f"metadata[{key}]": value for key, value in metadata.items()})
    return form


def _intent(body: Mapping[str, Any], replayed: bool) -> PaymentIntent:
    try:
        currency = str(body["currency"]).upper()
        return PaymentIntent(
            intent_id=str(body["id"]),
            status=IntentStatus(body["status"]),
            amount_minor=from_api(int(body["amount"]), currency),
            amount_received_minor=from_api(int(body.get("amount_received") or 0), currency),
            currency=currency,
            replayed=replayed,
        )
    except (KeyError, ValueError, TypeError, BillingError) as exc:
        raise OutcomeUnknownError(f"unexpected PaymentIntent from the provider: {exc}") from exc
