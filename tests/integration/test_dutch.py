"""A Dutch Home Assistant: entity names follow the system language, and the plan's and
next action's states and the planner's repair issues read Dutch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.translation import async_get_translations

from custom_components.netbewust.const import DOMAIN
from custom_components.netbewust.core.planning.problem import PlanStatus

from .test_planning import (
    EVENING_CHEAP,
    NORDPOOL_URL,
    amsterdam,  # noqa: F401 (the autouse clock and time zone of those tests)
    setup_planner,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry
    from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

PREFIX = f"component.{DOMAIN}"


def _name(hass: HomeAssistant, unique_id: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, unique_id)
    assert entity_id is not None, unique_id
    state = hass.states.get(entity_id)
    assert state is not None
    return str(state.attributes["friendly_name"])


@pytest.mark.usefixtures("targets")
async def test_a_dutch_home_reads_dutch(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
) -> None:
    hass.config.language = "nl"
    aioclient_mock.get(NORDPOOL_URL, json=EVENING_CHEAP)
    entry, planner = await setup_planner(hass, make_entry)
    assert planner.plan is not None
    assert planner.plan.status is PlanStatus.OPTIMAL
    home = entry.entry_id
    assert _name(hass, f"{home}_guard_state") == "Home Status bewaking"
    assert _name(hass, f"{home}_plan") == "Home Planning"
    assert _name(hass, f"{home}_cost_today") == "Home Verwachte kosten vandaag"
    charger = next(s for s in entry.subentries.values() if s.subentry_type == "charger")
    car = f"{charger.subentry_id}_next_action_{charger.subentry_id}"
    assert _name(hass, car) == f"{charger.title} Volgende actie"

    # States stay codes; Home Assistant shows them from the translations.
    entities = await async_get_translations(hass, "nl", "entity", [DOMAIN])
    plan = f"{PREFIX}.entity.sensor.plan"
    assert entities[f"{plan}.state.optimal"] == "Optimaal"
    assert entities[f"{plan}.state.fallback"] == "Zoals zonder Netbewust"
    assert entities[f"{plan}.state_attributes.reason.state.no_prices"] == "Geen energieprijzen"
    assert entities[f"{PREFIX}.entity.sensor.next_action.state.pause"] == "Pauze"
    issues = await async_get_translations(hass, "nl", "issues", [DOMAIN])
    title = issues[f"{PREFIX}.issues.planner_error.title"]
    assert title == "De planner is vastgelopen voor {title}"

    # The connection's model is its rating, the same in every language; no raw keys.
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    connection = next(d for d in devices if (DOMAIN, home) in d.identifiers)
    assert connection.model == "1x25 A"
    assert {d.model for d in devices if d is not connection} == {None}
