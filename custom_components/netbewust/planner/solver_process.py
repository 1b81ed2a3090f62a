"""One long-lived solver process per Home Assistant instance.

A 672-step solve in HA's executor thread holds the interpreter part of the time and
delays the guard (see docs/planner.md); in its own process it cannot. The process is
started on the first solve, shared by every planning entry, stopped when the last one
unloads or Home Assistant stops, and started afresh if it dies.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import runpy
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING

from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.util.hass_dict import HassKey

from ..const import DOMAIN, LOGGER
from ..core.planning.planner import fallback_plan
from . import solver_worker

if TYPE_CHECKING:
    from ..core.planning.problem import Plan, PlanningProblem

SOLVER_PROCESS: HassKey[SolverProcess] = HassKey(f"{DOMAIN}_solver_process")
# Spawn: a fresh interpreter, safe to start from a threaded program (fork is not).
START_METHOD = "spawn"
BOOTSTRAP = str(Path(__file__).with_name("solver_bootstrap.py"))


class SolverProcess:
    """Solves plans in a worker process; shared by the entries that `acquire` it."""

    def __init__(self, hass: HomeAssistant) -> None:
        self.hass = hass
        self._pool: ProcessPoolExecutor | None = None
        self._users = 0
        # Two entries may solve at once: only one of them starts the process.
        self._pool_lock = threading.Lock()
        hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, self._on_stop)

    @property
    def running(self) -> bool:
        return self._pool is not None

    @callback
    def acquire(self) -> None:
        self._users += 1

    async def async_release(self) -> None:
        """One entry fewer; the last one stops the process."""
        self._users = max(0, self._users - 1)
        if self._users == 0:
            await self.async_shutdown()

    async def async_shutdown(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            # Waits for a solve under way (under a second), off the event loop.
            await self.hass.async_add_executor_job(_shutdown, pool)

    @callback
    def _on_stop(self, _event: Event) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def async_solve(self, problem: PlanningProblem, pv_device_id: str | None) -> Plan:
        """The plan from the worker; a worker that died is replaced once, then the
        fallback rule plans and says why. A solver error propagates as in-process."""
        for attempt in (1, 2):
            try:
                future = await self.hass.async_add_executor_job(self._submit, problem, pv_device_id)
                return await asyncio.wrap_future(future)
            except BrokenProcessPool as err:
                self._discard_broken()
                if attempt == 1:
                    LOGGER.warning("The solver process died (%s); starting a new one", err)
                    continue
                LOGGER.error("The solver process died again (%s); using the fallback", err)
                return fallback_plan(problem, f"solver process died: {err}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _submit(self, problem: PlanningProblem, pv_device_id: str | None) -> Future[Plan]:
        """In an executor thread: starting the process blocks."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context(START_METHOD),
                    initializer=runpy.run_path,
                    initargs=(BOOTSTRAP, {"package_name": __package__}),
                )
            return self._pool.submit(solver_worker.solve, problem, pv_device_id)

    def _discard_broken(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _shutdown(pool: ProcessPoolExecutor) -> None:
    pool.shutdown(wait=True, cancel_futures=True)


@callback
def async_acquire_solver(hass: HomeAssistant) -> SolverProcess:
    """The instance's solver process (created on first use), counted as used once more."""
    solver = hass.data.get(SOLVER_PROCESS)
    if solver is None:
        solver = hass.data[SOLVER_PROCESS] = SolverProcess(hass)
    solver.acquire()
    return solver
