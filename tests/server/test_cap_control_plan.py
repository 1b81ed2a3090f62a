"""CapControl under the collective day-ahead plan: a planned household keeps its plan."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from community_server.cap_control import CapControl, fixed_cap
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource

from .conftest import NOW
from .test_cap_control import FakeServer, _members

if TYPE_CHECKING:
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
