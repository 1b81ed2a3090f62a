"""Config flow: one entry per grid connection, its meter entities, and its devices.

Steps: `user` (or `reconfigure`) -> `custom_connection` when the fuse is not standard ->
`meter_per_phase` or `meter_total` (none with a Modbus meter) -> `slow_meter` when the
meter updates too slowly for fast protection -> entry created (or updated and reloaded).
"""

from __future__ import annotations

from typing import Any, override

import probatio
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlow,
)
from homeassistant.const import CONF_NAME, UnitOfElectricCurrent, UnitOfPower, UnitOfTime
from homeassistant.core import callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.selector import (
    EntitySelector,
    EntitySelectorConfig,
    EntityWithDeviceFilterSelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)

from .community.const import is_community_entry
from .const import (
    CONF_CONNECTION_TYPE,
    CONF_CURRENT,
    CONF_DEVICE_PHASES,
    CONF_FUSE_CURRENT,
    CONF_METER_MODE,
    CONF_PEAK_LIMIT,
    CONF_PEAK_MODE,
    CONF_PHASES,
    CONF_POWER_EXPORT,
    CONF_POWER_EXPORT_TOTAL,
    CONF_POWER_IMPORT,
    CONF_POWER_IMPORT_TOTAL,
    CONF_QUARTER_HOUR_DEMAND,
    CONF_SAFETY_MARGIN,
    CONF_STALE_AFTER,
    CONF_VOLTAGE,
    CONNECTION_TYPE_CUSTOM,
    CONNECTION_TYPES,
    CUSTOM_FUSE_RANGE_A,
    CUSTOM_PHASE_OPTIONS,
    DEFAULT_CONNECTION_TYPE,
    DEFAULT_PEAK_MODE,
    DEFAULT_SAFETY_MARGIN_A,
    DEFAULT_STALE_AFTER_S,
    DOMAIN,
    METER_MODE_MODBUS,
    METER_MODE_PER_PHASE,
    METER_MODE_TOTAL,
    PEAK_MODES,
    SLOW_METER_INTERVAL_S,
    STALE_AFTER_RANGE_S,
    SUBENTRY_MODBUS,
    SUBENTRY_PLANNER,
    phase_key,
)
from .flows.community import CommunityFlowMixin
from .flows.devices import SUBENTRY_FLOWS
from .flows.meter_interval import async_estimate_update_interval_s
from .flows.modbus import ModbusSubentryFlow
from .flows.planner import PlannerSubentryFlow
from .flows.validation import CURRENT_SENSOR, POWER_SENSOR, VOLTAGE_SENSOR, SensorRule, sensor_error

DEFAULT_NAME = "Home"

# Keys the connection steps own; reconfiguring replaces them, not the meter keys.
CONNECTION_KEYS = (
    CONF_CONNECTION_TYPE,
    CONF_PHASES,
    CONF_FUSE_CURRENT,
    CONF_SAFETY_MARGIN,
    CONF_PEAK_LIMIT,
    CONF_PEAK_MODE,
    CONF_METER_MODE,
)


def _select(options: list[str], translation_key: str) -> SelectSelector:
    return SelectSelector(
        SelectSelectorConfig(
            options=options, translation_key=translation_key, mode=SelectSelectorMode.DROPDOWN
        )
    )


def _number(unit: str, step: float, minimum: float | None = None) -> NumberSelector:
    config = NumberSelectorConfig(step=step, unit_of_measurement=unit, mode=NumberSelectorMode.BOX)
    if minimum is not None:
        config["min"] = minimum
    return NumberSelector(config)


def _sensor_selector(device_class: str) -> EntitySelector:
    return EntitySelector(
        EntitySelectorConfig(
            filter=EntityWithDeviceFilterSelectorConfig(domain="sensor", device_class=device_class)
        )
    )


CONNECTION_SCHEMA = probatio.Schema(
    {
        probatio.Required(CONF_NAME, default=DEFAULT_NAME): TextSelector(),
        probatio.Required(CONF_CONNECTION_TYPE, default=DEFAULT_CONNECTION_TYPE): _select(
            [*CONNECTION_TYPES, CONNECTION_TYPE_CUSTOM], "connection_type"
        ),
        probatio.Required(CONF_SAFETY_MARGIN, default=DEFAULT_SAFETY_MARGIN_A): _number(
            UnitOfElectricCurrent.AMPERE, 0.5, minimum=0
        ),
        probatio.Optional(CONF_PEAK_LIMIT): _number(UnitOfPower.KILO_WATT, 0.1, minimum=0),
        probatio.Required(CONF_PEAK_MODE, default=DEFAULT_PEAK_MODE): _select(
            list(PEAK_MODES), "peak_mode"
        ),
        probatio.Required(CONF_METER_MODE, default=METER_MODE_PER_PHASE): _select(
            [METER_MODE_PER_PHASE, METER_MODE_TOTAL, METER_MODE_MODBUS], "meter_mode"
        ),
    }
)

