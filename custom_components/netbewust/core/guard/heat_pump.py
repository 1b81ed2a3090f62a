"""Heat pump: limit its power rather than switch it, and switch it rarely.

Switches are budgeted per UTC day, with minimum on and off times. Switching off for
the guard is only done when the budget keeps one switch to turn it back on; only the
fuse may break the budget, and that is logged. A pump that has been off for
`MAX_BLOCK_S` is reserved its start power before anyone else is served and switched on
(hot water and frost protection cannot wait longer); only inflexible load keeps it off.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..model import HeatPumpControl, HeatPumpSetpoint, HeatPumpSpec, Setpoint
from .device_base import DeviceContext, DeviceController, Prepared, Served
from .draw import symmetric_current

if TYPE_CHECKING:
    from datetime import datetime

    from .headroom import Headroom

LOGGER = logging.getLogger(__name__)
CAP_PRESSURE = 0.9  # drawing this close to its cap means the cap is what holds it back
MAX_BLOCK_S = 2 * 3600.0  # the longest a heat pump is kept off in a row


class HeatPumpController(DeviceController[HeatPumpSpec]):
    def __init__(self, spec: HeatPumpSpec) -> None:
        super().__init__(spec)
        self._switch_day: tuple[int, int, int] | None = None
        self._switches_today = 0
        self._last_switch: datetime | None = None
        self._forced_off = False

    # -- budget ----------------------------------------------------------------------------

    @property
    def is_on(self) -> bool:
        return not isinstance(self.applied, HeatPumpSetpoint) or self.applied.on

    def switches_today(self, now: datetime) -> int:
        day = (now.year, now.month, now.day)
        return self._switches_today if day == self._switch_day else 0

    def held_for(self, now: datetime) -> float:
        """Seconds since its last switch (on or off); infinite when never switched."""
        if self._last_switch is None:
            return float("inf")
        return (now - self._last_switch).total_seconds()

    def may_switch_off(self, now: datetime) -> bool:
        """Voluntary off: keeps a switch in the budget to come back on, after min on time."""
        within_budget = self.switches_today(now) + 2 <= self.spec.max_switches_per_day
        return within_budget and self.held_for(now) >= self.spec.min_on_s

    def may_switch_on(self, now: datetime) -> bool:
        if self.held_for(now) < self.spec.min_off_s:
            return False
        return self._forced_off or self.switches_today(now) < self.spec.max_switches_per_day

    def block_overdue(self, now: datetime) -> bool:
        """Off for `MAX_BLOCK_S` or longer: it must come back on whatever was asked."""
        return not self.is_on and self.held_for(now) >= MAX_BLOCK_S

    def mark_forced_off(self) -> None:
        """Off for safety, not by choice: coming back on needs no budget."""
        self._forced_off = True

    def force_off(self, now: datetime) -> bool:
        """Switch off for the fuse; True when that breaks the budget or minimum on time."""
        breaks_budget = not self.may_switch_off(now)
        if breaks_budget:
            LOGGER.warning(
                "Heat pump %s switched off for the fuse beyond its switch budget "
                "(%d of %d switches used today, on for %.0f s)",
                self.spec.name,
                self.switches_today(now),
                self.spec.max_switches_per_day,
                self.held_for(now),
            )
        self._forced_off = True
        return breaks_budget

    # -- deciding ------------------------------------------------------------------------

    def _amps(self, power_w: float, ctx: DeviceContext) -> float:
        return power_w / self.watts_per_amp(self.spec.phases, ctx.voltage_v)

    def _wish(self, ctx: DeviceContext) -> tuple[bool, float]:
        """(on, power cap W) the planner asks for; unrestricted is the rated power."""
        request = ctx.request
        if isinstance(request, HeatPumpSetpoint):
            cap = request.power_limit_w
            rated = self.spec.rated_power_w
            return request.on, rated if cap is None else max(0.0, min(cap, rated))
        return True, self.spec.rated_power_w

    def prepare(self, ctx: DeviceContext) -> Prepared:
        phases = self.spec.phases
        present = self.present_draw(ctx, phases)
        floor = 0.0
        if self.block_overdue(ctx.now):
            floor = self._amps(self._start_power_w(), ctx)
        elif self.is_on:
            if self.spec.control is HeatPumpControl.POWER_LIMIT:
                floor = self._amps(self.spec.limited_power_w, ctx)
            else:
                floor = max(symmetric_current(present, phases), 0.0)
        alternative = self.alternative_draw(ctx, phases)
        return Prepared(phases=phases, present=present, floor_a=floor, alternative=alternative)

    def _start_power_w(self) -> float:
        limited = self.spec.control is HeatPumpControl.POWER_LIMIT
        return self.spec.limited_power_w if limited else self.spec.rated_power_w

    def draw_for(self, setpoint: Setpoint | None, ctx: DeviceContext) -> float:
        watts = self.spec.rated_power_w  # never told anything: assume it runs freely
        if isinstance(setpoint, HeatPumpSetpoint):
            cap = setpoint.power_limit_w
            watts = 0.0 if not setpoint.on else self.spec.rated_power_w if cap is None else cap
        return self._amps(watts, ctx)

    def serve(self, ctx: DeviceContext, prepared: Prepared, room: Headroom) -> Served:
        phases = prepared.phases
        if prepared.fixed is not None:
            return Served(prepared.fixed, phases, 0.0)
        wish_on, wish_w = self._wish(ctx)
        available, binding = room.available_a(phases, self.spec.circuit_id)
        limited = self.spec.control is HeatPumpControl.POWER_LIMIT
        starting = False
        if not self.is_on:
            overdue = self.block_overdue(ctx.now)
            start_w = self._start_power_w() if overdue or limited else wish_w
            start_a = self._amps(start_w, ctx)
            if not overdue and not (wish_on and self.may_switch_on(ctx.now)):
                return Served(HeatPumpSetpoint(on=False), phases, 0.0)
            if available < start_a:
                return Served(HeatPumpSetpoint(on=False), phases, 0.0, binding)
            if not limited:
                # It draws nothing yet: reserve its start power, so the devices served
                # after it do not take the room it is about to draw.
                return Served(HeatPumpSetpoint(on=True), phases, start_a)
            grant = available
            starting = True
        elif not wish_on and self.may_switch_off(ctx.now):
            return Served(HeatPumpSetpoint(on=False), phases, 0.0)
        else:
            grant = max(available, prepared.floor_a)
        if not limited:
            present = max(symmetric_current(prepared.present, phases), prepared.floor_a)
            return Served(HeatPumpSetpoint(on=True), phases, max(present, 0.0))
        wish_a = self._amps(wish_w, ctx)
        grant_a = min(grant, wish_a)
        cap_w: float | None = grant_a * self.watts_per_amp(phases, ctx.voltage_v)
        if cap_w is not None and cap_w >= self.spec.rated_power_w - 1e-6:
            cap_w = None
        elif cap_w is not None:
            cap_w = max(round(cap_w), self.spec.limited_power_w)
        present_a = symmetric_current(prepared.present, phases)
        reserve = max(prepared.floor_a, min(present_a, grant_a))
        if starting or self._pressing_on_cap(present_a, ctx):
            # Starting, or held back by its cap: it takes whatever the cap now allows.
            reserve = grant_a
        held_back = grant_a < wish_a - 1e-9
        return Served(
            HeatPumpSetpoint(on=True, power_limit_w=cap_w),
            phases,
            reserve,
            binding if held_back else None,
        )

    def _pressing_on_cap(self, present_a: float, ctx: DeviceContext) -> bool:
        applied = self.applied
        if not isinstance(applied, HeatPumpSetpoint) or applied.power_limit_w is None:
            return False
        return present_a >= CAP_PRESSURE * self._amps(applied.power_limit_w, ctx)

    def meet(self, old: Setpoint, new: Setpoint) -> Setpoint:
        if not isinstance(old, HeatPumpSetpoint) or not isinstance(new, HeatPumpSetpoint):
            return new
        if not (old.on and new.on):
            return HeatPumpSetpoint(on=False)
        caps = [c for c in (old.power_limit_w, new.power_limit_w) if c is not None]
        return HeatPumpSetpoint(on=True, power_limit_w=min(caps) if caps else None)

    def on_change(self, old: Setpoint | None, new: Setpoint, now: datetime) -> None:
        was_on = not isinstance(old, HeatPumpSetpoint) or old.on
        if not isinstance(new, HeatPumpSetpoint) or new.on == was_on:
            return
        day = (now.year, now.month, now.day)
        if day != self._switch_day:
            self._switch_day = day
            self._switches_today = 0
        self._switches_today += 1
        self._last_switch = now
        if new.on:
            self._forced_off = False
