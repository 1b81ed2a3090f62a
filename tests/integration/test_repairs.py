"""Repair issues: a slow meter, stale data (safe mode) and an overload no device can solve."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.netbewust.const import DOMAIN
from custom_components.netbewust.core.model import GuardState, Limitation, LimitReason

from .conftest import decision, set_meter

if TYPE_CHECKING:
    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from .conftest import ScriptedGuard


def issue(hass: HomeAssistant, kind: str, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"{kind}_{entry.entry_id}")


async def tick(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float = 1) -> None:
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


async def test_stale_meter_raises_an_issue_that_clears_on_recovery(
    hass: HomeAssistant,
    loaded: tuple[MockConfigEntry, ScriptedGuard],
    freezer: FrozenDateTimeFactory,
) -> None:
    entry, guard = loaded
    stale = decision(state=GuardState.SAFE_MODE, limitations=(Limitation(LimitReason.STALE_METER),))
    # (Right after setup the guard itself waits for the meter's timeout: "starting".)
    guard.tick_result = stale
    await tick(hass, freezer)
    raised = issue(hass, "stale_meter", entry)
    assert raised is not None
    assert raised.severity is ir.IssueSeverity.ERROR
    assert raised.translation_placeholders == {"title": "Home", "stale_after": "10"}
    assert hass.states.get("sensor.home_guard_state").state == "safe_mode"  # type: ignore[union-attr]

    set_meter(hass, 1000)  # data returns; the scripted guard answers "normal"
    await hass.async_block_till_done()
    assert issue(hass, "stale_meter", entry) is None
    assert hass.states.get("sensor.home_guard_state").state == "normal"  # type: ignore[union-attr]


async def test_slow_meter_raises_advice_and_clears_when_it_speeds_up(
    hass: HomeAssistant,
    loaded: tuple[MockConfigEntry, ScriptedGuard],
    freezer: FrozenDateTimeFactory,
) -> None:
    entry, _ = loaded
    for value in range(7):  # DSMR's default: a telegram every 30 s
        set_meter(hass, 1000 + value)
        await hass.async_block_till_done()
        freezer.tick(timedelta(seconds=30))
    raised = issue(hass, "slow_meter", entry)
    assert raised is not None
    assert raised.severity is ir.IssueSeverity.WARNING
    assert raised.translation_placeholders == {"title": "Home", "interval": "30", "limit": "10"}
    assert entry.runtime_data.pace.interval_s == 30.0

    for value in range(10):
        set_meter(hass, 2000 + value)
        await hass.async_block_till_done()
        freezer.tick(timedelta(seconds=1))
    assert issue(hass, "slow_meter", entry) is None


async def test_unchanged_meter_values_still_count_as_updates(
    hass: HomeAssistant,
    loaded: tuple[MockConfigEntry, ScriptedGuard],
    freezer: FrozenDateTimeFactory,
) -> None:
    _, guard = loaded
    for _ in range(3):
        set_meter(hass, 1000)  # same value: a state_reported event, not state_changed
        await hass.async_block_till_done()
        freezer.tick(timedelta(seconds=1))
    assert len(guard.readings) == 3


async def test_persistent_inflexible_overload_raises_an_issue(
    hass: HomeAssistant,
    loaded: tuple[MockConfigEntry, ScriptedGuard],
    freezer: FrozenDateTimeFactory,
) -> None:
    entry, guard = loaded
    guard.decide = lambda reading: decision(
        state=GuardState.LIMITING,
        current_a=(27.0,),
        limit_a=(24.0,),
        limitations=(Limitation(LimitReason.INFLEXIBLE_OVERLOAD, phase=1),),
        unresolved_overload=True,
        timestamp=reading.timestamp,
    )
    set_meter(hass, 6200)
    await hass.async_block_till_done()
    assert hass.states.get("binary_sensor.home_unresolved_overload").state == "on"  # type: ignore[union-attr]
    await tick(hass, freezer, 10)
    assert issue(hass, "inflexible_overload", entry) is None  # short overloads are the guard's job
    await tick(hass, freezer, 25)
    raised = issue(hass, "inflexible_overload", entry)
    assert raised is not None
    assert raised.translation_placeholders == {"title": "Home", "phases": "L1: 27.0 A / 24.0 A"}

    guard.decide = lambda reading: decision(timestamp=reading.timestamp)
    set_meter(hass, 1000)
    await hass.async_block_till_done()
    assert issue(hass, "inflexible_overload", entry) is None
    assert hass.states.get("binary_sensor.home_unresolved_overload").state == "off"  # type: ignore[union-attr]


async def test_unload_removes_the_entry_issues(
    hass: HomeAssistant,
    loaded: tuple[MockConfigEntry, ScriptedGuard],
    freezer: FrozenDateTimeFactory,
) -> None:
    entry, guard = loaded
    await tick(hass, freezer, 11)
    guard.tick_result = decision(
        state=GuardState.SAFE_MODE, limitations=(Limitation(LimitReason.STALE_METER),)
    )
    await tick(hass, freezer)
    assert issue(hass, "stale_meter", entry) is not None
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert issue(hass, "stale_meter", entry) is None
