"""Builds the planning runtime from the entry's planner subentry, if it has one."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..const import CONF_BATTERY_CAPACITY, LOGGER, SUBENTRY_BATTERY, SUBENTRY_MODBUS
from ..guard.entry_config import invalid_config
from .config import (
    PlannerConfigError,
    PriceSourceKind,
    parse_planner_config,
    planner_subentry,
)
from .forecast_source import ForecastSource
from .price_source import EntityPriceSource, NordPoolSource, PriceSource
from .runtime import PlanningRuntime

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigSubentry
    from homeassistant.core import HomeAssistant

    from ..guard.runtime import NetbewustConfigEntry, NetbewustRuntime


def async_create_planner(
    hass: HomeAssistant, entry: NetbewustConfigEntry, runtime: NetbewustRuntime
) -> PlanningRuntime | None:
    subentry = planner_subentry(entry.subentries.values())
    if subentry is None:
        return None
    try:
        config = parse_planner_config(subentry.data)
    except PlannerConfigError as err:
        raise invalid_config(entry.title, err) from err
    prices: PriceSource
    if config.price_source is PriceSourceKind.ENTITY and config.price_entity is not None:
        prices = EntityPriceSource(hass, config.price_entity)
    else:
        prices = NordPoolSource(hass, config.nordpool_area)
    forecasts = ForecastSource(hass, runtime.config.meter, config, ZoneInfo(hass.config.time_zone))
    capacities = {
        s.subentry_id: capacity_wh
        for s in entry.subentries.values()
        # A Modbus device has a capacity only when its profile is a battery's.
        if s.subentry_type in (SUBENTRY_BATTERY, SUBENTRY_MODBUS)
        and (capacity_wh := _capacity_wh(s)) is not None
    }
    return PlanningRuntime(hass, runtime, prices, forecasts, capacities)


def _capacity_wh(subentry: ConfigSubentry) -> float | None:
    """The battery's capacity in Wh; None (not planned) when absent or not a positive number."""
    kwh: Any = subentry.data.get(CONF_BATTERY_CAPACITY)
    if kwh is None:
        return None
    if (
        isinstance(kwh, bool)
        or not isinstance(kwh, int | float)
        or not math.isfinite(kwh)
        or kwh <= 0
    ):
        LOGGER.warning("%s: ignoring battery capacity %r; not planned", subentry.title, kwh)
        return None
    return float(kwh) * 1000
