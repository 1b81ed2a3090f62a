"""The plan sensor's schedule per quarter hour: live for chart cards, kept out of the
recorder (672 quarter hours exceed its attribute size)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from homeassistant.components.recorder.history import get_significant_states
from homeassistant.helpers.recorder import get_instance
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from .test_planning import (
    EVENING_CHEAP,
    NORDPOOL_URL,
    NOW,
    amsterdam,  # noqa: F401 (the autouse clock and time zone of those tests)
    setup_planner,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry
    from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(request: pytest.FixtureRequest) -> None:
    """Overrides the conftest fixture: the recorder must start before `hass`."""
    request.getfixturevalue("recorder_mock")
    request.getfixturevalue("enable_custom_integrations")


@pytest.mark.usefixtures("targets")
async def test_the_schedule_is_live_but_not_recorded(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
) -> None:
    aioclient_mock.get(NORDPOOL_URL, json=EVENING_CHEAP)
    entry, _ = await setup_planner(hass, make_entry)
    live = hass.states.get("sensor.home_plan")
    assert live is not None
    assert live.attributes["schedule"]
    assert live.attributes["devices"]
    await async_wait_recording_done(hass)

    def _recorded() -> dict[str, Any]:
        with_history = get_significant_states(
            hass, NOW - timedelta(hours=1), None, ["sensor.home_plan"]
        )
        return dict(with_history["sensor.home_plan"][-1].attributes)  # type: ignore[union-attr]

    recorded = await get_instance(hass).async_add_executor_job(_recorded)
    assert recorded["reason"] is None
    assert "prices_until" in recorded
    assert "schedule" not in recorded
    assert "devices" not in recorded
    # Unloaded before the recorder stops: a re-plan at shutdown would read statistics.
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
