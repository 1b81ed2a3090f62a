"""Selector builders shared by the subentry forms (devices, Modbus devices, planner)."""

from __future__ import annotations

from typing import Literal

from homeassistant.helpers.selector import (
    EntitySelector,
    EntitySelectorConfig,
    EntityWithDeviceFilterSelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)


def number_box(
    unit: str | None = None,
    *,
    step: float | Literal["any"] = 1,
    minimum: float | None = None,
    maximum: float | None = None,
) -> NumberSelector:
    """A typed-in number; bounds left out are checked by the flow with a translated error."""
    config = NumberSelectorConfig(step=step, mode=NumberSelectorMode.BOX)
    if unit is not None:
        config["unit_of_measurement"] = unit
    if minimum is not None:
        config["min"] = minimum
    if maximum is not None:
        config["max"] = maximum
    return NumberSelector(config)


def dropdown(
    options: list[SelectOptionDict] | list[str], translation_key: str | None
) -> SelectSelector:
    config = SelectSelectorConfig(options=options, mode=SelectSelectorMode.DROPDOWN)
    if translation_key is not None:
        config["translation_key"] = translation_key
    return SelectSelector(config)


def entity_picker(*domains: str, device_class: str | None = None) -> EntitySelector:
    entity_filter = EntityWithDeviceFilterSelectorConfig(domain=list(domains))
    if device_class is not None:
        entity_filter["device_class"] = device_class
    return EntitySelector(EntitySelectorConfig(filter=entity_filter))
