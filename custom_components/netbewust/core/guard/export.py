"""Export limiting: when an export cap is in force (or the export price is negative),
first stop batteries discharging into the grid, then cap PV to what may leave."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..model import Limitation, LimitReason, Setpoint
from .battery import BatteryController
from .pv import PvController

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .controllers import AnyController
    from .device_base import DeviceContext, Prepared
    from .headroom import Headroom
    from .limit_resolution import ResolvedLimits
    from .measurement import Measurement


class ExportLimiter:
    """One export pass over the decision; works on the net each phase is predicted to carry."""

    def __init__(self, limits: ResolvedLimits, measurement: Measurement, room: Headroom) -> None:
        self._limits = limits
        self._room = room
        voltage = measurement.voltage_v
        net = [
            limit - spare
            for limit, spare in zip(limits.phase_limit_a, room.phase_room_a, strict=True)
        ]
        total_w = sum(n * v for n, v in zip(net, voltage, strict=True))
        cap = limits.export_cap_w
        self.excess_w = -math.inf if cap is None else -cap - total_w
        self.excess_a = [
            -math.inf if c is None else -c - n
            for c, n in zip(limits.export_phase_cap_a, net, strict=True)
        ]

    @property
    def active(self) -> bool:
        return math.isfinite(self.excess_w) or any(math.isfinite(e) for e in self.excess_a)

    def _need_a(self, phases: tuple[int, ...], watts_per_amp: float) -> float:
        per_phase = max(self.excess_a[self._room.enforced_index(p)] for p in phases)
        return max(self.excess_w / watts_per_amp, per_phase)

    def _relieve(self, phases: tuple[int, ...], relief_a: float, watts_per_amp: float) -> None:
        self.excess_w -= relief_a * watts_per_amp
        for phase in phases:
            self.excess_a[self._room.enforced_index(phase)] -= relief_a

    def apply(
        self,
        controllers: Mapping[str, AnyController],
        contexts: Mapping[str, DeviceContext],
        prepared: Mapping[str, Prepared],
        proposals: dict[str, Setpoint],
        limitations: list[Limitation],
    ) -> frozenset[str]:
        """Adjust `proposals`; returns the devices whose change must not wait (batteries)."""
        if not self.active:
            return frozenset()
        reason = self._limits.export_reason or LimitReason.EXPORT_LIMIT
        lowest_first = list(reversed(list(controllers.items())))
        urgent: set[str] = set()
        for device_id, controller in lowest_first:
            if not isinstance(controller, BatteryController):
                continue
            ctx, item = contexts[device_id], prepared[device_id]
            wpa = controller.watts_per_amp(item.phases, ctx.voltage_v)
            result = controller.limit_export(ctx, self._need_a(item.phases, wpa))
            if result is None:
                continue
            proposals[device_id], relief = result
            self._relieve(item.phases, relief, wpa)
            urgent.add(device_id)
            limitations.append(Limitation(reason, device_id))
        for device_id, controller in lowest_first:
            if not isinstance(controller, PvController):
                continue
            ctx, item = contexts[device_id], prepared[device_id]
            wpa = controller.watts_per_amp(item.phases, ctx.voltage_v)
            need_w = self._need_a(item.phases, wpa) * wpa
            if not math.isfinite(need_w):
                continue
            production = controller.production_w(ctx, item)
            setpoint = controller.limit_export(production, need_w)
            proposals[device_id] = setpoint
            cap = setpoint.power_limit_w
            expected = controller.spec.rated_power_w if cap is None else cap
            self._relieve(item.phases, (production - expected) / wpa, wpa)
            if cap is not None:
                limitations.append(Limitation(reason, device_id))
        return frozenset(urgent)
