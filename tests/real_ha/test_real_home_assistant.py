"""Netbewust in a real Home Assistant, set up and watched the way a person would.

The pinned Home Assistant release runs `demo/ha_config` on loopback. The test onboards it
over the REST API with Dutch as the system language, adds the integration and its devices
through the config and subentry flows, overloads the 1x25A connection with the demo oven,
reloads the entry, and finally looks at the device pages in Chromium with a Dutch browser.
Screenshots and Home Assistant's output go to `ci-artifacts/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser import ARTIFACTS, browser_page, requires_chromium, wait_for_text

from .home_assistant import HomeAssistantProcess, running_home_assistant

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from playwright.async_api import Page

pytestmark = [
    pytest.mark.real_ha,
    requires_chromium,
    pytest.mark.timeout(300),
    pytest.mark.usefixtures("socket_enabled"),  # a real server on loopback
]

CHARGER = "number.demo_charger_max_current"
BATTERY = "number.demo_battery_setpoint"
RELAY_1, RELAY_2 = "switch.demo_heat_pump_sg_ready_1", "switch.demo_heat_pump_sg_ready_2"
PV_LIMIT = "number.demo_pv_power_limit"
METER_CURRENT = "sensor.demo_p1_current_l1"
OVEN = "input_boolean.demo_oven"
FUSE_A = 25
CHARGER_MIN_A = 6
# The meter sends a sample every second; the guard answers the next one.
REACTION_S = 10

FLOW = "/api/config/config_entries/flow"
SUBENTRY_FLOW = "/api/config/config_entries/subentries/flow"
CONNECTION = {"name": "Thuis", "connection_type": "1x25", "meter_mode": "per_phase"}
METER = {
    "power_import_l1": "sensor.demo_p1_power_import_l1",
    "power_export_l1": "sensor.demo_p1_power_export_l1",
    "voltage_l1": "sensor.demo_p1_voltage_l1",
    "current_l1": METER_CURRENT,
}
# The devices in the order scripts/run-ha lists them; the forms' own defaults fill the rest.
DEVICES: list[tuple[str, dict[str, Any]]] = [
    (
        "charger",
        {
            "name": "Laadpaal",
            "current_entity": CHARGER,
            "power_entity": "sensor.demo_charger_power",
            "status_entity": "sensor.demo_charger_status",
        },
    ),
    (
        "battery",
        {
            "name": "Thuisbatterij",
            "setpoint_entity": BATTERY,
            "soc_entity": "sensor.demo_battery_state_of_charge",
            "power_entity": "sensor.demo_battery_power",
            "max_charge_power": 3000,
            "max_discharge_power": 3000,
        },
    ),
    (
        "heat_pump",
        {
            "name": "Warmtepomp",
            "sg_ready_switch_1": RELAY_1,
            "sg_ready_switch_2": RELAY_2,
            "power_entity": "sensor.demo_heat_pump_power",
            "rated_power": 2500,
        },
    ),
    (
        "pv",
        {
            "name": "Zonnepanelen",
            "power_limit_entity": PV_LIMIT,
            "power_entity": "sensor.demo_pv_power",
            "rated_power": 4000,
        },
    ),
    ("planner", {}),  # Nord Pool for NL; without internet it plans as without Netbewust
]
# What the Dutch pages say: entity names and the plan sensor's states.
PLAN_NL = {
    "optimal": "Optimaal",
    "fallback": "Zoals zonder Netbewust",
    "waiting": "Wacht op het eerste plan",
}
NEXT_ACTION_NL = {"charge": "Laden", "pause": "Pauze", "none": "Geen", "idle": "Rust"}


def _form_values(form: dict[str, Any]) -> dict[str, Any]:
    """What the form shows filled in before the person types: defaults and suggestions."""
    values: dict[str, Any] = {}
    for field in form["data_schema"]:
        if "default" in field:
            values[field["name"]] = field["default"]
        suggested = (field.get("description") or {}).get("suggested_value")
        if suggested is not None:
            values[field["name"]] = suggested
    return values


async def _fill_in(
    ha: HomeAssistantProcess, path: str, start: dict[str, Any], *answers: dict[str, Any]
) -> dict[str, Any]:
    """Starts a flow and submits one form per answer; returns the created entry's result."""
    result: dict[str, Any] = await ha.post(path, start)
    for answer in answers:
        assert result["type"] == "form", result
        result = await ha.post(f"{path}/{result['flow_id']}", _form_values(result) | answer)
    assert result["type"] == "create_entry", result
    return result


