"""The config entry as the engine's `GuardConfig`, plus the entities behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from homeassistant.exceptions import ConfigEntryError

from ..const import (
    CONF_CONNECTION_TYPE,
    CONF_FUSE_CURRENT,
    CONF_METER_MODE,
    CONF_PEAK_LIMIT,
    CONF_PEAK_MODE,
    CONF_PHASES,
    CONF_SAFETY_MARGIN,
    CONF_STALE_AFTER,
    CONNECTION_TYPES,
    DEFAULT_CONNECTION_TYPE,
    DEFAULT_SAFETY_MARGIN_A,
    DEFAULT_STALE_AFTER_S,
    DOMAIN,
    LOGGER,
    METER_MODE_MODBUS,
)
from ..core.model import Connection, GuardConfig, PeakMode
from ..modbus.runtime import has_modbus_meter
from .devices import DeviceBinding, bindings_from_subentries, circuits_from_subentries
from .meter import MeterEntities, meter_entities_from_data

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from homeassistant.config_entries import ConfigSubentry


class EntryConfigError(ValueError):
    """The entry's data does not describe a usable connection or device."""


def invalid_config(title: str, err: Exception) -> ConfigEntryError:
    """Set-up refused for unusable settings: the detail (English, for whoever reads the
    log) goes to the log, the household reads a translated message naming the entry."""
    LOGGER.error("%s: the settings cannot be used: %s", title, err)
    return ConfigEntryError(
        translation_domain=DOMAIN,
        translation_key="invalid_config",
        translation_placeholders={"title": title},
    )


@dataclass(frozen=True, slots=True)
class EntryConfig:
    guard: GuardConfig
    meter: MeterEntities
    devices: tuple[DeviceBinding, ...]


def _connection(data: Mapping[str, Any]) -> Connection:
    phases, fuse_a = CONNECTION_TYPES.get(
        str(data.get(CONF_CONNECTION_TYPE, DEFAULT_CONNECTION_TYPE)),
        CONNECTION_TYPES[DEFAULT_CONNECTION_TYPE],
    )
    # Explicit values (a custom connection) win over the named type.
    phases = int(data.get(CONF_PHASES, phases))
    fuse_a = float(data.get(CONF_FUSE_CURRENT, fuse_a))
    peak_kw = data.get(CONF_PEAK_LIMIT)
    return Connection(
        phases=phases,
        fuse_current_a=fuse_a,
        safety_margin_a=float(data.get(CONF_SAFETY_MARGIN, DEFAULT_SAFETY_MARGIN_A)),
        peak_limit_w=float(peak_kw) * 1000 if peak_kw else None,
        peak_mode=PeakMode(data.get(CONF_PEAK_MODE, PeakMode.INSTANTANEOUS)),
    )


def entry_config(data: Mapping[str, Any], subentries: Iterable[ConfigSubentry]) -> EntryConfig:
    """Everything the runtime needs from the entry; raises EntryConfigError when unusable."""
    subentries = tuple(subentries)
    try:
        connection = _connection(data)
        devices = bindings_from_subentries(subentries)
        guard = GuardConfig(
            connection=connection,
            devices=tuple(binding.spec for binding in devices),
            circuits=circuits_from_subentries(subentries),
            stale_after_s=float(data.get(CONF_STALE_AFTER, DEFAULT_STALE_AFTER_S)),
        )
    except (TypeError, ValueError) as err:
        raise EntryConfigError(str(err)) from err
    meter = meter_entities_from_data(data, connection.phases)
    # An entry set up for a Modbus meter waits for it in safe mode rather than failing.
    waiting = data.get(CONF_METER_MODE) == METER_MODE_MODBUS
    if not meter.all() and not waiting and not has_modbus_meter(subentries):
        raise EntryConfigError("no meter entities and no Modbus meter configured")
    return EntryConfig(guard=guard, meter=meter, devices=devices)
