"""The simulated household's guard goes to its safe state when an evaluation fails, and
recovers, exactly as in Home Assistant: it is the same engine (fault injected)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import pytest

from community_server.simulation.home import SimulatedHome
from community_server.simulation.profiles import EvSession, HouseholdProfile
from netbewust_core.guard.charger import ChargerController
from netbewust_core.model import ChargerSetpoint, GuardState, Limitation, LimitReason

EVENING = datetime(2026, 12, 7, 18, 30, tzinfo=UTC)
EV_HOME = HouseholdProfile(
    phases=3,
    fuse_current_a=25.0,
    annual_kwh=3000.0,
    noise=0.0,
    pv_peak_w=0.0,
    ev_session=EvSession(arrival_h=17.0, energy_wh=20_000.0),
    ev_max_current_a=16.0,
    heat_pump_rated_w=2500.0,
)


def _engine_bug(*_args: object, **_kwargs: object) -> NoReturn:
    raise ZeroDivisionError("engine bug")


def test_a_failing_evaluation_puts_the_simulated_home_in_its_safe_state(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    home = SimulatedHome(EV_HOME, seed=1)
    assert home.charger is not None
    second = 0

    def step() -> None:
        nonlocal second
        now = EVENING + timedelta(seconds=second)
        home.step(now, now, 1.0)
        second += 1

    for _ in range(30):
        step()
    assert home.last_decision is not None
    assert home.last_decision.setpoints["ev"] == ChargerSetpoint(16.0, 3)

    monkeypatch.setattr(ChargerController, "serve", _engine_bug)
    with caplog.at_level(logging.ERROR):
        for _ in range(5):
            step()
    failed = home.last_decision
    assert failed.state is GuardState.SAFE_MODE
    assert failed.limitations == (Limitation(LimitReason.GUARD_ERROR),)
    assert failed.setpoints["ev"] == ChargerSetpoint(6.0, 3)
    assert caplog.text.count("evaluation failed") == 1
    assert sum(home.charger.draw_a(float(second)).values()) == pytest.approx(3 * 7.0)

    monkeypatch.undo()
    for _ in range(15):
        step()
    assert home.last_decision.state is not GuardState.SAFE_MODE
    assert home.last_decision.setpoints["ev"] == ChargerSetpoint(16.0, 3)