async def _eventually(
    ha: HomeAssistantProcess, entity_id: str, accept: Callable[[str], bool], within_s: float
) -> str:
    state = ""
    for _attempt in range(int(within_s * 4)):
        state = str((await ha.state(entity_id))["state"])
        if accept(state):
            return state
        await asyncio.sleep(0.25)
    raise AssertionError(f"{entity_id} stayed {state!r} for {within_s} s")


@contextlib.asynccontextmanager
async def _state_changes(
    ha: HomeAssistantProcess, entity_ids: set[str]
) -> AsyncIterator[list[tuple[str, str]]]:
    """Every new state of these entities while the block runs, as (entity_id, state)."""
    changes: list[tuple[str, str]] = []
    async with ha.session.ws_connect(f"{ha.base}/api/websocket") as socket:
        await socket.receive_json()
        await socket.send_json({"type": "auth", "access_token": ha.token})
        assert (await socket.receive_json())["type"] == "auth_ok"
        await socket.send_json({"id": 1, "type": "subscribe_events", "event_type": "state_changed"})
        assert (await socket.receive_json())["success"]

        async def collect() -> None:
            async for message in socket:
                data = message.json()["event"]["data"]
                if data["entity_id"] in entity_ids and data["new_state"] is not None:
                    changes.append((data["entity_id"], data["new_state"]["state"]))

        collector = asyncio.create_task(collect())
        try:
            yield changes
        finally:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector


async def _holds_the_demo_home_still(ha: HomeAssistantProcess) -> None:
    """No sun and a steady base load: the oven overloads the connection at any hour, and
    before it the house (22.5 A with the car at 16 A) stays clear of the 24 A the guard allows,
    so it has no reason to limit."""
    await ha.post(
        "/api/services/automation/turn_off",
        {"entity_id": ["automation.demo_base_load_wanders", "automation.demo_sunshine"]},
    )
    for entity_id, value in (("demo_pv_available", 0), ("demo_base_load", 300)):
        await ha.post(
            "/api/services/input_number/set_value",
            {"entity_id": f"input_number.{entity_id}", "value": value},
        )


async def _open_device_page(page: Page, ha: HomeAssistantProcess, device_id: str) -> None:
    """The device page, logged in with the tokens the onboarding gave (the frontend keeps
    them in localStorage, as after a login)."""
    await page.add_init_script(
        "localStorage.setItem('hassTokens', JSON.stringify({"
        f"access_token: '{ha.token}', refresh_token: '{ha.refresh_token}',"
        f"token_type: 'Bearer', expires_in: 1800, hassUrl: '{ha.base}',"
        f"clientId: '{ha.client_id}', expires: Date.now() + 1800 * 1000}}));"
    )
    await page.goto(f"{ha.base}/config/devices/device/{device_id}")


async def test_the_guard_in_a_real_home_assistant_as_a_person_meets_it(tmp_path: Path) -> None:
    log = tmp_path / "hass.log"
    try:
        async with running_home_assistant(tmp_path / "config", log) as ha:
            await _scenario(ha)
    finally:
        # hass's own output: its log, and any failure before the log was set up.
        if log.exists():
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copyfile(log, ARTIFACTS / "real-ha-hass.log")


