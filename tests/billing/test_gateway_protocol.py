"""The Stripe-style adapter against the local test gateway process: PaymentIntents semantics and
idempotency keys (same key and parameters: the first result; same key, other parameters: an error)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from billing.errors import IdempotencyConflictError, OutcomeUnknownError, PaymentDeclinedError
from billing.gateway import IntentStatus
from billing.stripe import StripeGateway
from tests.billing.conftest import GatewayProcess
from tests.billing.helpers import stripe_client

pytestmark = pytest.mark.asyncio
META = {"session_id": "s-1"}


@pytest_asyncio.fixture
async def stripe(gateway: GatewayProcess) -> AsyncIterator[StripeGateway]:
    async with stripe_client(gateway.url, timeout_s=0.5) as client:
        yield client


async def test_same_key_same_parameters_replays_the_first_result(stripe: StripeGateway) -> None:
    first = await stripe.authorize(
        idempotency_key="hold:a",
        payment_token="pm_card_visa",
        amount_minor=5000,
        currency="EUR",
        metadata=META,
    )
    again = await stripe.authorize(
        idempotency_key="hold:a",
        payment_token="pm_card_visa",
        amount_minor=5000,
        currency="EUR",
        metadata=META,
    )
    assert (first.status, first.replayed) == (IntentStatus.REQUIRES_CAPTURE, False)
    assert (again.intent_id, again.replayed) == (first.intent_id, True)

    captured = await stripe.capture(idempotency_key="capture:a", intent_id=first.intent_id, amount_minor=1234)
    assert (captured.status, captured.amount_received_minor) == (IntentStatus.SUCCEEDED, 1234)
    replay = await stripe.capture(idempotency_key="capture:a", intent_id=first.intent_id, amount_minor=1234)
    assert (replay.amount_received_minor, replay.replayed) == (1234, True)
    refund = await stripe.refund(idempotency_key="refund:a", intent_id=first.intent_id, amount_minor=234)
    assert (refund.amount_minor, refund.status) == (234, "succeeded")


async def test_same_key_other_parameters_is_an_error(stripe: StripeGateway) -> None:
    await stripe.charge(
        idempotency_key="charge:b",
        payment_token="pm_card_visa",
        amount_minor=700,
        currency="EUR",
        metadata=META,
    )
    with pytest.raises(IdempotencyConflictError):
        await stripe.charge(
            idempotency_key="charge:b",
            payment_token="pm_card_visa",
            amount_minor=701,
            currency="EUR",
            metadata=META,
        )


async def test_declines_are_definitive_and_replayed_under_their_key(
    stripe: StripeGateway, gateway: GatewayProcess
) -> None:
    for _ in range(2):
        with pytest.raises(PaymentDeclinedError) as declined:
            await stripe.charge(
                idempotency_key="charge:c:1:0",
                payment_token="pm_card_chargeDeclinedInsufficientFunds",
                amount_minor=900,
                currency="EUR",
                metadata=META,
            )
        assert declined.value.code == "insufficient_funds"
    held = await stripe.authorize(
        idempotency_key="hold:c",
        payment_token="pm_card_visa",
        amount_minor=900,
        currency="EUR",
        metadata=META,
    )
    await stripe.release(idempotency_key="release:c", intent_id=held.intent_id)
    with pytest.raises(PaymentDeclinedError, match="payment_intent_unexpected_state"):
        await stripe.capture(idempotency_key="capture:c", intent_id=held.intent_id, amount_minor=900)
    assert (await gateway.state())["movements"] == []


@pytest.mark.parametrize("fault", ["fail_before", "fail_after", "timeout_after"])
async def test_5xx_and_timeouts_are_unknown_outcomes(
    stripe: StripeGateway, gateway: GatewayProcess, fault: str
) -> None:
    await gateway.fault("create", fault, delay_s=1.0)
    with pytest.raises(OutcomeUnknownError):
        await stripe.charge(
            idempotency_key="charge:d",
            payment_token="pm_card_visa",
            amount_minor=100,
            currency="EUR",
            metadata=META,
        )
    intent = await stripe.charge(
        idempotency_key="charge:d",
        payment_token="pm_card_visa",
        amount_minor=100,
        currency="EUR",
        metadata=META,
    )
    assert intent.replayed is (fault != "fail_before")
    assert len((await gateway.state())["movements"]) == 1


async def test_a_request_can_carry_its_own_fault_and_the_api_key_is_required(gateway: GatewayProcess) -> None:
    form = {"amount": "100", "currency": "eur", "payment_method": "pm_card_visa", "confirm": "true"}
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": "Bearer sk_test_x", "X-Test-Fault": "decline", "Idempotency-Key": "e"}
        async with http.post(gateway.url + "/v1/payment_intents", data=form, headers=headers) as r:
            assert r.status == 402
            assert (await r.json())["error"]["type"] == "card_error"
        async with http.post(gateway.url + "/v1/payment_intents", data=form) as r:
            assert r.status == 401


async def test_a_key_still_in_flight_is_an_unknown_outcome_not_a_decline(
    stripe: StripeGateway, gateway: GatewayProcess
) -> None:
    await gateway.fault("create", "slow", delay_s=0.3)
    slow = StripeGateway(gateway.url, "sk_test_x", timeout_s=5)
    try:

        async def charge(client: StripeGateway) -> object:
            return await client.charge(
                idempotency_key="charge:f",
                payment_token="pm_card_visa",
                amount_minor=100,
                currency="EUR",
                metadata=META,
            )

        first = asyncio.create_task(charge(slow))
        await until_requests(gateway, 1)
        with pytest.raises(OutcomeUnknownError, match="409"):
            await charge(stripe)
        await first
    finally:
        await slow.close()
    assert len((await gateway.state())["movements"]) == 1


async def until_requests(gateway: GatewayProcess, count: int) -> None:
    """Wait until the gateway has seen ``count`` requests (bounded)."""
    for _ in range(200):
        if (await gateway.state())["requests"] >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the gateway never saw the request")
