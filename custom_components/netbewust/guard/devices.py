"""Device subentries: the engine's `DeviceSpec`s, their entities and their live states."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE, STATE_UNKNOWN

from ..const import (
    CONF_CAN_SWITCH_PHASES,
    CONF_CIRCUIT,
    CONF_CIRCUIT_MAX_CURRENT,
    CONF_CURRENT_ENTITY,
    CONF_DEVICE_PHASES,
    CONF_LIMITED_POWER,
    CONF_MAX_CHARGE_POWER,
    CONF_MAX_CURRENT,
    CONF_MAX_DISCHARGE_POWER,
    CONF_MAX_SWITCHES_PER_DAY,
    CONF_MIN_CURRENT,
    CONF_MIN_OFF_TIME,
    CONF_MIN_ON_TIME,
    CONF_MIN_SOC,
    CONF_MODE_ENTITY,
    CONF_PARENT_CIRCUIT,
    CONF_PHASE_SWITCH_ENTITY,
    CONF_POWER_ENTITY,
    CONF_POWER_LIMIT_ENTITY,
    CONF_PRIORITY,
    CONF_RATED_POWER,
    CONF_SAFE_CURRENT,
    CONF_SETPOINT_ENTITY,
    CONF_SG_READY_SWITCH_1,
    CONF_SG_READY_SWITCH_2,
    CONF_SOC_ENTITY,
    CONF_STATUS_ENTITY,
    CONF_SWITCH_ENTITY,
    NO_CIRCUIT,
    SUBENTRY_BATTERY,
    SUBENTRY_CHARGER,
    SUBENTRY_CIRCUIT,
    SUBENTRY_HEAT_PUMP,
    SUBENTRY_LOAD,
    SUBENTRY_PV,
)
from ..core.model import (
    DEFAULT_CHARGER_MAX_CURRENT_A,
    MIN_CHARGE_CURRENT_A,
    AnyDeviceSpec,
    BatterySpec,
    ChargerSpec,
    ChargerState,
    Circuit,
    DeviceState,
    HeatPumpControl,
    HeatPumpSpec,
    LoadSpec,
    PvSpec,
)
from ..core.units import NOMINAL_VOLTAGE_V
from .states import PERCENT_SCALE, POWER_SCALE, Rejections, StateGetter, read_number

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from homeassistant.config_entries import ConfigSubentry

_LOGGER = logging.getLogger(__name__)

MAX_DEVICE_POWER_W = 100_000.0
# A generic load with a power sensor but no rating: assume the most one standard group
# (a 16 A breaker) can carry per phase. Only used while the load is off (the room it
# needs to come back on) or its sensor is silent; while it runs its measured draw counts.
GROUP_BREAKER_CURRENT_A = 16.0
UNRATED_LOAD_POWER_PER_PHASE_W = GROUP_BREAKER_CURRENT_A * NOMINAL_VOLTAGE_V

# (subentry id, circuit id) pairs already reported as dangling, so reloads stay quiet.
_reported_dangling_circuits: set[tuple[str, str]] = set()


class DeviceConfigError(ValueError):
    """A subentry whose data cannot describe a device; names the subentry."""

    def __init__(self, title: str, problem: str) -> None:
        super().__init__(f"{title}: {problem}")
        self.title = title
        self.problem = problem


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceBinding:
    """A device as the engine sees it plus the Home Assistant entities behind it."""

    spec: AnyDeviceSpec
    power_entity: str | None = None
    current_entity: str | None = None
    status_entity: str | None = None
    phase_switch_entity: str | None = None
    setpoint_entity: str | None = None
    mode_entity: str | None = None
    soc_entity: str | None = None
    sg_ready_switch_1: str | None = None
    sg_ready_switch_2: str | None = None
    power_limit_entity: str | None = None
    switch_entity: str | None = None

    @property
    def device_id(self) -> str:
        return self.spec.device_id

    @property
    def control_entities(self) -> tuple[str, ...]:
        """Entities the guard writes; the device is unavailable when none of them is."""
        return tuple(
            entity_id
            for entity_id in (
                self.current_entity,
                self.setpoint_entity,
                self.mode_entity,
                self.sg_ready_switch_1,
                self.power_limit_entity,
                self.switch_entity,
            )
            if entity_id
        )


class _CommonSpecFields(TypedDict):
    device_id: str
    name: str
    priority: int
    phases: tuple[int, ...]
    circuit_id: str | None


class _SubentryReader:
    """Typed access to one subentry's data, failing with the subentry's title."""

    def __init__(self, subentry: ConfigSubentry, known_circuits: frozenset[str]) -> None:
        self.subentry_id = subentry.subentry_id
        self.title = subentry.title
        self.data: Mapping[str, Any] = subentry.data
        self.known_circuits = known_circuits

    def entity(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str) or "." not in value:
            raise DeviceConfigError(self.title, f"{key} is not an entity id: {value!r}")
        return value

    def number(self, key: str, default: float | None = None) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise DeviceConfigError(self.title, f"{key} must be a number >= 0, got {value!r}")
        return float(value)

    def phases(self) -> tuple[int, ...]:
        raw = self.data.get(CONF_DEVICE_PHASES, ["1"])
        try:
            phases = tuple(sorted({int(phase) for phase in raw}))
        except TypeError, ValueError:
            raise DeviceConfigError(self.title, f"bad phases {raw!r}") from None
        if not phases or not set(phases) <= {1, 2, 3}:
            raise DeviceConfigError(self.title, f"bad phases {raw!r}")
        return phases

    def priority(self) -> int:
        value = self.data.get(CONF_PRIORITY)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DeviceConfigError(self.title, f"priority must be a number, got {value!r}")
        return int(value)

    def circuit(self, key: str = CONF_CIRCUIT) -> str | None:
        """The circuit this subentry hangs on; one deleted since counts as none."""
        value = self.data.get(key)
        if not isinstance(value, str) or not value or value == NO_CIRCUIT:
            return None
        if value not in self.known_circuits:
            if (self.subentry_id, value) not in _reported_dangling_circuits:
                _reported_dangling_circuits.add((self.subentry_id, value))
                _LOGGER.warning(
                    "%s: circuit %s no longer exists; treated as not on a sub-circuit",
                    self.title,
                    value,
                )
            return None
        return value

    def common(self) -> _CommonSpecFields:
        """The fields every device spec has."""
        return _CommonSpecFields(
            device_id=self.subentry_id,
            name=self.title,
            priority=self.priority(),
            phases=self.phases(),
            circuit_id=self.circuit(),
        )

    def optional_number(self, key: str) -> float | None:
        return None if self.data.get(key) is None else self.number(key)


def _charger(reader: _SubentryReader) -> DeviceBinding:
    spec = ChargerSpec(
        **reader.common(),
        min_current_a=reader.number(CONF_MIN_CURRENT, MIN_CHARGE_CURRENT_A),
        max_current_a=reader.number(CONF_MAX_CURRENT, DEFAULT_CHARGER_MAX_CURRENT_A),
        safe_current_a=reader.optional_number(CONF_SAFE_CURRENT),
        can_switch_phases=bool(reader.data.get(CONF_CAN_SWITCH_PHASES, False)),
    )
    current_entity = reader.entity(CONF_CURRENT_ENTITY)
    if current_entity is None:
        raise DeviceConfigError(reader.title, "a charger needs a max-current entity")
    return DeviceBinding(
        spec=spec,
        power_entity=reader.entity(CONF_POWER_ENTITY),
        current_entity=current_entity,
        status_entity=reader.entity(CONF_STATUS_ENTITY),
        phase_switch_entity=reader.entity(CONF_PHASE_SWITCH_ENTITY),
    )


def _battery(reader: _SubentryReader) -> DeviceBinding:
    setpoint_entity = reader.entity(CONF_SETPOINT_ENTITY)
    mode_entity = reader.entity(CONF_MODE_ENTITY)
    if setpoint_entity is None and mode_entity is None:
        raise DeviceConfigError(reader.title, "a battery needs a setpoint or mode entity")
    spec = BatterySpec(
        **reader.common(),
        max_charge_w=reader.number(CONF_MAX_CHARGE_POWER),
        max_discharge_w=reader.number(CONF_MAX_DISCHARGE_POWER),
        min_soc_pct=reader.number(CONF_MIN_SOC, 10.0),
        has_autonomous_mode=mode_entity is not None,
    )
    return DeviceBinding(
        spec=spec,
        power_entity=reader.entity(CONF_POWER_ENTITY),
        setpoint_entity=setpoint_entity,
        mode_entity=mode_entity,
        soc_entity=reader.entity(CONF_SOC_ENTITY),
    )


def _heat_pump(reader: _SubentryReader) -> DeviceBinding:
    power_limit_entity = reader.entity(CONF_POWER_LIMIT_ENTITY)
    switch_1 = reader.entity(CONF_SG_READY_SWITCH_1)
    switch_2 = reader.entity(CONF_SG_READY_SWITCH_2)
    if power_limit_entity is None and switch_1 is None:
        raise DeviceConfigError(reader.title, "a heat pump needs SG-Ready switches or a limit")
    # A power limit is gentler than blocking the compressor, so it wins when both exist.
    control = HeatPumpControl.POWER_LIMIT if power_limit_entity else HeatPumpControl.SG_READY
    spec = HeatPumpSpec(
        **reader.common(),
        rated_power_w=reader.number(CONF_RATED_POWER),
        control=control,
        limited_power_w=reader.number(CONF_LIMITED_POWER, 450.0),
        max_switches_per_day=int(reader.number(CONF_MAX_SWITCHES_PER_DAY, 2)),
        min_on_s=reader.number(CONF_MIN_ON_TIME, 30) * 60,
        min_off_s=reader.number(CONF_MIN_OFF_TIME, 30) * 60,
    )
    return DeviceBinding(
        spec=spec,
        power_entity=reader.entity(CONF_POWER_ENTITY),
        power_limit_entity=power_limit_entity,
        sg_ready_switch_1=switch_1,
        sg_ready_switch_2=switch_2,
    )


def _pv(reader: _SubentryReader) -> DeviceBinding:
    power_limit_entity = reader.entity(CONF_POWER_LIMIT_ENTITY)
    switch_entity = reader.entity(CONF_SWITCH_ENTITY)
    if power_limit_entity is None and switch_entity is None:
        raise DeviceConfigError(reader.title, "a PV inverter needs a limit or a switch")
    spec = PvSpec(
        **reader.common(),
        rated_power_w=reader.number(CONF_RATED_POWER),
        can_limit_power=power_limit_entity is not None,
    )
    return DeviceBinding(
        spec=spec,
        power_entity=reader.entity(CONF_POWER_ENTITY),
        power_limit_entity=power_limit_entity,
        switch_entity=None if power_limit_entity else switch_entity,
    )


def _load(reader: _SubentryReader) -> DeviceBinding:
    switch_entity = reader.entity(CONF_SWITCH_ENTITY)
    if switch_entity is None:
        raise DeviceConfigError(reader.title, "a load needs a switch")
    power_entity = reader.entity(CONF_POWER_ENTITY)
    common = reader.common()
    rated_power_w = reader.optional_number(CONF_RATED_POWER)
    if rated_power_w is None:
        if power_entity is None:
            raise DeviceConfigError(reader.title, "a load needs a power sensor or a rated power")
        rated_power_w = UNRATED_LOAD_POWER_PER_PHASE_W * len(common["phases"])
    spec = LoadSpec(**common, rated_power_w=rated_power_w)
    return DeviceBinding(spec=spec, power_entity=power_entity, switch_entity=switch_entity)


_BUILDERS = {
    SUBENTRY_CHARGER: _charger,
    SUBENTRY_BATTERY: _battery,
    SUBENTRY_HEAT_PUMP: _heat_pump,
    SUBENTRY_PV: _pv,
    SUBENTRY_LOAD: _load,
}


def _circuit_ids(subentries: Iterable[ConfigSubentry]) -> frozenset[str]:
    return frozenset(
        subentry.subentry_id
        for subentry in subentries
        if subentry.subentry_type == SUBENTRY_CIRCUIT
    )


def bindings_from_subentries(subentries: Iterable[ConfigSubentry]) -> tuple[DeviceBinding, ...]:
    """Every device subentry as a binding, in the user's priority order."""
    subentries = tuple(subentries)
    circuits = _circuit_ids(subentries)
    bindings = [
        _BUILDERS[subentry.subentry_type](_SubentryReader(subentry, circuits))
        for subentry in subentries
        if subentry.subentry_type in _BUILDERS
    ]
    return tuple(sorted(bindings, key=lambda binding: binding.spec.priority))


