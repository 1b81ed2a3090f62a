"""What to tell Home Assistant's entities so a device follows its setpoint.

Pure translation: a setpoint and the target entities' current states in, service
calls out. Calls that would not change anything are left out. `present_setpoint` reads
it back: what the entities say a battery or charger was told before the guard started.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeassistant.const import ATTR_ENTITY_ID, ATTR_UNIT_OF_MEASUREMENT, STATE_OFF, STATE_ON
from homeassistant.core import split_entity_id

from ..core.model import (
    BatterySetpoint,
    BatterySpec,
    ChargerSetpoint,
    ChargerSpec,
    HeatPumpSetpoint,
    LoadSetpoint,
    PvSetpoint,
    Setpoint,
)
from .states import CURRENT_SCALE, POWER_SCALE

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from .devices import DeviceBinding
    from .states import StateGetter

NUMBER_DOMAINS = ("number", "input_number")
SELECT_DOMAINS = ("select", "input_select")

# Option words, tried in order; the first option containing one wins.
AUTONOMOUS_WORDS = ("auto", "self", "zero", "smart", "default", "normal", "home")
MANUAL_WORDS = ("manual", "remote", "force", "external", "modbus")
CHARGE_WORDS = ("charge",)
DISCHARGE_WORDS = ("discharge",)
IDLE_WORDS = ("standby", "idle", "stop", "hold", "pause", "off")


class ActuatorError(ValueError):
    """A setpoint the target entity cannot take; the message says why."""


@dataclass(frozen=True, slots=True)
class Command:
    """One service call on one entity."""

    domain: str
    service: str
    entity_id: str
    data: dict[str, Any] = field(default_factory=dict)
    # Set when the entity cannot take the exact setpoint and gets the nearest value.
    clamped_from: float | None = None

    @property
    def service_data(self) -> dict[str, Any]:
        return {ATTR_ENTITY_ID: self.entity_id, **self.data}


def _set_number(
    get_state: StateGetter, entity_id: str, value: float, scale: Mapping[str, float]
) -> Command | None:
    """Set a number in its own unit (`value` is in the base unit of `scale`: W or A)."""
    domain = split_entity_id(entity_id)[0]
    if domain not in NUMBER_DOMAINS:
        raise ActuatorError(f"{entity_id} is not a number entity")
    state = get_state(entity_id)
    if state is not None:
        unit = state.attributes.get(ATTR_UNIT_OF_MEASUREMENT)
        if isinstance(unit, str) and unit in scale:
            value /= scale[unit]
        elif unit is not None:
            raise ActuatorError(f"{entity_id} has unit {unit!r}, expected one of {list(scale)}")
    requested = value
    if state is not None:
        # The nearest value the entity accepts beats no change at all (e.g. a charger
        # whose number cannot go below 6 A still gets 6 A instead of staying at 16 A).
        low = _float_or(state.attributes.get("min"), -math.inf)
        high = _float_or(state.attributes.get("max"), math.inf)
        value = min(max(value, low), high)
        if _float_or(state.state, math.nan) == value:
            return None
    clamped_from = requested if value != requested else None
    return Command(domain, "set_value", entity_id, {"value": value}, clamped_from)


def _float_or(raw: object, default: float) -> float:
    try:
        return float(raw)  # type: ignore[arg-type]
    except TypeError, ValueError:
        return default


def _switch(get_state: StateGetter, entity_id: str, on: bool) -> Command | None:
    state = get_state(entity_id)
    wanted = STATE_ON if on else STATE_OFF
    if state is not None and state.state == wanted:
        return None
    domain = split_entity_id(entity_id)[0]
    return Command(domain, "turn_on" if on else "turn_off", entity_id)


def _pick_option(options: Sequence[str], words: Iterable[str], exclude: str = "") -> str | None:
    for word in words:
        for option in options:
            lowered = option.lower()
            if word in lowered and not (exclude and exclude in lowered):
                return option
    return None


def _select(get_state: StateGetter, entity_id: str, *word_lists: Sequence[str]) -> Command:
    domain = split_entity_id(entity_id)[0]
    if domain not in SELECT_DOMAINS:
        raise ActuatorError(f"{entity_id} is not a select entity")
    state = get_state(entity_id)
    options = [str(option) for option in (state.attributes.get("options", []) if state else [])]
    for words in word_lists:
        exclude = "discharge" if words is CHARGE_WORDS else ""
        if option := _pick_option(options, words, exclude):
            return Command(domain, "select_option", entity_id, {"option": option})
    raise ActuatorError(f"{entity_id} has no option for {word_lists[0]}: {options}")


def _unchanged_select(get_state: StateGetter, command: Command) -> Command | None:
    state = get_state(command.entity_id)
    return None if state and state.state == command.data.get("option") else command


def _charger(
    get_state: StateGetter, binding: DeviceBinding, setpoint: ChargerSetpoint
) -> list[Command | None]:
    commands: list[Command | None] = []
    # A phase switch the user did not declare switchable is only read, never written.
    if binding.phase_switch_entity and getattr(binding.spec, "can_switch_phases", False):
        entity_id = binding.phase_switch_entity
        if split_entity_id(entity_id)[0] in SELECT_DOMAINS:
            words = (str(setpoint.phases),)
            commands.append(_unchanged_select(get_state, _select(get_state, entity_id, words)))
        else:
            commands.append(_switch(get_state, entity_id, setpoint.phases == 3))
    assert binding.current_entity is not None  # checked when the binding was made
    commands.append(
        _set_number(get_state, binding.current_entity, setpoint.current_a, CURRENT_SCALE)
    )
    return commands


def _battery_mode_words(power_w: float | None, has_setpoint_entity: bool) -> list[Sequence[str]]:
    if power_w is None:
        return [AUTONOMOUS_WORDS]
    direct = CHARGE_WORDS if power_w > 0 else DISCHARGE_WORDS if power_w < 0 else IDLE_WORDS
    return [MANUAL_WORDS, direct] if has_setpoint_entity else [direct]


def _battery(
    get_state: StateGetter, binding: DeviceBinding, setpoint: BatterySetpoint
) -> list[Command | None]:
    commands: list[Command | None] = []
    if binding.mode_entity:
        words = _battery_mode_words(setpoint.power_w, binding.setpoint_entity is not None)
        commands.append(
            _unchanged_select(get_state, _select(get_state, binding.mode_entity, *words))
        )
    if binding.setpoint_entity and (setpoint.power_w is not None or not binding.mode_entity):
        # Without a mode select, "autonomous" can only mean "no forced power".
        power_w = setpoint.power_w if setpoint.power_w is not None else 0.0
        commands.append(_set_number(get_state, binding.setpoint_entity, power_w, POWER_SCALE))
    return commands


def _heat_pump(
    get_state: StateGetter, binding: DeviceBinding, setpoint: HeatPumpSetpoint
) -> list[Command | None]:
    if binding.power_limit_entity:
        rated = getattr(binding.spec, "rated_power_w", 0.0)
        limit = setpoint.power_limit_w if setpoint.power_limit_w is not None else rated
        return [
            _set_number(
                get_state, binding.power_limit_entity, limit if setpoint.on else 0.0, POWER_SCALE
            )
        ]
    # SG-Ready: relay 1 closed and relay 2 open is "blocked"; both open is "normal".
    commands: list[Command | None] = []
    if binding.sg_ready_switch_1:
        commands.append(_switch(get_state, binding.sg_ready_switch_1, not setpoint.on))
    if binding.sg_ready_switch_2:
        commands.append(_switch(get_state, binding.sg_ready_switch_2, False))
    return commands


def _pv(
    get_state: StateGetter, binding: DeviceBinding, setpoint: PvSetpoint
) -> list[Command | None]:
    rated = getattr(binding.spec, "rated_power_w", 0.0)
    if binding.power_limit_entity:
        limit = setpoint.power_limit_w if setpoint.power_limit_w is not None else rated
        return [_set_number(get_state, binding.power_limit_entity, limit, POWER_SCALE)]
    assert binding.switch_entity is not None  # checked when the binding was made
    return [_switch(get_state, binding.switch_entity, _pv_switch_on(setpoint, rated))]


def _pv_switch_on(setpoint: PvSetpoint, rated_w: float) -> bool:
    # An on/off inverter cannot honour a partial cap, so any cap switches it off.
    return setpoint.power_limit_w is None or setpoint.power_limit_w >= rated_w


def switch_wanted(binding: DeviceBinding, setpoint: Setpoint) -> bool | None:
    """Whether `setpoint` wants the device's on/off switch on; None without one."""
    if binding.switch_entity is None:
        return None
    match setpoint:
        case LoadSetpoint(on=on):
            return on
        case PvSetpoint() if not binding.power_limit_entity:
            return _pv_switch_on(setpoint, getattr(binding.spec, "rated_power_w", 0.0))
    return None


