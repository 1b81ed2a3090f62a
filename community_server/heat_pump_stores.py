"""A member's `HeatPumpFlexibility` (protocol) as the collective planner's `ThermalStore`.

The protocol block carries the home as a leaky thermal store per quarter hour from its
own start; the plan has its own start and length. This aligns the two: the block's
series from the plan's start on, its last value held where the plan runs longer (the
band, loss and COP of its last quarter hour). A block that started before the plan
gives no stored heat for the plan's start: that heat is then taken as the band's
bottom there (the least the household keeps), which never plans a home colder. The
band's bottom is planned `ROUNDING_MARGIN_KWH` higher: the block's figures are rounded
(heat to 1 Wh, loss to 1 W, COP to 0.001), and a plan right at the bottom of the
rounded band would leave the real home a few millikelvin below it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netbewust_core.collective.problem import CollectiveError, ThermalStore
from netbewust_core.protocol.messages import QUARTER_HOUR

# kWh of heat: a day's rounding of loss (0.5 W) and COP (0.0005 at 3 kW) is about 0.05.
ROUNDING_MARGIN_KWH = 0.05

if TYPE_CHECKING:
    from datetime import datetime

    from netbewust_core.protocol.messages import HeatPumpFlexibility


def thermal_store(
    flexibility: HeatPumpFlexibility, start: datetime, steps: int, name: str
) -> ThermalStore:
    """The block over `steps` quarter hours from `start`. Raises `CollectiveError`
    when the block does not cover `start` (it starts later or ends before)."""
    offset, rest = divmod(start - flexibility.start, QUARTER_HOUR)
    if rest or not 0 <= offset < flexibility.steps:
        raise CollectiveError(f"{name}: its heat-pump block does not cover {start.isoformat()}")

    def series(values: tuple[float, ...]) -> tuple[float, ...]:
        kept = values[offset : offset + steps]
        return kept + (kept[-1],) * (steps - len(kept))

    high = series(flexibility.stored_heat_max_kwh)
    low = tuple(
        min(bottom + ROUNDING_MARGIN_KWH, top)
        for bottom, top in zip(series(flexibility.stored_heat_min_kwh), high, strict=True)
    )
    stored = flexibility.stored_heat_kwh if offset == 0 else low[0]
    return ThermalStore(
        name=name,
        stored_heat_kwh=stored,
        stored_heat_min_kwh=low,
        stored_heat_max_kwh=high,
        time_constant_h=flexibility.time_constant_h,
        heat_loss_kw=series(flexibility.heat_loss_kw),
        cop=series(flexibility.cop),
        max_power_w=flexibility.max_power_w,
        min_power_w=flexibility.min_power_w,
        hybrid_heat_w=flexibility.hybrid_heat_w,
        gas_eur_per_kwh_heat=flexibility.gas_eur_per_kwh_heat,
    )
