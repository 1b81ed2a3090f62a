"""The home's R and C fitted from the recorder's hourly statistics (planner/thermal_fit.py).

The history is the engine's own 1R1C model run forward with known R and C; the fit must
recover them within 20 %, and a history the model cannot explain falls back to defaults.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pytest
from homeassistant.components.recorder.models import StatisticMeanType
from homeassistant.components.recorder.statistics import async_import_statistics
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from custom_components.netbewust.const import CONF_POWER_ENTITY, SUBENTRY_HEAT_PUMP
from custom_components.netbewust.core.thermal import CopModel, ThermalParameters, simulate_indoor

from .conftest import HEAT_PUMP_ID, INDOOR, OUTDOOR, subentry
from .test_planning import NORDPOOL_URL
from .test_planning_thermal import (
    THERMAL_PUMP,
    amsterdam,  # noqa: F401 (the autouse clock and time zone of those tests)
    entity_id,
    setup_home,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry
    from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

POWER = "sensor.heat_pump_power"
HISTORY_START = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
HOURS = 14 * 24
TRUE = ThermalParameters(resistance_k_per_kw=10.0, capacitance_kwh_per_k=12.0, internal_gain_kw=0.2)
PUMP_WITH_POWER = subentry(
    HEAT_PUMP_ID,
    SUBENTRY_HEAT_PUMP,
    "Heat pump",
    {**THERMAL_PUMP["data"], CONF_POWER_ENTITY: POWER},
)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(request: pytest.FixtureRequest) -> None:
    """Overrides the conftest fixture: the recorder must start before `hass`."""
    request.getfixturevalue("recorder_mock")
    request.getfixturevalue("enable_custom_integrations")


def _import(
    hass: HomeAssistant, entity: str, unit_class: str, unit: str, values: list[float]
) -> None:
    async_import_statistics(
        hass,
        {
            "has_mean": True,
            "mean_type": StatisticMeanType.ARITHMETIC,
            "has_sum": False,
            "name": None,
            "source": "recorder",
            "statistic_id": entity,
            "unit_class": unit_class,
            "unit_of_measurement": unit,
        },
        [
            {
                "start": HISTORY_START + timedelta(hours=h),
                "mean": value,
                "min": value,
                "max": value,
            }
            for h, value in enumerate(values)
            if np.isfinite(value)
        ],
    )


async def record_history(hass: HomeAssistant, *, noise_k: float) -> None:
    """Two weeks of hourly means from the 1R1C model; the indoor mean of an hour is the
    temperature at its start. A few hours are missing, as in a real recorder."""
    rng = np.random.default_rng(13)
    hours = np.arange(HOURS)
    outdoor = 5.0 + 4.0 * np.sin(2 * np.pi * hours / 24)
    electric_w = rng.uniform(0.0, 700.0, HOURS)
    cop = CopModel()
    heat_kw = electric_w / 1000 * np.array([cop.cop(t) for t in outdoor])
    ends = simulate_indoor(TRUE, 1.0, 20.0, outdoor, heat_kw)
    indoor = np.concatenate([[20.0], ends[:-1]]) + rng.normal(0.0, noise_k, HOURS)
    indoor[[50, 51, 200]] = np.nan
    _import(hass, INDOOR, "temperature", "°C", list(indoor))
    _import(hass, OUTDOOR, "temperature", "°C", list(outdoor))
    _import(hass, POWER, "power", "W", list(electric_w))
    await async_wait_recording_done(hass)


@pytest.mark.usefixtures("targets")
async def test_r_and_c_are_recovered_from_the_recorder_and_refitted_daily(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
) -> None:
    aioclient_mock.get(NORDPOOL_URL, status=204)
    await record_history(hass, noise_k=0.0)
    hass.states.async_set(POWER, "300", {"device_class": "power", "unit_of_measurement": "W"})
    _, planner = await setup_home(hass, make_entry, pump=PUMP_WITH_POWER)
    fit = planner.fits[HEAT_PUMP_ID]
    assert fit.fitted, fit.reason
    assert fit.parameters.resistance_k_per_kw == pytest.approx(10.0, rel=0.2)
    assert fit.parameters.capacitance_kwh_per_k == pytest.approx(12.0, rel=0.2)
    assert fit.rms_k is not None
    assert fit.rms_k < 0.5
    # Consecutive hours where all three exist: 335 pairs less the 5 the gaps break.
    assert fit.pairs_used == HOURS - 1 - 5
    model = hass.states.get(entity_id(hass, "sensor", "thermal_model"))
    assert model is not None
    assert model.state == "fitted"
    assert model.attributes["samples"] == fit.pairs_used
    assert model.attributes["resistance_k_per_kw"] == pytest.approx(10.0, rel=0.2)
    # The first plan already used the fit: its expected temperatures follow the fitted model.
    assert planner.fitted_at == datetime(2026, 1, 15, 10, 2, tzinfo=UTC)
    # A day later the next plan fits again.
    freezer.tick(timedelta(hours=24, minutes=1))
    await planner.async_replan("test")
    assert planner.fitted_at == datetime(2026, 1, 16, 10, 3, tzinfo=UTC)


@pytest.mark.usefixtures("targets")
async def test_a_history_the_model_cannot_explain_keeps_the_defaults(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
) -> None:
    aioclient_mock.get(NORDPOOL_URL, status=204)
    await record_history(hass, noise_k=1.5)
    _, planner = await setup_home(hass, make_entry, pump=PUMP_WITH_POWER)
    fit = planner.fits[HEAT_PUMP_ID]
    assert not fit.fitted
    # Terraced, 2006 on: 75 W/K and 8 kWh/K.
    assert fit.parameters.resistance_k_per_kw == pytest.approx(1000 / 75)
    assert fit.parameters.capacitance_kwh_per_k == 8.0
    assert fit.rms_k is not None
    assert fit.rms_k > 0.5
    model = hass.states.get(entity_id(hass, "sensor", "thermal_model"))
    assert model is not None
    assert model.state == "defaults"
    assert model.attributes["reason"].startswith(("one-step error", "the fit is not physical"))
