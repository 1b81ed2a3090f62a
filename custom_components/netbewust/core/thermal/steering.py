"""When a plan's request may reach a thermally planned heat pump, and when it may not.

A plan blocks or caps a pump on the model's prediction; the household's own readings
overrule it: while steering is paused, while the pump heats domestic hot water (the
legionella cycle included) and as soon as the measured indoor temperature is below the
comfort band, the pump gets no request and runs as its own thermostat would. The guard
still protects the fuse.
"""

from __future__ import annotations

import math


def may_steer(
    *,
    paused: bool,
    hot_water_running: bool,
    indoor_c: float | None,
    lower_c: float,
) -> bool:
    """Whether the plan may steer the pump now; False leaves it to its own thermostat.

    `indoor_c` None (no sensor, or unavailable) leaves the plan in charge: it was made on
    the model's prediction, and the guard bounds any block (`MAX_BLOCK_S`).
    """
    if paused or hot_water_running:
        return False
    return indoor_c is None or not math.isfinite(indoor_c) or indoor_c >= lower_c
