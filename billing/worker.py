"""The billing worker: rates completed sessions and settles their payments, on every node.

It polls every ``poll_interval_s`` and is woken at once by the sessions package's completion
sink, so a missed wake-up only delays billing. Claims are ``SKIP LOCKED``, so any number of
nodes may run it; a worker killed at any step leaves nothing half done (see
:mod:`billing.rater` and :mod:`billing.payments`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from billing.holds import GatewayHolds
from billing.payments import PaymentSettler
from billing.rater import Rater

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Progress:
    rated: int
    settled: int


class BillingWorker:
    """One node's worker; :meth:`run` is the loop (an owned task), :meth:`run_once` one pass."""

    def __init__(
        self,
        rater: Rater,
        settler: PaymentSettler,
        *,
        poll_interval_s: float = 5.0,
        rating_batch: int = 500,
        payment_batch: int = 50,
        holds: GatewayHolds | None = None,
    ) -> None:
        self._rater = rater
        self._holds = holds
        self._settler = settler
        self._poll_interval_s = poll_interval_s
        self._rating_batch = rating_batch
        self._payment_batch = payment_batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Run a pass now (a session completed)."""
        self._wake.set()

    async def session_completed(self, session_id: str) -> None:
        """:class:`sessions.ports.CompletionSink`: a session completed; bill it soon."""
        logger.debug("session %s completed: waking the billing worker", session_id)
        self.wake()

    async def run_once(self) -> Progress:
        """Rate every completed session waiting, settle one batch of due payments, and release the
        holds of sessions that failed to start."""
        rated = 0
        while True:
            batch = await self._rater.rate_batch(self._rating_batch)
            rated += batch
            if batch < self._rating_batch:
                break
        settled = await self._settler.settle_batch(self._payment_batch)
        if self._holds is not None:
            await self._holds.release_abandoned(self._payment_batch)
        return Progress(rated, settled)

    async def run(self) -> None:
        """Pass after pass until cancelled; a failing pass is logged and retried after the interval."""
        while True:
            self._wake.clear()
            try:
                progress = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Outermost handler of the billing task: log with the traceback, keep billing alive.
                logger.exception("billing pass failed; retrying in %.1f s", self._poll_interval_s)
                progress = Progress(0, 0)
            if progress.settled >= self._payment_batch:
                continue  # more may be due right away
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)
