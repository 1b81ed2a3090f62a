"""Sensors of Modbus devices: what each poll read, unavailable while the device is not.

Which sensors a device gets follows from what its profile reads. The device registry
entry carries the manufacturer, model, firmware and serial the probe read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import PERCENTAGE, UnitOfElectricCurrent, UnitOfEnergy, UnitOfPower
from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo

from ..const import DOMAIN
from ..core.model import ChargerState
from ..entity import NetbewustEntity
from .profile import ReadField

if TYPE_CHECKING:
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from ..guard.runtime import NetbewustRuntime
    from . import DeviceSnapshot
    from .runtime import ModbusDevices, ModbusRunner

# IEC 61851-1 pilot states as words Home Assistant users read.
CHARGER_STATE_NAMES: dict[ChargerState, str] = {
    ChargerState.A: "no_vehicle",
    ChargerState.B: "connected",
    ChargerState.C: "charging",
    ChargerState.D: "charging_ventilated",
    ChargerState.E: "no_power",
    ChargerState.F: "error",
}

type SnapshotValue = Callable[[DeviceSnapshot], float | str | None]


@dataclass(frozen=True, kw_only=True)
class ModbusSensorDescription(SensorEntityDescription):
    value_fn: SnapshotValue
    needs: tuple[ReadField, ...]  # the profile reads at least one of these


def _phase_current(index: int) -> SnapshotValue:
    def value(snapshot: DeviceSnapshot) -> float | None:
        currents = snapshot.state.phase_currents_a
        return currents[index] if currents is not None and index < len(currents) else None

    return value


def _charger_state(snapshot: DeviceSnapshot) -> str | None:
    state = snapshot.state.charger_state
    return None if state is None else CHARGER_STATE_NAMES[state]


DESCRIPTIONS: tuple[ModbusSensorDescription, ...] = (
    ModbusSensorDescription(
        key="modbus_power",
        translation_key="modbus_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda snapshot: snapshot.state.power_w,
        needs=(ReadField.POWER_W, ReadField.PHASE_POWERS_W),
    ),
    *(
        ModbusSensorDescription(
            key=f"modbus_current_l{phase}",
            translation_key=f"modbus_current_l{phase}",
            device_class=SensorDeviceClass.CURRENT,
            native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
            state_class=SensorStateClass.MEASUREMENT,
            suggested_display_precision=1,
            value_fn=_phase_current(phase - 1),
            needs=(ReadField.PHASE_CURRENTS_A,),
        )
        for phase in (1, 2, 3)
    ),
    ModbusSensorDescription(
        key="modbus_energy",
        translation_key="modbus_energy",
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda snapshot: snapshot.energy_wh,
        needs=(ReadField.ENERGY_WH,),
    ),
    ModbusSensorDescription(
        key="modbus_soc",
        translation_key="modbus_soc",
        device_class=SensorDeviceClass.BATTERY,
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda snapshot: snapshot.state.soc_pct,
        needs=(ReadField.SOC_PCT,),
    ),
    ModbusSensorDescription(
        key="modbus_charger_state",
        translation_key="modbus_charger_state",
        device_class=SensorDeviceClass.ENUM,
        options=list(CHARGER_STATE_NAMES.values()),
        value_fn=_charger_state,
        needs=(ReadField.CHARGER_STATE,),
    ),
)


def modbus_device_info(runner: ModbusRunner, parent_device_id: str) -> DeviceInfo:
    """The device as it introduced itself to the probe; the profile fills the gaps."""
    identity = runner.identity
    info = DeviceInfo(
        identifiers={(DOMAIN, runner.subentry_id)},
        name=runner.title,
        manufacturer=str(identity.get("manufacturer") or runner.profile.manufacturer),
        model=str(identity.get("model") or runner.profile.name),
        via_device_id=parent_device_id,
    )
    if firmware := identity.get("firmware"):
        info["sw_version"] = str(firmware)
    if serial := identity.get("serial"):
        info["serial_number"] = str(serial)
    return info


@callback
def async_add_modbus_sensors(
    runtime: NetbewustRuntime, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """One sensor per reading the device's profile provides, on the device's subentry."""
    modbus = runtime.modbus
    if modbus is None:
        return
    for runner in modbus.runners.values():
        reads = runner.profile.reads
        async_add_entities(
            [
                ModbusSensor(modbus, runner, description, runtime.connection_device_id)
                for description in DESCRIPTIONS
                if any(field in reads for field in description.needs)
            ],
            config_subentry_id=runner.subentry_id,
        )


class ModbusSensor(NetbewustEntity, SensorEntity):
    """Refreshed after every poll round (about every second); written only on change."""

    entity_description: ModbusSensorDescription

    def __init__(
        self,
        modbus: ModbusDevices,
        runner: ModbusRunner,
        description: ModbusSensorDescription,
        parent_device_id: str,
    ) -> None:
        self._runner = runner
        super().__init__(
            description,
            unique_id=f"{runner.subentry_id}_{description.key}",
            device_info=modbus_device_info(runner, parent_device_id),
            updates=(modbus.updates,),
        )

    @property
    def available(self) -> bool:
        return self._runner.reachable and self._runner.snapshot is not None

    @property
    def native_value(self) -> float | str | None:
        snapshot = self._runner.snapshot
        return None if snapshot is None else self.entity_description.value_fn(snapshot)
