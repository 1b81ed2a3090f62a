"""Diagnostics: configuration, last decision and counters, with names redacted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)

from custom_components.netbewust.core.model import ChargerSetpoint

from .conftest import CHARGER_CURRENT, CHARGER_ID, IMPORT_L1, decision, set_meter

if TYPE_CHECKING:
    from collections.abc import Callable

    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry
    from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

    from .conftest import ScriptedGuard


async def test_diagnostics_show_config_decision_and_counters_without_names(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> None:
    entry = make_entry()
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    scripted_guard[-1].decide = lambda reading: decision({CHARGER_ID: ChargerSetpoint(9, 1)})
    set_meter(hass, 4000)
    set_meter(hass, "unavailable")
    await hass.async_block_till_done()

    result = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert result["entry"]["title"] == "**REDACTED**"
    subentry = next(s for s in result["entry"]["subentries"] if s["subentry_id"] == CHARGER_ID)
    assert subentry["title"] == "**REDACTED**"
    assert subentry["data"]["current_entity"] == CHARGER_CURRENT  # entity ids are kept
    assert result["entry"]["data"]["power_import_l1"] == IMPORT_L1
    assert all(d["name"] == "**REDACTED**" for d in result["guard_config"]["devices"])
    assert "Jan" not in str(result)

    assert result["last_decision"]["setpoints"][CHARGER_ID] == {"current_a": 9, "phases": 1}
    assert result["last_decision"]["changed"] == [CHARGER_ID]
    assert result["last_decision"]["headroom_a"] == [14.0]
    runtime = result["runtime"]
    assert runtime["counters"]["evaluations"] == 1
    assert runtime["counters"]["commands_sent"] == 1
    assert runtime["rejected_values"] == {"unavailable": 1}
    assert runtime["optimisation_paused"] is False
