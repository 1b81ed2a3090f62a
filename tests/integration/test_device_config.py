"""Device subentries the flows allow but setup used to reject: unrated loads, deleted circuits."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pytest
from homeassistant.config_entries import ConfigEntryState, ConfigSubentry
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.netbewust.const import (
    CONF_CIRCUIT,
    CONF_PARENT_CIRCUIT,
    CONF_POWER_ENTITY,
    CONF_RATED_POWER,
)
from custom_components.netbewust.core.model import LoadSpec
from custom_components.netbewust.guard.devices import (
    UNRATED_LOAD_POWER_PER_PHASE_W,
    DeviceConfigError,
    bindings_from_subentries,
    circuits_from_subentries,
)
from custom_components.netbewust.guard.entry_config import entry_config

from .conftest import (
    CHARGER,
    CHARGER_ID,
    CIRCUIT,
    CIRCUIT_ID,
    LOAD,
    LOAD_SWITCH,
    MAIN_DATA,
    set_meter,
    state_value,
    subentry,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.config_entries import ConfigSubentryDataWithId
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

LOAD_POWER = "sensor.boiler_power"


def with_data(source: ConfigSubentryDataWithId, **changes: Any) -> ConfigSubentryDataWithId:
    data = {key: value for key, value in {**source["data"], **changes}.items() if value != "drop"}
    return subentry(source["subentry_id"], source["subentry_type"], source["title"], data)


def as_subentry(data: ConfigSubentryDataWithId) -> ConfigSubentry:
    return ConfigSubentry(
        data=MappingProxyType(data["data"]),
        subentry_id=data["subentry_id"],
        subentry_type=data["subentry_type"],
        title=data["title"],
        unique_id=None,
    )


UNRATED_LOAD = with_data(LOAD, **{CONF_RATED_POWER: "drop", CONF_POWER_ENTITY: LOAD_POWER})


def load_spec(source: ConfigSubentryDataWithId) -> LoadSpec:
    (binding,) = bindings_from_subentries([as_subentry(source)])
    assert isinstance(binding.spec, LoadSpec)
    return binding.spec


@pytest.fixture(autouse=True)
def forget_reported_circuits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with nothing reported, so "logged once" is seen per test."""
    monkeypatch.setattr(
        "custom_components.netbewust.guard.devices._reported_dangling_circuits", set()
    )


def test_load_with_a_power_sensor_needs_no_rated_power() -> None:
    assert load_spec(UNRATED_LOAD).rated_power_w == UNRATED_LOAD_POWER_PER_PHASE_W
    # The flow may store an emptied optional field as None.
    explicit_none = with_data(UNRATED_LOAD, **{CONF_RATED_POWER: None})
    assert load_spec(explicit_none).rated_power_w == UNRATED_LOAD_POWER_PER_PHASE_W
    three_phase = with_data(UNRATED_LOAD, device_phases=["1", "2", "3"])
    assert load_spec(three_phase).rated_power_w == 3 * UNRATED_LOAD_POWER_PER_PHASE_W
    # A given rating still wins over the fallback.
    rated = with_data(UNRATED_LOAD, **{CONF_RATED_POWER: 1200})
    assert load_spec(rated).rated_power_w == 1200.0


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({CONF_POWER_ENTITY: "drop"}, "power sensor or a rated power"),
        ({CONF_POWER_ENTITY: None}, "power sensor or a rated power"),
        ({CONF_RATED_POWER: -5}, "rated_power"),
        ({CONF_RATED_POWER: "2 kW"}, "rated_power"),
    ],
)
def test_load_without_any_way_to_know_its_draw_is_rejected(
    changes: dict[str, Any], problem: str
) -> None:
    with pytest.raises(DeviceConfigError, match=problem) as error:
        load_spec(with_data(UNRATED_LOAD, **changes))
    assert error.value.title == LOAD["title"]


def test_device_on_a_deleted_circuit_is_on_no_circuit_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    orphan = as_subentry(with_data(CHARGER, **{CONF_CIRCUIT: "sub_deleted"}))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):  # every reload rebuilds the bindings
            (binding,) = bindings_from_subentries([orphan])
            assert binding.spec.circuit_id is None
    warnings = [record for record in caplog.records if "sub_deleted" in record.getMessage()]
    assert len(warnings) == 1
    assert CHARGER["title"] in warnings[0].getMessage()


