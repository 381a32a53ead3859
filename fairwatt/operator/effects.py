"""What an applied network change does at run time, after its transaction committed.

* Tariffs: the tariff store's cache is refreshed, so new sessions price with the new version.
* Stations the smart-charging loop plans on this server: new prices, peak events and base load
  take effect at once (the loop re-solves and sends the changed profiles). The limit tree, the
  EVSEs and the solver policy are fixed when the loop starts: such a change is stored, reported
  as ``restart_needed`` (when it differs from what the loop plans) and planned with after the
  next start of ``fairwatt serve``.
* Local authorisation lists: a full list with its new version is sent to every listed charger
  that is connected (a removed list is sent empty); chargers not connected are reported.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from csms.commands import CommandBus, CommandOutcome, CommandResult
from csms.commands.payloads import LocalListEntry
from csms.commands.results import result_document
from csms.domain.events import Authorization, AuthorizationStatus, IdToken
from csms.smart_charging import SMART_CHARGING, StationSetup
from demand_response.app import DEMAND_RESPONSE
from fairwatt.commands.stations import refresh_site, station_setup
from fairwatt.config.model import StationConfig
from fairwatt.config.network_model import Network
from fairwatt.operator.engine import ApplyOutcome, Change
from sessions.tariff_store import TariffStore

logger = logging.getLogger(__name__)


async def after_apply(
    app: web.Application,
    commands: CommandBus,
    tariffs: TariffStore,
    network: Network,
    outcome: ApplyOutcome,
) -> dict[str, Any]:
    """Run the committed changes' effects; a report of what happened (``stations``, ``local_lists``)."""
    for change in outcome.changes:
        if change.kind == "tariff" and change.after is not None:
            await tariffs.versions(change.resource_id, fresh=True)
    return {
        "stations": _stations(app, network, outcome.changes),
        "local_lists": await _local_lists(commands, outcome),
    }


def _stations(app: web.Application, network: Network, changes: tuple[Change, ...]) -> list[dict[str, Any]]:
    loop = app.get(SMART_CHARGING)
    planned = set(loop.station_ids) if loop is not None else set()
    report: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for change in changes:
        if change.kind != "station" or change.action == "delete":
            if change.kind == "station":
                report.append({"station": change.resource_id, "effect": "removed; restart_needed"})
            continue
        station_id = change.resource_id
        if loop is None or station_id not in planned:
            report.append({"station": station_id, "effect": "stored; not planned by this server"})
            continue
        config = network.station(station_id).station
        refresh_site(loop, config, now)  # prices, caps, base load: re-solves
        demand_response = app.get(DEMAND_RESPONSE)
        if demand_response is not None and station_id in demand_response.enforcer.stations:
            demand_response.enforcer.rebase(station_id)  # lay its demand-response caps over the new ones
        effect = "re-solved" + (
            "" if _same_plant(loop.state(station_id).setup, config, now) else "; restart_needed"
        )
        report.append({"station": station_id, "effect": effect})
        logger.info("station %s: network change applied (%s)", station_id, effect)
    return report


def _same_plant(running: StationSetup, config: StationConfig, now: datetime) -> bool:
    """Whether the loop already plans ``config``'s EVSEs, limit tree, grid limit, policies and forecast."""
    wanted = station_setup(config, now)
    return (
        running.evses == wanted.evses
        and running.site.root == wanted.site.root
        and running.site.grid_limit_kw == wanted.site.grid_limit_kw
        and running.policy == wanted.policy
        and running.forecast == wanted.forecast
        and running.time_zone == wanted.time_zone
        and running.session_policy == wanted.session_policy
    )


def _entries(body: dict[str, Any] | None) -> dict[tuple[str, str], str]:
    """A list body's entries as ``(id_token, type) -> status``."""
    return {(e["id_token"], e["type"]): e["status"] for e in (body or {}).get("entries", [])}


def differential(before: dict[str, Any], after: dict[str, Any]) -> list[LocalListEntry]:
    """What a charger holding ``before`` needs to hold ``after``: changed or new entries, and removals
    (an entry without a status removes it, OCPP's differential SendLocalList)."""
    old, new = _entries(before), _entries(after)
    changed = [
        LocalListEntry(IdToken(token, kind), Authorization(AuthorizationStatus(status)))
        for (token, kind), status in sorted(new.items())
        if old.get((token, kind)) != status
    ]
    removed = [LocalListEntry(IdToken(token, kind), None) for token, kind in sorted(old.keys() - new.keys())]
    return changed + removed


async def _send_list(
    commands: CommandBus,
    charger_id: str,
    version: int,
    full: list[LocalListEntry],
    diff: list[LocalListEntry] | None,
) -> tuple[CommandResult, str]:
    """A differential update where the charger held the previous version, else (or when it refuses
    the differential, e.g. VersionMismatch) the full list; the result and which was sent."""
    if diff is not None:
        result = await commands.send_local_list(charger_id, version, diff, full=False)
        if result.accepted or result.outcome is CommandOutcome.NOT_CONNECTED:
            return result, "Differential"
    return await commands.send_local_list(charger_id, version, full, full=True), "Full"


async def _local_lists(commands: CommandBus, outcome: ApplyOutcome) -> list[dict[str, Any]]:
    sends: list[tuple[str, str, int, list[LocalListEntry], list[LocalListEntry] | None]] = []
    for change in outcome.changes:
        if change.kind != "local_list":
            continue
        version = outcome.versions.get((change.kind, change.resource_id), 1)
        body = change.after or change.before or {}
        entries = (
            [
                LocalListEntry(
                    IdToken(e["id_token"], e["type"]), Authorization(AuthorizationStatus(e["status"]))
                )
                for e in body.get("entries", [])
            ]
            if change.after is not None
            else []
        )
        chargers = set(body.get("chargers", []))
        if change.before is not None and change.after is not None:
            chargers |= set(change.before.get("chargers", []))  # a charger taken off the list is emptied
        for charger_id in sorted(chargers):
            listed = change.after is not None and charger_id in change.after.get("chargers", [])
            held_before = change.before is not None and charger_id in change.before.get("chargers", [])
            diff = (
                differential(change.before or {}, change.after or {})
                if listed and held_before and change.before is not None
                else None
            )
            sends.append((change.resource_id, charger_id, version, entries if listed else [], diff))
    results = await asyncio.gather(
        *(_send_list(commands, charger, version, full, diff) for _, charger, version, full, diff in sends)
    )
    return [
        {"list": list_id, "version": version, "update": update, **result_document(result)}
        for (list_id, _, version, _, _), (result, update) in zip(sends, results, strict=True)
    ]
