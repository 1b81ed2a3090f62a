"""What every device controller shares: per-decision context, serving and rate limiting.

A decision runs in three steps per device: `prepare` (what it draws now and the least it
must keep reserved), `serve` (at its priority slot, take what room is left) and
`finalize` (rate-limit loosening changes, record what was applied).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .draw import PhaseDraw, measured_draw
from .model import AnyDeviceSpec, DeviceState, Setpoint

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from .headroom import Binding, Headroom


@dataclass(frozen=True, slots=True)
class DeviceContext:
    """Everything one device needs for one decision."""

    now: datetime
    state: DeviceState | None
    request: Setpoint | None  # the planner's wish, already checked for the right type
    charge_now: bool
    voltage_v: tuple[float, ...]  # per real phase L1..Ln
    connection_phases: int


@dataclass(slots=True)
class Prepared:
    phases: tuple[int, ...]  # real phases the device draws on now
    present: PhaseDraw  # what it draws now (measured, else assumed from its setpoint)
    floor_a: float  # per-phase draw held back for it before anyone is served
    fixed: Setpoint | None = None  # decided before serving (e.g. switched off for the fuse)


@dataclass(frozen=True, slots=True)
class Served:
    setpoint: Setpoint
    phases: tuple[int, ...]
    reserve_a: float  # per-phase draw to hold back for it from now on
    binding: Binding | None = None  # set when room, not its own wish, held it back


class DeviceController[SpecT: AnyDeviceSpec](ABC):
    def __init__(self, spec: SpecT) -> None:
        self.spec = spec
        self.applied: Setpoint | None = None
        self.last_change: datetime | None = None

    def watts_per_amp(self, phases: Sequence[int], voltage_v: Sequence[float]) -> float:
        return sum(voltage_v[p - 1] for p in phases)

    def present_draw(
        self, ctx: DeviceContext, phases: tuple[int, ...], assumed_a: float
    ) -> PhaseDraw:
        measured = measured_draw(ctx.state, phases, ctx.connection_phases, ctx.voltage_v)
        if measured is not None:
            return measured
        return dict.fromkeys(phases, assumed_a)

    @abstractmethod
    def prepare(self, ctx: DeviceContext) -> Prepared: ...

    @abstractmethod
    def serve(self, ctx: DeviceContext, prepared: Prepared, room: Headroom) -> Served:
        """Decide at the device's priority slot; its floor is already back in `room`."""

    @abstractmethod
    def safe_setpoint(self, export_cap_w: float | None) -> Setpoint:
        """The setpoint for safe mode and emergencies."""

    @abstractmethod
    def meet(self, old: Setpoint, new: Setpoint) -> Setpoint:
        """The setpoint that is no looser than either: used while a loosening is held back."""

    def on_change(self, old: Setpoint | None, new: Setpoint, now: datetime) -> None:  # noqa: B027
        """Hook for per-kind bookkeeping when the applied setpoint changes."""

    def finalize(self, proposed: Setpoint, now: datetime, *, immediate: bool) -> Setpoint:
        """Apply `proposed`, holding back loosening within min_change_interval_s."""
        old = self.applied
        new = proposed
        if old is not None and not immediate and self.last_change is not None:
            age = (now - self.last_change).total_seconds()
            if 0 <= age < self.spec.min_change_interval_s:
                new = self.meet(old, proposed)
        if new != old:
            self.on_change(old, new, now)
            self.last_change = now
        self.applied = new
        return new
