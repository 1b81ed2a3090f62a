"""The planner subentry as typed settings: price source, tariff and forecast sources."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pynordpool import AREAS

from ..const import (
    CONF_CAPACITY_TARIFF,
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
from ..core.planning.forecast import DegreeDayModel
from ..core.planning.prices import ExportRule, TariffRules
from ..core.planning.problem import Tariff

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from homeassistant.config_entries import ConfigSubentry

# The engine's degree-day defaults: the form suggests them, a stored entry without them gets them.
DEGREE_DAY_DEFAULTS = DegreeDayModel()


class PlannerConfigError(ValueError):
    """Planner settings that cannot be used.

    `field` names the offending key and `code` the kind of problem; the planner
    subentry flow shows `code` as the translated error next to that field.
    """

    def __init__(self, field: str, code: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.code = code


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
    capacity_tariff: Tariff = field(default_factory=Tariff)


def _number(
    data: Mapping[str, Any],
    key: str,
    default: float,
    minimum: float = -math.inf,
    maximum: float = math.inf,
) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PlannerConfigError(key, "not_a_number", f"not a number: {value!r}")
    if not minimum <= value <= maximum:
        code = "negative" if minimum == 0 and maximum == math.inf else "out_of_range"
        raise PlannerConfigError(key, code, f"{value} is outside {minimum}..{maximum}")
    return float(value)


def _entity(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str) or "." not in value:
        raise PlannerConfigError(key, "invalid_entity_id", f"not an entity id: {value!r}")
    return value


def parse_planner_config(data: Mapping[str, Any]) -> PlannerConfig:
    """Typed settings; raises PlannerConfigError naming the first bad field."""
    try:
        source = PriceSourceKind(data.get(CONF_PRICE_SOURCE, PriceSourceKind.NORDPOOL))
    except ValueError:
        raise PlannerConfigError(
            CONF_PRICE_SOURCE, "unknown_price_source", "unknown price source"
        ) from None
    area = str(data.get(CONF_NORDPOOL_AREA, DEFAULT_NORDPOOL_AREA))
    if source is PriceSourceKind.NORDPOOL and area not in AREAS:
        raise PlannerConfigError(
            CONF_NORDPOOL_AREA, "unknown_area", f"unknown Nord Pool area {area!r}"
        )
    price_entity = _entity(data, CONF_PRICE_ENTITY)
    if source is PriceSourceKind.ENTITY and price_entity is None:
        raise PlannerConfigError(
            CONF_PRICE_ENTITY, "price_entity_required", "a price entity is required"
        )
    try:
        export_rule = ExportRule(data.get(CONF_EXPORT_RULE, ExportRule.SPOT))
    except ValueError:
        raise PlannerConfigError(
            CONF_EXPORT_RULE, "unknown_export_rule", "unknown export rule"
        ) from None
    # Each number is checked here, so the engine's own checks below cannot fail.
    tariff = TariffRules(
        energy_tax_eur_per_kwh=_number(data, CONF_ENERGY_TAX, 0.0),
        supplier_markup_eur_per_kwh=_number(data, CONF_SUPPLIER_MARKUP, 0.0),
        vat_pct=_number(data, CONF_VAT, 0.0, minimum=0, maximum=100),
        export_rule=export_rule,
        export_fee_eur_per_kwh=_number(data, CONF_EXPORT_FEE, 0.0),
        export_fixed_eur_per_kwh=_number(data, CONF_EXPORT_FIXED, 0.0),
    )
    degree_days = DegreeDayModel(
        base_temperature_c=_number(
            data, CONF_HEAT_BASE_TEMPERATURE, DEGREE_DAY_DEFAULTS.base_temperature_c
        ),
        per_degree_day_wh=_number(
            data, CONF_HEAT_PER_DEGREE_DAY, DEGREE_DAY_DEFAULTS.per_degree_day_wh / 1000, minimum=0
        )
        * 1000,
        fixed_wh=_number(data, CONF_HEAT_FIXED, DEGREE_DAY_DEFAULTS.fixed_wh / 1000, minimum=0)
        * 1000,
    )
    capacity_tariff = Tariff(
        peak_price_eur_per_kw=_number(data, CONF_CAPACITY_TARIFF, 0.0, minimum=0)
    )
    return PlannerConfig(
        price_source=source,
        nordpool_area=area,
        price_entity=price_entity,
        tariff=tariff,
        pv_forecast_entity=_entity(data, CONF_PV_FORECAST_ENTITY),
        weather_entity=_entity(data, CONF_WEATHER_ENTITY),
        degree_days=degree_days,
        capacity_tariff=capacity_tariff,
    )


def planner_subentry(subentries: Iterable[ConfigSubentry]) -> ConfigSubentry | None:
    """The entry's planner subentry; the flow allows at most one."""
    return next((s for s in subentries if s.subentry_type == SUBENTRY_PLANNER), None)
