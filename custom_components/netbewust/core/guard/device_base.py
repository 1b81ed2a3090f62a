"""What every device controller shares: per-decision context, serving and rate limiting.

A decision runs in three steps per device: `prepare` (what it draws now and the least it
must keep reserved), `serve` (at its priority slot, take what room is left) and
`finalize` (rate-limit loosening changes, record what was applied).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..model import AnyDeviceSpec, DeviceState, Setpoint
from .draw import PhaseDraw, measured_draw

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from .headroom import Binding, Headroom


@dataclass(frozen=True, slots=True)
class DeviceContext:
    """Everything one device needs for one decision."""

    now: datetime
    measured_at: datetime  # when the meter reading (and device states) were taken
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
    alternative: PhaseDraw | None = None  # if still following its previous setpoint
    fixed: Setpoint | None = None  # decided before serving (e.g. switched off for the fuse)


@dataclass(frozen=True, slots=True)
class Served:
    setpoint: Setpoint
    phases: tuple[int, ...]
    reserve_a: float  # per-phase draw to hold back for it from now on
    binding: Binding | None = None  # set when room, not its own wish, held it back


# Devices take up to ~5 s to follow a new setpoint; until then either may be in force.
SETTLE_S = 6.0
HISTORY_S = 120.0  # how long past setpoints are kept to explain older readings


class DeviceController[SpecT: AnyDeviceSpec](ABC):
    def __init__(self, spec: SpecT) -> None:
        self.spec = spec
        self.applied: Setpoint | None = None
        self.previous: Setpoint | None = None
        self.last_change: datetime | None = None
        self.measured_now = False  # whether the last `present_draw` came from its sensors
        self._history: list[tuple[datetime, Setpoint]] = []

    def setpoint_at(self, moment: datetime) -> Setpoint | None:
        """The setpoint in force at `moment`: what an unmeasured device drew then."""
        index = self._index_at(moment)
        return None if index is None else self._history[index][1]

    def setpoint_before(self, moment: datetime) -> Setpoint | None:
        """The setpoint replaced less than SETTLE_S before `moment`, which the device may
        still have been following then; None when it had settled."""
        index = self._index_at(moment)
        if index is None or index == 0:
            return None
        since = self._history[index][0]
        if (moment - since).total_seconds() >= SETTLE_S:
            return None
        return self._history[index - 1][1]

    def _index_at(self, moment: datetime) -> int | None:
        if not self._history:
            return None
        found = 0  # older than we remember: the oldest we know
        for index, (since, _) in enumerate(self._history):
            if since >= moment:
                break  # decided on this very reading: it was measured before
            found = index
        return found

    def settling_increase(self, now: datetime) -> bool:
        """True while a device may still be ramping up to a looser setpoint.

        The room it is about to take still looks free (its sensors, or the base load,
        show the old draw), so the guard holds other devices' increases meanwhile.
        """
        applied, previous = self.applied, self.previous
        if applied is None or previous is None or self.last_change is None:
            return False
        if (now - self.last_change).total_seconds() >= SETTLE_S:
            return False
        return self.meet(previous, applied) == previous != applied

    def adopt(self, setpoint: Setpoint, now: datetime) -> None:
        """Take `setpoint` as in force since `now`, without deciding or sending it.

        What the device was told before this guard existed (a reload, a restart): an
        unmeasured device's draw is then known from the first reading. Only before the
        guard's first setpoint for it.
        """
        if self.applied is None:
            self.applied = setpoint
            self._remember(now, setpoint)

    def _remember(self, now: datetime, setpoint: Setpoint) -> None:
        self._history.append((now, setpoint))
        cutoff = now.timestamp() - HISTORY_S
        while len(self._history) > 1 and self._history[1][0].timestamp() <= cutoff:
            self._history.pop(0)

    def watts_per_amp(self, phases: Sequence[int], voltage_v: Sequence[float]) -> float:
        return sum(voltage_v[p - 1] for p in phases)

    @abstractmethod
    def draw_for(self, setpoint: Setpoint | None, ctx: DeviceContext) -> float:
        """Per-phase current a device without sensors is assumed to draw at `setpoint`."""

    def present_draw(self, ctx: DeviceContext, phases: tuple[int, ...]) -> PhaseDraw:
        """What it draws now: measured, else assumed from the setpoint then in force."""
        measured = measured_draw(ctx.state, phases, ctx.connection_phases, ctx.voltage_v)
        self.measured_now = measured is not None
        if measured is not None:
            return measured
        return dict.fromkeys(phases, self.draw_for(self.setpoint_at(ctx.measured_at), ctx))

    def alternative_draw(self, ctx: DeviceContext, phases: tuple[int, ...]) -> PhaseDraw | None:
        """What it draws if it still follows its previous setpoint (unmeasured, settling)."""
        if self.measured_now:
            return None
        before = self.setpoint_before(ctx.measured_at)
        if before is None:
            return None
        return dict.fromkeys(phases, self.draw_for(before, ctx))

    @abstractmethod
    def prepare(self, ctx: DeviceContext) -> Prepared: ...

    @abstractmethod
    def serve(self, ctx: DeviceContext, prepared: Prepared, room: Headroom) -> Served:
        """Decide at the device's priority slot; its floor is already back in `room`."""

    @abstractmethod
    def meet(self, old: Setpoint, new: Setpoint) -> Setpoint:
        """The setpoint that is no looser than either: used while a loosening is held back."""

    def on_change(self, old: Setpoint | None, new: Setpoint, now: datetime) -> None:  # noqa: B027
        """Hook for per-kind bookkeeping when the applied setpoint changes."""

    def finalize(
        self, proposed: Setpoint, now: datetime, *, immediate: bool, hold: bool = False
    ) -> Setpoint:
        """Apply `proposed`, holding back loosening within min_change_interval_s (or `hold`)."""
        old = self.applied
        new = proposed
        if old is not None and not immediate:
            age = None if self.last_change is None else (now - self.last_change).total_seconds()
            if hold or (age is not None and 0 <= age < self.spec.min_change_interval_s):
                new = self.meet(old, proposed)
        if new != old:
            self.on_change(old, new, now)
            self.last_change = now
            self.previous = old
            self._remember(now, new)
        self.applied = new
        return new
