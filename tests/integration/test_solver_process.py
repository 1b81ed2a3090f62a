"""The planner's solver process: same plans as in-process, recovers a killed worker,
falls back when it keeps dying, and stops with the last entry."""

from __future__ import annotations

import os
import signal
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from unittest.mock import patch

import pytest

from custom_components.netbewust.core.model import Connection
from custom_components.netbewust.core.planning.planner import plan
from custom_components.netbewust.core.planning.problem import (
    PlanBattery,
    PlanningProblem,
    PlanStatus,
)
from custom_components.netbewust.planner.solver_process import (
    SOLVER_PROCESS,
    SolverProcess,
    async_acquire_solver,
)

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


def _problem() -> PlanningProblem:
    """Eight quarter hours, cheap then dear: the battery buys early and sells late."""
    prices = (0.05, 0.05, 0.10, 0.20, 0.30, 0.30, 0.25, 0.15)
    n = len(prices)
    battery = PlanBattery(
        device_id="battery",
        capacity_wh=4000.0,
        max_charge_w=4000.0,
        max_discharge_w=4000.0,
        soc_min_pct=10.0,
        soc_max_pct=90.0,
        soc_initial_pct=50.0,
    )
    return PlanningProblem(
        start=START,
        connection=Connection(phases=1, fuse_current_a=25.0),
        import_price_eur_per_kwh=prices,
        export_price_eur_per_kwh=tuple(p * 0.8 for p in prices),
        base_load_w=(500.0,) * n,
        pv_w=(0.0,) * n,
        batteries=(battery,),
    )


def _worker_pids(solver: SolverProcess) -> list[int]:
    pool = solver._pool
    assert pool is not None
    return list(pool._processes)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A dead child not yet reaped still answers; its status says it is gone.
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().split()[2] != "Z"


async def test_plan_in_the_worker_equals_the_plan_in_process(hass: HomeAssistant) -> None:
    problem = _problem()
    solver = async_acquire_solver(hass)
    try:
        in_worker = await solver.async_solve(problem, None)
        assert solver.running
    finally:
        await solver.async_release()
    in_process = plan(problem)
    assert in_worker.status is PlanStatus.OPTIMAL
    assert in_worker == in_process
    assert not solver.running


async def test_a_killed_worker_is_replaced(hass: HomeAssistant) -> None:
    problem = _problem()
    solver = async_acquire_solver(hass)
    try:
        first = await solver.async_solve(problem, None)
        (pid,) = _worker_pids(solver)
        os.kill(pid, signal.SIGKILL)
        again = await solver.async_solve(problem, None)
        (new_pid,) = _worker_pids(solver)
    finally:
        await solver.async_release()
    assert again.status is PlanStatus.OPTIMAL
    assert again == first
    assert new_pid != pid


async def test_a_worker_that_keeps_dying_gives_the_fallback_with_its_reason(
    hass: HomeAssistant,
) -> None:
    solver = async_acquire_solver(hass)
    broken = BrokenProcessPool("killed")
    with patch.object(SolverProcess, "_submit", side_effect=broken) as submit:
        result = await solver.async_solve(_problem(), None)
    await solver.async_release()
    assert submit.call_count == 2  # one retry, no more
    assert result.status is PlanStatus.FALLBACK
    assert "solver process died" in result.reason


async def test_an_engine_error_reaches_the_caller_as_in_process(hass: HomeAssistant) -> None:
    """The worker's exception is raised in Home Assistant (whose caller falls back);
    the worker survives it."""
    bad = _problem()
    object.__setattr__(bad, "pv_w", (0.0,))  # one step for eight: the engine fails
    solver = async_acquire_solver(hass)
    try:
        with pytest.raises(IndexError):
            await solver.async_solve(bad, None)
        (pid,) = _worker_pids(solver)
        assert (await solver.async_solve(_problem(), None)).status is PlanStatus.OPTIMAL
        assert _worker_pids(solver) == [pid]
    finally:
        await solver.async_release()


async def test_the_last_release_stops_the_worker(hass: HomeAssistant) -> None:
    first = async_acquire_solver(hass)
    second = async_acquire_solver(hass)
    assert first is second is hass.data[SOLVER_PROCESS]
    await first.async_solve(_problem(), None)
    (pid,) = _worker_pids(first)
    await first.async_release()
    assert _alive(pid)  # the other entry still plans
    await second.async_release()
    assert not first.running
    assert not _alive(pid)
    # A later entry starts a new process on its first solve.
    third = async_acquire_solver(hass)
    assert (await third.async_solve(_problem(), None)).status is PlanStatus.OPTIMAL
    await third.async_release()
    assert not third.running
