"""The engine's typed inputs and outputs: connection, readings, devices, setpoints.

Conventions: power in W, current in A, UTC datetimes. Grid power is positive when the
home imports. Device power is positive when the device draws from the home's wiring
(a charging car or battery, a running heat pump) and negative when it delivers (PV, a
discharging battery). Phases are numbered 1..3 as L1..L3.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from .limits import LimitSource  # noqa: TC001 - kept importable from here for users of the model
from .units import NOMINAL_VOLTAGE_V as NOMINAL_VOLTAGE_V  # noqa: PLC0414 - importable from here too

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

MIN_CHARGE_CURRENT_A = 6.0  # IEC 61851: below 6 A a charger must pause
DEFAULT_CHARGER_MAX_CURRENT_A = 16.0  # a charger whose maximum is not given


class PeakMode(StrEnum):
    """How a household peak limit is measured (capacity tariffs bill the quarter hour)."""

    INSTANTANEOUS = "instantaneous"
    QUARTER_HOUR = "quarter_hour"


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """The grid connection: phases, fuse rating per phase and optional household peak."""

    phases: int
    fuse_current_a: float
    safety_margin_a: float = 0.0
    nominal_voltage_v: float = NOMINAL_VOLTAGE_V
    peak_limit_w: float | None = None
    peak_mode: PeakMode = PeakMode.INSTANTANEOUS

    def __post_init__(self) -> None:
        if self.phases not in (1, 3):
            raise ValueError(f"a connection has 1 or 3 phases, not {self.phases}")
        if not 0 < self.fuse_current_a <= 250:
            raise ValueError(f"fuse current {self.fuse_current_a} A is out of range")
        if not 0 <= self.safety_margin_a < self.fuse_current_a:
            raise ValueError("the safety margin must be below the fuse current")
        if self.peak_limit_w is not None and self.peak_limit_w <= 0:
            raise ValueError("a household peak limit must be positive")

    @property
    def max_current_a(self) -> float:
        """Per-phase current the guard keeps below: the fuse less the safety margin."""
        return self.fuse_current_a - self.safety_margin_a


@dataclass(frozen=True, slots=True)
class PhaseReading:
    """One phase as the meter reports it; any field may be missing.

    `power_w` is net (import minus export). `current_a` is the meter's magnitude, which
    DSMR rounds to whole amperes, so power over voltage is preferred when both exist.
    """

    power_w: float | None = None
    voltage_v: float | None = None
    current_a: float | None = None


@dataclass(frozen=True, slots=True)
class MeterReading:
    """A measurement of the connection, from a P1 meter or any other source."""

    timestamp: datetime
    phases: tuple[PhaseReading, ...] = ()
    total_power_w: float | None = None
    quarter_hour_average_w: float | None = None


class DeviceKind(StrEnum):
    CHARGER = "charger"
    BATTERY = "battery"
    HEAT_PUMP = "heat_pump"
    PV = "pv"
    LOAD = "load"


class ChargerState(StrEnum):
    """IEC 61851-1 control pilot states."""

    A = "A"  # no vehicle
    B = "B"  # vehicle connected, not charging
    C = "C"  # charging
    D = "D"  # charging, ventilation required
    E = "E"  # no power / short circuit
    F = "F"  # fault


class HeatPumpControl(StrEnum):
    POWER_LIMIT = "power_limit"  # a number entity that caps the compressor
    SG_READY = "sg_ready"  # two relays; the guard uses "blocked" and "normal"


@dataclass(frozen=True, slots=True)
class Circuit:
    """A sub-circuit with its own breaker; circuits nest through `parent_id`."""

    circuit_id: str
    max_current_a: float
    parent_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceSpec:
    """What every controllable device has. `priority`: lower is served first."""

    device_id: str
    name: str
    priority: int
    phases: tuple[int, ...] = (1,)
    circuit_id: str | None = None
    min_change_interval_s: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerSpec(DeviceSpec):
    min_current_a: float = MIN_CHARGE_CURRENT_A
    max_current_a: float = DEFAULT_CHARGER_MAX_CURRENT_A
    can_switch_phases: bool = False
    resume_hysteresis_a: float = 1.0
    resume_retry_s: float = 120.0
    # The static share of the fuse it may always take, used whenever the guard is unsure
    # (stale meter, a failed evaluation); None: its minimum, as chargers' own
    # communication-loss settings default to. 0 pauses it instead.
    safe_current_a: float | None = None

    @property
    def kind(self) -> DeviceKind:
        return DeviceKind.CHARGER


@dataclass(frozen=True, slots=True, kw_only=True)
class BatterySpec(DeviceSpec):
    max_charge_w: float
    max_discharge_w: float
    min_soc_pct: float = 10.0
    max_soc_pct: float = 100.0
    has_autonomous_mode: bool = True

    @property
    def kind(self) -> DeviceKind:
        return DeviceKind.BATTERY


@dataclass(frozen=True, slots=True, kw_only=True)
class HeatPumpSpec(DeviceSpec):
    rated_power_w: float
    control: HeatPumpControl = HeatPumpControl.POWER_LIMIT
    limited_power_w: float = 450.0
    max_switches_per_day: int = 2
    min_on_s: float = 1800.0
    min_off_s: float = 1800.0

    @property
    def kind(self) -> DeviceKind:
        return DeviceKind.HEAT_PUMP


@dataclass(frozen=True, slots=True, kw_only=True)
class PvSpec(DeviceSpec):
    rated_power_w: float
    can_limit_power: bool = True  # False: only an on/off switch

    @property
    def kind(self) -> DeviceKind:
        return DeviceKind.PV


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadSpec(DeviceSpec):
    rated_power_w: float

    @property
    def kind(self) -> DeviceKind:
        return DeviceKind.LOAD


AnyDeviceSpec = ChargerSpec | BatterySpec | HeatPumpSpec | PvSpec | LoadSpec


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A device's live readings, as fresh as the adapter has them."""

    device_id: str
    power_w: float | None = None
    phase_currents_a: tuple[float, ...] | None = None
    soc_pct: float | None = None
    charger_state: ChargerState | None = None
    active_phases: int | None = None  # phases it draws on now (a car may take fewer)
    available: bool = True


