"""Switches: optimisation pause and "charge now", both restored after a restart."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.core import State
from pytest_homeassistant_custom_component.common import mock_restore_cache

from .conftest import CHARGER_ID, set_meter, state_value

if TYPE_CHECKING:
    from collections.abc import Callable

    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from .conftest import ScriptedGuard

OPTIMISATION = "switch.home_optimisation"
CHARGE_NOW = "switch.jan_s_car_charge_now"


async def setup(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> ScriptedGuard:
    entry = make_entry()
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return scripted_guard[-1]


async def switch(hass: HomeAssistant, entity_id: str, on: bool) -> None:
    await hass.services.async_call(
        "switch", "turn_on" if on else "turn_off", {"entity_id": entity_id}, blocking=True
    )


async def test_optimisation_switch_pauses_the_planner_not_the_guard(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> None:
    guard = await setup(hass, make_entry, scripted_guard)
    assert state_value(hass, OPTIMISATION) == "on"
    set_meter(hass, 1000)
    await hass.async_block_till_done()

    ticks = len(guard.ticks)
    await switch(hass, OPTIMISATION, on=False)
    assert guard.paused == [True]
    assert state_value(hass, OPTIMISATION) == "off"
    # The change is acted on at once, not at the next telegram.
    assert len(guard.ticks) == ticks + 1

    await switch(hass, OPTIMISATION, on=True)
    assert guard.paused == [True, False]
    assert state_value(hass, OPTIMISATION) == "on"


async def test_charge_now_switch_per_charger(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> None:
    guard = await setup(hass, make_entry, scripted_guard)
    assert state_value(hass, CHARGE_NOW) == "off"
    await switch(hass, CHARGE_NOW, on=True)
    assert guard.charge_now == [(CHARGER_ID, True)]
    assert state_value(hass, CHARGE_NOW) == "on"
    await switch(hass, CHARGE_NOW, on=False)
    assert guard.charge_now == [(CHARGER_ID, True), (CHARGER_ID, False)]
    assert state_value(hass, CHARGE_NOW) == "off"


async def test_switch_states_survive_a_restart(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> None:
    mock_restore_cache(hass, [State(OPTIMISATION, "off"), State(CHARGE_NOW, "on")])
    guard = await setup(hass, make_entry, scripted_guard)
    assert guard.paused == [True]
    assert guard.charge_now == [(CHARGER_ID, True)]
    assert state_value(hass, OPTIMISATION) == "off"
    assert state_value(hass, CHARGE_NOW) == "on"
