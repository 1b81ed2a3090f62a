"""PV inverter: unrestricted unless export must be limited, then capped to what may leave.

PV lowers import, so the import side never curtails it; only the export step does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model import PvSetpoint, PvSpec, Setpoint
from .device_base import DeviceContext, DeviceController, Prepared, Served
from .draw import symmetric_current

if TYPE_CHECKING:
    from .headroom import Headroom

UNRESTRICTED = PvSetpoint(None)


class PvController(DeviceController[PvSpec]):
    def _limit_w(self) -> float | None:
        return self.applied.power_limit_w if isinstance(self.applied, PvSetpoint) else None

    def prepare(self, ctx: DeviceContext) -> Prepared:
        phases = self.spec.phases
        present = self.present_draw(ctx, phases)
        return Prepared(phases=phases, present=present, floor_a=symmetric_current(present, phases))

    def draw_for(self, setpoint: Setpoint | None, ctx: DeviceContext) -> float:
        return 0.0  # unmeasured PV hides in the base load

    def serve(self, ctx: DeviceContext, prepared: Prepared, room: Headroom) -> Served:
        return Served(UNRESTRICTED, prepared.phases, prepared.floor_a)

    def production_w(self, ctx: DeviceContext, prepared: Prepared) -> float:
        """What it produces now; unmeasured, assume its current cap (or rating)."""
        if ctx.state is not None and (
            ctx.state.power_w is not None or ctx.state.phase_currents_a is not None
        ):
            delivered = -sum(a * ctx.voltage_v[p - 1] for p, a in prepared.present.items())
            return max(delivered, 0.0)
        limit = self._limit_w()
        return self.spec.rated_power_w if limit is None else limit

    def limit_export(self, production_w: float, excess_w: float) -> PvSetpoint:
        """Cap for `excess_w` too much export (negative: that much room to export more)."""
        if not self.spec.can_limit_power:
            if excess_w > 0:
                return PvSetpoint(0.0)
            if self._limit_w() == 0.0 and -excess_w < self.spec.rated_power_w:
                return PvSetpoint(0.0)  # stays off until its full output fits
            return UNRESTRICTED
        cap = production_w - excess_w
        if cap >= self.spec.rated_power_w:
            return UNRESTRICTED
        return PvSetpoint(float(max(0, round(cap))))

    def meet(self, old: Setpoint, new: Setpoint) -> Setpoint:
        if not isinstance(old, PvSetpoint) or not isinstance(new, PvSetpoint):
            return new
        caps = [c for c in (old.power_limit_w, new.power_limit_w) if c is not None]
        return PvSetpoint(min(caps) if caps else None)
