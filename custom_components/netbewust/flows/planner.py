"""The "planner" subentry: where prices come from, the tariff, and the forecast sources.

One planner per connection. One form for adding and reconfiguring; the values are
checked by the same `parse_planner_config` the runtime uses, plus what only Home
Assistant can tell: whether the chosen entities exist and carry usable data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import probatio
from homeassistant.config_entries import SOURCE_RECONFIGURE, ConfigSubentryFlow, SubentryFlowResult
from homeassistant.const import PERCENTAGE, UnitOfEnergy, UnitOfTemperature
from homeassistant.helpers.selector import (
    NumberSelector,
    SelectOptionDict,
)
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
from ..core.planning.prices import ExportRule, PriceError
from ..planner.config import (
    DEGREE_DAY_DEFAULTS,
    PlannerConfigError,
    PriceSourceKind,
    parse_planner_config,
)
from ..planner.forecast_source import PV_LIST_ATTRIBUTES, is_forecast_solar_entity
from ..planner.price_source import nordpool_target, points_from_attributes
from .selectors import dropdown, entity_picker, number_box

if TYPE_CHECKING:
    from collections.abc import Mapping

    from homeassistant.config_entries import ConfigEntry

PLANNER_TITLE = "Planner"
EUR_PER_KWH = "EUR/kWh"
EUR_PER_KW = "EUR/kW"
# The number each export rule needs besides the spot price.
EXPORT_RULE_VALUE: Mapping[ExportRule, str | None] = {
    ExportRule.SPOT: None,
    ExportRule.SPOT_MINUS_FEE: CONF_EXPORT_FEE,
    ExportRule.FIXED: CONF_EXPORT_FIXED,
}
DEFAULTS: Mapping[str, Any] = {
    CONF_PRICE_SOURCE: PriceSourceKind.NORDPOOL.value,
    CONF_NORDPOOL_AREA: DEFAULT_NORDPOOL_AREA,
    CONF_ENERGY_TAX: 0.0,
    CONF_SUPPLIER_MARKUP: 0.0,
    CONF_VAT: 21.0,
    CONF_EXPORT_RULE: ExportRule.SPOT.value,
    CONF_HEAT_BASE_TEMPERATURE: DEGREE_DAY_DEFAULTS.base_temperature_c,
    CONF_HEAT_PER_DEGREE_DAY: DEGREE_DAY_DEFAULTS.per_degree_day_wh / 1000,
    CONF_HEAT_FIXED: DEGREE_DAY_DEFAULTS.fixed_wh / 1000,
}


def _amount(unit: str) -> NumberSelector:
    # Any decimal, no min/max: a value out of range gets a translated error next to the field.
    return number_box(unit, step="any")


PLANNER_SCHEMA = probatio.Schema(
    {
        probatio.Required(CONF_PRICE_SOURCE): dropdown(
            [kind.value for kind in PriceSourceKind], "price_source"
        ),
        probatio.Optional(CONF_NORDPOOL_AREA): dropdown(
            [SelectOptionDict(value=code, label=name) for code, name in AREAS.items()], None
        ),
        probatio.Optional(CONF_PRICE_ENTITY): entity_picker("sensor"),
        probatio.Required(CONF_ENERGY_TAX): _amount(EUR_PER_KWH),
        probatio.Required(CONF_SUPPLIER_MARKUP): _amount(EUR_PER_KWH),
        probatio.Required(CONF_VAT): _amount(PERCENTAGE),
        probatio.Required(CONF_EXPORT_RULE): dropdown(
            [rule.value for rule in ExportRule], "export_rule"
        ),
        probatio.Optional(CONF_EXPORT_FEE): _amount(EUR_PER_KWH),
        probatio.Optional(CONF_EXPORT_FIXED): _amount(EUR_PER_KWH),
        probatio.Optional(CONF_CAPACITY_TARIFF): _amount(EUR_PER_KW),
        probatio.Optional(CONF_PV_FORECAST_ENTITY): entity_picker("sensor"),
        probatio.Optional(CONF_WEATHER_ENTITY): entity_picker("weather"),
        probatio.Required(CONF_HEAT_BASE_TEMPERATURE): _amount(UnitOfTemperature.CELSIUS),
        probatio.Required(CONF_HEAT_PER_DEGREE_DAY): _amount(UnitOfEnergy.KILO_WATT_HOUR),
        probatio.Required(CONF_HEAT_FIXED): _amount(UnitOfEnergy.KILO_WATT_HOUR),
    }
)


def _export_value_key(data: Mapping[str, Any]) -> str | None:
    """The field the chosen export rule (one of the schema's choices) needs; None for spot."""
    return EXPORT_RULE_VALUE[ExportRule(data[CONF_EXPORT_RULE])]


def _clean(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Drop empty fields and those the chosen price source and export rule do not use."""
    data = {key: value for key, value in user_input.items() if value not in (None, "")}
    if data.get(CONF_PRICE_SOURCE) == PriceSourceKind.ENTITY:
        data.pop(CONF_NORDPOOL_AREA, None)
    else:
        data.pop(CONF_PRICE_ENTITY, None)
    needed = _export_value_key(data)
    for key in (CONF_EXPORT_FEE, CONF_EXPORT_FIXED):
        if key != needed:
            data.pop(key, None)
    return data


class PlannerSubentryFlow(ConfigSubentryFlow):
    """Add or change the connection's planner; at most one per connection."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        entry = self._get_entry()
        if any(s.subentry_type == SUBENTRY_PLANNER for s in entry.subentries.values()):
            return self.async_abort(reason="already_configured")
        return self._async_step_form("user", user_input)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        return self._async_step_form("reconfigure", user_input)

    def _async_step_form(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> SubentryFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            data = _clean(user_input)
            errors = self._errors(data)
            if not errors:
                return self._async_save(data)
            suggested: Mapping[str, Any] = user_input
        elif self.source == SOURCE_RECONFIGURE:
            suggested = self._get_reconfigure_subentry().data
        else:
            suggested = DEFAULTS
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(PLANNER_SCHEMA, suggested),
            errors=errors,
        )

    def _async_save(self, data: dict[str, Any]) -> SubentryFlowResult:
        if self.source != SOURCE_RECONFIGURE:
            return self.async_create_entry(
                title=PLANNER_TITLE, data=data, unique_id=SUBENTRY_PLANNER
            )
        entry: ConfigEntry = self._get_entry()
        subentry = self._get_reconfigure_subentry()
        if entry.update_listeners:  # the integration's listener reloads on any change
            return self.async_update_and_abort(entry, subentry, data=data)
        return self.async_update_reload_and_abort(entry, subentry, data=data)

    def _errors(self, data: dict[str, Any]) -> dict[str, str]:
        """Every problem at once where possible: entities first, then the values."""
        errors = self._entity_errors(data)
        rule_value = _export_value_key(data)
        if rule_value is not None and rule_value not in data:
            errors[rule_value] = "value_required"
        try:
            parse_planner_config(data)
        except PlannerConfigError as err:
            errors.setdefault(err.field, err.code)
        return errors

    def _entity_errors(self, data: Mapping[str, Any]) -> dict[str, str]:
        errors: dict[str, str] = {}
        price_entity = data.get(CONF_PRICE_ENTITY)
        if price_entity is not None and (error := self._price_entity_error(price_entity)):
            errors[CONF_PRICE_ENTITY] = error
        if (pv_entity := data.get(CONF_PV_FORECAST_ENTITY)) is not None:
            pv_state = self.hass.states.get(pv_entity)
            if pv_state is None:
                errors[CONF_PV_FORECAST_ENTITY] = "entity_not_found"
            elif not is_forecast_solar_entity(self.hass, pv_entity) and not any(
                name in pv_state.attributes for name in PV_LIST_ATTRIBUTES
            ):
                errors[CONF_PV_FORECAST_ENTITY] = "no_forecast_list"
        if (weather := data.get(CONF_WEATHER_ENTITY)) is not None:
            if self.hass.states.get(weather) is None:
                errors[CONF_WEATHER_ENTITY] = "entity_not_found"
            elif not weather.startswith("weather."):
                errors[CONF_WEATHER_ENTITY] = "wrong_domain"
        return errors

    def _price_entity_error(self, entity_id: str) -> str | None:
        """HA's Nord Pool entities are asked through its action; others must list prices."""
        state = self.hass.states.get(entity_id)
        if state is None:
            return "entity_not_found"
        if nordpool_target(self.hass, entity_id) is not None:
            return None
        try:
            points_from_attributes(state.attributes, state.attributes.get("unit_of_measurement"))
        except PriceError:
            return "no_price_list"
        return None
