"""Benchmark: the household planner against the reference optimum of shared scenarios.

Usage: python bench/planner_vs_reference.py [scenario.json ...]
Without arguments it runs ../shared/bench/scenario_household_{96,672}.json (relative
to the repository). For each scenario, and for a variant with the 6 A minimum charging
power, it prints the cost, the gap to the reference optimum, an independent check of
every constraint recomputed from the schedule, and the median solve time of 5 runs
with slightly perturbed prices (building the problem and the model included). The last
line is one JSON object with all figures.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource  # noqa: E402
from netbewust_core.model import MIN_CHARGE_CURRENT_A, NOMINAL_VOLTAGE_V, Connection  # noqa: E402
from netbewust_core.planning.milp import BinarySteps, build_model  # noqa: E402
from netbewust_core.planning.planner import plan  # noqa: E402
from netbewust_core.planning.problem import (  # noqa: E402
    PlanBattery,
    PlanCharger,
    PlanEvSession,
    PlanningProblem,
    PlanStatus,
)

DEFAULT_SCENARIOS = (
    REPO.parent / "shared" / "bench" / "scenario_household_96.json",
    REPO.parent / "shared" / "bench" / "scenario_household_672.json",
)
# Exact MILP optima verified independently (shared/bench/README.md).
KNOWN_OPTIMUM_EUR = {"household_96": 2.576447, "household_672": 18.98978}
RUNS = 5
PRICE_NOISE = 1e-3  # relative, per step
MIN_POWER_W = MIN_CHARGE_CURRENT_A * NOMINAL_VOLTAGE_V  # 6 A single phase: 1380 W
TOL_W = 0.01
TOL_WH = 0.01


@dataclass(frozen=True)
class Outcome:
    cost_eur: float
    reference_eur: float
    reference_kind: str
    checks: dict[str, bool]
    median_ms: float
    runs_ms: list[float]
    rounds: int
    binaries: int

    @property
    def gap_pct(self) -> float:
        return 100.0 * (self.cost_eur - self.reference_eur) / abs(self.reference_eur)


def problem_from_scenario(
    scenario: dict[str, Any], *, min_power_w: float = 0.0, price_factor: Any = None
) -> PlanningProblem:
    """The planner's typed input for one scenario file (its `conventions` key)."""
    start = datetime.fromisoformat(scenario["timestamps"][0]).astimezone(UTC)
    grid = scenario["grid"]
    factor = np.ones(scenario["n_steps"]) if price_factor is None else price_factor
    import_price = tuple(
        float(p) for p in np.asarray(scenario["import_price_eur_per_kwh"]) * factor
    )
    export_price = tuple(
        float(p) for p in np.asarray(scenario["export_price_eur_per_kwh"]) * factor
    )
    # The import limit is the fuse; a lower export limit becomes a limit over the horizon.
    connection = Connection(
        phases=1, fuse_current_a=grid["import_limit_w"] / NOMINAL_VOLTAGE_V, safety_margin_a=0.0
    )
    limits: tuple[ExternalLimit, ...] = ()
    if grid["export_limit_w"] < grid["import_limit_w"]:
        end = start + scenario["n_steps"] * timedelta(hours=scenario["dt_hours"])
        limits = (
            ExternalLimit(
                source=LimitSource.FUSE,
                issued_at=start,
                expires_at=end,
                intervals=(LimitInterval(start, end, max_export_w=grid["export_limit_w"]),),
            ),
        )
    battery = scenario["battery"]
    ev = scenario["ev"]
    return PlanningProblem(
        start=start,
        connection=connection,
        import_price_eur_per_kwh=import_price,
        export_price_eur_per_kwh=export_price,
        base_load_w=tuple(float(v) for v in scenario["load_w"]),
        pv_w=tuple(float(v) for v in scenario["pv_w"]),
        step_minutes=round(scenario["dt_hours"] * 60),
        batteries=(
            PlanBattery(
                device_id="battery",
                capacity_wh=battery["capacity_wh"],
                max_charge_w=battery["p_charge_max_ac_w"],
                max_discharge_w=battery["p_discharge_max_ac_w"],
                charge_efficiency=battery["eta_charge"],
                discharge_efficiency=battery["eta_discharge"],
                soc_min_pct=100 * battery["soc_min"],
                soc_max_pct=100 * battery["soc_max"],
                soc_initial_pct=100 * battery["soc_initial"],
                soc_final_min_pct=100 * battery["soc_final"],
                soc_final_max_pct=100 * battery["soc_final"],
            ),
        ),
        chargers=(
            PlanCharger(
                device_id="ev",
                max_power_w=ev["p_max_w"],
                min_power_w=max(min_power_w, ev.get("p_min_w", 0.0)),
                sessions=tuple(
                    PlanEvSession(
                        start_step=s["start_step"],
                        end_step=s["end_step_exclusive"],
                        energy_wh=s["energy_wh"],
                    )
                    for s in ev["sessions"]
                ),
            ),
        ),
        external_limits=limits,
        pv_curtailment_allowed=bool(scenario["conventions"].get("pv_curtailment_allowed", False)),
    )


