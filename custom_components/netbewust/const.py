"""Constants of the Netbewust integration: domain, config keys, subentry types."""

from __future__ import annotations

import logging
from typing import Final

from .core.model import MIN_CHARGE_CURRENT_A
from .core.units import MAX_FUSE_CURRENT_A

DOMAIN: Final = "netbewust"
LOGGER = logging.getLogger(__package__)

# Main entry: one per grid connection.
CONF_CONNECTION_TYPE: Final = "connection_type"  # "1x25", "1x35", "3x25", "3x35", "3x40", "custom"
CONF_PHASES: Final = "phases"  # 1 or 3
CONF_FUSE_CURRENT: Final = "fuse_current"  # A per phase
CONF_SAFETY_MARGIN: Final = "safety_margin"  # A
CONF_PEAK_LIMIT: Final = "peak_limit"  # kW, optional
CONF_PEAK_MODE: Final = "peak_mode"  # "instantaneous" | "quarter_hour"
CONF_STALE_AFTER: Final = "stale_after"  # s

CONF_METER_MODE: Final = "meter_mode"  # "per_phase" | "total"
METER_MODE_PER_PHASE: Final = "per_phase"
METER_MODE_TOTAL: Final = "total"
# No P1 entities: a Modbus meter subentry measures the connection.
METER_MODE_MODBUS: Final = "modbus"
# Per-phase meter entities; the phase number is appended: "power_import_l1".
CONF_POWER_IMPORT: Final = "power_import"
CONF_POWER_EXPORT: Final = "power_export"
CONF_VOLTAGE: Final = "voltage"
CONF_CURRENT: Final = "current"
# Total-only meters.
CONF_POWER_IMPORT_TOTAL: Final = "power_import_total"
CONF_POWER_EXPORT_TOTAL: Final = "power_export_total"
CONF_QUARTER_HOUR_DEMAND: Final = "quarter_hour_demand"

CONNECTION_TYPES: Final[dict[str, tuple[int, float]]] = {
    "1x25": (1, 25.0),
    "1x35": (1, 35.0),
    "3x25": (3, 25.0),
    "3x35": (3, 35.0),
    "3x40": (3, 40.0),
}
CONNECTION_TYPE_CUSTOM: Final = "custom"
DEFAULT_CONNECTION_TYPE: Final = "1x25"
DEFAULT_SAFETY_MARGIN_A: Final = 1.0
DEFAULT_STALE_AFTER_S: Final = 10.0
# Slower meters cannot protect a fuse quickly; DSMR in HA defaults to 30 s.
SLOW_METER_INTERVAL_S: Final = 10.0


def phase_key(key: str, phase: int) -> str:
    """Config key of a per-phase entity, e.g. phase_key(CONF_VOLTAGE, 2) == "voltage_l2"."""
    return f"{key}_l{phase}"


# Subentries: one per controlled device or sub-circuit.
SUBENTRY_CHARGER: Final = "charger"
SUBENTRY_BATTERY: Final = "battery"
SUBENTRY_HEAT_PUMP: Final = "heat_pump"
SUBENTRY_PV: Final = "pv"
SUBENTRY_LOAD: Final = "load"
SUBENTRY_CIRCUIT: Final = "circuit"
# A device Netbewust reads and steers itself over Modbus, by address.
SUBENTRY_MODBUS: Final = "modbus_device"
DEVICE_SUBENTRY_TYPES: Final = (
    SUBENTRY_CHARGER,
    SUBENTRY_BATTERY,
    SUBENTRY_HEAT_PUMP,
    SUBENTRY_PV,
    SUBENTRY_LOAD,
    SUBENTRY_MODBUS,
)

# Common device subentry keys.
CONF_PRIORITY: Final = "priority"  # lower is served first
CONF_DEVICE_PHASES: Final = "device_phases"  # list of phase numbers, e.g. ["1"] or ["1","2","3"]
CONF_CIRCUIT: Final = "circuit"  # subentry id of a circuit, optional
CONF_POWER_ENTITY: Final = "power_entity"