# No min/max on the fuse here: the flow checks the range and says so next to the field.
CUSTOM_CONNECTION_SCHEMA = probatio.Schema(
    {
        probatio.Required(CONF_PHASES, default=CUSTOM_PHASE_OPTIONS[0]): _select(
            list(CUSTOM_PHASE_OPTIONS), "phases"
        ),
        probatio.Required(CONF_FUSE_CURRENT, default=25): _number(UnitOfElectricCurrent.AMPERE, 1),
    }
)

OPTIONS_SCHEMA = probatio.Schema(
    {
        probatio.Required(CONF_STALE_AFTER, default=DEFAULT_STALE_AFTER_S): NumberSelector(
            NumberSelectorConfig(
                min=STALE_AFTER_RANGE_S[0],
                max=STALE_AFTER_RANGE_S[1],
                step=1,
                unit_of_measurement=UnitOfTime.SECONDS,
                mode=NumberSelectorMode.BOX,
            )
        )
    }
)


def per_phase_meter_schema(phases: int) -> probatio.Schema:
    """Import, export, voltage and current for each phase, then the quarter-hour demand."""
    fields: dict[probatio.Marker, EntitySelector] = {}
    for phase in range(1, phases + 1):
        fields[probatio.Optional(phase_key(CONF_POWER_IMPORT, phase))] = _sensor_selector("power")
        fields[probatio.Optional(phase_key(CONF_POWER_EXPORT, phase))] = _sensor_selector("power")
        fields[probatio.Optional(phase_key(CONF_VOLTAGE, phase))] = _sensor_selector("voltage")
        fields[probatio.Optional(phase_key(CONF_CURRENT, phase))] = _sensor_selector("current")
    fields[probatio.Optional(CONF_QUARTER_HOUR_DEMAND)] = _sensor_selector("power")
    return probatio.Schema(fields)


TOTAL_METER_SCHEMA = probatio.Schema(
    {
        probatio.Optional(CONF_POWER_IMPORT_TOTAL): _sensor_selector("power"),
        probatio.Optional(CONF_POWER_EXPORT_TOTAL): _sensor_selector("power"),
        probatio.Optional(CONF_QUARTER_HOUR_DEMAND): _sensor_selector("power"),
    }
)


def peak_errors(user_input: dict[str, Any]) -> dict[str, str]:
    peak_limit = user_input.get(CONF_PEAK_LIMIT)
    if peak_limit is not None and peak_limit <= 0:
        return {CONF_PEAK_LIMIT: "peak_limit_not_positive"}
    return {}


def meter_errors(errors: dict[str, str], user_input: dict[str, Any], phases: int) -> None:
    """Add the structural errors of a per-phase meter: what each phase needs."""
    exports = [phase_key(CONF_POWER_EXPORT, p) in user_input for p in range(1, phases + 1)]
    for phase in range(1, phases + 1):
        import_key = phase_key(CONF_POWER_IMPORT, phase)
        if import_key not in user_input:
            errors.setdefault(import_key, "power_import_required")
        export_key = phase_key(CONF_POWER_EXPORT, phase)
        if any(exports) and export_key not in user_input:
            errors.setdefault(export_key, "power_export_incomplete")
        voltage_key = phase_key(CONF_VOLTAGE, phase)
        if voltage_key not in user_input and phase_key(CONF_CURRENT, phase) not in user_input:
            errors.setdefault(voltage_key, "voltage_or_current_required")


def sensor_rule(key: str) -> SensorRule:
    """The measurement rule of a meter field, by its key."""
    if key.startswith(f"{CONF_VOLTAGE}_l"):
        return VOLTAGE_SENSOR
    if key.startswith(f"{CONF_CURRENT}_l"):
        return CURRENT_SENSOR
    return POWER_SENSOR


