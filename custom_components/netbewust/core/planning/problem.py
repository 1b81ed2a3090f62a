"""The household planner's typed inputs and outputs.

A problem is a horizon of equal steps (15 minutes by default) starting at a UTC time,
with one price, base load and PV forecast per step. Devices refer to steps by index
(`start_step` inclusive, `end_step` exclusive). Power in W is the average over a step;
energy in Wh. Grid power, as everywhere in the engine, is positive when importing.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..limits import ExternalLimit
    from ..model import Connection, Setpoint
    from ..thermal import ComfortBand, CopModel, GasBoiler, ThermalParameters


class PlanningError(ValueError):
    """A planning problem that does not validate."""


def _finite_series(values: tuple[float, ...], n_steps: int, name: str) -> None:
    if len(values) != n_steps:
        raise PlanningError(f"{name} has {len(values)} values for {n_steps} steps")
    if not all(math.isfinite(value) for value in values):
        raise PlanningError(f"{name} contains a missing or infinite value")


def _window(start_step: int, end_step: int, name: str) -> None:
    if not 0 <= start_step < end_step:
        raise PlanningError(f"{name}: window [{start_step}, {end_step}) is empty or negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanBattery:
    """A stationary battery; power limits are AC side, efficiencies one way each."""

    device_id: str
    capacity_wh: float
    max_charge_w: float
    max_discharge_w: float
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    soc_min_pct: float = 10.0
    soc_max_pct: float = 90.0
    soc_initial_pct: float = 50.0
    # End-of-horizon SoC window; equal values force an exact final SoC.
    soc_final_min_pct: float | None = None
    soc_final_max_pct: float | None = None
    phases: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        if not self.capacity_wh > 0:
            raise PlanningError(f"{self.device_id}: capacity must be positive")
        if not (self.max_charge_w >= 0 and self.max_discharge_w >= 0):
            raise PlanningError(f"{self.device_id}: power limits must be >= 0")
        for efficiency in (self.charge_efficiency, self.discharge_efficiency):
            if not 0 < efficiency <= 1:
                raise PlanningError(f"{self.device_id}: efficiency must be in (0, 1]")
        if not 0 <= self.soc_min_pct <= self.soc_max_pct <= 100:
            raise PlanningError(f"{self.device_id}: SoC bounds must satisfy 0 <= min <= max <= 100")
        if not 0 <= self.soc_initial_pct <= 100:
            raise PlanningError(f"{self.device_id}: initial SoC must be within 0..100 %")
        final_min = self.soc_final_min_pct if self.soc_final_min_pct is not None else 0.0
        final_max = self.soc_final_max_pct if self.soc_final_max_pct is not None else 100.0
        if not 0 <= final_min <= final_max <= 100:
            raise PlanningError(f"{self.device_id}: final SoC window is empty")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanEvSession:
    """A car plugged in for steps [start_step, end_step) that must gain `energy_wh`.

    Energy counts what ends up in the car. `energy_max_wh` (default: `energy_wh`) lets
    the planner charge more when that pays. `guaranteed_wh` must be in the car by
    `guaranteed_by_step` (exclusive), the minimum charge drivers rely on. For V2G
    chargers `arrival_energy_wh`, `capacity_wh` and `reserve_wh` describe the car's
    battery, which may then also be discharged. `max_power_w` (default: the charger's)
    caps this session's charging below the charger's maximum (a car that takes less).
    """

    start_step: int
    end_step: int
    energy_wh: float
    energy_max_wh: float | None = None
    guaranteed_wh: float = 0.0
    guaranteed_by_step: int | None = None
    arrival_energy_wh: float = 0.0
    capacity_wh: float | None = None
    reserve_wh: float = 0.0
    max_power_w: float | None = None

    def __post_init__(self) -> None:
        _window(self.start_step, self.end_step, "EV session")
        if self.max_power_w is not None and not self.max_power_w > 0:
            raise PlanningError("an EV session's max_power_w must be > 0")
        if not self.energy_wh >= 0:
            raise PlanningError("an EV session needs energy_wh >= 0")
        if self.energy_max_wh is not None and not self.energy_max_wh >= self.energy_wh:
            raise PlanningError("energy_max_wh must be at least energy_wh")
        if self.guaranteed_by_step is not None and not (
            self.start_step < self.guaranteed_by_step <= self.end_step
        ):
            raise PlanningError("guaranteed_by_step must lie inside the session")
        if not 0 <= self.guaranteed_wh <= self.energy_wh:
            raise PlanningError("guaranteed_wh must be between 0 and energy_wh")
        if self.capacity_wh is not None and not (
            0 <= self.reserve_wh <= self.arrival_energy_wh <= self.capacity_wh
        ):
            raise PlanningError("need 0 <= reserve <= arrival energy <= capacity")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanCharger:
    """An EV charger. `min_power_w` > 0 makes charging "at least this or off" (6 A).

    A charger with `max_discharge_w` > 0 is bidirectional (V2G); its sessions then
    need `capacity_wh` so the car's battery can be tracked.
    """

    device_id: str
    max_power_w: float
    min_power_w: float = 0.0
    max_discharge_w: float = 0.0
    charge_efficiency: float = 1.0
    discharge_efficiency: float = 1.0
    phases: tuple[int, ...] = (1,)
    sessions: tuple[PlanEvSession, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.min_power_w <= self.max_power_w:
            raise PlanningError(f"{self.device_id}: need 0 <= min_power_w <= max_power_w")
        if not self.max_discharge_w >= 0:
            raise PlanningError(f"{self.device_id}: max_discharge_w must be >= 0")
        for efficiency in (self.charge_efficiency, self.discharge_efficiency):
            if not 0 < efficiency <= 1:
                raise PlanningError(f"{self.device_id}: efficiency must be in (0, 1]")
        ordered = sorted(self.sessions, key=lambda session: session.start_step)
        for before, after in itertools.pairwise(ordered):
            if after.start_step < before.end_step:
                raise PlanningError(f"{self.device_id}: sessions overlap")
        if self.bidirectional and any(s.capacity_wh is None for s in self.sessions):
            raise PlanningError(f"{self.device_id}: V2G sessions need capacity_wh")
        if any(self.session_power_w(s) < self.min_power_w for s in self.sessions):
            raise PlanningError(f"{self.device_id}: a session's max_power_w is below min_power_w")

    def session_power_w(self, session: PlanEvSession) -> float:
        """The most this charger puts into this session's car."""
        if session.max_power_w is None:
            return self.max_power_w
        return min(self.max_power_w, session.max_power_w)

    @property
    def bidirectional(self) -> bool:
        return self.max_discharge_w > 0


@dataclass(frozen=True, slots=True, kw_only=True)
class HeatPumpDay:
    """Steps [start_step, end_step) of one local day: heat to deliver and starts allowed."""

    start_step: int
    end_step: int
    heat_need_wh: float
    max_starts: int = 2

    def __post_init__(self) -> None:
        _window(self.start_step, self.end_step, "heat pump day")
        if not self.heat_need_wh >= 0 or self.max_starts < 0:
            raise PlanningError("a heat pump day needs heat_need_wh >= 0 and max_starts >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanHeatPump:
    """An on/off heat pump drawing `rated_power_w`; heat = power x COP."""

    device_id: str
    rated_power_w: float
    cop: float = 3.5
    running_at_start: bool = False
    days: tuple[HeatPumpDay, ...] = ()
    phases: tuple[int, ...] = (1,)
    # Starts over the whole horizon, on top of each day's: comfort windows shorter than
    # a day (each with its heat need) can then share one daily budget of starts.
    max_starts_total: int | None = None

    def __post_init__(self) -> None:
        if not (self.rated_power_w > 0 and self.cop > 0):
            raise PlanningError(f"{self.device_id}: rated power and COP must be positive")
        if self.max_starts_total is not None and self.max_starts_total < 0:
            raise PlanningError(f"{self.device_id}: max_starts_total must be >= 0")
        ordered = sorted(self.days, key=lambda day: day.start_step)
        for before, after in itertools.pairwise(ordered):
            if after.start_step < before.end_step:
                raise PlanningError(f"{self.device_id}: heat pump days overlap")


class HeatPumpControl(StrEnum):
    """How Netbewust can steer the pump.

    MODULATING: any electric power in [min_power_w, max_power_w] or off (a power-limit
    entity or Modbus register; a hybrid's cap). ON_OFF: the pump's own thermostat cycles
    it at rated power, so its quarter-hour average is a duty cycle in [0, max_power_w]
    and it keeps the set point; Netbewust can only block it (SG-Ready "off") in windows,
    at most `max_windows_per_day`, each `min_window_steps`..`max_window_steps` long.
    """

    MODULATING = "modulating"
    ON_OFF = "on_off"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanThermalHeatPump:
    """A heat pump planned with the home's 1R1C thermal model (see core/thermal).

    Per step: the outdoor temperature and the comfort band; `dhw_w` is electric power
    reserved for domestic hot water (its legionella cycle included), never moved by the
    plan. With `boiler` set the pump is a hybrid: `max_power_w` is its electric cap and
    the boiler supplies the rest of the heat at the gas price. Starts count per 24 h from
    the horizon start. The pump may block or run before a block window (pre-heating
    up to the band's top is the thermostat at a raised set point: SG-Ready "boost").
    For a modulating pump `max_windows_per_day` bounds its restarts after an off step
    (the window lengths are an on/off pump's).
    """

    device_id: str
    thermal: ThermalParameters
    cop: CopModel
    max_power_w: float
    outdoor_temperature_c: tuple[float, ...]
    comfort: ComfortBand
    indoor_temperature_c: float
    control: HeatPumpControl = HeatPumpControl.MODULATING
    min_power_w: float = 0.0
    boiler: GasBoiler | None = None
    dhw_w: tuple[float, ...] | None = None
    max_windows_per_day: int = 2
    min_window_steps: int = 1
    max_window_steps: int | None = None
    phases: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        n = len(self.outdoor_temperature_c)
        _finite_series(self.outdoor_temperature_c, n, f"{self.device_id}: outdoor temperature")
        if len(self.comfort.setpoint_c) != n:
            raise PlanningError(f"{self.device_id}: comfort band and outdoor series differ")
        if self.dhw_w is not None:
            _finite_series(self.dhw_w, n, f"{self.device_id}: dhw_w")
            if min(self.dhw_w) < 0:
                raise PlanningError(f"{self.device_id}: dhw_w must be >= 0")
        if not (self.max_power_w > 0 and 0 <= self.min_power_w <= self.max_power_w):
            raise PlanningError(f"{self.device_id}: need 0 <= min_power_w <= max_power_w > 0")
        if not math.isfinite(self.indoor_temperature_c):
            raise PlanningError(f"{self.device_id}: indoor temperature must be finite")
        if self.max_windows_per_day < 0 or self.min_window_steps < 1:
            raise PlanningError(f"{self.device_id}: need >= 0 windows of at least one step")
        if self.max_window_steps is not None and self.max_window_steps < self.min_window_steps:
            raise PlanningError(f"{self.device_id}: max_window_steps below min_window_steps")

    @property
    def n_steps(self) -> int:
        return len(self.outdoor_temperature_c)


@dataclass(frozen=True, slots=True, kw_only=True)
class Tariff:
    """Capacity tariff: EUR per kW of the horizon's highest quarter-hour import.

    `peak_already_w` is the peak already billed this period; only exceeding it costs.
    """

    peak_price_eur_per_kw: float = 0.0
    peak_already_w: float = 0.0

    def __post_init__(self) -> None:
        if not (self.peak_price_eur_per_kw >= 0 and self.peak_already_w >= 0):
            raise PlanningError("capacity tariff values must be >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanningProblem:
    """Everything the planner needs; see the module docstring for the conventions."""

    start: datetime
    connection: Connection
    import_price_eur_per_kwh: tuple[float, ...]
    export_price_eur_per_kwh: tuple[float, ...]
    base_load_w: tuple[float, ...]
    pv_w: tuple[float, ...]
    step_minutes: int = 15
    batteries: tuple[PlanBattery, ...] = ()
    chargers: tuple[PlanCharger, ...] = ()
    heat_pumps: tuple[PlanHeatPump, ...] = ()
    thermal_heat_pumps: tuple[PlanThermalHeatPump, ...] = ()
    external_limits: tuple[ExternalLimit, ...] = ()
    tariff: Tariff = field(default_factory=Tariff)
    pv_curtailment_allowed: bool = True
    # Phases the base load and PV are spread over (evenly); default: all phases.
    base_load_phases: tuple[int, ...] | None = None
    pv_phases: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() != timedelta(0):
            raise PlanningError(f"start must be a UTC timestamp, got {self.start!r}")
        if self.step_minutes not in (5, 15, 30, 60):
            raise PlanningError(f"step_minutes must be 5, 15, 30 or 60, not {self.step_minutes}")
        n = len(self.import_price_eur_per_kwh)
        if n == 0:
            raise PlanningError("the horizon is empty")
        _finite_series(self.import_price_eur_per_kwh, n, "import_price_eur_per_kwh")
        _finite_series(self.export_price_eur_per_kwh, n, "export_price_eur_per_kwh")
        _finite_series(self.base_load_w, n, "base_load_w")
        _finite_series(self.pv_w, n, "pv_w")
        if min(self.pv_w) < 0:
            raise PlanningError("pv_w must be >= 0")
        phases = range(1, self.connection.phases + 1)
        ids: set[str] = set()
        devices: tuple[PlanBattery | PlanCharger | PlanHeatPump | PlanThermalHeatPump, ...] = (
            *self.batteries,
            *self.chargers,
            *self.heat_pumps,
            *self.thermal_heat_pumps,
        )
        for device in devices:
            if device.device_id in ids:
                raise PlanningError(f"device id {device.device_id!r} is used twice")
            ids.add(device.device_id)
            if not device.phases or any(p not in phases for p in device.phases):
                raise PlanningError(f"{device.device_id}: phases {device.phases} not on this grid")
        for spread in (self.base_load_phases, self.pv_phases):
            if spread is not None and (not spread or any(p not in phases for p in spread)):
                raise PlanningError(f"phases {spread} are not on this connection")
        for charger in self.chargers:
            if any(s.end_step > n for s in charger.sessions):
                raise PlanningError(f"{charger.device_id}: a session ends after the horizon")
        for heat_pump in self.heat_pumps:
            if any(d.end_step > n for d in heat_pump.days):
                raise PlanningError(f"{heat_pump.device_id}: a day ends after the horizon")
        for thermal in self.thermal_heat_pumps:
            if thermal.n_steps != n:
                raise PlanningError(f"{thermal.device_id}: series length is not the horizon's")

    @property
    def n_steps(self) -> int:
        return len(self.import_price_eur_per_kwh)

    @property
    def step(self) -> timedelta:
        return timedelta(minutes=self.step_minutes)

    @property
    def step_hours(self) -> float:
        return self.step_minutes / 60.0

    def step_start(self, index: int) -> datetime:
        return self.start + index * self.step


class PlanStatus(StrEnum):
    OPTIMAL = "optimal"
    FALLBACK = "fallback"  # no optimisation: the simple rule, with `Plan.reason` saying why


@dataclass(frozen=True, slots=True)
class BatteryStep:
    charge_w: float
    discharge_w: float
    soc_pct: float  # at the end of the step


@dataclass(frozen=True, slots=True)
class ChargerStep:
    charge_w: float
    discharge_w: float
    car_energy_wh: float  # gained since arrival (V2G: in the car), end of step; 0 unplugged


@dataclass(frozen=True, slots=True)
class HeatPumpStep:
    """Planned electric power (hot water included); for thermal pumps also the boiler's
    heat and the indoor temperature expected at the end of the step."""

    on: bool
    power_w: float
    boiler_heat_w: float = 0.0
    indoor_temperature_c: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanStep:
    """One step of the plan. `setpoints` are what the guard takes (it may lower them)."""

    start: datetime
    import_w: float
    export_w: float
    base_load_w: float
    pv_w: float  # forecast before curtailment
    pv_curtailed_w: float
    import_price_eur_per_kwh: float | None  # None: no prices (a fallback plan)
    export_price_eur_per_kwh: float | None
    batteries: Mapping[str, BatteryStep]
    chargers: Mapping[str, ChargerStep]
    heat_pumps: Mapping[str, HeatPumpStep]
    setpoints: Mapping[str, Setpoint]


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The planner's answer. Costs in EUR over the horizon (energy includes a hybrid's
    gas); the baseline charges the car at full power on arrival, leaves batteries idle,
    runs each heat pump from the start of its day until the heat need is met (a thermal
    pump as its own thermostat would) and never curtails PV. Costs are None when
    unknown: planned without prices."""

    status: PlanStatus
    steps: tuple[PlanStep, ...]
    expected_cost_eur: float | None
    energy_cost_eur: float | None
    peak_cost_eur: float | None
    baseline_cost_eur: float | None
    reason: str = ""
    solver_rounds: int = 0  # solves needed (LP first, then MILP rounds where needed)
    binaries_used: int = 0
