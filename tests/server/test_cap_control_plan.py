"""CapControl under the collective day-ahead plan: a planned household keeps its plan."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from community_server.cap_control import CapControl, fixed_cap
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.protocol.messages import (
    AssetKind,
    BaselineForecast,
    Capabilities,
    FlexEnvelope,
    HeatPumpCapability,
    Message,
)

from .conftest import NOW
from .test_cap_control import FakeServer, _members

if TYPE_CHECKING:
    from datetime import datetime

    from community_server.store import Store


def _plan(import_w: float) -> ExternalLimit:
    end = NOW + timedelta(minutes=15)
    return ExternalLimit(
        source=LimitSource.COMMUNITY,
        issued_at=NOW - timedelta(hours=12),
        expires_at=end,
        intervals=(LimitInterval(NOW - timedelta(minutes=5), end, max_import_w=import_w),),
    )


def _sent_import_w(server: FakeServer, household: str) -> float:
    interval = dict(server.sent)[household].interval_at(NOW)
    assert interval is not None
    assert interval.max_import_w is not None
    return interval.max_import_w


async def test_a_planned_household_keeps_its_planned_power_under_a_binding_cap(
    server_store: Store,
) -> None:
    planned, free = _members(server_store, 2)
    server = FakeServer()
    control = CapControl(server, server_store, "trafo-1", fixed_cap(10_000.0))  # type: ignore[arg-type]
    control.use_plan({planned: _plan(6000.0)}, published=())
    for name in (planned, free):
        server.report(name, 6000.0, NOW)
    await control.step(NOW)
    # Target 9700 W (3 % margin). Floors: the planned home 6000 W (1500 W base plus the
    # 4500 W its plan gives), the other 1500 W; the 2200 W left go to the other home.
    assert _sent_import_w(server, planned) == pytest.approx(6000.0, abs=0.1)
    assert _sent_import_w(server, free) == pytest.approx(3700.0, abs=0.1)


async def test_a_plan_not_in_force_keeps_nothing(server_store: Store) -> None:
    planned, free = _members(server_store, 2)
    server = FakeServer()
    control = CapControl(server, server_store, "trafo-1", fixed_cap(10_000.0))  # type: ignore[arg-type]
    later = NOW + timedelta(hours=1)
    control.use_plan({planned: _plan(6000.0)}, published=())
    for name in (planned, free):
        server.report(name, 6000.0, later)
    await control.step(later)
    # Equal shares of 9700 W once the plan has ended.
    limits = {name: dict(server.sent)[name].interval_at(later) for name in (planned, free)}
    assert [i.max_import_w if i else None for i in limits.values()] == [
        pytest.approx(4850.0, abs=0.1),
        pytest.approx(4850.0, abs=0.1),
    ]


def _charging(store: Store, household: str, *, opens: datetime, min_power_w: float | None) -> None:
    """`household` reports a car that may charge from `opens` for eight hours."""
    envelope = FlexEnvelope(
        asset=AssetKind.EV,
        energy_wh=10_000.0,
        max_power_w=11_040.0,
        earliest_start=opens,
        deadline=opens + timedelta(hours=8),
        min_power_w=min_power_w,
    )
    caps = Capabilities(phases=3, fuse_current_a=25.0, envelopes=(envelope,))
    store.save_received(
        [Message(community="wijk-1", household=household, sent_at=NOW, body=caps)], NOW
    )


@pytest.mark.parametrize(
    ("min_power_w", "expected_min_w", "planned_w", "free_w"),
    [
        # No minimum: the 1000 W the plan gives above the 1500 W base load is kept.
        (0.0, 0.0, 2500.0, 1500.0),
        # A car that pauses below 1380 W (one phase) cannot use 1000 W: equal shares.
        (1380.0, 1380.0, 1940.0, 1940.0),
        # Not reported: 6 A on each of the home's three phases.
        (None, 4140.0, 1940.0, 1940.0),
    ],
)
async def test_a_plan_below_the_cars_minimum_keeps_nothing(
    server_store: Store,
    min_power_w: float | None,
    expected_min_w: float,
    planned_w: float,
    free_w: float,
) -> None:
    planned, free = _members(server_store, 2)
    _charging(server_store, planned, opens=NOW - timedelta(hours=1), min_power_w=min_power_w)
    server = FakeServer()
    control = CapControl(server, server_store, "trafo-1", fixed_cap(4000.0))  # type: ignore[arg-type]
    control.use_plan({planned: _plan(2500.0)}, published=())
    for name in (planned, free):
        server.report(name, 6000.0, NOW)
    household = server_store.household(planned)
    assert household is not None
    state = control._state(household, NOW, everyone=False)
    assert state is not None
    assert state.min_flexible_w == expected_min_w
    await control.step(NOW)
    assert _sent_import_w(server, planned) == pytest.approx(planned_w, abs=0.1)
    assert _sent_import_w(server, free) == pytest.approx(free_w, abs=0.1)


async def test_a_car_not_yet_in_its_window_sets_no_minimum(server_store: Store) -> None:
    [name] = _members(server_store, 1)
    _charging(server_store, name, opens=NOW + timedelta(hours=1), min_power_w=1380.0)
    server = FakeServer()
    control = CapControl(server, server_store, "trafo-1", fixed_cap(4000.0))  # type: ignore[arg-type]
    server.report(name, 6000.0, NOW)
    household = server_store.household(name)
    assert household is not None
    state = control._state(household, NOW, everyone=False)
    assert state is not None
    assert state.min_flexible_w == 0.0
    later = control._state(household, NOW + timedelta(hours=2), everyone=True)
    assert later is not None
    assert later.min_flexible_w == 1380.0


@pytest.mark.parametrize(
    ("flexible_w", "floor_w"), [(None, 3000.0), (1000.0, 2000.0), (4000.0, 0.0)]
)
async def test_a_heat_pumps_flexible_power_is_not_guaranteed(
    server_store: Store, flexible_w: float | None, floor_w: float
) -> None:
    """The baseline holds the heat pump's planned runs; the part it can give up without
    losing comfort is not part of the floor, so an emergency can take it."""
    [name] = _members(server_store, 1)
    heat_pump = None if flexible_w is None else HeatPumpCapability(flexible_power_w=flexible_w)
    caps = Capabilities(phases=3, fuse_current_a=25.0, heat_pump=heat_pump)
    server_store.save_received(
        [Message(community="wijk-1", household=name, sent_at=NOW, body=caps)], NOW
    )
    server = FakeServer()
    server.latest_baseline[name] = BaselineForecast(start=NOW, power_w=(3000.0,) * 96)
    control = CapControl(server, server_store, "trafo-1", fixed_cap(4000.0))  # type: ignore[arg-type]
    server.report(name, 3000.0, NOW)
    household = server_store.household(name)
    assert household is not None
    state = control._state(household, NOW, everyone=False)
    assert state is not None
    assert state.guaranteed_min_w == pytest.approx(floor_w)
