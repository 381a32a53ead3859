"""Wiring billing into the app: ``install(app, settings)`` after ``sessions.app.install``.

It registers ``billing.migrations``, sets the sessions runtime's ``receipts`` and
``payment_holds`` ports, adds the worker to ``completion_sinks``, and starts the worker (an owned
task) when the app starts and stops it before the database closes. The operator endpoints come
from :func:`billing.api.register`, passed to ``sessions.app.install(extra_api=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from billing.errors import BillingError
from billing.gateway import PaymentGateway
from billing.holds import GatewayHolds
from billing.payments import Checkpoint, PaymentPolicy, PaymentSettler
from billing.queries import ReceiptStore
from billing.rater import Rater
from billing.stripe import StripeGateway
from billing.worker import BillingWorker
from csms.tasks import TaskOwner
from sessions.app import SESSIONS

BILLING_MIGRATIONS = "billing.migrations"


@dataclass(frozen=True, slots=True)
class BillingSettings:
    """Billing's settings (built once by the CLI from its config and passed down)."""

    gateway_url: str
    """The provider's API base: ``https://api.stripe.com`` or the local test gateway."""
    gateway_api_key: str
    gateway_timeout_s: float = 20.0
    hold_amount: Decimal = Decimal("50.00")
    hold_currency: str = "EUR"
    poll_interval_s: float = 5.0
    rating_batch: int = 500
    payment_batch: int = 50
    rating_retry_s: float = 300.0
    """When a session that could not be rated (no tariff yet) is tried again."""
    policy: PaymentPolicy = field(default_factory=PaymentPolicy)

    def __post_init__(self) -> None:
        if self.hold_amount <= 0:
            raise BillingError("hold_amount must be positive")
        if self.policy.lease_s <= self.gateway_timeout_s:
            raise BillingError("the claim lease must be longer than the gateway timeout")
        if self.poll_interval_s <= 0 or self.rating_batch <= 0 or self.payment_batch <= 0:
            raise BillingError("poll interval and batch sizes must be positive")


@dataclass
class BillingRuntime:
    """What billing runs in one app (``app[BILLING]``)."""

    settings: BillingSettings
    database: Any
    gateway: PaymentGateway
    worker: BillingWorker
    receipts: ReceiptStore
    holds: GatewayHolds
    tasks: TaskOwner = field(default_factory=TaskOwner)


BILLING = web.AppKey("billing", BillingRuntime)


def install(
    app: web.Application,
    settings: BillingSettings,
    *,
    gateway: PaymentGateway | None = None,
    checkpoint: Checkpoint | None = None,
) -> BillingRuntime:
    """Add billing to an app on which ``sessions.app.install`` already ran.

    ``gateway`` defaults to :class:`StripeGateway` on ``settings.gateway_url``; ``checkpoint`` is
    for fault tests only (called between payment steps).
    """
    sessions = app[SESSIONS]
    database = sessions.csms.database
    database.add_migrations(BILLING_MIGRATIONS)
    owned_gateway = gateway is None
    chosen: PaymentGateway = gateway or StripeGateway(
        settings.gateway_url, settings.gateway_api_key, timeout_s=settings.gateway_timeout_s
    )
    holds = GatewayHolds(database, chosen, amount=settings.hold_amount, currency=settings.hold_currency)
    worker = BillingWorker(
        Rater(database, sessions.tariffs, retry_s=settings.rating_retry_s),
        PaymentSettler(database, chosen, settings.policy, checkpoint=checkpoint),
        poll_interval_s=settings.poll_interval_s,
        rating_batch=settings.rating_batch,
        payment_batch=settings.payment_batch,
        holds=holds,
    )
    runtime = BillingRuntime(
        settings=settings,
        database=database,
        gateway=chosen,
        worker=worker,
        receipts=ReceiptStore(database),
        holds=holds,
    )
    app[BILLING] = runtime
    sessions.receipts = runtime.receipts
    sessions.payment_holds = runtime.holds
    sessions.completion_sinks.append(worker)

    async def start() -> None:
        runtime.tasks.start(worker.run(), "billing-worker")

    async def stop() -> None:
        await runtime.tasks.cancel_all()
        if owned_gateway and isinstance(chosen, StripeGateway):
            await chosen.close()

    sessions.on_start.append(start)
    sessions.on_stop.append(stop)
    return runtime
