"""From a completed session row to a captured payment at the local test gateway and a receipt."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from billing.holds import GatewayHolds
from billing.queries import ReceiptStore, reconcile
from billing.stripe import StripeGateway
from csms.storage.database import Database
from tests.billing.conftest import GatewayProcess
from tests.billing.helpers import START, completed_session, make_worker, seed_charger, seed_driver

pytestmark = pytest.mark.asyncio


async def test_completed_session_is_rated_captured_from_its_hold_and_receipted(
    database: Database, gateway: GatewayProcess
) -> None:
    await seed_charger(database, "CP-FLOW")
    await seed_driver(database, "alice")
    stripe = StripeGateway(gateway.url, "sk_test_x", timeout_s=2)
    try:
        session_id = str(uuid.uuid4())
        holds = GatewayHolds(database, stripe, amount=Decimal("50.00"), currency="EUR")
        assert await holds.authorize(session_id, "alice", "pmid-alice") is None
        await completed_session(
            database,
            session_id=session_id,
            charger_id="CP-FLOW",
            driver_id="alice",
            energy_wh=20_000,
            minutes=60,
            samples=[(10, 5_000), (40, 20_000), (50, 20_000)],
        )
        worker = make_worker(database, stripe)
        progress = await worker.run_once()
        assert (progress.rated, progress.settled) == (1, 1)

        movements = await gateway.movements_by_session()
        assert [(m["how"], m["amount"]) for m in movements[session_id]] == [("capture", 1012)]
        state = await gateway.state()
        hold = next(i for i in state["intents"].values() if i["metadata"]["session_id"] == session_id)
        assert (hold["amount"], hold["amount_received"], hold["status"]) == (5000, 1012, "succeeded")

        receipt = await ReceiptStore(database).receipt_json(session_id)
        assert receipt is not None
        assert receipt["total_incl_vat"] == "10.12"
        assert receipt["idle_s"] == 20 * 60
        assert receipt["payment"] == [{"revision": 1, "state": "captured", "amount": "10.12"}]

        # A second pass (a replayed completion, another node) rates and charges nothing more.
        await worker.session_completed(session_id)
        again = await worker.run_once()
        assert (again.rated, again.settled) == (0, 0)
        assert len((await gateway.movements_by_session())[session_id]) == 1
        result = await reconcile(database)
        assert result.balanced
        assert result.rated == {"EUR": Decimal("10.12")} == result.captured
    finally:
        await stripe.close()


async def test_idle_time_comes_from_progress_events_when_there_are_no_meter_samples(
    database: Database, gateway: GatewayProcess
) -> None:
    await seed_charger(database, "CP-EV")
    await seed_driver(database, "jo")
    session_id = await completed_session(
        database, charger_id="CP-EV", driver_id="jo", energy_wh=20_000, minutes=60
    )
    for minute, energy_kwh in ((10, 5.0), (30, 20.0), (45, 20.0)):
        await database.pool.execute(
            """INSERT INTO session_events (session_id, kind, state, at, data)
               VALUES ($1, 'progress', 'ACTIVE', $2, $3)""",
            uuid.UUID(session_id),
            START + timedelta(minutes=minute),
            {"energy_kwh": energy_kwh, "power_kw": 0.0},
        )
    stripe = StripeGateway(gateway.url, "sk_test_x", timeout_s=2)
    try:
        await make_worker(database, stripe).run_once()
    finally:
        await stripe.close()
    receipt = await ReceiptStore(database).receipt_json(session_id)
    assert receipt is not None
    assert receipt["idle_s"] == 30 * 60  # the register (start + energy) stopped at minute 30
    parking = next(line for line in receipt["lines"] if line["kind"] == "parking_time")
    assert (parking["quantity"], parking["amount_excl_vat"]) == ("0.5000", "3.00")


async def test_a_session_without_a_tariff_waits_queued_with_its_error_until_one_is_assigned(
    database: Database, gateway: GatewayProcess
) -> None:
    await seed_driver(database, "lea")
    await database.pool.execute("INSERT INTO chargers (charger_id) VALUES ('CP-NOTARIFF')")
    session_id = await completed_session(database, charger_id="CP-NOTARIFF", driver_id="lea")
    stripe = StripeGateway(gateway.url, "sk_test_x", timeout_s=2)
    try:
        worker = make_worker(database, stripe)
        assert (await worker.run_once()).rated == 0
        queued = await database.pool.fetchrow("SELECT attempts, last_error FROM billing_rating_queue")
        assert queued["attempts"] == 1
        assert "no tariff" in queued["last_error"]
        assert (await worker.run_once()).rated == 0  # not due again before rating_retry_s

        await seed_charger(database, "CP-NOTARIFF")  # the operator assigns a tariff
        await database.pool.execute("UPDATE billing_rating_queue SET next_attempt_at = now()")
        assert (await worker.run_once()).rated == 1
        assert await database.pool.fetchval("SELECT count(*) FROM billing_rating_queue") == 0
        assert await ReceiptStore(database).receipt_json(session_id) is not None
    finally:
        await stripe.close()


async def test_the_hold_of_a_session_that_failed_to_start_is_released(
    database: Database, gateway: GatewayProcess
) -> None:
    await seed_charger(database, "CP-FAIL")
    await seed_driver(database, "max")
    stripe = StripeGateway(gateway.url, "sk_test_x", timeout_s=2)
    try:
        session_id = str(uuid.uuid4())
        holds = GatewayHolds(database, stripe, amount=Decimal("50.00"), currency="EUR")
        assert await holds.authorize(session_id, "max", "pmid-max") is None
        await completed_session(
            database, session_id=session_id, charger_id="CP-FAIL", driver_id="max", state="FAILED"
        )
        await make_worker(database, stripe).run_once()
        await make_worker(database, stripe).run_once()  # again: nothing more happens
    finally:
        await stripe.close()
    intents = list((await gateway.state())["intents"].values())
    assert [(i["status"], i["amount_received"]) for i in intents] == [("canceled", 0)]
    assert await database.pool.fetchval("SELECT status FROM billing_holds") == "released"
    assert await database.pool.fetchval("SELECT count(*) FROM billing_ratings") == 0
