"""The baseline a plan is compared with, and the fallback schedule when planning fails.

Cars charge at full power from arrival until their energy is in, batteries stay idle
(their own mode), each heat pump runs from the start of its day until the day's heat
need is met, a thermally modelled pump runs as its own thermostat would (hybrids burn
gas as their own controller would), and PV is never curtailed. No price or limit is
looked at. Energy costs include a hybrid's gas.

The fallback plan follows it for cars (full power from arrival gets each car its energy
by departure) but asks nothing of heat pumps: they run as without Netbewust. Nor does
any plan steer a heat pump in a step without a heat figure (no temperature forecast).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .heat import heat_figures, no_intervention

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ..thermal import ThermostatRun
    from .problem import PlanHeatPump, PlanningProblem


@dataclass(frozen=True, slots=True)
class Schedule:
    """Per step (W): each charger's power, each heat pump's state and the grid net."""

    charger_w: tuple[NDArray[np.float64], ...]
    heat_pump_on: tuple[NDArray[np.bool_], ...]
    net_w: NDArray[np.float64]
    thermal_runs: tuple[ThermostatRun, ...] = ()  # per thermal pump, space heating only
    gas_eur: float = 0.0


@dataclass(frozen=True, slots=True)
class ScheduleCost:
    energy_eur: float
    peak_eur: float

    @property
    def total_eur(self) -> float:
        return self.energy_eur + self.peak_eur


def heat_figure_steps(heat_pump: PlanHeatPump, n_steps: int) -> NDArray[np.bool_]:
    """Steps inside a day with a heat figure: the only ones a plan may steer the pump in."""
    covered = np.zeros(n_steps, dtype=bool)
    for day in heat_pump.days:
        covered[day.start_step : day.end_step] = True
    return covered


def baseline_schedule(problem: PlanningProblem) -> Schedule:
    n = problem.n_steps
    dt = problem.step_hours
    net = np.asarray(problem.base_load_w, dtype=float) - np.asarray(problem.pv_w, dtype=float)
    chargers = []
    for charger in problem.chargers:
        power = np.zeros(n)
        for session in charger.sessions:
            session_w = charger.session_power_w(session)
            step_wh = session_w * charger.charge_efficiency * dt
            remaining = session.energy_wh
            for t in range(session.start_step, session.end_step):
                if remaining <= 0 or step_wh <= 0:
                    break
                share = min(1.0, remaining / step_wh)
                power[t] = session_w * share
                remaining -= step_wh * share
        net += power
        chargers.append(power)
    heat_pumps = []
    for heat_pump in problem.heat_pumps:
        on = np.zeros(n, dtype=bool)
        step_heat_wh = heat_pump.rated_power_w * heat_pump.cop * dt
        for day in heat_pump.days:
            needed_steps = int(np.ceil(day.heat_need_wh / step_heat_wh - 1e-9))
            on[day.start_step : min(day.end_step, day.start_step + needed_steps)] = True
        net += on * heat_pump.rated_power_w
        heat_pumps.append(on)
    runs = []
    gas_eur = 0.0
    for thermal in problem.thermal_heat_pumps:
        run = no_intervention(thermal, dt)
        figures = heat_figures(thermal)
        net += (run.electric_kw + figures.dhw_kw) * 1000
        gas_eur += float(run.boiler_heat_kw.sum()) * dt * figures.gas_eur_per_kwh_heat
        runs.append(run)
    return Schedule(tuple(chargers), tuple(heat_pumps), net, tuple(runs), gas_eur)


def schedule_cost(problem: PlanningProblem, schedule: Schedule) -> ScheduleCost:
    """What `schedule` costs at the problem's prices (only meaningful with real prices)."""
    import_w = np.clip(schedule.net_w, 0.0, None)
    export_w = np.clip(-schedule.net_w, 0.0, None)
    energy = float(
        np.dot(problem.import_price_eur_per_kwh, import_w)
        - np.dot(problem.export_price_eur_per_kwh, export_w)
    ) * (problem.step_hours / 1000)
    tariff = problem.tariff
    peak = tariff.peak_price_eur_per_kw * max(0.0, float(import_w.max()) - tariff.peak_already_w)
    return ScheduleCost(energy + schedule.gas_eur, peak / 1000)
