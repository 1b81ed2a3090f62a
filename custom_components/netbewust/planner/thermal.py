"""Heat pumps planned on the home's thermal model (issue 13), the Home Assistant side.

A heat-pump subentry with a building type, an insulation era and an outdoor temperature
source is planned as a `PlanThermalHeatPump`; without them it keeps the daily heat need
of before. Here: its settings from the subentry, the household's comfort settings (kept
by the number, time and switch entities), the outdoor series and the plan's problem row.
The model, its defaults and the fit are the engine's (core/thermal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.core import split_entity_id

from ..const import (
    CONF_BOILER_EFFICIENCY,
    CONF_BOILER_POWER,
    CONF_BUILDING_TYPE,
    CONF_DHW_ENTITY,
    CONF_GAS_PRICE,
    CONF_HEAT_PUMP_MODULATION,
    CONF_HEAT_PUMP_TYPE,
    CONF_HYBRID_POWER_CAP,
    CONF_INDOOR_TEMPERATURE_ENTITY,
    CONF_INSULATION_ERA,
    CONF_OUTDOOR_TEMPERATURE_ENTITY,
    CONF_POWER_ENTITY,
    CONF_POWER_LIMIT_ENTITY,
    DEFAULT_BOILER_EFFICIENCY_PCT,
    DEFAULT_BOILER_POWER_KW,
    DEFAULT_GAS_PRICE_EUR_PER_M3,
    LOGGER,
    SUBENTRY_HEAT_PUMP,
)
from ..core.planning.problem import HeatPumpControl, PlanThermalHeatPump
from ..core.thermal import (
    BuildingType,
    ComfortBand,
    CopModel,
    GasBoiler,
    InsulationEra,
    comfort_band,
)
from ..core.thermal.building import ComfortPeriod, ThermalError
from ..core.timegrid import QUARTER, as_utc

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from zoneinfo import ZoneInfo

    from homeassistant.config_entries import ConfigSubentry

    from ..core.model import HeatPumpSpec
    from ..core.thermal import ThermalParameters

# The guard releases any block after two hours (core/guard/heat_pump.py MAX_BLOCK_S); a
# plan that counted on longer blocks would predict a colder home than there will be.
MAX_BLOCK_STEPS = 8
# Indoor readings outside this range are a broken sensor, not a home.
INDOOR_RANGE_C = (0.0, 40.0)
OUTDOOR_RANGE_C = (-50.0, 60.0)
# The most the band's top stands above the day set point: room for pre-heating.
PREHEAT_ABOVE_K = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ThermalConfig:
    """A heat-pump subentry's thermal settings (see const.py for the keys)."""

    device_id: str
    outdoor_entity: str
    indoor_entity: str | None
    power_entity: str | None
    dhw_entity: str | None
    building: BuildingType
    era: InsulationEra
    modulating: bool
    boiler: GasBoiler | None  # set: a hybrid
    hybrid_cap_w: float | None

    @property
    def outdoor_is_weather(self) -> bool:
        return split_entity_id(self.outdoor_entity)[0] == "weather"


