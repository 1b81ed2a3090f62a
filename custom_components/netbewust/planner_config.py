"""The planner subentry as typed settings: price source, tariff and forecast sources."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pynordpool import AREAS

from .const import (
    CONF_ENERGY_TAX,
    CONF_EXPORT_FEE,
    CONF_EXPORT_FIXED,
    CONF_EXPORT_RULE,
    CONF_HEAT_BASE_TEMPERATURE,
    CONF_HEAT_FIXED,
    CONF_HEAT_PER_DEGREE_DAY,
    CONF_NORDPOOL_AREA,
    CONF_PRICE_ENTITY,
    CONF_PRICE_SOURCE,
    CONF_PV_FORECAST_ENTITY,
    CONF_SUPPLIER_MARKUP,
    CONF_VAT,
    CONF_WEATHER_ENTITY,
    DEFAULT_NORDPOOL_AREA,
    SUBENTRY_PLANNER,
)
from .core.forecast import DegreeDayModel, ForecastError
from .core.prices import ExportRule, PriceError, TariffRules

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from homeassistant.config_entries import ConfigSubentry


class PlannerConfigError(ValueError):
    """Planner settings that cannot be used; `field` names the offending key."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class PriceSourceKind(StrEnum):
    NORDPOOL = "nordpool"
    ENTITY = "entity"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannerConfig:
    price_source: PriceSourceKind
    nordpool_area: str = DEFAULT_NORDPOOL_AREA
    price_entity: str | None = None
    tariff: TariffRules
    pv_forecast_entity: str | None = None
    weather_entity: str | None = None
    degree_days: DegreeDayModel


def _number(data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlannerConfigError(key, f"not a number: {value!r}")
    return float(value)


def _entity(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str) or "." not in value:
        raise PlannerConfigError(key, f"not an entity id: {value!r}")
    return value


def parse_planner_config(data: Mapping[str, Any]) -> PlannerConfig:
    """Typed settings; raises PlannerConfigError naming the first bad field."""
    try:
        source = PriceSourceKind(data.get(CONF_PRICE_SOURCE, PriceSourceKind.NORDPOOL))
    except ValueError:
        raise PlannerConfigError(CONF_PRICE_SOURCE, "unknown price source") from None
    area = str(data.get(CONF_NORDPOOL_AREA, DEFAULT_NORDPOOL_AREA))
    if source is PriceSourceKind.NORDPOOL and area not in AREAS:
        raise PlannerConfigError(CONF_NORDPOOL_AREA, f"unknown Nord Pool area {area!r}")
    price_entity = _entity(data, CONF_PRICE_ENTITY)
    if source is PriceSourceKind.ENTITY and price_entity is None:
        raise PlannerConfigError(CONF_PRICE_ENTITY, "a price entity is required")
    try:
        export_rule = ExportRule(data.get(CONF_EXPORT_RULE, ExportRule.SPOT))
    except ValueError:
        raise PlannerConfigError(CONF_EXPORT_RULE, "unknown export rule") from None
    try:
        tariff = TariffRules(
            energy_tax_eur_per_kwh=_number(data, CONF_ENERGY_TAX, 0.0),
            supplier_markup_eur_per_kwh=_number(data, CONF_SUPPLIER_MARKUP, 0.0),
            vat_pct=_number(data, CONF_VAT, 0.0),
            export_rule=export_rule,
            export_fee_eur_per_kwh=_number(data, CONF_EXPORT_FEE, 0.0),
            export_fixed_eur_per_kwh=_number(data, CONF_EXPORT_FIXED, 0.0),
        )
    except PriceError as err:
        raise PlannerConfigError(CONF_VAT, str(err)) from err
    try:
        degree_days = DegreeDayModel(
            base_temperature_c=_number(data, CONF_HEAT_BASE_TEMPERATURE, 18.0),
            per_degree_day_wh=_number(data, CONF_HEAT_PER_DEGREE_DAY, 6.0) * 1000,
            fixed_wh=_number(data, CONF_HEAT_FIXED, 0.0) * 1000,
        )
    except ForecastError as err:
        raise PlannerConfigError(CONF_HEAT_PER_DEGREE_DAY, str(err)) from err
    return PlannerConfig(
        price_source=source,
        nordpool_area=area,
        price_entity=price_entity,
        tariff=tariff,
        pv_forecast_entity=_entity(data, CONF_PV_FORECAST_ENTITY),
        weather_entity=_entity(data, CONF_WEATHER_ENTITY),
        degree_days=degree_days,
    )


def planner_subentry(subentries: Iterable[ConfigSubentry]) -> ConfigSubentry | None:
    """The entry's planner subentry; the flow allows at most one."""
    return next((s for s in subentries if s.subentry_type == SUBENTRY_PLANNER), None)
