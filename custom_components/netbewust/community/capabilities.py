"""What a household tells its community: the connection and its aggregated flexibility.

Only totals leave the home (PV peak, battery energy and power, heat-pump flexible
power) and, when a planner holds the driver's EV settings, an envelope "can shift up
to X Wh by departure T" with the charger's smallest power. Telemetry adds the batteries'
state of charge. Device names and entities stay local.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING

from ..const import CONF_BATTERY_CAPACITY, SUBENTRY_BATTERY, SUBENTRY_MODBUS
from ..core.model import (
    NOMINAL_VOLTAGE_V,
    BatterySpec,
    ChargerSpec,
    ChargerState,
    HeatPumpControl,
    HeatPumpSpec,
    PvSpec,
)
from ..core.protocol.messages import (
    AssetKind,
    BatteryCapability,
    Capabilities,
    FlexEnvelope,
    HeatPumpCapability,
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
) -> list[tuple[BatterySpec, float | None]]:
    """Every battery of the connection with its charge (None: unknown): entity batteries
    by their SoC entity, Modbus batteries by their last poll."""
    batteries: list[tuple[BatterySpec, float | None]] = [
        (
            binding.spec,
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
        (battery.spec, battery.soc_pct) for battery in (modbus.batteries() if modbus else ())
    )
    return batteries


def battery_soc_pct(
    runtime: NetbewustRuntime, get_state: Callable[[str], State | None]
) -> float | None:
    """The charge of the batteries the capabilities report, weighted by capacity.

    None without a battery, or when one's charge or every capacity is unknown: a mean
    over part of them would misstate the whole.
    """
    capacities = battery_capacities_wh(runtime)
    readings = [
        (soc, capacities.get(spec.device_id, 0.0)) for spec, soc in _batteries(runtime, get_state)
    ]
    total_wh = sum(capacity for _soc, capacity in readings)
    known = [(soc, capacity) for soc, capacity in readings if soc is not None]
    if not readings or len(known) < len(readings) or total_wh <= 0:
        return None
    return sum(soc * capacity for soc, capacity in known) / total_wh


def household_capabilities(
    runtime: NetbewustRuntime,
    get_state: Callable[[str], State | None],
    now: datetime,
    zone: tzinfo,
    *,
    ean: str | None,
    tariff_class: str | None,
) -> Capabilities:
    """Capabilities of this connection now; raises ProtocolError on impossible values."""
    specs = [binding.spec for binding in runtime.devices.values()]
    pv = [spec.rated_power_w for spec in specs if isinstance(spec, PvSpec)]
    batteries = [spec for spec, _soc in _batteries(runtime, get_state)]
    heat_pumps = [spec for spec in specs if isinstance(spec, HeatPumpSpec)]
    capacities = battery_capacities_wh(runtime)
    connection = runtime.config.guard.connection
    return Capabilities(
        phases=connection.phases,
        fuse_current_a=connection.fuse_current_a,
        ean=ean,
        tariff_class=tariff_class,
        pv_peak_w=sum(pv) if pv else None,
        battery=BatteryCapability(
            energy_wh=sum(capacities.get(spec.device_id, 0.0) for spec in batteries),
            max_charge_w=sum(spec.max_charge_w for spec in batteries),
            max_discharge_w=sum(spec.max_discharge_w for spec in batteries),
        )
        if batteries
        else None,
        heat_pump=HeatPumpCapability(
            flexible_power_w=sum(_flexible_power_w(spec) for spec in heat_pumps)
        )
        if heat_pumps
        else None,
        envelopes=_ev_envelopes(runtime, get_state, now, zone),
    )


def _flexible_power_w(spec: HeatPumpSpec) -> float:
    # A power limit keeps the compressor at `limited_power_w`; SG-ready blocks it fully.
    if spec.control is HeatPumpControl.POWER_LIMIT:
        return max(0.0, spec.rated_power_w - spec.limited_power_w)
    return spec.rated_power_w


def _ev_envelopes(
    runtime: NetbewustRuntime,
    get_state: Callable[[str], State | None],
    now: datetime,
    zone: tzinfo,
) -> tuple[FlexEnvelope, ...]:
    """One envelope per plugged-in car, from the driver's settings in the planner."""
    planner = runtime.planner
    if planner is None:
        return ()  # without a departure time there is no envelope to offer
    start = floor_to_quarter_hour(now)
    envelopes = []
    for spec in _plugged_chargers(runtime, get_state):
        settings = planner.ev.get(spec.device_id)
        if settings is None or settings.energy_kwh <= 0:
            continue
        deadline = next_local_time(start, settings.departure, zone)
        max_power_w = spec.max_current_a * NOMINAL_VOLTAGE_V * len(spec.phases)
        # Below its minimum current the charger pauses; on one phase if it can switch.
        min_phases = 1 if spec.can_switch_phases else len(spec.phases)
        min_power_w = spec.min_current_a * NOMINAL_VOLTAGE_V * min_phases
        hours = (deadline - start).total_seconds() / 3600
        envelopes.append(
            FlexEnvelope(
                asset=AssetKind.EV,
                # What cannot be delivered by departure is not offered.
                energy_wh=min(settings.energy_kwh * 1000, max_power_w * hours),
                max_power_w=max_power_w,
                earliest_start=start,
                deadline=deadline,
                min_power_w=min(min_power_w, max_power_w),
            )
        )
    return tuple(envelopes)


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
