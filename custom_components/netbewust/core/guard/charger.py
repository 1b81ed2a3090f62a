"""EV charger: whole amperes, never below the minimum, one phase before pausing.

Also learns how far the car draws above its setpoint (cars often take ~1 A more) and
retries a car that does not start drawing again after a pause.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..model import ChargerSetpoint, ChargerSpec, ChargerState, Setpoint
from .device_base import SETTLE_S, DeviceContext, DeviceController, Prepared, Served
from .draw import symmetric_current

if TYPE_CHECKING:
    from datetime import datetime

    from .headroom import Binding, Headroom

DEFAULT_OVERSHOOT_A = 1.0  # cars commonly draw about 1 A above what they are offered
OVERSHOOT_SMOOTHING = 0.3
MAX_OVERSHOOT_A = 3.0
DRAWING_THRESHOLD_A = 1.0
MAX_RESUME_RETRIES = 3
NOT_CHARGING = frozenset({ChargerState.A, ChargerState.E, ChargerState.F})


@dataclass(frozen=True, slots=True)
class _Option:
    current_a: float
    count: int  # phases the charger is told to use
    wired: tuple[int, ...]  # phases that then carry current
    overshoot_a: float  # expected draw above the setpoint, to reserve


class ChargerController(DeviceController[ChargerSpec]):
    def __init__(self, spec: ChargerSpec) -> None:
        super().__init__(spec)
        self.overshoot_a = DEFAULT_OVERSHOOT_A  # until measured
        self._overshoot_samples = 0
        self._drawing = False
        self._ramping_down = False
        self._resumed_at: datetime | None = None
        self._retries = 0
        self._retry_now = False
        self._car_phases: int | None = None  # learnt when a car takes fewer phases than offered
        # The guard paused (or held back) the car for lack of room while its plan asked
        # for current: it resumes only with room for minimum + hysteresis. A car paused
        # because its plan asked 0 (or charge-now off, or no session) starts at its minimum.
        self._room_paused = False

    # -- what the car does -------------------------------------------------------------

    def _applied(self) -> ChargerSetpoint | None:
        return self.applied if isinstance(self.applied, ChargerSetpoint) else None

    def _observe_car_phases(self, ctx: DeviceContext) -> None:
        state = ctx.state
        if state is not None and state.charger_state is ChargerState.A:
            self._room_paused = False  # no session: the next car starts afresh
        if state is None or state.charger_state is ChargerState.A:
            self._car_phases = None  # unplugged: the next car may differ
            return
        active = state.active_phases
        if active is None:
            return
        if self._car_phases is not None and active > self._car_phases:
            self._car_phases = None  # it takes more than we thought
        applied = self._applied()
        if applied is None or applied.current_a <= 0 or self.last_change is None:
            return
        settled = (ctx.now - self.last_change).total_seconds() >= SETTLE_S
        if settled and 1 <= active < applied.phases:
            self._car_phases = active

    def _wired(self, count: int) -> tuple[int, ...]:
        """The phases `count` charger phases put current on, given what the car accepts."""
        if self._car_phases is not None:
            count = min(count, self._car_phases)
        return self.spec.phases[: max(1, count)]

    def desired(self, ctx: DeviceContext) -> tuple[float, int]:
        """(current, phase count) the charger would take with unlimited room."""
        full = len(self.spec.phases)
        if ctx.charge_now or ctx.request is None or not isinstance(ctx.request, ChargerSetpoint):
            return self.spec.max_current_a, full
        current = min(ctx.request.current_a, self.spec.max_current_a)
        if not math.isfinite(current) or current < self.spec.min_current_a:
            return 0.0, full
        phases = 1 if ctx.request.phases == 1 else full
        return current, phases

    def _learn_overshoot(self, ctx: DeviceContext, measured_a: float) -> None:
        applied = self._applied()
        if applied is None or applied.current_a < self.spec.min_current_a:
            return
        if self.last_change is None:
            return
        settled = (ctx.now - self.last_change).total_seconds() >= SETTLE_S
        if self._ramping_down and not settled:
            return  # drawing above the new setpoint may just be the car still following
        if measured_a < applied.current_a - 0.5:
            return  # the car takes less than offered: says nothing about overshoot
        sample = min(max(measured_a - applied.current_a, 0.0), MAX_OVERSHOOT_A)
        if self._overshoot_samples == 0:
            self.overshoot_a = sample  # the first look is the best guess; protect at once
        else:
            self.overshoot_a += OVERSHOOT_SMOOTHING * (sample - self.overshoot_a)
        self._overshoot_samples += 1

    def _check_retry(self, ctx: DeviceContext, drawing: bool | None) -> None:
        self._retry_now = False
        state = ctx.state.charger_state if ctx.state is not None else None
        if state in NOT_CHARGING or drawing:
            self._retries = 0
            self._resumed_at = None
            return
        applied = self._applied()
        if applied is None or applied.current_a <= 0 or self._resumed_at is None:
            return
        waiting = state is ChargerState.B or (state is None and drawing is False)
        overdue = (ctx.now - self._resumed_at).total_seconds() >= self.spec.resume_retry_s
        if waiting and overdue and self._retries < MAX_RESUME_RETRIES:
            self._retries += 1
            self._retry_now = True

    def prepare(self, ctx: DeviceContext) -> Prepared:
        self._observe_car_phases(ctx)
        applied = self._applied()
        count = applied.phases if applied is not None else len(self.spec.phases)
        active = ctx.state.active_phases if ctx.state is not None else None
        if active is not None and 1 <= active <= len(self.spec.phases):
            phases = self.spec.phases[:active]  # where the current flows now
        else:
            phases = self._wired(count)
        state = ctx.state.charger_state if ctx.state is not None else None
        present = self.present_draw(ctx, phases)
        alternative = self.alternative_draw(ctx, phases)
        drawing: bool | None = None
        if ctx.state is not None and (
            ctx.state.power_w is not None or ctx.state.phase_currents_a is not None
        ):
            measured_a = symmetric_current(present, phases)
            drawing = measured_a >= DRAWING_THRESHOLD_A
            self._learn_overshoot(ctx, measured_a)
        if state in (ChargerState.C, ChargerState.D):
            drawing = True
        self._drawing = bool(drawing)
        self._check_retry(ctx, drawing)
        return Prepared(phases=phases, present=present, floor_a=0.0, alternative=alternative)

    def draw_for(self, setpoint: Setpoint | None, ctx: DeviceContext) -> float:
        state = ctx.state.charger_state if ctx.state is not None else None
        if state in NOT_CHARGING or not isinstance(setpoint, ChargerSetpoint):
            return 0.0
        return setpoint.current_a

    # -- deciding ------------------------------------------------------------------------

    def _overshoot_allowance_a(self, now: datetime) -> float:
        """How far above its setpoint the car is expected to draw, on top of the base load.

        With its own sensor that is learnt; a car that is drawing shows it within one
        update, one that is starting gets the usual 1 A until then. Without a sensor the
        meter folds the overshoot into the base load once the car runs; only a car
        starting up (or just started) is not in there yet.
        """
        if self.measured_now:
            if self._overshoot_samples or self._drawing:
                return self.overshoot_a if self._overshoot_samples else 0.0
            return DEFAULT_OVERSHOOT_A
        applied = self._applied()
        if applied is None or applied.current_a <= 0:
            return DEFAULT_OVERSHOOT_A
        started = self._resumed_at
        if started is not None and (now - started).total_seconds() < SETTLE_S:
            return DEFAULT_OVERSHOOT_A
        return 0.0

    def _running_phases(self) -> int:
        applied = self._applied()
        return applied.phases if applied is not None and applied.current_a > 0 else 0

    def _try(
        self, ctx: DeviceContext, room: Headroom, count: int, want_a: float
    ) -> tuple[_Option | None, Binding | None]:
        wired = self._wired(count)
        available, binding = room.available_a(wired, self.spec.circuit_id)
        overshoot = self._overshoot_allowance_a(ctx.now)
        room_a = math.floor(available - overshoot + 1e-9)
        current = min(want_a, room_a)
        running = self._running_phases()
        # The hysteresis keeps the guard from flapping a car it paused for lack of room
        # (or moved to one phase): the room, not the plan, must allow minimum + hysteresis.
        # A car paused only by its plan starts as soon as the room allows its minimum.
        held = running != count and (running > 0 or self._room_paused)
        needed_room = self.spec.min_current_a + (self.spec.resume_hysteresis_a if held else 0.0)
        if current >= self.spec.min_current_a and room_a >= needed_room:
            option = _Option(float(current), count, wired, overshoot)
            return option, (binding if current < want_a else None)
        return None, binding

    def serve(self, ctx: DeviceContext, prepared: Prepared, room: Headroom) -> Served:
        want_a, want_phases = self.desired(ctx)
        applied = self._applied()
        pause = ChargerSetpoint(0.0, applied.phases if applied is not None else want_phases)
        if want_a <= 0:
            self._room_paused = False  # paused by its plan, not for lack of room
        if self._retry_now or want_a <= 0:
            return Served(pause, prepared.phases, 0.0)
        option, binding = self._try(ctx, room, want_phases, want_a)
        if option is None and want_phases > 1 and self.spec.can_switch_phases:
            option, binding = self._try(ctx, room, 1, want_a)
        state = ctx.state.charger_state if ctx.state is not None else None
        if option is None:
            # Held back for lack of room, unless no car is plugged in (no session yet).
            self._room_paused = state is not ChargerState.A
            return Served(pause, prepared.phases, 0.0, binding)
        reserve = 0.0 if state in NOT_CHARGING else option.current_a + option.overshoot_a
        setpoint = ChargerSetpoint(option.current_a, option.count)
        return Served(setpoint, option.wired, reserve, binding)

    def meet(self, old: Setpoint, new: Setpoint) -> Setpoint:
        if not isinstance(old, ChargerSetpoint) or not isinstance(new, ChargerSetpoint):
            return new
        if old.current_a <= 0 or new.current_a <= 0:
            return ChargerSetpoint(0.0, new.phases)
        return ChargerSetpoint(min(old.current_a, new.current_a), min(old.phases, new.phases))

    def on_change(self, old: Setpoint | None, new: Setpoint, now: datetime) -> None:
        if not isinstance(new, ChargerSetpoint):
            return
        was_running = isinstance(old, ChargerSetpoint) and old.current_a > 0
        self._ramping_down = isinstance(old, ChargerSetpoint) and (
            new.current_a < old.current_a or new.phases != old.phases
        )
        if new.current_a > 0:
            self._room_paused = False
        if new.current_a > 0 and not was_running:
            self._resumed_at = now
        elif new.current_a <= 0:
            self._resumed_at = None
