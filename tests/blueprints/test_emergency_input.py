"""The blueprint that turns an external contact into Netbewust's emergency state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.const import EVENT_HOMEASSISTANT_STARTED, STATE_UNAVAILABLE
from pytest_homeassistant_custom_component.common import async_mock_service

from .conftest import AUTOMATION_ID, UseBlueprint

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant, ServiceCall

BLUEPRINT = "emergency_input.yaml"
FIRE = "binary_sensor.fire_alarm_output"
DSO = "binary_sensor.dso_relay"
ENTRY_ID = "01JNETBEWUSTENTRY"


async def _set(hass: HomeAssistant, entity_id: str, state: str, **attributes: Any) -> None:
    hass.states.async_set(entity_id, state, attributes)
    await hass.async_block_till_done()


async def _setup(
    hass: HomeAssistant, use_blueprint: UseBlueprint, **inputs: Any
) -> list[ServiceCall]:
    calls: list[ServiceCall] = async_mock_service(hass, "netbewust", "set_emergency")
    await _set(hass, FIRE, "off", friendly_name="Fire alarm")
    await _set(hass, DSO, "off", friendly_name="DSO relay")
    await use_blueprint(BLUEPRINT, {"emergency_sensors": [FIRE, DSO], **inputs})
    return calls


async def test_contact_on_activates_and_off_releases_the_chosen_entry(
    hass: HomeAssistant, use_blueprint: UseBlueprint
) -> None:
    calls = await _setup(hass, use_blueprint, netbewust_entry=ENTRY_ID)

    await _set(hass, FIRE, "on", friendly_name="Fire alarm")
    await _set(hass, FIRE, "off", friendly_name="Fire alarm")

    assert [call.data for call in calls] == [
        {
            "config_entry_id": ENTRY_ID,
            "active": True,
            "reason": "External emergency input: Fire alarm",
        },
        {
            "config_entry_id": ENTRY_ID,
            "active": False,
            "reason": "External emergency input cleared",
        },
    ]


async def test_without_an_entry_every_connection_is_addressed(
    hass: HomeAssistant, use_blueprint: UseBlueprint
) -> None:
    calls = await _setup(hass, use_blueprint, reason="Brandmeldcentrale")

    await _set(hass, DSO, "on", friendly_name="DSO relay")

    assert [call.data for call in calls] == [
        {"active": True, "reason": "Brandmeldcentrale: DSO relay"}
    ]


async def test_released_only_when_every_contact_has_cleared(
    hass: HomeAssistant, use_blueprint: UseBlueprint
) -> None:
    calls = await _setup(hass, use_blueprint)

    await _set(hass, FIRE, "on")
    await _set(hass, DSO, "on")
    await _set(hass, FIRE, "off")
    assert [call.data["active"] for call in calls] == [True]

    await _set(hass, DSO, "off")
    assert [call.data["active"] for call in calls] == [True, False]


async def test_attribute_updates_and_repeated_states_call_nothing(
    hass: HomeAssistant, use_blueprint: UseBlueprint
) -> None:
    calls = await _setup(hass, use_blueprint)

    await _set(hass, FIRE, "off", friendly_name="Fire alarm", battery=80)
    await _set(hass, DSO, STATE_UNAVAILABLE)
    await _set(hass, DSO, "off")

    assert calls == []


async def test_unavailable_contact_counts_as_on_when_failing_safe(
    hass: HomeAssistant, use_blueprint: UseBlueprint
) -> None:
    calls = await _setup(hass, use_blueprint, unavailable_is_emergency=True)

    await _set(hass, DSO, STATE_UNAVAILABLE)
    await _set(hass, DSO, "on")
    await _set(hass, DSO, "off")

    assert [call.data["active"] for call in calls] == [True, False]


async def test_start_reapplies_the_current_state(
    hass: HomeAssistant, use_blueprint: UseBlueprint
) -> None:
    calls = await _setup(hass, use_blueprint)
    await _set(hass, FIRE, "on", friendly_name="Fire alarm")
    calls.clear()

    hass.bus.async_fire(EVENT_HOMEASSISTANT_STARTED)
    await hass.async_block_till_done()

    assert [call.data for call in calls] == [
        {"active": True, "reason": "External emergency input: Fire alarm"}
    ]


async def test_missing_contacts_input_leaves_the_automation_unavailable(
    hass: HomeAssistant, use_blueprint: UseBlueprint
) -> None:
    calls = async_mock_service(hass, "netbewust", "set_emergency")
    await use_blueprint(BLUEPRINT, {"netbewust_entry": ENTRY_ID})

    await _set(hass, FIRE, "on")

    state = hass.states.get(AUTOMATION_ID)
    assert state is not None
    assert state.state == STATE_UNAVAILABLE
    assert calls == []
