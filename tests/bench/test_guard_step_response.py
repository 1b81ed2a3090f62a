"""The step-response benchmark's scenarios, run briefly: behaviour, never timing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from types import ModuleType

    from homeassistant.core import HomeAssistant

BENCH = Path(__file__).resolve().parents[2] / "bench" / "guard_step_response.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("guard_step_response", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses resolve their annotations through sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_ev_gives_way_within_the_update_that_shows_the_overload(
    hass: HomeAssistant, bench: ModuleType
) -> None:
    result = await bench.case_a(repetitions=3, hass=hass)
    summary = result.summary()
    assert summary["events"] == 3
    assert summary["resolved_same_update"] == 3
    # Only the charger's own 2-5 s lag plus the meter period keeps the fuse exceeded.
    assert summary["above_fuse_s_max"] <= 1 + bench.CHARGER_LAG_S[1] + 0.1
    assert summary["overshoot_a_s_max"] > 0  # the step is real: the plant did go over
    assert summary["car_commands_after_warmup"] >= 3


async def test_l3_overload_leaves_the_l1_car_alone_and_is_reported(
    hass: HomeAssistant, bench: ModuleType
) -> None:
    result = await bench.case_b(repetitions=2, hass=hass)
    summary = result.summary()
    assert summary["car_commands_after_warmup"] == 0
    assert summary["resolved_same_update"] == 2  # reported in the update that showed it
    # Inflexible load: above the fuse for the whole step, nothing the guard could do.
    assert summary["above_fuse_s_mean"] == pytest.approx(10.0)


def test_percentile_of_nothing_is_none(bench: ModuleType) -> None:
    assert bench.percentile([], 0.99) is None
    assert bench.percentile([3.0, 1.0, 2.0], 0.5) == 2.0
