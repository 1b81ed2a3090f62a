"""Planner problems in Home Assistant: a repair issue per cause (en/nl) that clears on
recovery, a reason code instead of exception text, one log line per outage, costs unknown
rather than priced at 0."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from homeassistant.helpers import issue_registry as ir

from custom_components.netbewust.const import CONF_PV_FORECAST_ENTITY, DOMAIN, SUBENTRY_PLANNER
from custom_components.netbewust.core.planning.problem import PlanStatus
from custom_components.netbewust.planner.runtime import PlanReason

from .conftest import state_value, subentry
from .test_planning import (
    EVENING_CHEAP,
    NORDPOOL_URL,
    NOW,
    PLANNER,
    amsterdam,  # noqa: F401 (the autouse clock and time zone of those tests)
    setup_planner,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry
    from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

    from custom_components.netbewust.core.planning.problem import Plan, PlanningProblem
    from custom_components.netbewust.planner.runtime import PlanningRuntime

SECRET = "boom: /home/secret/path"
PV_FORECAST = "sensor.solcast_forecast_today"
PLANNER_WITH_PV_FORECAST = subentry(
    "sub_planner",
    SUBENTRY_PLANNER,
    "Planner",
    {**PLANNER["data"], CONF_PV_FORECAST_ENTITY: PV_FORECAST},
)


class FailingSolver:
    """A solver process whose solve raises, as a solver bug would."""

    def __init__(self) -> None:
        self.calls = 0

    async def async_solve(self, problem: PlanningProblem, pv_device_id: str | None) -> Plan:
        self.calls += 1
        raise RuntimeError(SECRET)


async def _unload(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Unloaded within the test, as a household would: no re-plan during shutdown."""
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


def _why(planner: PlanningRuntime) -> PlanReason | None:
    """Read afresh: mypy keeps the narrowing of the outage across the re-plan."""
    return planner.why


def _issue(hass: HomeAssistant, key: str, entry_id: str) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"{key}_{entry_id}")


@pytest.mark.usefixtures("targets")
async def test_a_failing_solver_raises_one_issue_logs_once_and_clears(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    aioclient_mock.get(NORDPOOL_URL, json=EVENING_CHEAP)
    entry, planner = await setup_planner(hass, make_entry)
    assert planner.plan is not None
    assert planner.plan.status is PlanStatus.OPTIMAL
    solver = planner._solver
    failing = FailingSolver()
    planner._solver = failing  # type: ignore[assignment]
    for _ in range(3):
        await planner.async_replan("quarter hour")
    await hass.async_block_till_done()
    assert failing.calls == 3
    plan = planner.plan
    assert plan is not None
    assert plan.status is PlanStatus.FALLBACK
    assert planner.why is PlanReason.SOLVER_ERROR
    sensor = hass.states.get("sensor.home_plan")
    assert sensor is not None
    assert sensor.state == "fallback"
    assert sensor.attributes["reason"] == "solver_error"
    # No exception text in what the household reads.
    assert "boom" not in str(sensor.attributes)
    issue = _issue(hass, "planner_error", entry.entry_id)
    assert issue is not None
    assert issue.translation_key == "planner_error"
    assert issue.severity is ir.IssueSeverity.WARNING
    # The fallback is priced with the real prices: costs are known.
    assert plan.expected_cost_eur is not None
    assert state_value(hass, "sensor.home_expected_cost_today") not in ("unknown", "0.0")
    # Once per outage: one traceback, one warning, however often it re-plans.
    assert caplog.text.count("The planner failed") == 1
    assert caplog.text.count("planning as without Netbewust (solver_error)") == 1

    planner._solver = solver
    await planner.async_replan("quarter hour")
    await hass.async_block_till_done()
    assert planner.plan is not None
    assert planner.plan.status is PlanStatus.OPTIMAL
    assert _why(planner) is None
    assert _issue(hass, "planner_error", entry.entry_id) is None
    assert caplog.text.count("planning normally again") == 1
    sensor = hass.states.get("sensor.home_plan")
    assert sensor is not None
    assert (sensor.state, sensor.attributes["reason"]) == ("optimal", None)
    await _unload(hass, entry)


@pytest.mark.usefixtures("targets")
async def test_a_missing_pv_forecast_raises_an_issue_naming_it_until_it_returns(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
) -> None:
    aioclient_mock.get(NORDPOOL_URL, json=EVENING_CHEAP)
    entry, planner = await setup_planner(hass, make_entry, PLANNER_WITH_PV_FORECAST)
    issue = _issue(hass, "no_forecast", entry.entry_id)
    assert issue is not None
    assert (issue.translation_placeholders or {})["entities"] == PV_FORECAST
    sensor = hass.states.get("sensor.home_plan")
    assert sensor is not None
    assert sensor.attributes["forecasts_missing"] == [PV_FORECAST]

    start = NOW.replace(minute=0)
    forecast = [{"period_start": start.isoformat(), "pv_estimate": 1.5}]
    hass.states.async_set(PV_FORECAST, "5.2", {"detailedForecast": forecast})
    await planner.async_replan("quarter hour")
    await hass.async_block_till_done()
    assert _issue(hass, "no_forecast", entry.entry_id) is None
    sensor = hass.states.get("sensor.home_plan")
    assert sensor is not None
    assert sensor.attributes["forecasts_missing"] == []
    await _unload(hass, entry)
