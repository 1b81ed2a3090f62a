"""The "Modbus device" subentry: a device reached by address, probed before it is saved.

One form for adding and reconfiguring: name, profile, link (TCP, RTU over a TCP gateway,
or a local serial port with its baud rate, parity and stop bits), unit id, then priority
and phases like every device, and the few limits the engine needs for the profile's
kind. The probe reads the device with the chosen profile; each failure becomes a form
error the user can act on.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

import probatio
from homeassistant.config_entries import SOURCE_RECONFIGURE, ConfigSubentryFlow, SubentryFlowResult
from homeassistant.const import (
    CONF_NAME,
    PERCENTAGE,
    UnitOfElectricCurrent,
    UnitOfEnergy,
    UnitOfPower,
)
from homeassistant.helpers.selector import (
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)

from ..const import (
    CHARGER_CURRENT_RANGE_A,
    CONF_BATTERY_CAPACITY,
    CONF_DEVICE_PHASES,
    CONF_MAX_CHARGE_POWER,
    CONF_MAX_CURRENT,
    CONF_MAX_DISCHARGE_POWER,
    CONF_MIN_CURRENT,
    CONF_MIN_SOC,
    CONF_MODBUS_BAUDRATE,
    CONF_MODBUS_HOST,
    CONF_MODBUS_IDENTITY,
    CONF_MODBUS_LINK,
    CONF_MODBUS_PARITY,
    CONF_MODBUS_PORT,
    CONF_MODBUS_PROFILE,
    CONF_MODBUS_SERIAL_PORT,
    CONF_MODBUS_STOPBITS,
    CONF_MODBUS_UNIT_ID,
    CONF_PHASES,
    CONF_PRIORITY,
    CONF_RATED_POWER,
    CONF_SAFE_CURRENT,
    DEFAULT_MIN_SOC_PCT,
    LOGGER,
    MODBUS_PROBE_TIMEOUT_S,
)
from ..modbus import (
    DEFAULT_BAUDRATE,
    DEFAULT_PARITY,
    DEFAULT_STOPBITS,
    SERIAL_BAUDRATES,
    SERIAL_PARITIES,
    SERIAL_STOPBITS,
    DeviceIdentity,
    DeviceUnavailable,
    Link,
    ModbusConnectionRefused,
    ModbusDeviceException,
    ModbusError,
    ModbusTimeout,
    Profile,
    ProfileKind,
    ProfileMismatch,
    TransportSettings,
    WrongUnitId,
    load_profiles,
    probe,
)
from .devices import charger_current_errors, next_priority
from .selectors import dropdown, number_box

if TYPE_CHECKING:
    from collections.abc import Mapping

    from homeassistant.config_entries import ConfigEntry

# Most specific first: WrongUnitId and ProfileMismatch are not subclasses of the others,
# but the order keeps the mapping honest if that ever changes.
_PROBE_ERRORS: tuple[tuple[type[ModbusError], str], ...] = (
    (WrongUnitId, "wrong_unit_id"),
    (ProfileMismatch, "profile_mismatch"),
    (ModbusTimeout, "timeout"),
    (ModbusConnectionRefused, "cannot_connect"),
    (DeviceUnavailable, "cannot_connect"),
    (ModbusDeviceException, "modbus_exception"),
)
_INTEGER_KEYS = frozenset(
    {
        CONF_PRIORITY,
        CONF_MODBUS_PORT,
        CONF_MODBUS_UNIT_ID,
        CONF_MODBUS_BAUDRATE,
        CONF_MODBUS_STOPBITS,
    }
)
_DROPDOWN_NUMBERS = (CONF_MODBUS_BAUDRATE, CONF_MODBUS_STOPBITS)  # stored as int, shown as text
_SERIAL_KEYS = (
    CONF_MODBUS_SERIAL_PORT,
    CONF_MODBUS_BAUDRATE,
    CONF_MODBUS_PARITY,
    CONF_MODBUS_STOPBITS,
)
_KIND_FIELDS: Mapping[ProfileKind, tuple[str, ...]] = {
    ProfileKind.CHARGER: (CONF_MIN_CURRENT, CONF_MAX_CURRENT, CONF_SAFE_CURRENT),
    ProfileKind.BATTERY: (
        CONF_MAX_CHARGE_POWER,
        CONF_MAX_DISCHARGE_POWER,
        CONF_MIN_SOC,
        CONF_BATTERY_CAPACITY,
    ),
    ProfileKind.PV: (CONF_RATED_POWER,),
    ProfileKind.HEAT_PUMP: (CONF_RATED_POWER,),
    ProfileKind.METER: (),
}


@cache
def modbus_profiles() -> dict[str, Profile]:
    """The shipped profiles, read once (they are files in the package)."""
    return load_profiles()


def transport_settings(data: Mapping[str, Any], timeout_s: float) -> TransportSettings:
    """The subentry's link as the Modbus layer's settings; ValueError when incomplete."""
    link = Link(data.get(CONF_MODBUS_LINK, Link.TCP))
    if link is Link.SERIAL:
        return TransportSettings(
            link=link,
            serial_port=str(data.get(CONF_MODBUS_SERIAL_PORT, "")),
            baudrate=int(data.get(CONF_MODBUS_BAUDRATE, DEFAULT_BAUDRATE)),
            parity=str(data.get(CONF_MODBUS_PARITY, DEFAULT_PARITY)),
            stopbits=int(data.get(CONF_MODBUS_STOPBITS, DEFAULT_STOPBITS)),
            timeout_s=timeout_s,
        )
    return TransportSettings(
        link=link,
        host=str(data.get(CONF_MODBUS_HOST, "")).strip(),
        port=int(data.get(CONF_MODBUS_PORT, 502)),
        timeout_s=timeout_s,
    )


def identity_to_data(identity: DeviceIdentity) -> dict[str, Any]:
    """Stored as plain JSON in the subentry; tuples become lists."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in dataclasses.asdict(identity).items()
    }