def commands_for(
    get_state: StateGetter, binding: DeviceBinding, setpoint: Setpoint
) -> tuple[Command, ...]:
    """The service calls that bring the device's entities to `setpoint`.

    Raises ActuatorError when the setpoint does not fit the device or its entities.
    """
    commands: list[Command | None]
    match setpoint:
        case ChargerSetpoint() if binding.current_entity:
            commands = _charger(get_state, binding, setpoint)
        case BatterySetpoint() if binding.setpoint_entity or binding.mode_entity:
            commands = _battery(get_state, binding, setpoint)
        case HeatPumpSetpoint() if binding.power_limit_entity or binding.sg_ready_switch_1:
            commands = _heat_pump(get_state, binding, setpoint)
        case PvSetpoint() if binding.power_limit_entity or binding.switch_entity:
            commands = _pv(get_state, binding, setpoint)
        case LoadSetpoint() if binding.switch_entity:
            commands = [_switch(get_state, binding.switch_entity, setpoint.on)]
        case _:
            raise ActuatorError(f"{type(setpoint).__name__} does not fit {binding.device_id}")
    return tuple(command for command in commands if command is not None)


def present_setpoint(get_state: StateGetter, binding: DeviceBinding) -> Setpoint | None:
    """What a battery's or charger's control entities say it was told, for the guard to
    adopt at start (it knows their draw otherwise only from its own setpoints); None when
    the entities do not say, and for other kinds (unknown draw counts as their rating)."""
    if isinstance(binding.spec, ChargerSpec) and binding.current_entity:
        current = _number_value(get_state, binding.current_entity, CURRENT_SCALE)
        phases = _charger_phases(get_state, binding, len(binding.spec.phases))
        return None if current is None or phases is None else ChargerSetpoint(current, phases)
    if isinstance(binding.spec, BatterySpec):
        return _battery_setpoint(get_state, binding)
    return None


