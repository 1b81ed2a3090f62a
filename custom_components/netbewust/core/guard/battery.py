"""Home battery: discharges to cover a shortfall of what is served before it.

Its discharge capacity counts as room for everything with a higher priority; at its own
slot it takes back what was not needed. The count fades out over the last
`SOC_FADE_PCT` points above its minimum: the guard does not know its capacity, and just
above the minimum a battery has minutes of discharge left at most, so devices before it
give back the room step by step rather than all at once when it stops. When nothing
constrains it, it stays in its own autonomous mode (setpoint None), or follows the
planner's request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model import BatterySetpoint, BatterySpec, Setpoint
from .device_base import DeviceContext, DeviceController, Prepared, Served
from .draw import clean_soc, symmetric_current

if TYPE_CHECKING:
    from .headroom import Headroom

_EPSILON_A = 1e-6
SOC_FADE_PCT = 5.0  # percentage points above the minimum over which the count fades


class BatteryController(DeviceController[BatterySpec]):
    def __init__(self, spec: BatterySpec) -> None:
        super().__init__(spec)
        self.draw_a = 0.0  # per phase, as decided in this decision; + charges

    def _wpa(self, ctx: DeviceContext) -> float:
        return self.watts_per_amp(self.spec.phases, ctx.voltage_v)

    def _wish_a(self, ctx: DeviceContext, present_a: float) -> tuple[float, bool]:
        """(per-phase current wanted, autonomous?)."""
        request = ctx.request
        if isinstance(request, BatterySetpoint) and request.power_w is not None:
            wpa = self._wpa(ctx)
            wanted = max(-self.spec.max_discharge_w, min(request.power_w, self.spec.max_charge_w))
            return wanted / wpa, False
        if isinstance(self.applied, BatterySetpoint) and self.applied.power_w is not None:
            # Forced by the guard, its present draw is what it was told, not what it would
            # do on its own (unknown: counted as idle), so a discharge the connection still
            # needs is kept until its own mode would fit too.
            return 0.0, True
        return present_a, True

    def _discharge_capacity_a(self, ctx: DeviceContext) -> float:
        soc = clean_soc(ctx.state)
        if soc is None or soc <= self.spec.min_soc_pct:
            return 0.0  # unknown or empty: never count on it
        share = min((soc - self.spec.min_soc_pct) / SOC_FADE_PCT, 1.0)
        return share * self.spec.max_discharge_w / self._wpa(ctx)

    def prepare(self, ctx: DeviceContext) -> Prepared:
        phases = self.spec.phases
        present = self.present_draw(ctx, phases)
        wish_a, _ = self._wish_a(ctx, symmetric_current(present, phases))
        floor = min(-self._discharge_capacity_a(ctx), wish_a, 0.0)
        alternative = self.alternative_draw(ctx, phases)
        return Prepared(phases=phases, present=present, floor_a=floor, alternative=alternative)

    def draw_for(self, setpoint: Setpoint | None, ctx: DeviceContext) -> float:
        if isinstance(setpoint, BatterySetpoint) and setpoint.power_w is not None:
            return setpoint.power_w / self._wpa(ctx)
        return 0.0  # autonomous and unmeasured: unknown, counted in the base load

    def serve(self, ctx: DeviceContext, prepared: Prepared, room: Headroom) -> Served:
        wish_a, autonomous = self._wish_a(ctx, symmetric_current(prepared.present, prepared.phases))
        available, binding = room.available_a(prepared.phases, self.spec.circuit_id)
        draw = max(prepared.floor_a, min(wish_a, available))
        self.draw_a = draw
        held_back = draw < wish_a - _EPSILON_A
        if autonomous and not held_back:
            return Served(BatterySetpoint(None), prepared.phases, draw)
        setpoint = BatterySetpoint(float(round(draw * self._wpa(ctx))))
        return Served(setpoint, prepared.phases, draw, binding if held_back else None)

    def limit_export(self, ctx: DeviceContext, needed_a: float) -> tuple[Setpoint, float] | None:
        """Discharge less by up to `needed_a` per phase; None when it is not discharging."""
        if self.draw_a >= 0 or needed_a <= 0:
            return None
        relief = min(-self.draw_a, needed_a)
        self.draw_a += relief
        return BatterySetpoint(float(round(self.draw_a * self._wpa(ctx)))), relief

    def meet(self, old: Setpoint, new: Setpoint) -> Setpoint:
        if not isinstance(old, BatterySetpoint) or not isinstance(new, BatterySetpoint):
            return new
        if old.power_w is None or new.power_w is None:
            return old if new.power_w is None else new
        return BatterySetpoint(min(old.power_w, new.power_w))