class NetbewustConfigFlow(CommunityFlowMixin, ConfigFlow, domain=DOMAIN):
    """Set up a grid connection: its fuse, limits and P1 meter entities."""

    VERSION = 1

    def __init__(self) -> None:
        self._title = DEFAULT_NAME
        self._data: dict[str, Any] = {}
        self._entered: dict[str, Any] = {}
        self._slow_interval_s = 0.0

    @staticmethod
    @callback
    @override
    def async_get_options_flow(config_entry: ConfigEntry) -> NetbewustOptionsFlow:
        return NetbewustOptionsFlow()

    @classmethod
    @callback
    @override
    def async_supports_options_flow(cls, config_entry: ConfigEntry) -> bool:
        return not is_community_entry(config_entry.data)

    @classmethod
    @callback
    @override
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        if is_community_entry(config_entry.data):
            return {}
        return {
            **SUBENTRY_FLOWS,
            SUBENTRY_MODBUS: ModbusSubentryFlow,
            SUBENTRY_PLANNER: PlannerSubentryFlow,
        }

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        # With a connection guarded already, the household may join a community instead.
        if user_input is None and self._community_can_join():
            return self.async_show_menu(step_id="user", menu_options=["connection", "community"])
        return await self._async_step_connection("user", user_input)

    async def async_step_connection(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        return await self._async_step_connection("user", user_input)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        if is_community_entry(self._get_reconfigure_entry().data):
            return await self.async_step_reconfigure_community(user_input)
        if user_input is None:
            entry = self._get_reconfigure_entry()
            self._entered = {CONF_NAME: entry.title, **entry.data}
        return await self._async_step_connection("reconfigure", user_input)

    async def _async_step_connection(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            self._remember(CONNECTION_SCHEMA, user_input)
            self._title = user_input[CONF_NAME].strip() or DEFAULT_NAME
            self._data = {key: user_input[key] for key in CONNECTION_KEYS if key in user_input}
            connection_type = user_input[CONF_CONNECTION_TYPE]
            errors = peak_errors(user_input)
            if not errors and connection_type == CONNECTION_TYPE_CUSTOM:
                return await self.async_step_custom_connection()
            if not errors:
                phases, fuse_current = CONNECTION_TYPES[connection_type]
                errors = self._fuse_errors(phases, fuse_current, CONF_SAFETY_MARGIN)
            if not errors:
                self._data[CONF_PHASES] = phases
                self._data[CONF_FUSE_CURRENT] = fuse_current
                return await self._async_step_meter()
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(CONNECTION_SCHEMA, self._entered),
            errors=errors,
        )

    async def async_step_custom_connection(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            self._remember(CUSTOM_CONNECTION_SCHEMA, user_input)
            phases = int(user_input[CONF_PHASES])
            fuse_current = float(user_input[CONF_FUSE_CURRENT])
            low, high = CUSTOM_FUSE_RANGE_A
            if not low <= fuse_current <= high:
                errors[CONF_FUSE_CURRENT] = "fuse_out_of_range"
            else:
                # The margin was entered on the first step; it is reported against the fuse.
                errors = self._fuse_errors(phases, fuse_current, CONF_FUSE_CURRENT)
            if not errors:
                self._data[CONF_PHASES] = phases
                self._data[CONF_FUSE_CURRENT] = fuse_current
                return await self._async_step_meter()
        suggested = {
            CONF_PHASES: str(self._entered.get(CONF_PHASES, CUSTOM_PHASE_OPTIONS[0])),
            CONF_FUSE_CURRENT: self._entered.get(CONF_FUSE_CURRENT, 25),
        }
        return self.async_show_form(
            step_id="custom_connection",
            data_schema=self.add_suggested_values_to_schema(CUSTOM_CONNECTION_SCHEMA, suggested),
            errors=errors,
            description_placeholders={
                "min": f"{CUSTOM_FUSE_RANGE_A[0]:g}",
                "max": f"{CUSTOM_FUSE_RANGE_A[1]:g}",
                "margin": f"{self._data[CONF_SAFETY_MARGIN]:g}",
            },
        )

    def _fuse_errors(self, phases: int, fuse_current: float, margin_field: str) -> dict[str, str]:
        """Errors once the fuse is known, reported on the field the user can fix."""
        if self._data[CONF_SAFETY_MARGIN] >= fuse_current:
            return {margin_field: "margin_too_large"}
        if self.source == SOURCE_RECONFIGURE and self._devices_beyond(phases):
            phases_field = (
                CONF_PHASES if margin_field == CONF_FUSE_CURRENT else CONF_CONNECTION_TYPE
            )
            return {phases_field: "devices_on_missing_phases"}
        return {}

    def _remember(self, schema: probatio.Schema, user_input: dict[str, Any]) -> None:
        """Keep what was entered, so a form shown again (or reconfigured) shows it."""
        for key in schema.schema:
            self._entered.pop(str(key), None)
        self._entered.update(user_input)

    def _devices_beyond(self, phases: int) -> bool:
        """Whether a configured device sits on a phase the new connection lacks."""
        entry = self._get_reconfigure_entry()
        return any(
            int(phase) > phases
            for subentry in entry.subentries.values()
            for phase in subentry.data.get(CONF_DEVICE_PHASES, [])
        )

    async def _async_step_meter(self) -> ConfigFlowResult:
        if self._data[CONF_METER_MODE] == METER_MODE_MODBUS:
            # The meter comes as a Modbus subentry later; until then the guard is safe.
            return self._async_finish()
        if self._data[CONF_METER_MODE] == METER_MODE_TOTAL:
            return await self.async_step_meter_total()
        return await self.async_step_meter_per_phase()

    async def async_step_meter_per_phase(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        schema = per_phase_meter_schema(self._data[CONF_PHASES])
        return await self._async_meter_form("meter_per_phase", schema, user_input)

    async def async_step_meter_total(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        return await self._async_meter_form("meter_total", TOTAL_METER_SCHEMA, user_input)

    async def _async_meter_form(
        self, step_id: str, schema: probatio.Schema, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            self._remember(schema, user_input)
            errors = self._meter_errors(user_input)
            if not errors:
                meter = {key: value for key, value in user_input.items() if value}
                self._data = {**self._data, **meter}
                if (result := await self._async_set_connection_unique_id()) is not None:
                    return result
                return await self._async_check_meter_speed()
        suggested = {
            str(key): self._entered[str(key)] for key in schema.schema if key in self._entered
        }
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
        )

    def _meter_errors(self, user_input: dict[str, Any]) -> dict[str, str]:
        user_input = {key: value for key, value in user_input.items() if value}
        errors: dict[str, str] = {}
        seen: set[str] = set()
        for key, entity_id in user_input.items():
            if entity_id in seen:
                errors[key] = "entity_used_twice"
            elif error := sensor_error(self.hass, entity_id, sensor_rule(key)):
                errors[key] = error
            seen.add(entity_id)
        if self._data[CONF_METER_MODE] == METER_MODE_TOTAL:
            if CONF_POWER_IMPORT_TOTAL not in user_input:
                errors[CONF_POWER_IMPORT_TOTAL] = "power_import_required"
        else:
            meter_errors(errors, user_input, self._data[CONF_PHASES])
        return errors

    def _main_import_entity(self) -> str:
        if self._data[CONF_METER_MODE] == METER_MODE_TOTAL:
            return str(self._data[CONF_POWER_IMPORT_TOTAL])
        return str(self._data[phase_key(CONF_POWER_IMPORT, 1)])

    async def _async_set_connection_unique_id(self) -> ConfigFlowResult | None:
        """One entry per connection, keyed by its main import meter entity."""
        entity_id = self._main_import_entity()
        registered = er.async_get(self.hass).async_get(entity_id)
        unique_id = f"{registered.platform}_{registered.unique_id}" if registered else entity_id
        if self.source != SOURCE_RECONFIGURE:
            await self.async_set_unique_id(unique_id)
            self._abort_if_unique_id_configured()
            return None
        own_id = self._get_reconfigure_entry().entry_id
        for entry in self._async_current_entries(include_ignore=False):
            if entry.unique_id == unique_id and entry.entry_id != own_id:
                return self.async_abort(reason="already_configured")
        # Swapping the meter of the same connection is allowed: the id follows it.
        await self.async_set_unique_id(unique_id, raise_on_progress=False)
        return None

    async def _async_check_meter_speed(self) -> ConfigFlowResult:
        interval = await async_estimate_update_interval_s(self.hass, self._main_import_entity())
        if interval is not None and interval > SLOW_METER_INTERVAL_S:
            self._slow_interval_s = interval
            return await self.async_step_slow_meter()
        return self._async_finish()

    async def async_step_slow_meter(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Warn that the meter is too slow for fast protection; the user acknowledges."""
        if user_input is not None:
            return self._async_finish()
        return self.async_show_form(
            step_id="slow_meter",
            description_placeholders={
                "entity": self._main_import_entity(),
                "interval": f"{self._slow_interval_s:.0f}",
                "limit": f"{SLOW_METER_INTERVAL_S:g}",
            },
        )

    def _async_finish(self) -> ConfigFlowResult:
        if self.source == SOURCE_RECONFIGURE:
            entry = self._get_reconfigure_entry()
            if entry.update_listeners:
                # The integration's update listener reloads a loaded entry on any change.
                return self.async_update_and_abort(
                    entry, unique_id=self.unique_id, title=self._title, data=self._data
                )
            return self.async_update_reload_and_abort(
                entry, unique_id=self.unique_id, title=self._title, data=self._data
            )
        return self.async_create_entry(
            title=self._title,
            data=self._data,
            options={CONF_STALE_AFTER: DEFAULT_STALE_AFTER_S},
        )


class NetbewustOptionsFlow(OptionsFlow):
    """Options that tune the runtime: how long meter data may be silent.

    The integration's update listener reloads the entry when they change.
    """

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        if user_input is not None:
            return self.async_create_entry(data=user_input)
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                OPTIONS_SCHEMA, self.config_entry.options
            ),
        )