def _entity(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and "." in value else None


def _positive(data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ThermalError(f"{key} must be a positive number, got {value!r}")
    return float(value)


def thermal_config(subentry: ConfigSubentry) -> ThermalConfig | None:
    """The subentry's thermal settings; None (the daily heat need, as before) when they are
    absent, or do not validate (logged: the pump then runs as it always did)."""
    data = subentry.data
    if subentry.subentry_type != SUBENTRY_HEAT_PUMP:
        return None
    outdoor = _entity(data, CONF_OUTDOOR_TEMPERATURE_ENTITY)
    if outdoor is None or CONF_BUILDING_TYPE not in data or CONF_INSULATION_ERA not in data:
        return None
    try:
        building = BuildingType(data[CONF_BUILDING_TYPE])
        era = InsulationEra(data[CONF_INSULATION_ERA])
        boiler = None
        if data.get(CONF_HEAT_PUMP_TYPE) == "hybrid":
            boiler = GasBoiler(
                max_heat_w=_positive(data, CONF_BOILER_POWER, DEFAULT_BOILER_POWER_KW) * 1000,
                gas_price_eur_per_m3=_positive(data, CONF_GAS_PRICE, DEFAULT_GAS_PRICE_EUR_PER_M3),
                efficiency=_positive(data, CONF_BOILER_EFFICIENCY, DEFAULT_BOILER_EFFICIENCY_PCT)
                / 100,
            )
        cap = data.get(CONF_HYBRID_POWER_CAP)
        hybrid_cap_w = _positive(data, CONF_HYBRID_POWER_CAP, 1.0) if cap is not None else None
    except (ValueError, ThermalError) as err:
        LOGGER.warning("%s: thermal settings ignored (%s); planned as before", subentry.title, err)
        return None
    has_limit = _entity(data, CONF_POWER_LIMIT_ENTITY) is not None
    default_modulation = "modulating" if has_limit else "on_off"
    return ThermalConfig(
        device_id=subentry.subentry_id,
        outdoor_entity=outdoor,
        indoor_entity=_entity(data, CONF_INDOOR_TEMPERATURE_ENTITY),
        power_entity=_entity(data, CONF_POWER_ENTITY),
        dhw_entity=_entity(data, CONF_DHW_ENTITY),
        building=building,
        era=era,
        # Only a power-limit entity can hold a pump at a planned power; SG-Ready blocks.
        modulating=data.get(CONF_HEAT_PUMP_MODULATION, default_modulation) == "modulating",
        boiler=boiler,
        hybrid_cap_w=hybrid_cap_w if boiler is not None else None,
    )


def thermal_configs(subentries: Iterable[ConfigSubentry]) -> dict[str, ThermalConfig]:
    return {c.device_id: c for s in subentries if (c := thermal_config(s)) is not None}


@dataclass(slots=True)
class ComfortSettings:
    """What the household chose (number, time and switch entities; restored on start)."""

    day_setpoint_c: float = 20.0
    tolerance_k: float = 0.5
    night_setpoint_c: float = 16.0
    night_start: time = time(22, 30)
    night_end: time = time(6, 30)
    comfort_now_until_time: time = time(22, 30)
    comfort_now_until: datetime | None = None  # set: "comfort now" is on until then
    pause_hours: float = 3.0  # 0: until switched off
    paused: bool = False
    paused_until: datetime | None = None

    def is_paused(self, now: datetime) -> bool:
        return self.paused and (self.paused_until is None or now < self.paused_until)

    def comfort_now(self, now: datetime) -> bool:
        return self.comfort_now_until is not None and now < self.comfort_now_until

    def periods(self) -> tuple[ComfortPeriod, ...]:
        """Day and night; the night band reaches up to the day's top so the plan may
        pre-heat for the morning."""
        tolerance = self.tolerance_k
        day_top = max(self.day_setpoint_c, self.night_setpoint_c) + PREHEAT_ABOVE_K
        return (
            ComfortPeriod(self.night_end, self.day_setpoint_c, tolerance, PREHEAT_ABOVE_K),
            ComfortPeriod(
                self.night_start,
                self.night_setpoint_c,
                tolerance,
                max(day_top - self.night_setpoint_c, tolerance),
            ),
        )

    def band(self, start: datetime, n_steps: int, zone: ZoneInfo) -> ComfortBand:
        return comfort_band(
            start,
            n_steps,
            periods=self.periods(),
            local_tz=zone,
            comfort_now_until=self.comfort_now_until,
            comfort_now_setpoint_c=self.day_setpoint_c,
        )


def next_local(now: datetime, moment: time, zone: ZoneInfo) -> datetime:
    """The next `moment` of local time after `now` (UTC)."""
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), moment, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), moment, tzinfo=zone)
    return as_utc(candidate)


def outdoor_series(
    samples: Sequence[tuple[datetime, float]],
    current_c: float | None,
    start: datetime,
    n_steps: int,
) -> tuple[float, ...] | None:
    """The outdoor temperature per quarter hour: each forecast value holds until the next,
    the current reading before the first; None when there is nothing to go on."""
    usable = sorted(
        (as_utc(moment), value)
        for moment, value in samples
        if math.isfinite(value) and OUTDOOR_RANGE_C[0] <= value <= OUTDOOR_RANGE_C[1]
    )
    if current_c is None and not usable:
        return None
    values = []
    index = 0
    latest = current_c if current_c is not None else usable[0][1]
    for k in range(n_steps):
        moment = start + k * QUARTER
        while index < len(usable) and usable[index][0] <= moment:
            latest = usable[index][1]
            index += 1
        values.append(latest)
    return tuple(values)


def plausible_temperature(
    value: float | None, bounds: tuple[float, float] = INDOOR_RANGE_C
) -> float | None:
    if value is None or not math.isfinite(value) or not bounds[0] <= value <= bounds[1]:
        return None
    return value


def thermal_heat_pump(
    spec: HeatPumpSpec,
    config: ThermalConfig,
    band: ComfortBand,
    *,
    parameters: ThermalParameters,
    outdoor_c: tuple[float, ...],
    indoor_c: float,
    min_off_s: float,
) -> PlanThermalHeatPump:
    """The plan's row for the pump. On/off pumps are blocked at most half their daily
    switch budget times a day (a block is a switch off and one back on)."""
    max_power = spec.rated_power_w
    if config.boiler is not None and config.hybrid_cap_w is not None:
        max_power = min(max_power, config.hybrid_cap_w)
    min_window = max(1, math.ceil(min_off_s / QUARTER.total_seconds()))
    return PlanThermalHeatPump(
        device_id=spec.device_id,
        thermal=parameters,
        cop=CopModel(),
        max_power_w=max_power,
        outdoor_temperature_c=outdoor_c,
        comfort=band,
        indoor_temperature_c=indoor_c,
        control=HeatPumpControl.MODULATING if config.modulating else HeatPumpControl.ON_OFF,
        boiler=config.boiler,
        max_windows_per_day=spec.max_switches_per_day // 2,
        min_window_steps=min(min_window, MAX_BLOCK_STEPS),
        max_window_steps=MAX_BLOCK_STEPS,
        phases=spec.phases,
    )