async def _scenario(ha: HomeAssistantProcess) -> None:
    await ha.onboard(language="nl")
    await ha.wait_running()
    await ha.command("config/core/update", language="nl")  # Settings > System > General
    await _holds_the_demo_home_still(ha)

    entry = (await _fill_in(ha, FLOW, {"handler": "netbewust"}, CONNECTION, METER))["result"]
    entry_id = entry["entry_id"]
    for kind, answer in DEVICES:
        await _fill_in(ha, SUBENTRY_FLOW, {"handler": [entry_id, kind]}, answer)
    entities = [
        entity
        for entity in await ha.command("config/entity_registry/list")
        if entity["config_entry_id"] == entry_id
    ]
    by_key = {(entity["translation_key"], entity["device_id"]): entity for entity in entities}
    guard_state = next(e for (key, _), e in by_key.items() if key == "guard_state")
    plan = next(e for (key, _), e in by_key.items() if key == "plan")
    devices = {
        device["name"]: device
        for device in await ha.command("config/device_registry/list")
        if entry_id in device["config_entries"]
    }
    charger_device = devices["Laadpaal"]["id"]
    charger_next = by_key["next_action", charger_device]
    # The system language names the entities: Dutch from the start.
    assert guard_state["original_name"] == "Status bewaking"
    assert plan["original_name"] == "Planning"
    assert charger_next["original_name"] == "Volgende actie"
    await _eventually(ha, guard_state["entity_id"], lambda state: state == "normal", 45)
    assert float((await ha.state(CHARGER))["state"]) == 16

    # The oven overloads the connection; within seconds the guard turns the charger down
    # and discharges the battery. (Its state sensor says "limiting" only once that has held
    # for 30 s, so a charger at the edge does not flood the logbook; the reload shows it.)
    await ha.post("/api/services/input_boolean/turn_on", {"entity_id": OVEN})
    await _eventually(ha, CHARGER, lambda amperes: float(amperes) < 16, REACTION_S)
    await _eventually(ha, BATTERY, lambda watts: float(watts) < 0, REACTION_S)
    await _eventually(ha, METER_CURRENT, lambda amperes: float(amperes) <= FUSE_A, REACTION_S)

    # Reloading the entry (as after a change of settings) pauses no device on the way.
    watched = {CHARGER, BATTERY, RELAY_1, RELAY_2, PV_LIMIT}
    relays = {relay: (await ha.state(relay))["state"] for relay in (RELAY_1, RELAY_2)}
    async with _state_changes(ha, watched | {guard_state["entity_id"]}) as changes:
        answer = await ha.post(f"/api/config/config_entries/entry/{entry_id}/reload")
        assert answer == {"require_restart": False}
        await _eventually(ha, guard_state["entity_id"], lambda state: state == "limiting", 30)
        await asyncio.sleep(3)  # a few samples of the running guard after the reload
    assert (guard_state["entity_id"], "unavailable") in changes  # the entry did unload
    currents = [float(state) for entity_id, state in changes if entity_id == CHARGER]
    assert all(amperes >= CHARGER_MIN_A for amperes in currents), currents
    for entity_id, state in changes:
        if entity_id in relays:
            relays[entity_id] = state
        blocked = relays[RELAY_1] == "on" and relays[RELAY_2] == "off"
        assert not blocked, changes  # SG-Ready's "blocked": relay 1 on, relay 2 off
    assert all(state != "0.0" for entity_id, state in changes if entity_id == PV_LIMIT), changes
    # The oven is still on: the battery keeps discharging (it was once written 0 W here).
    assert all(float(state) < 0 for entity_id, state in changes if entity_id == BATTERY), changes

    # The device pages in a Dutch browser: Dutch names, and the plan in Dutch.
    plan_state = (await ha.state(plan["entity_id"]))["state"]
    next_state = (await ha.state(charger_next["entity_id"]))["state"]
    connection_device = plan["device_id"]
    async with browser_page("real-ha-connection-device", locale="nl-NL") as page:
        await _open_device_page(page, ha, connection_device)
        for text in ("Status bewaking", "Planning", PLAN_NL[plan_state], "Begrenst"):
            await wait_for_text(page, text)
    async with browser_page("real-ha-charger-device", locale="nl-NL") as page:
        await _open_device_page(page, ha, charger_device)
        for text in ("Volgende actie", NEXT_ACTION_NL[next_state], "Ingestelde stroom"):
            await wait_for_text(page, text)
