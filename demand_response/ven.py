"""One OpenADR 2.0b VEN per program, on ``openleadr``'s :class:`OpenADRClient`.

The client registers, polls and answers; we plug in at three places:

* the ``after_parse_xml`` hook sees every ``oadrDistributeEvent`` whole, before openleadr hands
  its events one by one to ``on_event``: the distribution goes to the :class:`Enforcer` (which
  decides the opts, stores and enforces, and cancels events that left the distribution);
* ``on_event``/``on_update_event`` answer with the opt the enforcer decided (openleadr sends it
  to the VTN in ``oadrCreatedEvent``);
* one ``TELEMETRY_USAGE`` report per resource: its real power [kW] from :class:`Telemetry`,
  sampled at the interval the VTN asks for within the program's report limits.

:meth:`Ven.run` is an owned task: it (re)registers until the VTN answers, backing off, and stops
the client when cancelled. While the VTN cannot be reached the stored events keep running.

The VTN may end a registration in its answer to a poll (2.0b EiRegisterParty): ``oadrCancelPartyRegistration``
(openleadr answers ``oadrCanceledPartyRegistration`` and then stops polling for good) or
``oadrRequestReregistration`` (openleadr re-registers in place but keeps the old poll interval,
report jobs and report task). Either way :meth:`Ven.run` replaces the client with a fresh one that
registers again (with the registrationID it had, when the VTN asked to re-register), so the
interval, reports and event sync come from the new ``oadrCreatedPartyRegistration``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from openleadr import OpenADRClient, enums, objects

from demand_response.config import Program
from demand_response.enforcer import Enforcer
from demand_response.errors import EventError
from demand_response.events import DrEvent, from_openadr
from demand_response.telemetry import Telemetry

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass
class _Registration:
    """One client's registration: set ``ended`` when the VTN cancels it or asks for a new one."""

    ended: asyncio.Event = field(default_factory=asyncio.Event)
    reregister_as: tuple[str | None, str | None] | None = None
    """(venID, registrationID) to register again with, when the VTN asked to re-register."""