@dataclass(frozen=True, slots=True)
class ChargerSetpoint:
    current_a: float  # 0 pauses
    phases: int


@dataclass(frozen=True, slots=True)
class BatterySetpoint:
    power_w: float | None  # None: the battery's own autonomous mode; + charge, - discharge


@dataclass(frozen=True, slots=True)
class HeatPumpSetpoint:
    on: bool
    power_limit_w: float | None = None  # None: unrestricted


@dataclass(frozen=True, slots=True)
class PvSetpoint:
    power_limit_w: float | None  # None: unrestricted; 0: off


@dataclass(frozen=True, slots=True)
class LoadSetpoint:
    on: bool


Setpoint = ChargerSetpoint | BatterySetpoint | HeatPumpSetpoint | PvSetpoint | LoadSetpoint


class GuardState(StrEnum):
    # Set up, no meter reading yet: devices keep what they were doing (a reload or
    # restart never pauses them) until the first reading or the meter's own timeout.
    STARTING = "starting"
    NORMAL = "normal"
    LIMITING = "limiting"
    SAFE_MODE = "safe_mode"


class LimitReason(StrEnum):
    """Why a device was limited or the guard is not normal; also translation keys."""

    FUSE = "fuse"
    CIRCUIT = "circuit"
    HOUSEHOLD_PEAK = "household_peak"
    PLANNER = "planner"
    COMMUNITY = "community"
    DSO = "dso"
    EMERGENCY = "emergency"
    EXPORT_LIMIT = "export_limit"
    NEGATIVE_EXPORT_PRICE = "negative_export_price"
    STALE_METER = "stale_meter"
    GUARD_ERROR = "guard_error"  # an evaluation raised: safe state until one succeeds
    INFLEXIBLE_OVERLOAD = "inflexible_overload"
    HEAT_PUMP_SWITCH_BUDGET = "heat_pump_switch_budget"
    # A 3-phase connection metered by total power only: the total is enforced, not each phase.
    PER_PHASE_UNAVAILABLE = "per_phase_unavailable"


@dataclass(frozen=True, slots=True)
class Limitation:
    """One reason the guard is holding something back; `device_id` None for the home."""

    reason: LimitReason
    device_id: str | None = None
    phase: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardConfig:
    connection: Connection
    devices: tuple[AnyDeviceSpec, ...] = ()
    circuits: tuple[Circuit, ...] = ()
    stale_after_s: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardDecision:
    """The guard's answer to one input: every device's setpoint and why.

    `changed` names the devices whose setpoint differs from the previous decision, so
    adapters write only those.
    """

    timestamp: datetime
    state: GuardState
    setpoints: Mapping[str, Setpoint]
    changed: frozenset[str]
    phase_current_a: tuple[float, ...]
    phase_limit_a: tuple[float, ...]
    limit_source: LimitSource
    limitations: tuple[Limitation, ...] = ()
    unresolved_overload: bool = False

    @property
    def headroom_a(self) -> tuple[float, ...]:
        return tuple(
            limit - current
            for limit, current in zip(self.phase_limit_a, self.phase_current_a, strict=True)
        )
