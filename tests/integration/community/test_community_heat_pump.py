"""A heat pump planned on the thermal model, offered to the community (issue 14): its
thermal store in the capabilities, the home's comfort margin and the household's "pause
steering" in telemetry, once the server has announced it reads them."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from custom_components.netbewust.community.const import CONF_HOUSEHOLD
from custom_components.netbewust.core.protocol.messages import ServerFeature
from tests.clock import clock_now
from tests.server.household_client import wait_until

from ..conftest import CELSIUS, HEAT_PUMP_ID, INDOOR, OUTDOOR, thermal_pump_subentry
from .conftest import Community, join, membership
from .test_community_reports import PLANNER, connected, stored_capabilities

if TYPE_CHECKING:
    from collections.abc import Callable

    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

THERMAL_PUMP = thermal_pump_subentry()


async def test_a_thermal_heat_pump_is_offered_as_a_store_and_its_pause_is_counted(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    community: Community,
) -> None:
    hass.states.async_set(INDOOR, "21.0", CELSIUS)
    hass.states.async_set(OUTDOOR, "5.0", CELSIUS)
    connection = await connected(hass, make_entry, (THERMAL_PUMP, PLANNER))
    planner = connection.runtime_data.planner
    assert planner is not None
    await wait_until(lambda: planner.last_thermal is not None, timeout_s=25)
    entry = await join(hass, community, connection)
    household = entry.data[CONF_HOUSEHOLD]

    def stores() -> int:
        stored = stored_capabilities(community, household)
        return -1 if stored is None else len(stored.thermal_heat_pumps)

    await wait_until(lambda: stores() == 1, timeout_s=25)
    runtime = membership(entry)
    assert runtime.as_dict()["server_features"] == [ServerFeature.HEAT_PUMP_FLEXIBILITY]
    capabilities = stored_capabilities(community, household)
    assert capabilities is not None
    (store,) = capabilities.thermal_heat_pumps
    # Energy terms only: the band's bottom is the reference, the home sits above it.
    assert store.stored_heat_kwh > 0
    assert min(store.stored_heat_min_kwh) == 0.0
    assert store.modulating is False  # an SG-Ready pump without a power limit

    def margin() -> float | None:
        telemetry = community.server.latest_telemetry.get(household)
        return None if telemetry is None else telemetry.comfort_margin_min

    await wait_until(lambda: (margin() or 0.0) > 0, timeout_s=25)

    # The outdoor sensor's reading goes with it, for the server's load forecast; one
    # outside the protocol's range (a sensor in the sun) is left out and counted.
    def outdoor() -> float | None:
        telemetry = community.server.latest_telemetry.get(household)
        return None if telemetry is None else telemetry.outdoor_temperature_c

    await wait_until(lambda: outdoor() == 5.0, timeout_s=25)
    hass.states.async_set(OUTDOOR, "55.0", CELSIUS)
    await wait_until(lambda: runtime.as_dict()["outdoor_rejected"] > 0, timeout_s=25)
    await wait_until(lambda: outdoor() is None, timeout_s=25)
    hass.states.async_set(OUTDOOR, "-2.5", CELSIUS)
    await wait_until(lambda: outdoor() == -2.5, timeout_s=25)

    # The household pauses steering for two hours: the store is withdrawn, the pause
    # reported, stored and counted once.
    until = (clock_now() + timedelta(hours=2)).replace(microsecond=0)
    planner.async_update_comfort(HEAT_PUMP_ID, paused=True, paused_until=until)
    await wait_until(lambda: stores() == 0, timeout_s=25)

    def pauses() -> int:
        stored = community.store.household(household)
        return 0 if stored is None or stored.heat_pump is None else stored.heat_pump.pauses

    await wait_until(lambda: pauses() == 1, timeout_s=25)
    stored = community.store.household(household)
    assert stored is not None
    assert stored.heat_pump is not None
    assert stored.heat_pump.paused_until == until
    assert community.server.metrics.heat_pump_pauses == 1
    assert not community.server.metrics.rejected
    assert await hass.config_entries.async_unload(entry.entry_id)