# Charger.
CONF_CURRENT_ENTITY: Final = "current_entity"  # number: max current per connector
CONF_STATUS_ENTITY: Final = "status_entity"  # sensor with the IEC 61851 state or a text status
CONF_PHASE_SWITCH_ENTITY: Final = "phase_switch_entity"  # select/switch for 1 <-> 3 phases
CONF_MIN_CURRENT: Final = "min_current"
CONF_MAX_CURRENT: Final = "max_current"
# What a charger keeps whenever the guard is unsure; absent: its minimum current.
CONF_SAFE_CURRENT: Final = "safe_current"
CONF_CAN_SWITCH_PHASES: Final = "can_switch_phases"

# Battery.
CONF_SETPOINT_ENTITY: Final = "setpoint_entity"  # number: power setpoint (W)
CONF_MODE_ENTITY: Final = "mode_entity"  # select: operating mode
CONF_SOC_ENTITY: Final = "soc_entity"
CONF_MAX_CHARGE_POWER: Final = "max_charge_power"
CONF_MAX_DISCHARGE_POWER: Final = "max_discharge_power"
CONF_MIN_SOC: Final = "min_soc"

# Heat pump.
CONF_SG_READY_SWITCH_1: Final = "sg_ready_switch_1"
CONF_SG_READY_SWITCH_2: Final = "sg_ready_switch_2"
CONF_POWER_LIMIT_ENTITY: Final = "power_limit_entity"  # number (W); also PV
CONF_RATED_POWER: Final = "rated_power"
CONF_LIMITED_POWER: Final = "limited_power"
CONF_MAX_SWITCHES_PER_DAY: Final = "max_switches_per_day"
CONF_MIN_ON_TIME: Final = "min_on_time"  # minutes
CONF_MIN_OFF_TIME: Final = "min_off_time"  # minutes
# Heat pump planned on the home's thermal model (all optional; without a building type
# and an outdoor temperature the pump is planned from the daily heat need as before).
CONF_INDOOR_TEMPERATURE_ENTITY: Final = "indoor_temperature_entity"  # sensor, deg C
CONF_OUTDOOR_TEMPERATURE_ENTITY: Final = "outdoor_temperature_entity"  # sensor or weather
CONF_BUILDING_TYPE: Final = "building_type"  # core.thermal.BuildingType
CONF_INSULATION_ERA: Final = "insulation_era"  # core.thermal.InsulationEra
CONF_HEAT_PUMP_TYPE: Final = "heat_pump_type"  # "all_electric" | "hybrid"
CONF_HEAT_PUMP_MODULATION: Final = "heat_pump_modulation"  # "modulating" | "on_off"
CONF_HYBRID_POWER_CAP: Final = "hybrid_power_cap"  # W: a hybrid's electric cap
CONF_BOILER_POWER: Final = "boiler_power"  # kW of heat
CONF_GAS_PRICE: Final = "gas_price"  # EUR/m3
CONF_BOILER_EFFICIENCY: Final = "boiler_efficiency"  # %, upper heating value
CONF_DHW_ENTITY: Final = "dhw_entity"  # on while the pump heats domestic hot water
HEAT_PUMP_TYPES: Final = ("all_electric", "hybrid")
HEAT_PUMP_MODULATIONS: Final = ("modulating", "on_off")
DEFAULT_BOILER_POWER_KW: Final = 24.0
DEFAULT_GAS_PRICE_EUR_PER_M3: Final = 1.40
DEFAULT_BOILER_EFFICIENCY_PCT: Final = 90.0

# PV inverter and generic load.
CONF_SWITCH_ENTITY: Final = "switch_entity"

# Circuit.
CONF_CIRCUIT_MAX_CURRENT: Final = "circuit_max_current"
CONF_PARENT_CIRCUIT: Final = "parent_circuit"

