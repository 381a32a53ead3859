"""Fault tests: kill the billing worker and the gateway at each step; one capture per session, and
totals that reconcile (captured + outstanding = rated, and the gateway agrees with the ledger)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from billing.gateway import from_minor
from billing.holds import GatewayHolds
from billing.queries import debts, reconcile
from billing.rater import Rater
from billing.stripe import StripeGateway
from csms.storage.database import Database
from sessions.tariff_store import TariffStore
from tests.billing.conftest import GatewayProcess
from tests.billing.helpers import (
    SIMPLE_TARIFF,
    START,
    completed_session,
    make_due,
    make_worker,
    payment_states,
    seed_charger,
    seed_driver,
    stripe_client,
)

pytestmark = pytest.mark.asyncio


class SimulatedCrashError(Exception):
    """The node dies here (raised out of the worker between two steps)."""


@pytest_asyncio.fixture
async def stripe(gateway: GatewayProcess) -> AsyncIterator[StripeGateway]:
    async with stripe_client(gateway.url, timeout_s=0.5) as client:
        yield client


async def sessions_with_holds(database: Database, stripe: StripeGateway, holds_eur: list[str]) -> list[str]:
    """One completed 10.12 EUR session per hold amount ('' : no hold)."""
    await seed_charger(database, "CP-F")
    await seed_driver(database, "dora")
    ids = []
    for i, amount in enumerate(holds_eur):
        session_id = str(uuid.uuid4())
        if amount:
            holds = GatewayHolds(database, stripe, amount=Decimal(amount), currency="EUR")
            assert await holds.authorize(session_id, "dora", "pmid-dora") is None
        ids.append(
            await completed_session(
                database,
                session_id=session_id,
                charger_id="CP-F",
                driver_id="dora",
                start=START + timedelta(hours=2 * i),
                samples=[(40, 20_000)],
            )
        )
    return ids


async def assert_reconciled(database: Database, gateway: GatewayProcess, session_ids: list[str]) -> None:
    """Exactly one money movement per captured session, and the ledger agrees with the gateway."""
    result = await reconcile(database)
    assert result.balanced, result
    moved = await gateway.movements_by_session()
    states = await payment_states(database)
    for session_id in session_ids:
        expected = 1 if states[session_id] == "captured" else 0
        assert len(moved.get(session_id, [])) == expected, (
            session_id,
            states[session_id],
            moved.get(session_id),
        )
    at_gateway = sum((from_minor(m["amount"], "EUR") for ms in moved.values() for m in ms), Decimal(0))
    refunded = sum(
        (from_minor(r["amount"], "EUR") for r in (await gateway.state())["refunds"].values()), Decimal(0)
    )
    assert at_gateway - refunded == result.captured.get("EUR", Decimal(0))


@pytest.mark.parametrize("step", ["claimed", "released", "settled", "recorded"])
async def test_a_worker_killed_at_any_step_leaves_one_capture(
    database: Database, gateway: GatewayProcess, stripe: StripeGateway, step: str
) -> None:
    # A hold that covers the amount (capture), one that does not (release, then charge), none (charge).
    ids = await sessions_with_holds(database, stripe, ["50", "5", ""])
    crashed: list[str] = []

    async def crash(at: str, session_id: str) -> None:
        if at == step and not crashed:
            crashed.append(session_id)
            raise SimulatedCrashError(f"killed at {at}")

    with pytest.raises(SimulatedCrashError):
        await make_worker(database, stripe, checkpoint=crash).run_once()
    assert crashed

    await make_due(database)  # the dead node's lease ends
    successor = make_worker(database, stripe)
    for _ in range(3):
        await successor.run_once()
        await make_due(database)
    assert await payment_states(database) == dict.fromkeys(ids, "captured")
    await assert_reconciled(database, gateway, ids)


async def test_a_worker_task_cancelled_while_the_gateway_answered_leaves_one_capture(
    database: Database, gateway: GatewayProcess, stripe: StripeGateway
) -> None:
    ids = await sessions_with_holds(database, stripe, ["50"])
    reached = asyncio.Event()

    async def hang_after_capture(at: str, session_id: str) -> None:
        if at == "settled":
            reached.set()
            await asyncio.Event().wait()  # hangs until the task is cancelled

    worker = make_worker(database, stripe, checkpoint=hang_after_capture)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(reached.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len((await gateway.movements_by_session())[ids[0]]) == 1
    assert await payment_states(database) == {ids[0]: "capture_pending"}

    await make_due(database)
    await make_worker(database, stripe).run_once()
    assert await payment_states(database) == {ids[0]: "captured"}
    await assert_reconciled(database, gateway, ids)


@pytest.mark.parametrize(
    ("hold", "operation", "fault"),
    [
        ("50", "capture", "fail_before"),
        ("50", "capture", "fail_after"),
        ("50", "capture", "timeout_before"),
        ("50", "capture", "timeout_after"),
        ("5", "cancel", "fail_after"),
        ("5", "cancel", "timeout_after"),
        ("", "create", "fail_before"),
        ("", "create", "fail_after"),
        ("", "create", "timeout_after"),
    ],
)
async def test_gateway_failures_with_unknown_outcome_are_retried_under_the_same_key(
    database: Database, gateway: GatewayProcess, stripe: StripeGateway, hold: str, operation: str, fault: str
) -> None:
    ids = await sessions_with_holds(database, stripe, [hold])
    await gateway.fault(operation, fault, delay_s=1.5)
    await make_worker(database, stripe).run_once()
    row = await database.pool.fetchrow("SELECT state, unknown_outcomes, declines FROM billing_payments")
    assert (row["state"], row["unknown_outcomes"], row["declines"]) == ("capture_pending", 1, 0)

    await make_due(database)
    await make_worker(database, stripe).run_once()
    assert await payment_states(database) == {ids[0]: "captured"}
    await assert_reconciled(database, gateway, ids)


async def test_a_killed_and_restarted_gateway_costs_a_retry_not_a_double_charge(
    database: Database, gateway: GatewayProcess, stripe: StripeGateway
) -> None:
    ids = await sessions_with_holds(database, stripe, ["50", ""])
    gateway.kill()
    await make_worker(database, stripe).run_once()
    assert set((await payment_states(database)).values()) == {"capture_pending"}
    gateway.start()  # same state file: the holds are still there
    await make_due(database)
    await make_worker(database, stripe).run_once()
    assert await payment_states(database) == dict.fromkeys(ids, "captured")
    await assert_reconciled(database, gateway, ids)


async def test_declines_are_retried_with_backoff_notified_then_left_as_debt(
    database: Database, gateway: GatewayProcess, stripe: StripeGateway
) -> None:
    await seed_charger(database, "CP-F")
    await seed_driver(database, "erin", token="pm_card_chargeDeclinedInsufficientFunds")
    session_id = await completed_session(
        database, charger_id="CP-F", driver_id="erin", samples=[(40, 20_000)]
    )
    worker = make_worker(database, stripe)
    await worker.run_once()
    row = await database.pool.fetchrow(
        "SELECT state, declines, next_attempt_at - now() AS wait FROM billing_payments"
    )
    assert (row["state"], row["declines"]) == ("retrying", 1)
    assert row["wait"].total_seconds() > 30  # backoff 60 s, then 120 s
    await worker.run_once()  # not due yet: nothing happens
    assert (await payment_states(database))[session_id] == "retrying"
    for _ in range(2):
        await make_due(database)
        await worker.run_once()
    assert await payment_states(database) == {session_id: "debt"}

    kinds = [
        r["kind"] for r in await database.pool.fetch("SELECT kind FROM billing_notifications ORDER BY 1")
    ]
    assert kinds == ["payment_debt", "payment_declined", "payment_declined"]
    balances = {
        r["account"]: r["balance"]
        for r in await database.pool.fetch(
            "SELECT account, sum(amount) AS balance FROM billing_ledger GROUP BY 1"
        )
    }
    assert balances == {"receivable": Decimal(0), "debt": Decimal("10.12")}
    listed = await debts(database, "CPO1")
    assert [(d["session_id"], d["amount"], d["declines"]) for d in listed] == [(session_id, "10.12", 3)]
    assert await debts(database, "OTHER-CPO") == []
    result = await reconcile(database)
    assert result.outstanding == {"EUR": Decimal("10.12")} == result.debt
    await assert_reconciled(database, gateway, [session_id])


async def test_a_declined_capture_releases_the_hold_and_charges_under_a_new_key(
    database: Database, gateway: GatewayProcess, stripe: StripeGateway
) -> None:
    ids = await sessions_with_holds(database, stripe, ["50"])
    await gateway.fault("capture", "decline")
    worker = make_worker(database, stripe)
    await worker.run_once()
    assert await payment_states(database) == {ids[0]: "retrying"}
    await make_due(database)
    await worker.run_once()
    assert await payment_states(database) == {ids[0]: "captured"}
    moved = (await gateway.movements_by_session())[ids[0]]
    assert [(m["how"], m["amount"]) for m in moved] == [("charge", 1012)]
    hold = await database.pool.fetchval("SELECT status FROM billing_holds")
    assert hold == "released"
    await assert_reconciled(database, gateway, ids)


async def test_two_nodes_billing_the_same_sessions_capture_each_once(
    database: Database, gateway: GatewayProcess, stripe: StripeGateway
) -> None:
    ids = await sessions_with_holds(database, stripe, ["50", "", "5"] * 4)
    first, second = make_worker(database, stripe), make_worker(database, stripe)
    for _ in range(3):
        await asyncio.gather(first.run_once(), second.run_once())
    assert await payment_states(database) == dict.fromkeys(ids, "captured")
    await assert_reconciled(database, gateway, ids)


async def test_raters_on_several_nodes_rate_each_session_once(database: Database) -> None:
    """Claims race (a batch committed while another claim scans): each session is still rated once."""
    await seed_charger(database, "CP-N")
    await seed_driver(database, "ivan")
    rows = [
        (
            uuid.uuid4(),
            "ivan",
            "CP-N",
            START + timedelta(minutes=90 * i),
            START + timedelta(minutes=90 * i + 60),
        )
        for i in range(240)
    ]
    await database.pool.executemany(
        """INSERT INTO charging_sessions (session_id, driver_id, charger_id, evse_id, state, origin,
               time_zone, meter_start_wh, meter_stop_wh, started_at, ended_at)
           VALUES ($1, $2, $3, 1, 'COMPLETED', 'rfid', 'Europe/Berlin', 0, 12000, $4, $5)""",
        rows,
    )
    raters = [Rater(database, TariffStore(database)) for _ in range(4)]

    async def drain(rater: Rater) -> int:
        total = 0
        while (rated := await rater.rate_batch(7)) > 0:
            total += rated
        return total

    counts = await asyncio.gather(*(drain(r) for r in raters))
    assert sum(counts) == 240
    assert await database.pool.fetchval("SELECT count(*) FROM billing_ledger WHERE kind = 'charge'") == 240
    assert (await reconcile(database)).balanced


async def test_a_worker_whose_lease_was_taken_over_does_not_call_the_gateway(
    database: Database, gateway: GatewayProcess, stripe: StripeGateway
) -> None:
    ids = await sessions_with_holds(database, stripe, [""])

    async def another_node_takes_over(at: str, session_id: str) -> None:
        if at == "claimed":
            await database.pool.execute("UPDATE billing_payments SET claim_token = gen_random_uuid()")

    await make_worker(database, stripe, checkpoint=another_node_takes_over).run_once()
    assert (await gateway.state())["movements"] == []
    assert await payment_states(database) == {ids[0]: "capture_pending"}
    await database.pool.execute("UPDATE billing_payments SET next_attempt_at = now()")
    await make_worker(database, stripe).run_once()
    await assert_reconciled(database, gateway, ids)
    assert await payment_states(database) == {ids[0]: "captured"}


class CrashingTariffStore(TariffStore):
    """Dies the second time a tariff is read: in the middle of a rating batch, before its commit."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self.reads = 0

    async def versions(self, tariff_id: str, *, fresh: bool = False) -> Any:
        self.reads += 1
        if self.reads == 2:
            raise SimulatedCrashError("killed while rating")
        return await super().versions(tariff_id, fresh=fresh)


async def test_a_rater_killed_mid_batch_stores_nothing_and_a_successor_rates_all_once(
    database: Database, gateway: GatewayProcess, stripe: StripeGateway
) -> None:
    await seed_driver(database, "nina")
    ids = []
    for i, charger in enumerate(["CP-K1", "CP-K2", "CP-K1", "CP-K2"]):
        tariff = {**SIMPLE_TARIFF, "id": f"T-{charger}"}
        await seed_charger(database, charger, tariff=tariff)
        ids.append(
            await completed_session(
                database, charger_id=charger, driver_id="nina", start=START + timedelta(hours=2 * i)
            )
        )
    with pytest.raises(SimulatedCrashError):
        await Rater(database, CrashingTariffStore(database)).rate_batch(10)
    for table in ("billing_ratings", "billing_documents", "billing_ledger", "billing_payments"):
        assert await database.pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    assert await database.pool.fetchval("SELECT count(*) FROM billing_rating_queue") == 4

    worker = make_worker(database, stripe)
    assert (await worker.run_once()).rated == 4
    assert await payment_states(database) == dict.fromkeys(ids, "captured")
    await assert_reconciled(database, gateway, ids)
