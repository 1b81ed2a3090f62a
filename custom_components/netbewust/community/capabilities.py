"""The connection's devices as the household session describes them, read from Home Assistant.

The session (`core/protocol/session.py`) turns these into what leaves the home: only
totals (PV peak, battery energy and power, heat-pump flexible power), an EV envelope
per plugged-in car whose driver's settings the planner holds, the batteries' state
of charge in telemetry, and for heat pumps the planner plans on the thermal model their
last plan's rows with the indoor reading now and the household's "pause steering" (the
planner's comfort settings), which the session turns into energy terms and minutes, and
the outdoor temperature their subentries read (for the server's load forecast).
Device names and entities stay local.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING

from ..const import CONF_BATTERY_CAPACITY, SUBENTRY_BATTERY, SUBENTRY_MODBUS
from ..core.model import BatterySpec, ChargerSpec, ChargerState, HeatPumpSpec, PvSpec
from ..core.protocol import session
from ..core.protocol.session import (
    HomeBattery,
    HouseholdAssets,
    PluggedCar,
    SteeringPause,
    ThermalPump,
)
from ..core.timegrid import floor_to_quarter_hour
from ..guard.devices import charger_state_from_text
from ..guard.states import PERCENT_SCALE, Rejections, read_number

if TYPE_CHECKING:
    from collections.abc import Callable

    from homeassistant.core import State

    from ..guard.runtime import NetbewustRuntime

_PLUGGED_IN = frozenset({ChargerState.B, ChargerState.C, ChargerState.D})


def battery_capacities_wh(runtime: NetbewustRuntime) -> dict[str, float]:
    """Usable energy per battery device from its subentry (kWh entered, Wh here)."""
    return {
        subentry.subentry_id: float(subentry.data[CONF_BATTERY_CAPACITY]) * 1000
        for subentry in runtime.entry.subentries.values()
        if subentry.subentry_type in (SUBENTRY_BATTERY, SUBENTRY_MODBUS)
        and isinstance(subentry.data.get(CONF_BATTERY_CAPACITY), int | float)
    }


def _batteries(
    runtime: NetbewustRuntime, get_state: Callable[[str], State | None]
) -> tuple[HomeBattery, ...]:
    """Every battery of the connection with its capacity and charge: entity batteries
    by their SoC entity, Modbus batteries by their last poll."""
    capacities = battery_capacities_wh(runtime)
    batteries = [
        HomeBattery(
            binding.spec,
            capacities.get(binding.spec.device_id),
            read_number(
                get_state,
                binding.soc_entity,
                PERCENT_SCALE,
                (0.0, 100.0),
                Rejections(),
                default_unit="%",
            ),
        )
        for binding in runtime.devices.values()
        if isinstance(binding.spec, BatterySpec)
    ]
    modbus = runtime.modbus
    batteries.extend(
        HomeBattery(battery.spec, capacities.get(battery.spec.device_id), battery.soc_pct)
        for battery in (modbus.batteries() if modbus else ())
    )
    return tuple(batteries)


def battery_soc_pct(
    runtime: NetbewustRuntime, get_state: Callable[[str], State | None]
) -> float | None:
    """The charge the telemetry reports: the session's capacity-weighted mean."""
    return session.battery_soc_pct(_batteries(runtime, get_state))


def household_assets(
    runtime: NetbewustRuntime,
    get_state: Callable[[str], State | None],
    now: datetime,
    zone: tzinfo,
    *,
    ean: str | None,
    tariff_class: str | None,
) -> HouseholdAssets:
    """This connection and its devices now, in the session's terms."""
    specs = [binding.spec for binding in runtime.devices.values()]
    pv = [spec.rated_power_w for spec in specs if isinstance(spec, PvSpec)]
    return HouseholdAssets(
        connection=runtime.config.guard.connection,
        pv_peak_w=sum(pv) if pv else None,
        batteries=_batteries(runtime, get_state),
        heat_pumps=tuple(spec for spec in specs if isinstance(spec, HeatPumpSpec)),
        thermal_pumps=_thermal_pumps(runtime),
        pause=_pause(runtime, now),
        outdoor_c=_outdoor_c(runtime),
        cars=_cars(runtime, get_state, now, zone),
        ean=ean,
        tariff_class=tariff_class,
    )


def _thermal_pumps(runtime: NetbewustRuntime) -> tuple[ThermalPump, ...]:
    """The thermal rows of the planner's last plan, with each home's indoor reading now."""
    planner = runtime.planner
    if planner is None or planner.last_thermal is None:
        return ()
    start, rows = planner.last_thermal
    return tuple(
        ThermalPump(start, row, planner.measured_indoor(row.device_id))
        for row in rows
        if row.device_id in planner.thermal
    )


def _outdoor_c(runtime: NetbewustRuntime) -> float | None:
    """The outdoor temperature the thermal heat pumps' subentries read (sensor or weather
    entity), their mean when there are several; None without a reading."""
    planner = runtime.planner
    if planner is None:
        return None
    readings = [
        reading
        for device_id in planner.thermal
        if (reading := planner.measured_outdoor(device_id)) is not None
    ]
    return sum(readings) / len(readings) if readings else None


def _pause(runtime: NetbewustRuntime, now: datetime) -> SteeringPause | None:
    """The household's "pause steering" (the planner's switch, one per pump): paused while
    any pump is, until the last pause ends (None: one without an end)."""
    planner = runtime.planner
    if planner is None:
        return None
    paused = [settings for settings in planner.comfort.values() if settings.is_paused(now)]
    if not paused:
        return None
    ends = [settings.paused_until for settings in paused]
    return SteeringPause(None if None in ends else max(e for e in ends if e is not None))


def _cars(
    runtime: NetbewustRuntime,
    get_state: Callable[[str], State | None],
    now: datetime,
    zone: tzinfo,
) -> tuple[PluggedCar, ...]:
    """Each plugged-in car with the driver's settings from the planner."""
    planner = runtime.planner
    if planner is None:
        return ()  # without a departure time there is no envelope to offer
    start = floor_to_quarter_hour(now)
    cars = []
    for spec in _plugged_chargers(runtime, get_state):
        settings = planner.ev.get(spec.device_id)
        if settings is None or settings.energy_kwh <= 0:
            continue
        departure = next_local_time(start, settings.departure, zone)
        cars.append(PluggedCar(spec, settings.energy_kwh * 1000, departure))
    return tuple(cars)


def _plugged_chargers(
    runtime: NetbewustRuntime, get_state: Callable[[str], State | None]
) -> list[ChargerSpec]:
    """Chargers with a car plugged in: entity chargers by their status entity, Modbus
    chargers by their polled pilot state."""
    plugged = []
    for binding in runtime.devices.values():
        spec = binding.spec
        if not isinstance(spec, ChargerSpec) or not binding.status_entity:
            continue
        status = get_state(binding.status_entity)
        if status is not None and charger_state_from_text(status.state) in _PLUGGED_IN:
            plugged.append(spec)
    modbus = runtime.modbus
    plugged.extend(
        charger.spec
        for charger in (modbus.chargers() if modbus else ())
        if charger.state in _PLUGGED_IN
    )
    return plugged


def next_local_time(start: datetime, local_time: time, zone: tzinfo) -> datetime:
    """The first `local_time` (wall clock in `zone`) after `start`, in UTC."""
    local = start.astimezone(zone)
    moment = datetime.combine(local.date(), local_time, tzinfo=zone)
    if moment <= local:
        moment = datetime.combine(local.date() + timedelta(days=1), local_time, tzinfo=zone)
    return moment.astimezone(UTC)