def circuits_from_subentries(subentries: Iterable[ConfigSubentry]) -> tuple[Circuit, ...]:
    subentries = tuple(subentries)
    known = _circuit_ids(subentries)
    circuits = []
    for subentry in subentries:
        if subentry.subentry_type != SUBENTRY_CIRCUIT:
            continue
        reader = _SubentryReader(subentry, known)
        circuits.append(
            Circuit(
                circuit_id=subentry.subentry_id,
                max_current_a=reader.number(CONF_CIRCUIT_MAX_CURRENT),
                parent_id=reader.circuit(CONF_PARENT_CIRCUIT),
            )
        )
    return tuple(circuits)


_CHARGER_STATUS_WORDS: Mapping[str, ChargerState] = {
    "charging": ChargerState.C,
    "connected": ChargerState.B,
    "plugged": ChargerState.B,
    "waiting": ChargerState.B,
    "suspended": ChargerState.B,
    "paused": ChargerState.B,
    "ready": ChargerState.B,
    "disconnected": ChargerState.A,
    "not_connected": ChargerState.A,
    "no_vehicle": ChargerState.A,
    "available": ChargerState.A,
    "idle": ChargerState.A,
    "error": ChargerState.F,
    "fault": ChargerState.F,
}


def charger_state_from_text(text: str) -> ChargerState | None:
    """IEC 61851 letters as they are, common status words mapped; else unknown."""
    cleaned = text.strip()
    if cleaned.upper() in ChargerState.__members__:
        return ChargerState(cleaned.upper())
    return _CHARGER_STATUS_WORDS.get(cleaned.lower().replace(" ", "_"))


