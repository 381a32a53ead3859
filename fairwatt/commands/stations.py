"""The stations ``fairwatt serve`` plans: station files as the loop's ``StationSetup``s, kept current.

A station file speaks local time (price windows, peak events, hourly base load); the loop
speaks UTC instants. :func:`station_setup` lays the rules out for two planning horizons from
start-up, and :func:`keep_sites_current` lays them out again once a horizon has passed, through
the loop's ``set_prices``/``set_caps``/``set_base_load`` (one extra solve per horizon).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, time, timedelta

from aiohttp import web

from csms.server import CSMS
from csms.smart_charging import SMART_CHARGING, EvseBinding, SmartChargingLoop, StationSetup
from csms.smart_charging.drivers import SessionPolicy
from csms.smart_charging.setup import ForecastSettings
from fairwatt.config import ChargingPolicy, StationConfig

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
LOOKAHEAD_HORIZONS = 2
"""How many planning horizons of prices, peak events and base load the loop is given at once."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def horizon(config: StationConfig) -> timedelta:
    """The station's planning horizon (policy periods times their length)."""
    return timedelta(seconds=config.policy.period_s * config.policy.horizon_periods)


def station_setup(config: StationConfig, now: datetime) -> StationSetup:
    """The loop's view of ``config`` at ``now`` (UTC): limits, EVSEs on their chargers, policies.

    Raises :class:`csms.errors.SettingsError` or :class:`optimizer.errors.NetworkError` when the
    EVSEs do not fit the station (two EVSEs on one connector, a tree that misses an EVSE).
    """
    periods = LOOKAHEAD_HORIZONS * config.policy.horizon_periods
    bindings = []
    for evse in config.evses:
        place = config.place(evse.evse_id)
        bindings.append(EvseBinding(evse, place.charger_id, place.connector_id))
    forecast = None
    if config.forecast_weight > 0:
        forecast = ForecastSettings(config.forecast_weight, config.forecast_days, config.forecast_expected)
    return StationSetup(
        config.station_id,
        config.site(now, periods),
        tuple(bindings),
        config.policy,
        time_zone=config.time_zone,
        forecast=forecast,
        session_policy=session_policy(config.charging),
    )


def session_policy(charging: ChargingPolicy) -> SessionPolicy:
    """The loop's view of a station's tier weights and default departure (``24:00`` is midnight)."""
    departure = None
    if charging.default_departure_min is not None:
        hours, minutes = divmod(charging.default_departure_min % (24 * 60), 60)
        departure = time(hours, minutes)
    return SessionPolicy(charging.priority_tiers, departure)


def refresh_site(loop: SmartChargingLoop, config: StationConfig, now: datetime) -> None:
    """Give the loop ``config``'s prices, caps and base load laid out from ``now`` (UTC)."""
    site = config.site(now, LOOKAHEAD_HORIZONS * config.policy.horizon_periods)
    station_id = config.station_id
    loop.set_prices(station_id, site.prices)
    loop.set_caps(station_id, site.caps)
    if site.base_load_kw:
        loop.set_base_load(station_id, site.base_load_kw, site.base_load_start)
    logger.info(
        "station %s: %d prices and %d caps from %s", station_id, len(site.prices), len(site.caps), now
    )


async def keep_sites_current(
    loop: SmartChargingLoop,
    configs: Sequence[StationConfig],
    *,
    clock: Clock = _utc_now,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    refreshed: Callable[[str], None] | None = None,
) -> None:
    """Refresh each station's time-of-use rules once a horizon has passed, until cancelled."""
    if not configs:
        return
    due = {config.station_id: clock() + horizon(config) for config in configs}
    while True:
        await sleep(max((min(due.values()) - clock()).total_seconds(), 0.0))
        now = clock()
        for config in configs:
            if now >= due[config.station_id]:
                refresh_site(loop, config, now)
                if refreshed is not None:
                    refreshed(config.station_id)  # e.g. demand response lays its caps over again
                due[config.station_id] = now + horizon(config)


def keep_current_in(
    app: web.Application,
    configs: Sequence[StationConfig],
    refreshed: Callable[[str], None] | None = None,
) -> None:
    """Run :func:`keep_sites_current` as a task of the app; ``refreshed(station_id)`` after each refresh."""

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        work = keep_sites_current(app[SMART_CHARGING], configs, refreshed=refreshed)
        task = app[CSMS].tasks.start(work, "station-sites")
        try:
            yield
        finally:
            task.cancel()

    if configs:
        app.cleanup_ctx.append(lifetime)