def _number_value(
    get_state: StateGetter, entity_id: str, scale: Mapping[str, float]
) -> float | None:
    """A number entity's value in the base unit of `scale`; None when unknown."""
    state = get_state(entity_id)
    if state is None:
        return None
    value = _float_or(state.state, math.nan)
    unit = state.attributes.get(ATTR_UNIT_OF_MEASUREMENT)
    if isinstance(unit, str) and unit in scale:
        value *= scale[unit]
    elif unit is not None:
        return None
    return value if math.isfinite(value) else None


def _charger_phases(get_state: StateGetter, binding: DeviceBinding, wired: int) -> int | None:
    if not (binding.phase_switch_entity and getattr(binding.spec, "can_switch_phases", False)):
        return wired
    state = get_state(binding.phase_switch_entity)
    if state is None:
        return None
    if split_entity_id(binding.phase_switch_entity)[0] in SELECT_DOMAINS:
        return 3 if "3" in state.state else 1 if "1" in state.state else None
    return 3 if state.state == STATE_ON else 1 if state.state == STATE_OFF else None


def _battery_setpoint(get_state: StateGetter, binding: DeviceBinding) -> BatterySetpoint | None:
    if binding.mode_entity:
        state = get_state(binding.mode_entity)
        mode = state.state.lower() if state is not None else ""
        if any(word in mode for word in AUTONOMOUS_WORDS):
            return BatterySetpoint(None)
        if any(word in mode for word in IDLE_WORDS):
            return BatterySetpoint(0.0)
        if not mode or binding.setpoint_entity is None:
            return None
    if binding.setpoint_entity is None:
        return None
    power_w = _number_value(get_state, binding.setpoint_entity, POWER_SCALE)
    return None if power_w is None else BatterySetpoint(power_w)
