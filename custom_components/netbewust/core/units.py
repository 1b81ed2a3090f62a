"""Physical constants and the one set of ranges every part of Netbewust accepts.

Protocol v1, the live allocator, the collective planner and the neighbourhood simulator
take their bounds from here, so a value the protocol accepts is never rejected further
on (a 3x100 A member once stopped every allocation round because the allocator had its
own, narrower bound). The ranges are generous on purpose: they reject garbage, not
unusual homes. The annotated types carry the bounds for pydantic; the constants are for
code that checks or clips by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

from pydantic import AfterValidator, Field

NOMINAL_VOLTAGE_V: Final = 230.0  # EN 50160 low-voltage nominal, phase to neutral

# A connection: 1 or 3 phases, each behind a fuse of at most 250 A (a large
# low-voltage connection; Dutch homes have 1x25 A to 3x80 A).
PHASE_COUNTS: Final = (1, 3)
MIN_FUSE_CURRENT_A: Final = 1.0
MAX_FUSE_CURRENT_A: Final = 250.0
# Far above any household fuse (250 A x 230 V = 57.5 kW): beyond it a value is garbage.
MAX_PHASE_POWER_W: Final = 100_000.0
MAX_CONNECTION_POWER_W: Final = 3 * MAX_PHASE_POWER_W
MAX_ENERGY_WH: Final = 1_000_000.0  # 1 MWh: a week of a large home's flexible energy
EARLIEST_TIMESTAMP: Final = datetime(2020, 1, 1, tzinfo=UTC)
LATEST_TIMESTAMP: Final = datetime(2100, 1, 1, tzinfo=UTC)

FuseCurrentA = Annotated[float, Field(ge=MIN_FUSE_CURRENT_A, le=MAX_FUSE_CURRENT_A)]
# A power in one direction (a cap, a device's rating), and net grid power (import > 0).
PowerW = Annotated[float, Field(ge=0.0, le=MAX_CONNECTION_POWER_W)]
SignedPowerW = Annotated[float, Field(ge=-MAX_CONNECTION_POWER_W, le=MAX_CONNECTION_POWER_W)]
PhasePowerW = Annotated[float, Field(ge=0.0, le=MAX_PHASE_POWER_W)]
SignedPhasePowerW = Annotated[float, Field(ge=-MAX_PHASE_POWER_W, le=MAX_PHASE_POWER_W)]
EnergyWh = Annotated[float, Field(ge=0.0, le=MAX_ENERGY_WH)]
Percent = Annotated[float, Field(ge=0.0, le=100.0)]

# A heat pump's home as a leaky thermal store (protocol v1's heat-pump flexibility):
# heat above a reference temperature, the heat flows in and out of it, the pump's COP.
MAX_STORED_HEAT_KWH: Final = 1_000.0  # 50 kWh/K (a large house) over 20 K is 1 MWh
MAX_HEAT_FLOW_KW: Final = MAX_CONNECTION_POWER_W / 1000  # loss, gains, boiler heat
MAX_TIME_CONSTANT_H: Final = 10_000.0  # R x C: a passive house is a few hundred hours
MAX_COP: Final = 15.0  # far above any compressor (Carnot at a 5 K lift is ~60)
MAX_HEAT_PRICE_EUR_PER_KWH: Final = 10.0  # gas heat is ~0.15 EUR/kWh
MAX_STARTS_PER_DAY: Final = 288  # a start every 5 minutes
# The comfort margin is capped: a home a day from its band's bottom has all it needs.
MAX_COMFORT_MARGIN_MIN: Final = 24 * 60.0

StoredHeatKwh = Annotated[float, Field(ge=-MAX_STORED_HEAT_KWH, le=MAX_STORED_HEAT_KWH)]
HeatFlowKw = Annotated[float, Field(ge=-MAX_HEAT_FLOW_KW, le=MAX_HEAT_FLOW_KW)]
HeatPowerW = Annotated[float, Field(ge=0.0, le=MAX_HEAT_FLOW_KW * 1000)]
TimeConstantH = Annotated[float, Field(gt=0.0, le=MAX_TIME_CONSTANT_H)]
Cop = Annotated[float, Field(ge=1.0, le=MAX_COP)]
HeatPriceEurPerKwh = Annotated[float, Field(ge=0.0, le=MAX_HEAT_PRICE_EUR_PER_KWH)]
StartsPerDay = Annotated[int, Field(ge=0, le=MAX_STARTS_PER_DAY)]
ComfortMarginMin = Annotated[float, Field(ge=0.0, le=MAX_COMFORT_MARGIN_MIN)]

# Outdoor air, the load forecast's input: beyond the Dutch (and most inhabited) extremes,
# so a reading outside it is a broken sensor.
MIN_OUTDOOR_C: Final = -40.0
MAX_OUTDOOR_C: Final = 50.0
OutdoorC = Annotated[float, Field(ge=MIN_OUTDOOR_C, le=MAX_OUTDOOR_C)]


def _one_or_three(phases: int) -> int:
    if phases not in PHASE_COUNTS:
        raise ValueError(f"phases must be 1 or 3, got {phases}")
    return phases


# An integer first (a Literal alone would take 1.0 and true), then 1 or 3.
PhaseCount = Annotated[int, AfterValidator(_one_or_three)]


def connection_power_w(phases: int, fuse_current_a: float) -> float:
    """What a connection carries at its fuse rating and nominal voltage, in W.

    At most 3 x 250 A x 230 V = 172.5 kW, within `MAX_CONNECTION_POWER_W`: every
    connection the protocol accepts is one the allocator and planner accept.
    """
    return phases * fuse_current_a * NOMINAL_VOLTAGE_V
