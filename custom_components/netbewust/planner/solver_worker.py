"""What the solver process runs. Imports only the engine: the process never loads
Home Assistant (see `solver_bootstrap`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.planning.planner import plan

if TYPE_CHECKING:
    from ..core.planning.problem import Plan, PlanningProblem


def solve(problem: PlanningProblem, pv_device_id: str | None) -> Plan:
    """The household plan, solved in the worker process."""
    return plan(problem, pv_device_id=pv_device_id)