# Config flow: defaults and accepted ranges (the flow validates against these).
CUSTOM_FUSE_RANGE_A: Final = (6.0, MAX_FUSE_CURRENT_A)
CUSTOM_PHASE_OPTIONS: Final = ("1", "3")
PEAK_MODES: Final = ("instantaneous", "quarter_hour")
DEFAULT_PEAK_MODE: Final = "instantaneous"
STALE_AFTER_RANGE_S: Final = (1.0, 300.0)
# How far back the flow looks in the recorder to measure the meter's update interval.
METER_INTERVAL_WINDOW_S: Final = 600.0
CHARGER_CURRENT_RANGE_A: Final = (MIN_CHARGE_CURRENT_A, 80.0)
DEFAULT_MIN_SOC_PCT: Final = 10.0
DEFAULT_LIMITED_POWER_W: Final = 450.0
DEFAULT_MAX_SWITCHES_PER_DAY: Final = 2
DEFAULT_MIN_ON_OFF_MINUTES: Final = 30
CIRCUIT_CURRENT_RANGE_A: Final = (1.0, 250.0)
NO_CIRCUIT: Final = "none"  # select option: device or circuit not behind a sub-circuit

# Planner subentry (at most one per connection): prices, tariff and forecast sources.
SUBENTRY_PLANNER: Final = "planner"
CONF_PRICE_SOURCE: Final = "price_source"  # "nordpool" | "entity"
PRICE_SOURCE_NORDPOOL: Final = "nordpool"
PRICE_SOURCE_ENTITY: Final = "entity"
CONF_NORDPOOL_AREA: Final = "nordpool_area"
CONF_PRICE_ENTITY: Final = "price_entity"
CONF_ENERGY_TAX: Final = "energy_tax"  # EUR/kWh, before VAT
CONF_SUPPLIER_MARKUP: Final = "supplier_markup"  # EUR/kWh, before VAT
CONF_VAT: Final = "vat"  # %
CONF_EXPORT_RULE: Final = "export_rule"  # "spot" | "spot_minus_fee" | "fixed"
CONF_EXPORT_FEE: Final = "export_fee"  # EUR/kWh
CONF_EXPORT_FIXED: Final = "export_fixed"  # EUR/kWh
CONF_PV_FORECAST_ENTITY: Final = "pv_forecast_entity"
CONF_WEATHER_ENTITY: Final = "weather_entity"
CONF_HEAT_PER_DEGREE_DAY: Final = "heat_per_degree_day"  # kWh of heat per degree day
CONF_HEAT_BASE_TEMPERATURE: Final = "heat_base_temperature"  # deg C
CONF_HEAT_FIXED: Final = "heat_fixed"  # kWh of heat per day (hot water)
CONF_CAPACITY_TARIFF: Final = "capacity_tariff"  # EUR per kW of the highest quarter hour
DEFAULT_NORDPOOL_AREA: Final = "NL"

# Modbus device subentry: a device Netbewust reads and steers itself, by address.
CONF_MODBUS_LINK: Final = "modbus_link"  # "tcp" | "rtu_over_tcp" | "serial"
CONF_MODBUS_HOST: Final = "modbus_host"
CONF_MODBUS_PORT: Final = "modbus_port"
CONF_MODBUS_SERIAL_PORT: Final = "modbus_serial_port"
CONF_MODBUS_BAUDRATE: Final = "modbus_baudrate"  # serial links; 9600 8N1 when absent
CONF_MODBUS_PARITY: Final = "modbus_parity"  # "N" | "E" | "O"
CONF_MODBUS_STOPBITS: Final = "modbus_stopbits"  # 1 | 2
CONF_MODBUS_UNIT_ID: Final = "modbus_unit_id"
CONF_MODBUS_PROFILE: Final = "modbus_profile"  # a profile id from modbus/profiles/
# What the probe read when the device was added; shown in the device registry.
CONF_MODBUS_IDENTITY: Final = "modbus_identity"
MODBUS_PROBE_TIMEOUT_S: Final = 3.0
CONF_BATTERY_CAPACITY: Final = "battery_capacity"  # kWh, battery subentry; needed to plan it