def check_schedule(
    scenario: dict[str, Any], schedule: dict[str, np.ndarray], min_power_w: float
) -> dict[str, bool]:
    """Every rule of the scenario's conventions, recomputed from the schedule alone."""
    dt = scenario["dt_hours"]
    load = np.asarray(scenario["load_w"], dtype=float)
    pv = np.asarray(scenario["pv_w"], dtype=float)
    imp, exp = schedule["import"], schedule["export"]
    ch, dis, soc = schedule["charge"], schedule["discharge"], schedule["soc"]
    ev, curt = schedule["ev"], schedule["curtail"]
    battery, grid, ev_spec = scenario["battery"], scenario["grid"], scenario["ev"]
    conventions = scenario["conventions"]

    soc_now = battery["soc_initial"]
    trajectory = []
    for t in range(len(load)):
        soc_now += (
            (battery["eta_charge"] * ch[t] - dis[t] / battery["eta_discharge"])
            * dt
            / battery["capacity_wh"]
        )
        trajectory.append(soc_now)
    recomputed = np.asarray(trajectory)
    in_session = np.zeros(len(load), dtype=bool)
    energy_ok = True
    for session in ev_spec["sessions"]:
        window = slice(session["start_step"], session["end_step_exclusive"])
        in_session[window] = True
        energy_ok &= abs(ev[window].sum() * dt - session["energy_wh"]) <= TOL_WH
    soc_tol = 1e-7
    charging = ev[ev > TOL_W]
    return {
        "energy_balance": bool(
            np.allclose(imp - exp, load - pv + curt + ch - dis + ev, atol=TOL_W)
        ),
        "grid_limits": bool(
            (imp <= grid["import_limit_w"] + TOL_W).all()
            and (exp <= grid["export_limit_w"] + TOL_W).all()
            and (imp >= -TOL_W).all()
            and (exp >= -TOL_W).all()
        ),
        "no_import_and_export": bool((np.minimum(imp, exp) <= TOL_W).all()),
        "battery_power": bool(
            (ch <= battery["p_charge_max_ac_w"] + TOL_W).all()
            and (dis <= battery["p_discharge_max_ac_w"] + TOL_W).all()
            and (ch >= -TOL_W).all()
            and (dis >= -TOL_W).all()
        ),
        "no_charge_and_discharge": bool((np.minimum(ch, dis) <= TOL_W).all()),
        "soc_trajectory": bool(np.allclose(recomputed * 100, soc, atol=1e-4)),
        "soc_bounds": bool(
            (recomputed >= battery["soc_min"] - soc_tol).all()
            and (recomputed <= battery["soc_max"] + soc_tol).all()
            and abs(recomputed[-1] - battery["soc_final"]) <= soc_tol
        ),
        "ev_window_and_power": bool(
            (np.abs(ev[~in_session]) <= TOL_W).all()
            and (ev <= ev_spec["p_max_w"] + TOL_W).all()
            and (ev >= -TOL_W).all()
        ),
        "ev_energy": bool(energy_ok),
        "ev_minimum_power": bool((charging >= min_power_w - TOL_W).all()),
        "pv_curtailment": bool(
            (curt >= -TOL_W).all()
            and (curt <= pv + TOL_W).all()
            and (conventions.get("pv_curtailment_allowed", False) or (curt <= TOL_W).all())
        ),
    }


def schedule_of(result: Any) -> dict[str, np.ndarray]:
    steps = result.steps
    return {
        "import": np.array([s.import_w for s in steps]),
        "export": np.array([s.export_w for s in steps]),
        "charge": np.array([s.batteries["battery"].charge_w for s in steps]),
        "discharge": np.array([s.batteries["battery"].discharge_w for s in steps]),
        "soc": np.array([s.batteries["battery"].soc_pct for s in steps]),
        "ev": np.array([s.chargers["ev"].charge_w - s.chargers["ev"].discharge_w for s in steps]),
        "curtail": np.array([s.pv_curtailed_w for s in steps]),
    }


