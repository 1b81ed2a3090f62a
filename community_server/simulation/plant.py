"""A household plant for closed-loop tests of the guard: devices, inflexible load, a P1 meter.

Devices follow their setpoints with a lag (a charger takes 2-5 s), cars draw about 1 A
above what they are offered, and the meter reports like DSMR: power in whole watts,
current rounded to whole amperes. Time is in seconds from the start of the run; the plant
turns it into UTC timestamps for the guard. Used by the engine tests, the benchmark and,
later, the neighbourhood simulator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from netbewust_core.model import (
    BatterySetpoint,
    BatterySpec,
    ChargerSetpoint,
    ChargerSpec,
    ChargerState,
    Connection,
    DeviceState,
    HeatPumpSetpoint,
    HeatPumpSpec,
    LoadSetpoint,
    LoadSpec,
    MeterReading,
    PhaseReading,
    PvSetpoint,
    PvSpec,
    Setpoint,
)
from netbewust_core.units import NOMINAL_VOLTAGE_V

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """The UTC timestamp of simulation second `seconds`."""
    return START + timedelta(seconds=seconds)


class SimDevice(Protocol):
    device_id: str

    def command(self, setpoint: Setpoint, t: float) -> None: ...

    def draw_a(self, t: float) -> dict[int, float]: ...

    def state(self, t: float) -> DeviceState: ...


@dataclass
class _Lagged:
    """Setpoints that take effect `lag_s` after they are commanded."""

    lag_s: float
    initial: Setpoint
    commands: list[tuple[float, Setpoint]] = field(default_factory=list)

    def command(self, setpoint: Setpoint, t: float) -> None:
        if not self.commands or self.commands[-1][1] != setpoint:
            self.commands.append((t, setpoint))

    def effective(self, t: float) -> Setpoint:
        current = self.initial
        for moment, setpoint in self.commands:
            if moment + self.lag_s > t:
                break
            current = setpoint
        return current


class SimCharger:
    """A charger and its car. `sleeps_after_pause`: the car ignores the first resume."""

    def __init__(
        self,
        spec: ChargerSpec,
        *,
        lag_s: float = 3.0,
        overshoot_a: float = 1.0,
        car_phases: int = 3,
        car_max_a: float = 32.0,
        connected: bool = True,
        sleeps_after_pause: bool = False,
        reports_power: bool = True,
        initial: ChargerSetpoint | None = None,
    ) -> None:
        self.spec = spec
        self.device_id = spec.device_id
        start = initial or ChargerSetpoint(spec.max_current_a, len(spec.phases))
        self._setpoints = _Lagged(lag_s, start)
        self.overshoot_a = overshoot_a
        self.car_phases = car_phases
        self.car_max_a = car_max_a
        self.connected = connected
        self.sleeps_after_pause = sleeps_after_pause
        self.reports_power = reports_power

    def command(self, setpoint: Setpoint, t: float) -> None:
        if isinstance(setpoint, ChargerSetpoint):
            self._setpoints.command(setpoint, t)

    def _effective(self, t: float) -> ChargerSetpoint:
        setpoint = self._setpoints.effective(t)
        assert isinstance(setpoint, ChargerSetpoint)
        return setpoint

    def _pauses_before(self, t: float) -> int:
        pauses = 0
        running = self._setpoints.initial
        for moment, setpoint in self._setpoints.commands:
            if moment + self._setpoints.lag_s > t:
                break
            if (
                isinstance(setpoint, ChargerSetpoint)
                and isinstance(running, ChargerSetpoint)
                and running.current_a > 0
                and setpoint.current_a <= 0
            ):
                pauses += 1
            running = setpoint
        return pauses

    def asleep(self, t: float) -> bool:
        return self.sleeps_after_pause and self._pauses_before(t) == 1

    def draw_a(self, t: float) -> dict[int, float]:
        setpoint = self._effective(t)
        if not self.connected or setpoint.current_a < self.spec.min_current_a or self.asleep(t):
            return {}
        current = min(setpoint.current_a, self.car_max_a) + self.overshoot_a
        phases = self.spec.phases[: max(1, min(setpoint.phases, self.car_phases))]
        return dict.fromkeys(phases, current)

    def state(self, t: float) -> DeviceState:
        draw = self.draw_a(t)
        if not self.connected:
            charger_state = ChargerState.A
        else:
            charger_state = ChargerState.C if draw else ChargerState.B
        power = sum(draw.values()) * NOMINAL_VOLTAGE_V if self.reports_power else None
        return DeviceState(
            self.device_id,
            power_w=power,
            charger_state=charger_state,
            active_phases=len(draw) if draw else None,
        )


class SimHeatPump:
    """Draws `demand_w` (its thermostat's wish) within the limit it is given."""

    def __init__(self, spec: HeatPumpSpec, *, demand_w: float, lag_s: float = 2.0) -> None:
        self.spec = spec
        self.device_id = spec.device_id
        self.demand_w = demand_w
        self._setpoints = _Lagged(lag_s, HeatPumpSetpoint(on=True))

    def command(self, setpoint: Setpoint, t: float) -> None:
        if isinstance(setpoint, HeatPumpSetpoint):
            self._setpoints.command(setpoint, t)

    def draw_a(self, t: float) -> dict[int, float]:
        setpoint = self._setpoints.effective(t)
        assert isinstance(setpoint, HeatPumpSetpoint)
        if not setpoint.on:
            return {}
        cap = math.inf if setpoint.power_limit_w is None else setpoint.power_limit_w
        power = min(self.demand_w, cap)
        return dict.fromkeys(self.spec.phases, power / NOMINAL_VOLTAGE_V / len(self.spec.phases))

    def state(self, t: float) -> DeviceState:
        return DeviceState(self.device_id, power_w=sum(self.draw_a(t).values()) * NOMINAL_VOLTAGE_V)


class SimBattery:
    """Follows a power setpoint; in its autonomous mode it idles."""

    def __init__(self, spec: BatterySpec, *, soc_pct: float, lag_s: float = 1.0) -> None:
        self.spec = spec
        self.device_id = spec.device_id
        self.soc_pct = soc_pct
        self._setpoints = _Lagged(lag_s, BatterySetpoint(None))

    def command(self, setpoint: Setpoint, t: float) -> None:
        if isinstance(setpoint, BatterySetpoint):
            self._setpoints.command(setpoint, t)

    def power_w(self, t: float) -> float:
        setpoint = self._setpoints.effective(t)
        assert isinstance(setpoint, BatterySetpoint)
        if setpoint.power_w is None:
            return 0.0
        return max(-self.spec.max_discharge_w, min(setpoint.power_w, self.spec.max_charge_w))

    def draw_a(self, t: float) -> dict[int, float]:
        per_phase = self.power_w(t) / NOMINAL_VOLTAGE_V / len(self.spec.phases)
        return dict.fromkeys(self.spec.phases, per_phase)

    def state(self, t: float) -> DeviceState:
        return DeviceState(self.device_id, power_w=self.power_w(t), soc_pct=self.soc_pct)


class SimPv:
    """Produces `available_w` (the sun's offer) within its limit."""

    def __init__(self, spec: PvSpec, *, available_w: float, lag_s: float = 1.0) -> None:
        self.spec = spec
        self.device_id = spec.device_id
        self.available_w = available_w
        self._setpoints = _Lagged(lag_s, PvSetpoint(None))

    def command(self, setpoint: Setpoint, t: float) -> None:
        if isinstance(setpoint, PvSetpoint):
            self._setpoints.command(setpoint, t)

    def power_w(self, t: float) -> float:
        setpoint = self._setpoints.effective(t)
        assert isinstance(setpoint, PvSetpoint)
        cap = math.inf if setpoint.power_limit_w is None else setpoint.power_limit_w
        return -min(self.available_w, cap, self.spec.rated_power_w)

    def draw_a(self, t: float) -> dict[int, float]:
        return dict.fromkeys(
            self.spec.phases, self.power_w(t) / NOMINAL_VOLTAGE_V / len(self.spec.phases)
        )

    def state(self, t: float) -> DeviceState:
        return DeviceState(self.device_id, power_w=self.power_w(t))


class SimLoad:
    def __init__(self, spec: LoadSpec, *, lag_s: float = 0.0) -> None:
        self.spec = spec
        self.device_id = spec.device_id
        self._setpoints = _Lagged(lag_s, LoadSetpoint(on=True))

    def command(self, setpoint: Setpoint, t: float) -> None:
        if isinstance(setpoint, LoadSetpoint):
            self._setpoints.command(setpoint, t)

    def draw_a(self, t: float) -> dict[int, float]:
        setpoint = self._setpoints.effective(t)
        assert isinstance(setpoint, LoadSetpoint)
        if not setpoint.on:
            return {}
        return dict.fromkeys(
            self.spec.phases, self.spec.rated_power_w / NOMINAL_VOLTAGE_V / len(self.spec.phases)
        )

    def state(self, t: float) -> DeviceState:
        return DeviceState(self.device_id, power_w=sum(self.draw_a(t).values()) * NOMINAL_VOLTAGE_V)


@dataclass(frozen=True, slots=True)
class LoadStep:
    """From `at_s` on, the inflexible load on `phase` is `current_a` (negative: export)."""

    at_s: float
    phase: int
    current_a: float


class Plant:
    """The home: inflexible load per phase plus the simulated devices, seen by a meter."""

    def __init__(
        self,
        connection: Connection,
        devices: Sequence[SimDevice],
        *,
        base_a: Sequence[float] | None = None,
        steps: Sequence[LoadStep] = (),
        voltage_v: float = NOMINAL_VOLTAGE_V,
        total_only: bool = False,
    ) -> None:
        self.connection = connection
        self.devices = {d.device_id: d for d in devices}
        self._base = tuple(base_a) if base_a is not None else (0.5,) * connection.phases
        self._steps = sorted(steps, key=lambda s: s.at_s)
        self.voltage_v = voltage_v
        self.total_only = total_only

    def inflexible_a(self, t: float) -> tuple[float, ...]:
        load = list(self._base)
        for step in self._steps:
            if step.at_s > t:
                break
            load[step.phase - 1] = step.current_a
        return tuple(load)

    def phase_currents_a(self, t: float) -> tuple[float, ...]:
        currents = list(self.inflexible_a(t))
        for device in self.devices.values():
            for phase, current in device.draw_a(t).items():
                currents[phase - 1] += current
        return tuple(currents)

    def reading(self, t: float) -> MeterReading:
        """What a DSMR meter reports at `t`: whole watts, whole (unsigned) amperes."""
        currents = self.phase_currents_a(t)
        powers = [round(c * self.voltage_v) for c in currents]
        if self.total_only:
            return MeterReading(timestamp=at(t), total_power_w=float(sum(powers)))
        phases = tuple(
            PhaseReading(power_w=float(p), voltage_v=self.voltage_v, current_a=float(round(abs(c))))
            for p, c in zip(powers, currents, strict=True)
        )
        return MeterReading(timestamp=at(t), phases=phases, total_power_w=float(sum(powers)))

    def device_states(self, t: float) -> dict[str, DeviceState]:
        return {device_id: device.state(t) for device_id, device in self.devices.items()}

    def apply(self, setpoints: Mapping[str, Setpoint], t: float) -> None:
        for device_id, setpoint in setpoints.items():
            device = self.devices.get(device_id)
            if device is not None:
                device.command(setpoint, t)
