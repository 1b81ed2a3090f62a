"""How often a meter entity updates, measured during the config flow.

The recorder's history gives the best estimate (the median gap between recorded
changes). Without it only the time since the entity last reported is known, which is
a lower bound: it can show that a meter is slow, never that it is fast.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING

from homeassistant.helpers.recorder import get_instance
from homeassistant.util import dt as dt_util

from ..const import LOGGER, METER_INTERVAL_WINDOW_S

if TYPE_CHECKING:
    from collections.abc import Iterable

    from homeassistant.core import HomeAssistant


async def async_estimate_update_interval_s(hass: HomeAssistant, entity_id: str) -> float | None:
    """The entity's typical update interval in seconds, or None when it has no state."""
    state = hass.states.get(entity_id)
    if state is None:
        return None
    now = dt_util.utcnow()
    recorded = await _async_recorded_update_times(hass, entity_id, now)
    return estimate_interval_s([*recorded, state.last_reported], now)


def estimate_interval_s(update_times: Iterable[datetime], now: datetime) -> float | None:
    """Median gap between updates, counting the gap still open since the last one."""
    times = sorted(set(update_times))
    if not times:
        return None
    gaps = [later - earlier for earlier, later in pairwise(times)]
    gaps.append(max(now - times[-1], timedelta(0)))
    return statistics.median(gap.total_seconds() for gap in gaps)


async def _async_recorded_update_times(
    hass: HomeAssistant, entity_id: str, now: datetime
) -> list[datetime]:
    if "recorder" not in hass.config.components:
        return []
    # Imported only when the recorder runs: the history module pulls in SQLAlchemy.
    from homeassistant.components.recorder import history

    start = now - timedelta(seconds=METER_INTERVAL_WINDOW_S)
    try:
        changes = await get_instance(hass).async_add_executor_job(
            history.state_changes_during_period,
            hass,
            start,
            now,
            entity_id,
            True,
            False,
            None,
            False,
        )
    except Exception:
        # The measurement is advice only; a recorder problem must not block setup.
        LOGGER.warning("Could not read the history of %s", entity_id, exc_info=True)
        return []
    return [state.last_updated for state in changes.get(entity_id, [])]
