"""An entry stored by the 0.1.0 release sets up unchanged: same entities, ids and devices.

`fixtures/release_0_1_0.json` was recorded by running this module against release 0.1.0
(commit dab5c2d, before the engine and the integration moved into subpackages) with
`NETBEWUST_RECORD_RELEASE=1`: the stored config entry (data, subentries) and, for every
entity, its unique id, the entity id Home Assistant gave it and its device. The current code
must load that entry without a migration and give every recorded unique id the same entity id
and device; it may add entities.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.netbewust.const import (
    CONF_PRICE_ENTITY,
    CONF_PRICE_SOURCE,
    DOMAIN,
    SUBENTRY_PLANNER,
)

from .conftest import ALL_DEVICES, CIRCUIT, MAIN_DATA, set_meter, subentry

if TYPE_CHECKING:
    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.core import HomeAssistant

FIXTURE = Path(__file__).parent / "fixtures" / "release_0_1_0.json"
NOW = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
DAY_START = datetime(2026, 1, 14, 23, 0, tzinfo=UTC)
PLANNER = subentry(
    "sub_planner",
    SUBENTRY_PLANNER,
    "Planner",
    {CONF_PRICE_SOURCE: "entity", CONF_PRICE_ENTITY: "sensor.prices"},
)


def _prices(hass: HomeAssistant) -> None:
    raw = [
        {
            "start": (DAY_START + timedelta(hours=h)).isoformat(),
            "end": (DAY_START + timedelta(hours=h + 1)).isoformat(),
            "value": 0.2,
        }
        for h in range(24)
    ]
    hass.states.async_set(
        "sensor.prices", "0.2", {"unit_of_measurement": "EUR/kWh", "raw_today": raw}
    )


def _stored_entry(recorded: dict[str, Any] | None) -> MockConfigEntry:
    if recorded is None:  # recording: today's fixtures
        return MockConfigEntry(
            domain=DOMAIN,
            title="Home",
            entry_id="release_entry",
            data=MAIN_DATA,
            subentries_data=(*ALL_DEVICES, CIRCUIT, PLANNER),
        )
    stored = recorded["entry"]
    return MockConfigEntry(
        domain=DOMAIN,
        title=stored["title"],
        entry_id=stored["entry_id"],
        version=stored["version"],
        minor_version=stored["minor_version"],
        data=stored["data"],
        subentries_data=stored["subentries"],
    )


def _snapshot(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    entities = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    devices = dr.async_get(hass)
    return {
        "entry": {
            "entry_id": entry.entry_id,
            "title": entry.title,
            "version": entry.version,
            "minor_version": entry.minor_version,
            "data": dict(entry.data),
            "subentries": [
                {
                    "subentry_id": sub.subentry_id,
                    "subentry_type": sub.subentry_type,
                    "title": sub.title,
                    "unique_id": sub.unique_id,
                    "data": dict(sub.data),
                }
                for sub in entry.subentries.values()
            ],
        },
        "entities": {
            entity.unique_id: {
                "entity_id": entity.entity_id,
                "subentry": entity.config_subentry_id,
                "device": sorted(
                    list(identifier)
                    for identifier in (
                        devices.async_get(entity.device_id or "") or _NO_DEVICE
                    ).identifiers
                ),
            }
            for entity in sorted(entities, key=lambda e: e.unique_id)
        },
    }


class _NoDevice:
    identifiers: frozenset[tuple[str, str]] = frozenset()


_NO_DEVICE = _NoDevice()


@pytest.mark.usefixtures("targets")
async def test_an_entry_stored_by_release_0_1_0_sets_up_with_the_same_entities(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    await hass.config.async_set_time_zone("Europe/Amsterdam")
    freezer.move_to(NOW)
    recording = bool(os.environ.get("NETBEWUST_RECORD_RELEASE"))
    recorded = None if recording else json.loads(FIXTURE.read_text())
    entry = _stored_entry(recorded)
    entry.add_to_hass(hass)
    _prices(hass)
    set_meter(hass, 1000)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    now = _snapshot(hass, entry)
    if recording:
        FIXTURE.parent.mkdir(exist_ok=True)
        FIXTURE.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        pytest.skip("recorded the release fixture")
    assert recorded is not None
    assert now["entry"] == recorded["entry"]  # no migration rewrote what was stored
    assert len(recorded["entities"]) > 20
    changed = {
        unique_id: (then, now["entities"].get(unique_id))
        for unique_id, then in recorded["entities"].items()
        if now["entities"].get(unique_id) != then
    }
    assert changed == {}