def scenario_cost(scenario: dict[str, Any], schedule: dict[str, np.ndarray]) -> float:
    """The conventions' cost formula, from the schedule and the scenario's own prices."""
    imp_price = np.asarray(scenario["import_price_eur_per_kwh"])
    exp_price = np.asarray(scenario["export_price_eur_per_kwh"])
    value = imp_price @ schedule["import"] - exp_price @ schedule["export"]
    return float(value) * float(scenario["dt_hours"]) / 1000


def full_milp_cost(problem: PlanningProblem) -> float:
    """Reference for variants without a published optimum: every binary imposed at once."""
    from scipy.optimize import (
        Bounds,
        LinearConstraint,
        milp,
    )

    model = build_model(problem, BinarySteps.all(problem))
    upper = model.upper.copy()
    for sessions in model.sessions:  # the energy must be delivered in full
        upper[[s.shortfall for s in sessions if s.shortfall is not None]] = 0.0
    result = milp(
        model.energy_cost,
        integrality=model.integrality,
        bounds=Bounds(model.lower, upper),
        constraints=LinearConstraint(model.matrix, model.row_lower, model.row_upper),
        options={"mip_rel_gap": 1e-9},
    )
    if result.x is None:
        raise RuntimeError(f"the reference MILP failed: {result.message}")
    return float(model.energy_cost @ result.x)


def run(scenario: dict[str, Any], min_power_w: float) -> Outcome:
    problem = problem_from_scenario(scenario, min_power_w=min_power_w)
    result = plan(problem)
    if result.status is not PlanStatus.OPTIMAL:
        raise RuntimeError(f"{scenario['name']}: planner fell back: {result.reason}")
    schedule = schedule_of(result)
    known = KNOWN_OPTIMUM_EUR.get(scenario["name"]) if min_power_w == 0 else None
    if known is not None:
        reference, kind = known, "published"
    else:
        reference, kind = full_milp_cost(problem), "full MILP"

    rng = np.random.default_rng(4)
    times = []
    for _ in range(RUNS):
        factor = 1.0 + PRICE_NOISE * rng.standard_normal(scenario["n_steps"])
        begin = time.perf_counter()
        perturbed = plan(
            problem_from_scenario(scenario, min_power_w=min_power_w, price_factor=factor)
        )
        times.append((time.perf_counter() - begin) * 1000)
        if perturbed.status is not PlanStatus.OPTIMAL:
            raise RuntimeError("a perturbed run fell back")
    return Outcome(
        cost_eur=scenario_cost(scenario, schedule),
        reference_eur=reference,
        reference_kind=kind,
        checks=check_schedule(scenario, schedule, min_power_w),
        median_ms=statistics.median(times),
        runs_ms=times,
        rounds=result.solver_rounds,
        binaries=result.binaries_used,
    )


def main(argv: list[str]) -> int:
    paths = [Path(arg) for arg in argv] or list(DEFAULT_SCENARIOS)
    figures: dict[str, Any] = {}
    all_ok = True
    for path in paths:
        scenario = json.loads(path.read_text())
        for label, min_power in (("", 0.0), (" +6A min", MIN_POWER_W)):
            name = scenario["name"] + label
            outcome = run(scenario, min_power)
            failed = [rule for rule, ok in outcome.checks.items() if not ok]
            within_gap = abs(outcome.gap_pct) <= 0.01
            all_ok &= within_gap and not failed
            print(f"\n== {name} ({scenario['n_steps']} steps)")
            print(f"  cost                {outcome.cost_eur:12.6f} EUR")
            print(
                f"  reference optimum   {outcome.reference_eur:12.6f} EUR"
                f" ({outcome.reference_kind})"
            )
            print(f"  gap                 {outcome.gap_pct:12.5f} %  (target |gap| <= 0.01 %)")
            print(
                "  constraints         "
                + ("all satisfied" if not failed else "VIOLATED: " + ", ".join(failed))
                + f" ({len(outcome.checks)} checks)"
            )
            print(
                f"  solve time median   {outcome.median_ms:12.1f} ms  "
                f"(runs: {', '.join(f'{t:.1f}' for t in outcome.runs_ms)})"
            )
            print(f"  solver rounds       {outcome.rounds:12d}    binaries {outcome.binaries}")
            figures[name] = {
                "n_steps": scenario["n_steps"],
                "cost_eur": round(outcome.cost_eur, 6),
                "reference_eur": round(outcome.reference_eur, 6),
                "reference_kind": outcome.reference_kind,
                "gap_pct": round(outcome.gap_pct, 6),
                "constraints_ok": not failed,
                "failed_checks": failed,
                "median_solve_ms": round(outcome.median_ms, 2),
                "solver_rounds": outcome.rounds,
                "binaries": outcome.binaries,
            }
    print(json.dumps({"all_ok": all_ok, "scenarios": figures}))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
