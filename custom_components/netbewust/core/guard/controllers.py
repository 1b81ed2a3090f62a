"""One controller per device kind, and which setpoint type each kind accepts."""

from __future__ import annotations

from ..model import (
    AnyDeviceSpec,
    BatterySetpoint,
    BatterySpec,
    ChargerSetpoint,
    ChargerSpec,
    HeatPumpSetpoint,
    HeatPumpSpec,
    LoadSetpoint,
    LoadSpec,
    PvSetpoint,
    PvSpec,
    Setpoint,
)
from .battery import BatteryController
from .charger import ChargerController
from .heat_pump import HeatPumpController
from .load import LoadController
from .pv import PvController

AnyController = (
    ChargerController | BatteryController | HeatPumpController | PvController | LoadController
)

SETPOINT_TYPES: dict[type[AnyDeviceSpec], type[Setpoint]] = {
    ChargerSpec: ChargerSetpoint,
    BatterySpec: BatterySetpoint,
    HeatPumpSpec: HeatPumpSetpoint,
    PvSpec: PvSetpoint,
    LoadSpec: LoadSetpoint,
}


def make_controller(spec: AnyDeviceSpec) -> AnyController:
    match spec:
        case ChargerSpec():
            return ChargerController(spec)
        case BatterySpec():
            return BatteryController(spec)
        case HeatPumpSpec():
            return HeatPumpController(spec)
        case PvSpec():
            return PvController(spec)
        case LoadSpec():
            return LoadController(spec)
