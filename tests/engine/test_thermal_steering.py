"""The household's readings overrule a thermal plan: pause, hot water, too cold a home."""

from __future__ import annotations

import pytest

from netbewust_core.thermal.steering import may_steer


@pytest.mark.parametrize(
    ("paused", "hot_water", "indoor_c", "expected"),
    [
        (False, False, 20.0, True),  # within the band: the plan steers
        (False, False, 19.5, True),  # on the band's lower edge is still within it
        (False, False, 19.4, False),  # below the band: released at once
        (False, False, None, True),  # no reading: the plan, made on the model, stands
        (False, False, float("nan"), True),  # a broken reading counts as none
        (True, False, 21.0, False),  # paused by the household
        (False, True, 21.0, False),  # hot water (legionella) is never blocked
    ],
)
def test_may_steer(paused: bool, hot_water: bool, indoor_c: float | None, expected: bool) -> None:
    assert (
        may_steer(paused=paused, hot_water_running=hot_water, indoor_c=indoor_c, lower_c=19.5)
        is expected
    )
