"""The one safe state per device kind, used wherever the guard is unsure.

Unsure means: no fresh meter data, an evaluation that raised (in the engine or in a
host's adapters), or an emergency order. docs/guard.md ("Safe states") lists them:

- charger: its safe current, the static share of the fuse it may always take (set by
  the installer; default its minimum, as chargers' own communication-loss settings do),
  on the phases it uses; an emergency pauses it;
- battery: idle (0 W);
- heat pump: with a power limit, on at its limited power (it keeps running, so hot water
  and frost protection work); SG-Ready: blocked after its minimum on time, but never
  for longer than `MAX_BLOCK_S` in a row, then released for at least its minimum on time;
- PV: unrestricted, unless an export cap is in force (then capped to it, or off);
- switchable load: off (hosts switch back on only what the guard switched off).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model import (
    BatterySetpoint,
    ChargerSetpoint,
    ChargerSpec,
    HeatPumpControl,
    HeatPumpSetpoint,
    LoadSetpoint,
    PvSetpoint,
    Setpoint,
)
from .battery import BatteryController
from .charger import ChargerController
from .heat_pump import MAX_BLOCK_S, HeatPumpController
from .load import LoadController
from .pv import UNRESTRICTED, PvController

if TYPE_CHECKING:
    from datetime import datetime

    from .controllers import AnyController

__all__ = ["MAX_BLOCK_S", "safe_current_a", "safe_current_allowed", "safe_setpoint"]

IDLE = BatterySetpoint(0.0)


def safe_current_a(spec: ChargerSpec) -> float:
    """The current a charger may always take; 0 when the installer chose to pause it."""
    current = spec.min_current_a if spec.safe_current_a is None else spec.safe_current_a
    return min(current, spec.max_current_a)


def safe_current_allowed(safe_a: float, min_current_a: float, max_current_a: float) -> bool:
    """Whether an installer's safe current is one a charger can keep: 0 (it pauses) or
    from its minimum to its maximum (hosts check their settings with this)."""
    return safe_a == 0 or min_current_a <= safe_a <= max_current_a


def safe_setpoint(
    controller: AnyController, now: datetime, export_cap_w: float | None, *, emergency: bool
) -> Setpoint:
    """The device's safe setpoint at `now`; `emergency` also pauses chargers."""
    match controller:
        case ChargerController():
            applied = controller.applied
            phases = (
                applied.phases
                if isinstance(applied, ChargerSetpoint)
                else len(controller.spec.phases)
            )
            current = 0.0 if emergency else safe_current_a(controller.spec)
            return ChargerSetpoint(current, phases)
        case BatteryController():
            return IDLE
        case HeatPumpController():
            return _heat_pump(controller, now)
        case PvController():
            return _pv(controller, export_cap_w)
        case LoadController():
            return LoadSetpoint(on=False)


def _heat_pump(controller: HeatPumpController, now: datetime) -> HeatPumpSetpoint:
    spec = controller.spec
    if spec.control is HeatPumpControl.POWER_LIMIT:
        return HeatPumpSetpoint(on=True, power_limit_w=spec.limited_power_w)
    held_s = controller.held_for(now)
    if controller.is_on:
        if held_s < spec.min_on_s:
            return HeatPumpSetpoint(on=True)  # a compressor keeps its minimum on time
    elif held_s >= MAX_BLOCK_S:
        return HeatPumpSetpoint(on=True)  # blocked long enough: hot water needs it now
    # Blocking for safety must not eat the budget needed to come back on.
    controller.mark_forced_off()
    return HeatPumpSetpoint(on=False)


def _pv(controller: PvController, export_cap_w: float | None) -> PvSetpoint:
    spec = controller.spec
    if export_cap_w is None or export_cap_w >= spec.rated_power_w:
        return UNRESTRICTED
    if not spec.can_limit_power:
        return PvSetpoint(0.0)
    return PvSetpoint(float(round(export_cap_w)))