def _clean(user_input: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in user_input.items():
        if value is None or value == "":
            continue
        data[key] = int(value) if key in _INTEGER_KEYS else value
    return data


class ModbusSubentryFlow(ConfigSubentryFlow):
    """Add or re-address a Modbus device; nothing is saved until the probe succeeds."""

    probe_timeout_s: ClassVar[float] = MODBUS_PROBE_TIMEOUT_S

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        return await self._async_step_form("user", user_input)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        return await self._async_step_form("reconfigure", user_input)

    async def _async_step_form(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> SubentryFlowResult:
        entry = self._get_entry()
        errors: dict[str, str] = {}
        placeholders = {"detail": ""}
        if user_input is not None:
            data = _clean(user_input)
            title = str(data.pop(CONF_NAME, "")).strip()
            errors = self._form_errors(entry, data)
            if not title:
                errors[CONF_NAME] = "name_required"
            if not errors:
                identity, error, detail = await self._probe(data)
                if identity is not None:
                    data[CONF_MODBUS_IDENTITY] = identity_to_data(identity)
                    return self._async_save(entry, title, data)
                errors["base"] = error
                placeholders["detail"] = detail
            suggested: Mapping[str, Any] = user_input
        elif self.source == SOURCE_RECONFIGURE:
            subentry = self._get_reconfigure_subentry()
            suggested = {
                CONF_NAME: subentry.title,
                **{
                    key: str(value) if key in _DROPDOWN_NUMBERS else value
                    for key, value in subentry.data.items()
                },
            }
        else:
            suggested = self._defaults(entry)
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(self._schema(entry), suggested),
            errors=errors,
            description_placeholders=placeholders,
        )

    def _async_save(
        self, entry: ConfigEntry, title: str, data: dict[str, Any]
    ) -> SubentryFlowResult:
        if self.source != SOURCE_RECONFIGURE:
            return self.async_create_entry(title=title, data=data)
        subentry = self._get_reconfigure_subentry()
        if entry.update_listeners:  # the integration's listener reloads on any change
            return self.async_update_and_abort(entry, subentry, title=title, data=data)
        return self.async_update_reload_and_abort(entry, subentry, title=title, data=data)

    async def _probe(self, data: Mapping[str, Any]) -> tuple[DeviceIdentity | None, str, str]:
        """The device's identity, or the form error and the Modbus layer's message."""
        profile = modbus_profiles()[data[CONF_MODBUS_PROFILE]]
        try:
            identity = await probe(
                transport_settings(data, self.probe_timeout_s), data[CONF_MODBUS_UNIT_ID], profile
            )
        except ModbusError as err:
            LOGGER.info("Modbus device %s not added: %s", profile.name, err)
            error = next(
                (key for kind, key in _PROBE_ERRORS if isinstance(err, kind)), "cannot_connect"
            )
            return None, error, str(err)
        return identity, "", ""

    def _form_errors(self, entry: ConfigEntry, data: dict[str, Any]) -> dict[str, str]:
        # The schema has already limited the profile, the unit id and the phases to its choices.
        errors: dict[str, str] = {}
        profile = modbus_profiles()[data[CONF_MODBUS_PROFILE]]
        link = data.get(CONF_MODBUS_LINK, Link.TCP)
        if link == Link.SERIAL:
            if not data.get(CONF_MODBUS_SERIAL_PORT):
                errors[CONF_MODBUS_SERIAL_PORT] = "serial_port_required"
        else:
            for key in _SERIAL_KEYS:  # a TCP device keeps no stale serial settings
                data.pop(key, None)
            if not str(data.get(CONF_MODBUS_HOST, "")).strip():
                errors[CONF_MODBUS_HOST] = "host_required"
            if not 0 < data.get(CONF_MODBUS_PORT, 0) < 65536:
                errors[CONF_MODBUS_PORT] = "port_out_of_range"
        device_phases = sorted(set(data.get(CONF_DEVICE_PHASES, [])))
        data[CONF_DEVICE_PHASES] = device_phases
        if not device_phases:
            errors[CONF_DEVICE_PHASES] = "phases_required"
        errors.update(_kind_errors(profile.kind, data))
        return errors

    def _defaults(self, entry: ConfigEntry) -> dict[str, Any]:
        phases = int(entry.data[CONF_PHASES])
        return {
            CONF_MODBUS_LINK: Link.TCP.value,
            CONF_MODBUS_PORT: 502,
            CONF_MODBUS_BAUDRATE: str(DEFAULT_BAUDRATE),
            CONF_MODBUS_PARITY: DEFAULT_PARITY,
            CONF_MODBUS_STOPBITS: str(DEFAULT_STOPBITS),
            CONF_MODBUS_UNIT_ID: 1,
            CONF_PRIORITY: next_priority(entry),
            CONF_DEVICE_PHASES: [str(phase) for phase in range(1, phases + 1)],
            CONF_MIN_CURRENT: CHARGER_CURRENT_RANGE_A[0],
            CONF_MIN_SOC: DEFAULT_MIN_SOC_PCT,
        }

    def _schema(self, entry: ConfigEntry) -> probatio.Schema:
        phases = int(entry.data[CONF_PHASES])
        profiles = [
            SelectOptionDict(value=profile_id, label=profile.name)
            for profile_id, profile in sorted(modbus_profiles().items())
        ]
        amperes, watts = UnitOfElectricCurrent.AMPERE, UnitOfPower.WATT
        return probatio.Schema(
            {
                probatio.Required(CONF_NAME): TextSelector(),
                probatio.Required(CONF_MODBUS_PROFILE): dropdown(profiles, None),
                probatio.Required(CONF_MODBUS_LINK): dropdown(
                    [link.value for link in Link], "modbus_link"
                ),
                probatio.Optional(CONF_MODBUS_HOST): TextSelector(),
                probatio.Optional(CONF_MODBUS_PORT): number_box(minimum=1, maximum=65535),
                probatio.Optional(CONF_MODBUS_SERIAL_PORT): TextSelector(),
                probatio.Optional(CONF_MODBUS_BAUDRATE): dropdown(
                    [str(rate) for rate in SERIAL_BAUDRATES], None
                ),
                probatio.Optional(CONF_MODBUS_PARITY): dropdown(
                    list(SERIAL_PARITIES), "modbus_parity"
                ),
                probatio.Optional(CONF_MODBUS_STOPBITS): dropdown(
                    [str(bits) for bits in SERIAL_STOPBITS], None
                ),
                probatio.Required(CONF_MODBUS_UNIT_ID): number_box(minimum=0, maximum=255),
                probatio.Required(CONF_PRIORITY): number_box(minimum=0),
                probatio.Required(CONF_DEVICE_PHASES): SelectSelector(
                    SelectSelectorConfig(
                        options=[str(phase) for phase in range(1, phases + 1)],
                        multiple=True,
                        translation_key="phase",
                        mode=SelectSelectorMode.LIST,
                    )
                ),
                probatio.Optional(CONF_MIN_CURRENT): number_box(amperes, minimum=0),
                probatio.Optional(CONF_MAX_CURRENT): number_box(amperes, minimum=0),
                # Chargers: empty keeps the minimum current when the guard is unsure.
                probatio.Optional(CONF_SAFE_CURRENT): number_box(amperes, minimum=0),
                probatio.Optional(CONF_MAX_CHARGE_POWER): number_box(watts, step=10, minimum=0),
                probatio.Optional(CONF_MAX_DISCHARGE_POWER): number_box(watts, step=10, minimum=0),
                probatio.Optional(CONF_MIN_SOC): number_box(PERCENTAGE, minimum=0, maximum=100),
                probatio.Optional(CONF_RATED_POWER): number_box(watts, step=10, minimum=0),
                # Batteries: the planner plans only a battery whose capacity it knows.
                probatio.Optional(CONF_BATTERY_CAPACITY): number_box(
                    UnitOfEnergy.KILO_WATT_HOUR, step=0.1, minimum=0
                ),
            }
        )


def _kind_errors(kind: ProfileKind, data: dict[str, Any]) -> dict[str, str]:
    """The limits the engine needs for this kind are there and sane; others are dropped."""
    wanted = _KIND_FIELDS[kind]
    for key in {key for fields in _KIND_FIELDS.values() for key in fields} - set(wanted):
        data.pop(key, None)
    errors: dict[str, str] = {}
    if kind is ProfileKind.CHARGER:
        errors = charger_current_errors(data)
        if len(data[CONF_DEVICE_PHASES]) == 2:
            errors[CONF_DEVICE_PHASES] = "charger_one_or_three_phases"
        return errors
    for key in wanted:
        if key == CONF_MIN_SOC:
            data.setdefault(key, DEFAULT_MIN_SOC_PCT)
        elif key == CONF_BATTERY_CAPACITY:
            if key in data and data[key] <= 0:
                errors[key] = "capacity_not_positive"
        elif key not in data:
            errors[key] = "value_required"
        elif data[key] <= 0:
            errors[key] = "power_not_positive"
    return errors