class Ven:
    """The VEN of one program."""

    def __init__(
        self,
        program: Program,
        enforcer: Enforcer,
        telemetry: Telemetry,
        *,
        clock: Clock,
        retry_s: float = 10.0,
    ) -> None:
        self.program = program
        self._enforcer = enforcer
        self._telemetry = telemetry
        self._clock = clock
        self._retry_s = retry_s
        self.client: OpenADRClient | None = None
        self.registered = asyncio.Event()
        self.last_distribution_at: datetime | None = None
        """When the last ``oadrDistributeEvent`` arrived (the benchmark measures from it)."""

    def build_client(self, *, ven_id: str | None = None, registration_id: str | None = None) -> OpenADRClient:
        """A client for the program; with ``registration_id`` it re-registers that registration."""
        program = self.program
        certificates = program.certificates
        client = OpenADRClient(
            ven_name=program.ven_name,
            vtn_url=program.vtn_url,
            ven_id=ven_id or program.ven_id,
            cert=None if certificates is None else str(certificates.cert_file),
            key=None if certificates is None else str(certificates.key_file),
            ca_file=None
            if certificates is None or certificates.ca_file is None
            else str(certificates.ca_file),
            vtn_fingerprint=None if certificates is None else certificates.vtn_fingerprint,
            disable_signature=certificates is None,
            show_fingerprint=False,
        )
        client.add_handler("on_event", self.answer)
        client.add_handler("on_update_event", self.answer)
        client.add_hook("after_parse_xml", self.after_parse)
        sampling = objects.SamplingRate(
            min_period=timedelta(seconds=program.reports.min_interval_s),
            max_period=timedelta(seconds=program.reports.max_interval_s),
            on_change=False,
        )
        for resource_id, stations in program.resources:
            client.add_report(
                callback=self._reader(stations),
                resource_id=resource_id,
                measurement="power_real",
                report_name=enums.REPORT_NAME.TELEMETRY_USAGE,
                report_type=enums.REPORT_TYPE.USAGE,  # as the 2.0b METADATA_TELEMETRY_USAGE sample
                sampling_rate=sampling,
                report_duration=timedelta(seconds=program.reports.max_interval_s),
                unit="W",
                scale="k",
                r_id=f"{resource_id}-power",
                report_specifier_id=f"{program.ven_name}-telemetry",
            )
        if registration_id is not None:
            client.create_party_registration = partial(
                OpenADRClient.create_party_registration, client, registration_id=registration_id
            )
        return client

    def _watch_registration(self, client: OpenADRClient) -> _Registration:
        """Take over openleadr's handling of a registration the VTN ends (see the module doc)."""
        registration = _Registration()

        async def cancelled(message: Mapping[str, Any]) -> None:
            await OpenADRClient.on_cancel_party_registration(client, message)  # answers the VTN
            if client.registration_id is None:  # it was ours (another id is answered 452 and kept)
                logger.warning(
                    "demand response %s: the VTN cancelled our registration; registering again",
                    self.program.name,
                )
                registration.ended.set()

        async def reregister(registration_id: str | None = None) -> None:
            logger.info("demand response %s: the VTN asked us to register again", self.program.name)
            registration.reregister_as = (client.ven_id, registration_id or client.registration_id)
            registration.ended.set()

        client.on_cancel_party_registration = cancelled
        client.create_party_reregistration = reregister
        return registration

    def _reader(self, stations: tuple[str, ...]) -> Callable[[], float]:
        def read() -> float:
            return round(self._telemetry.load_kw(stations), 3)

        return read

    async def after_parse(self, message_type: str, payload: Mapping[str, Any]) -> None:
        """openleadr's hook: a distribution goes to the enforcer before its events are answered; a
        report request's granularity is clamped to the sampling rate we registered."""
        if message_type in ("oadrCreateReport", "oadrRegisteredReport"):  # both may request reports
            self._clamp_granularity(payload)
            return
        if message_type != "oadrDistributeEvent":
            return
        self.last_distribution_at = self._clock()
        if self.client is not None and self.client.ven_id:  # assigned at registration, before run() returns
            self._enforcer.set_ven_id(self.program.name, self.client.ven_id)
        await self.take_distribution(payload)
        if self.client is not None:
            # openleadr answers a version it has seen from ``responded_events``, from which it drops
            # an event once cancelled or completed: a VTN that lists it again would make it fail the
            # whole distribution (every event answered optOut). Keep our answer there.
            for raw in payload.get("events") or ():
                event_id = (raw.get("event_descriptor") or {}).get("event_id")
                if event_id is not None:
                    self.client.responded_events[str(event_id)] = self.answer(raw)

    def _clamp_granularity(self, payload: Mapping[str, Any]) -> None:
        """A granularity outside our registered sampling rate becomes its nearest bound (ReportLimits).

        openleadr would log it, leave the report's data out and still answer 200, so the VTN would
        get empty reports for good; sampling at the nearest rate we offer is what it can use.
        """
        limits = self.program.reports
        for request in payload.get("report_requests") or ():
            specifier = request.get("report_specifier") or {}
            granularity = specifier.get("granularity")
            if not isinstance(granularity, timedelta) or granularity <= timedelta(0):
                continue  # absent: openleadr samples at the slowest rate; 0: a single report
            clamped = timedelta(seconds=limits.clamp(granularity.total_seconds()))
            if clamped != granularity:
                logger.warning(
                    "demand response %s: report %s asks for a sample every %s; we sample every %s",
                    self.program.name,
                    request.get("report_request_id"),
                    granularity,
                    clamped,
                )
                specifier["granularity"] = clamped

    async def take_distribution(self, payload: Mapping[str, Any]) -> None:
        events: list[DrEvent] = []
        for raw in payload.get("events") or ():
            try:
                events.append(from_openadr(self.program.name, raw))
            except EventError as exc:
                logger.warning("demand response %s: %s; not enforced", self.program.name, exc)
        await self._enforcer.receive(events, program=self.program.name)

    def answer(self, event: Mapping[str, Any]) -> str:
        """openleadr's ``on_event``/``on_update_event``: the opt the enforcer decided."""
        event_id = str(event["event_descriptor"]["event_id"])
        return self._enforcer.opt_of(self.program.name, event_id).value

    async def run(self) -> None:
        """Register and keep the client running until cancelled (retrying while the VTN is away,
        registering again at once when the VTN ends the registration)."""
        again: tuple[str | None, str | None] = (None, None)
        while True:
            client = self.build_client(ven_id=again[0], registration_id=again[1])
            self.client = client
            registration = self._watch_registration(client)
            try:
                try:
                    await client.run()
                except Exception:
                    # Outermost handler of this VEN's registration (the library raises what it
                    # likes, e.g. on an unreadable certificate): log it, keep enforcing, retry.
                    logger.exception("demand response %s: the OpenADR client failed", self.program.name)
                if client.registration_id is not None and not registration.ended.is_set():
                    self._enforcer.set_ven_id(self.program.name, client.ven_id)
                    logger.info(
                        "demand response %s: registered at %s as %s",
                        self.program.name,
                        self.program.vtn_url,
                        client.ven_id,
                    )
                    self.registered.set()
                    await registration.ended.wait()
                    self.registered.clear()
            finally:
                await _stop(client)
            again = registration.reregister_as or (None, None)
            if registration.ended.is_set():
                continue  # the VTN ended the registration: register again at once
            logger.warning(
                "demand response %s: cannot register at %s; retrying in %.0f s (stored events keep running)",
                self.program.name,
                self.program.vtn_url,
                self._retry_s,
            )
            await asyncio.sleep(self._retry_s)


async def _stop(client: OpenADRClient) -> None:
    if client.scheduler.running:
        client.scheduler.shutdown(wait=False)
    if client.report_queue_task is not None:
        client.report_queue_task.cancel()
        await asyncio.gather(client.report_queue_task, return_exceptions=True)
    if client.client_session is not None and not client.client_session.closed:
        await client.client_session.close()
