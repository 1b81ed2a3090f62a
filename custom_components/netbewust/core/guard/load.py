"""Generic switchable load: on when its rated power fits, off otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model import LoadSetpoint, LoadSpec, Setpoint
from .device_base import DeviceContext, DeviceController, Prepared, Served
from .draw import symmetric_current

if TYPE_CHECKING:
    from .headroom import Headroom


class LoadController(DeviceController[LoadSpec]):
    def _is_on(self) -> bool:
        return not isinstance(self.applied, LoadSetpoint) or self.applied.on

    def _rated_a(self, ctx: DeviceContext) -> float:
        return self.spec.rated_power_w / self.watts_per_amp(self.spec.phases, ctx.voltage_v)

    def prepare(self, ctx: DeviceContext) -> Prepared:
        phases = self.spec.phases
        present = self.present_draw(ctx, phases)
        alternative = self.alternative_draw(ctx, phases)
        return Prepared(phases=phases, present=present, floor_a=0.0, alternative=alternative)

    def draw_for(self, setpoint: Setpoint | None, ctx: DeviceContext) -> float:
        runs = not isinstance(setpoint, LoadSetpoint) or setpoint.on
        return self._rated_a(ctx) if runs else 0.0

    def serve(self, ctx: DeviceContext, prepared: Prepared, room: Headroom) -> Served:
        wish_on = not isinstance(ctx.request, LoadSetpoint) or ctx.request.on
        if not wish_on:
            return Served(LoadSetpoint(on=False), prepared.phases, 0.0)
        available, binding = room.available_a(prepared.phases, self.spec.circuit_id)
        # A running load needs room for what it draws; a stopped one for its rating.
        needed = self._rated_a(ctx)
        if self._is_on():
            needed = max(symmetric_current(prepared.present, prepared.phases), 0.0)
        if available >= needed:
            return Served(LoadSetpoint(on=True), prepared.phases, needed)
        return Served(LoadSetpoint(on=False), prepared.phases, 0.0, binding)

    def meet(self, old: Setpoint, new: Setpoint) -> Setpoint:
        if not isinstance(old, LoadSetpoint) or not isinstance(new, LoadSetpoint):
            return new
        return LoadSetpoint(on=old.on and new.on)