def phases_from_state(state_text: str, domain: str) -> int | None:
    """1 or 3 active phases from a phase switch: on means three phases."""
    if domain in ("switch", "input_boolean"):
        return {STATE_ON: 3, STATE_OFF: 1}.get(state_text)
    if "3" in state_text:
        return 3
    if "1" in state_text:
        return 1
    return None


def read_device_state(
    get_state: StateGetter, binding: DeviceBinding, rejections: Rejections
) -> DeviceState:
    """The device's live state; unknown parts stay None."""
    available = any(
        (state := get_state(entity_id)) is not None and state.state != STATE_UNAVAILABLE
        for entity_id in binding.control_entities
    )
    charger_state = None
    if binding.status_entity and (status := get_state(binding.status_entity)):
        charger_state = charger_state_from_text(status.state)
    active_phases = None
    switch = get_state(binding.phase_switch_entity) if binding.phase_switch_entity else None
    if switch is not None and switch.state not in (STATE_UNAVAILABLE, STATE_UNKNOWN):
        active_phases = phases_from_state(switch.state, switch.domain)
    power_w = read_number(
        get_state,
        binding.power_entity,
        POWER_SCALE,
        (-MAX_DEVICE_POWER_W, MAX_DEVICE_POWER_W),
        rejections,
        default_unit="W",
    )
    switch = get_state(binding.switch_entity) if binding.switch_entity else None
    if power_w is None and switch is not None and switch.state == STATE_OFF:
        power_w = 0.0  # switched off (by anyone): it draws nothing, whatever its setpoint
    return DeviceState(
        device_id=binding.device_id,
        power_w=power_w,
        soc_pct=read_number(
            get_state, binding.soc_entity, PERCENT_SCALE, (0.0, 100.0), rejections, default_unit="%"
        ),
        charger_state=charger_state,
        active_phases=active_phases,
        available=available,
    )
