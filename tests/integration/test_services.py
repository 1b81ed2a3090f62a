"""The `netbewust.set_emergency` action, including its error paths."""

from __future__ import annotations

from typing import TYPE_CHECKING

import probatio
import pytest
from homeassistant.exceptions import ServiceValidationError

from custom_components.netbewust.const import DOMAIN
from custom_components.netbewust.core.model import LoadSetpoint

from .conftest import LOAD_ID, LOAD_SWITCH, decision, set_meter, state_value

if TYPE_CHECKING:
    from typing import Any

    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from .conftest import ScriptedGuard

EMERGENCY = "binary_sensor.home_emergency"


async def call(hass: HomeAssistant, **data: Any) -> None:
    await hass.services.async_call(DOMAIN, "set_emergency", data, blocking=True)


async def test_emergency_on_and_off_for_every_connection(
    hass: HomeAssistant, loaded: tuple[MockConfigEntry, ScriptedGuard]
) -> None:
    _, guard = loaded
    set_meter(hass, 1000)
    await hass.async_block_till_done()

    guard.tick_result = decision({LOAD_ID: LoadSetpoint(on=False)})
    await call(hass, active=True, reason="Fire alarm")
    await hass.async_block_till_done()
    assert guard.emergency == [True]
    # Acted on at once, not at the next telegram.
    assert state_value(hass, LOAD_SWITCH) == "off"
    assert state_value(hass, EMERGENCY) == "on"
    assert hass.states.get(EMERGENCY).attributes["reason"] == "Fire alarm"  # type: ignore[union-attr]

    await call(hass, active=False)
    assert guard.emergency == [True, False]
    assert state_value(hass, EMERGENCY) == "off"


async def test_emergency_for_a_named_connection(
    hass: HomeAssistant, loaded: tuple[MockConfigEntry, ScriptedGuard]
) -> None:
    entry, guard = loaded
    await call(hass, active=True, config_entry_id=entry.entry_id)
    assert guard.emergency == [True]
    assert state_value(hass, EMERGENCY) == "on"


async def test_unknown_connection_is_a_validation_error(
    hass: HomeAssistant, loaded: tuple[MockConfigEntry, ScriptedGuard]
) -> None:
    with pytest.raises(ServiceValidationError) as error:
        await call(hass, active=True, config_entry_id="nope")
    assert error.value.translation_key == "entry_not_found"
    assert error.value.translation_placeholders == {"entry_id": "nope"}


async def test_unloaded_connection_is_a_validation_error(
    hass: HomeAssistant, loaded: tuple[MockConfigEntry, ScriptedGuard]
) -> None:
    entry, guard = loaded
    assert await hass.config_entries.async_unload(entry.entry_id)
    with pytest.raises(ServiceValidationError) as error:
        await call(hass, active=True, config_entry_id=entry.entry_id)
    assert error.value.translation_key == "entry_not_loaded"
    with pytest.raises(ServiceValidationError) as error:
        await call(hass, active=True)
    assert error.value.translation_key == "no_loaded_entries"
    assert guard.emergency == []


async def test_other_integrations_entry_is_not_a_target(
    hass: HomeAssistant, loaded: tuple[MockConfigEntry, ScriptedGuard]
) -> None:
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    other = MockConfigEntry(domain="input_boolean")
    other.add_to_hass(hass)
    with pytest.raises(ServiceValidationError) as error:
        await call(hass, active=True, config_entry_id=other.entry_id)
    assert error.value.translation_key == "entry_not_found"


async def test_bad_arguments_are_rejected_by_the_schema(
    hass: HomeAssistant, loaded: tuple[MockConfigEntry, ScriptedGuard]
) -> None:
    _, guard = loaded
    with pytest.raises(probatio.Invalid):
        await call(hass, reason="no active flag")
    with pytest.raises(probatio.Invalid):
        await call(hass, active="perhaps")
    assert guard.emergency == []