def test_existing_circuit_is_kept_and_a_deleted_parent_becomes_the_root(
    caplog: pytest.LogCaptureFixture,
) -> None:
    on_circuit = as_subentry(with_data(CHARGER, **{CONF_CIRCUIT: CIRCUIT_ID}))
    orphan_circuit = as_subentry(with_data(CIRCUIT, **{CONF_PARENT_CIRCUIT: "sub_gone"}))
    subentries = [on_circuit, orphan_circuit]
    (binding,) = bindings_from_subentries(subentries)
    assert binding.spec.circuit_id == CIRCUIT_ID
    (circuit,) = circuits_from_subentries(subentries)
    assert circuit.parent_id is None
    assert "sub_gone" in caplog.text
    # The engine accepts the result: no "unknown circuit" from the guard's validation.
    config = entry_config(MAIN_DATA, subentries)
    assert config.guard.circuits == (circuit,)


@pytest.fixture
async def started(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    freezer: FrozenDateTimeFactory,
) -> Callable[..., Awaitable[MockConfigEntry]]:
    freezer.move_to(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))

    async def _start(*subentries: ConfigSubentryDataWithId) -> MockConfigEntry:
        entry = make_entry(subentries)
        await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        return entry

    return _start


async def telegram(hass: HomeAssistant, freezer: FrozenDateTimeFactory, import_w: float) -> None:
    freezer.tick(timedelta(seconds=1))
    async_fire_time_changed(hass)
    set_meter(hass, import_w)
    await hass.async_block_till_done()


async def test_unrated_load_sets_up_and_is_guarded_by_its_live_reading(
    hass: HomeAssistant, started: Any, freezer: FrozenDateTimeFactory
) -> None:
    hass.states.async_set(LOAD_POWER, "0", {"unit_of_measurement": "W"})
    entry = await started(UNRATED_LOAD)
    assert entry.state is ConfigEntryState.LOADED
    # Switched on only with room for the fallback rating (16 A): 1 kW of household leaves 19.7 A.
    # (switching back on is a loosening change, so it waits out the rate limit)
    for _ in range(60):
        await telegram(hass, freezer, 1000)
    assert state_value(hass, LOAD_SWITCH) == "on"
    # Running, its measured 2 kW counts, not the 3.7 kW fallback: 4.4 kW in all fits 24 A.
    hass.states.async_set(LOAD_POWER, "2000", {"unit_of_measurement": "W"})
    await telegram(hass, freezer, 2400 + 2000)
    assert state_value(hass, LOAD_SWITCH) == "on"
    # Other load grows: 5 kW of household plus the boiler's 2 kW is 30 A.
    await telegram(hass, freezer, 7000)
    assert state_value(hass, LOAD_SWITCH) == "off"
    # Off, it needs room for 16 A again: 11 A of household leaves only 13 A.
    hass.states.async_set(LOAD_POWER, "0", {"unit_of_measurement": "W"})
    for _ in range(120):
        await telegram(hass, freezer, 2500)
    assert state_value(hass, LOAD_SWITCH) == "off"


async def test_entry_with_a_device_on_a_deleted_circuit_sets_up(
    hass: HomeAssistant, started: Any
) -> None:
    entry = await started(with_data(CHARGER, **{CONF_CIRCUIT: "sub_deleted"}))
    assert entry.state is ConfigEntryState.LOADED
    (spec,) = entry.runtime_data.config.guard.devices
    assert spec.device_id == CHARGER_ID
    assert spec.circuit_id is None


async def test_load_with_neither_sensor_nor_rating_fails_setup_with_a_reason(
    hass: HomeAssistant, started: Any, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await started(with_data(LOAD, **{CONF_RATED_POWER: "drop"}))
    assert entry.state is ConfigEntryState.SETUP_ERROR
    # Translated for the household, naming the entry; the log says which value.
    assert entry.error_reason_translation_key == "invalid_config"
    assert "power sensor or a rated power" in caplog.text
