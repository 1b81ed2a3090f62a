"""The blueprint that tells the household when the grid guard limits devices."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.util.yaml import load_yaml_dict
from pytest_homeassistant_custom_component.common import (
    async_fire_time_changed,
    async_mock_service,
)

from custom_components.netbewust.core.model import LimitReason
from tests.clock import clock_now

from .conftest import AUTOMATION_ID, UseBlueprint

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant, ServiceCall

BLUEPRINT = "notify_guard_limiting.yaml"
GUARD = "sensor.netbewust_guard_state"
PHONE = "notify.mobile_app_phone"


def _limiting(*reasons: str, device: str = "Carport charger") -> dict[str, Any]:
    return {
        "reasons": list(reasons),
        "limitations": [
            {"reason": reason, "device": device, "phase": 1, "detail": "8 A"} for reason in reasons
        ],
    }


async def _set_guard(hass: HomeAssistant, state: str, attributes: dict[str, Any]) -> None:
    hass.states.async_set(GUARD, state, attributes)
    await hass.async_block_till_done()


async def _start_normal(hass: HomeAssistant, use_blueprint: UseBlueprint, **inputs: Any) -> None:
    """At once unless a test sets a duration (the default is tested on its own)."""
    await _set_guard(hass, "normal", {"reasons": [], "limitations": []})
    await use_blueprint(BLUEPRINT, {"guard_state": GUARD, "min_duration": {"seconds": 0}, **inputs})


async def test_limiting_notifies_entities_with_device_and_reason(
    hass: HomeAssistant, use_blueprint: UseBlueprint
) -> None:
    calls = async_mock_service(hass, "notify", "send_message")
    await _start_normal(hass, use_blueprint, notify_entities=["notify.kitchen_display"])

    await _set_guard(hass, "limiting", _limiting("fuse"))

    assert len(calls) == 1
    assert calls[0].data["entity_id"] == ["notify.kitchen_display"]
    assert calls[0].data["title"] == "Netbewust"
    assert calls[0].data["message"] == "Limiting Carport charger because of the main fuse."


async def test_safe_mode_calls_the_notify_action_with_the_reason(
    hass: HomeAssistant, use_blueprint: UseBlueprint
) -> None:
    phone = async_mock_service(hass, "notify", "mobile_app_phone")
    entities = async_mock_service(hass, "notify", "send_message")
    await _start_normal(hass, use_blueprint, notify_action=PHONE, title="Home")

    await _set_guard(hass, "safe_mode", {"reasons": ["stale_meter"], "limitations": []})

    assert entities == []
    assert [call.data for call in phone] == [
        {
            "title": "Home",
            "message": "Safe mode: flexible devices are in their safe state because of "
            "no recent meter data.",
        }
    ]


async def test_unknown_reasons_and_several_devices_are_listed(
    hass: HomeAssistant, use_blueprint: UseBlueprint
) -> None:
    phone = async_mock_service(hass, "notify", "mobile_app_phone")
    await _start_normal(hass, use_blueprint, notify_action=PHONE)
    attributes = {
        "reasons": ["household_peak", "some_new_reason"],
        "limitations": [
            {"reason": "household_peak", "device": "Charger", "phase": None, "detail": ""},
            {"reason": "household_peak", "device": "Battery", "phase": None, "detail": ""},
            {"reason": "some_new_reason", "device": "Charger", "phase": 1, "detail": ""},
            "not a mapping",
        ],
    }

    await _set_guard(hass, "limiting", attributes)

    assert phone[0].data["message"] == (
        "Limiting Charger, Battery because of the household peak limit, some new reason."
    )


async def test_back_to_normal_only_when_asked_and_only_after_limiting(
    hass: HomeAssistant, use_blueprint: UseBlueprint
) -> None:
    phone = async_mock_service(hass, "notify", "mobile_app_phone")
    await _set_guard(hass, STATE_UNAVAILABLE, {})
    await use_blueprint(
        BLUEPRINT,
        {
            "guard_state": GUARD,
            "notify_action": PHONE,
            "notify_on": ["normal", "safe_mode"],
            "min_duration": {"seconds": 0},
        },
    )

    # Coming up normal after a restart is no news.
    await _set_guard(hass, "normal", {"reasons": []})
    # Limiting is not among the chosen states.
    await _set_guard(hass, "limiting", _limiting("fuse"))
    assert phone == []

    await _set_guard(hass, "normal", {"reasons": []})
    assert [call.data["message"] for call in phone] == [
        "Back to normal: no device is limited any more."
    ]


async def test_a_new_reason_while_limiting_notifies_a_dropped_one_does_not(
    hass: HomeAssistant, use_blueprint: UseBlueprint
) -> None:
    phone = async_mock_service(hass, "notify", "mobile_app_phone")
    await _start_normal(hass, use_blueprint, notify_action=PHONE)
    await _set_guard(hass, "limiting", _limiting("fuse"))

    await _set_guard(hass, "limiting", _limiting("fuse", "dso"))
    await _set_guard(hass, "limiting", _limiting("dso"))
    # The amperes in the details change all the time; they are not news either.
    await _set_guard(hass, "limiting", _limiting("dso", device="Heat pump"))

    messages = [call.data["message"] for call in phone]
    assert messages == [
        "Limiting Carport charger because of the main fuse.",
        "Limiting Carport charger because of the main fuse, the grid operator's limit.",
    ]


async def test_short_blips_are_skipped_when_a_minimum_duration_is_set(
    hass: HomeAssistant, use_blueprint: UseBlueprint
) -> None:
    phone = async_mock_service(hass, "notify", "mobile_app_phone")
    await _start_normal(hass, use_blueprint, notify_action=PHONE, min_duration={"seconds": 30})

    await _set_guard(hass, "limiting", _limiting("fuse"))
    async_fire_time_changed(hass, clock_now() + timedelta(seconds=10))
    await _set_guard(hass, "normal", {"reasons": []})
    async_fire_time_changed(hass, clock_now() + timedelta(seconds=60))
    await hass.async_block_till_done()
    assert phone == []

    await _set_guard(hass, "limiting", _limiting("fuse"))
    async_fire_time_changed(hass, clock_now() + timedelta(seconds=31))
    await hass.async_block_till_done()
    assert len(phone) == 1


async def test_by_default_only_a_state_that_lasts_five_minutes_is_notified(
    hass: HomeAssistant, use_blueprint: UseBlueprint
) -> None:
    phone = async_mock_service(hass, "notify", "mobile_app_phone")
    await _set_guard(hass, "normal", {"reasons": [], "limitations": []})
    await use_blueprint(BLUEPRINT, {"guard_state": GUARD, "notify_action": PHONE})

    start = clock_now()
    await _set_guard(hass, "limiting", _limiting("fuse"))
    async_fire_time_changed(hass, start + timedelta(minutes=4, seconds=50))
    await hass.async_block_till_done()
    assert phone == []
    async_fire_time_changed(hass, start + timedelta(minutes=5, seconds=1))
    await hass.async_block_till_done()
    assert len(phone) == 1
    assert phone[0].data["message"] == "Limiting Carport charger because of the main fuse."


async def test_without_a_target_nothing_is_sent(
    hass: HomeAssistant, use_blueprint: UseBlueprint
) -> None:
    sent: list[ServiceCall] = async_mock_service(hass, "notify", "send_message")
    await _start_normal(hass, use_blueprint)

    await _set_guard(hass, "safe_mode", {"reasons": ["stale_meter"]})

    assert sent == []
    assert hass.states.get(AUTOMATION_ID) is not None


async def test_missing_guard_sensor_input_leaves_the_automation_unavailable(
    hass: HomeAssistant, use_blueprint: UseBlueprint
) -> None:
    phone = async_mock_service(hass, "notify", "mobile_app_phone")
    await use_blueprint(BLUEPRINT, {"notify_action": PHONE})

    await _set_guard(hass, "safe_mode", {"reasons": ["stale_meter"]})

    state = hass.states.get(AUTOMATION_ID)
    assert state is not None
    assert state.state == STATE_UNAVAILABLE
    assert phone == []


def test_every_guard_reason_has_plain_words() -> None:
    path = Path(__file__).parents[2] / "blueprints" / "automation" / "netbewust" / BLUEPRINT
    variables = load_yaml_dict(path)["variables"]
    assert set(variables["reason_texts"]) == {reason.value for reason in LimitReason}
