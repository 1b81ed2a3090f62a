"""Results out: a summary table, a JSON file and PNG plots (matplotlib, Agg backend)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import matplotlib as mpl

mpl.use("Agg")  # files only; no display on a server
import matplotlib.pyplot as plt
import numpy as np

from .scenario import STEP_H

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from .scenario import Scenario
    from .strategies import StrategyResult

COLUMNS = (
    ("strategy", "{}"),
    ("peak kW", "{:.1f}"),
    ("1-min kW", "{:.1f}"),
    ("h > cap", "{:.2f}"),
    ("kWh > cap", "{:.1f}"),
    ("cost EUR", "{:.0f}"),
    ("elec kWh", "{:.0f}"),
    ("elec EUR", "{:.0f}"),
    ("gas m3", "{:.0f}"),
    ("gas EUR", "{:.0f}"),
    ("cold Kh", "{:.1f}"),
    ("worst Kh", "{:.1f}"),
    ("EV short kWh", "{:.1f}"),
    ("HP starts/day", "{:.2f}"),
    ("runtime s", "{:.1f}"),
)


def _row(result: StrategyResult) -> tuple[object, ...]:
    return (
        result.strategy.value,
        result.peak_w / 1000,
        result.minute_peak_w / 1000,
        result.hours_above_cap,
        result.energy_above_cap_kwh,
        result.community_cost_eur,
        result.electricity_kwh,
        result.electricity_eur.sum(),
        result.gas_m3.sum(),
        result.gas_eur.sum(),
        result.comfort_kh.sum(),
        result.comfort_worst_kh,
        result.ev_not_delivered_kwh,
        result.heat_pump_starts_per_day,
        result.runtime_s,
    )


def summary_table(scenario: Scenario, results: Sequence[StrategyResult]) -> str:
    cells = [[fmt.format(v) for (_, fmt), v in zip(COLUMNS, _row(r), strict=True)] for r in results]
    header = [name for name, _ in COLUMNS]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    lines = [
        f"{scenario.name}: {scenario.homes.count} homes, {scenario.days} days, "
        f"cap {scenario.cap_w / 1000:.0f} kW, seed {scenario.seed}",
        "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)),
    ]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def result_json(scenario: Scenario, results: Sequence[StrategyResult]) -> dict[str, Any]:
    return {
        "name": scenario.name,
        "seed": scenario.seed,
        "start": scenario.start.isoformat(),
        "days": scenario.days,
        "households": list(scenario.homes.ids),
        "connections": list(scenario.homes.names),  # by name where the file names them
        "transformer_cap_w": scenario.cap_w,
        "strategies": {
            r.strategy.value: {
                "runtime_s": round(r.runtime_s, 3),
                "peak_w": round(r.peak_w, 1),
                "minute_peak_w": round(r.minute_peak_w, 1),
                "hours_above_cap": r.hours_above_cap,
                "energy_above_cap_kwh": round(r.energy_above_cap_kwh, 3),
                "community_cost_eur": round(r.community_cost_eur, 2),
                "household_cost_eur": [round(float(c), 2) for c in r.household_cost_eur],
                "electricity_kwh": round(r.electricity_kwh, 3),
                "electricity_eur": round(float(r.electricity_eur.sum()), 2),
                "gas_m3": round(float(r.gas_m3.sum()), 3),
                "gas_eur": round(float(r.gas_eur.sum()), 2),
                "comfort_kh_below": round(float(r.comfort_kh.sum()), 3),
                "comfort_kh_below_worst_home": round(r.comfort_worst_kh, 3),
                "household_comfort_kh_below": [round(float(c), 3) for c in r.comfort_kh],
                "heat_pump_kwh": round(float(r.heat_pump_kwh.sum()), 3),
                "ev_not_delivered_kwh": round(r.ev_not_delivered_kwh, 3),
                "ev_sessions_short": r.ev_sessions_short,
                "heat_pump_starts_per_day": round(r.heat_pump_starts_per_day, 3),
                "transformer_w": [round(float(w), 1) for w in r.transformer_w],
            }
            for r in results
        },
    }


def write_outputs(scenario: Scenario, results: Sequence[StrategyResult], out: Path) -> list[Path]:
    """JSON and the two plots into `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "simulation.json"
    json_path.write_text(json.dumps(result_json(scenario, results), indent=1), encoding="utf-8")
    return [json_path, plot_transformer(scenario, results, out), plot_costs(results, out)]


def plot_transformer(scenario: Scenario, results: Sequence[StrategyResult], out: Path) -> Path:
    hours = np.arange(scenario.n_steps) * STEP_H
    figure, axes = plt.subplots(
        len(results), 1, figsize=(12, 2.4 * len(results)), sharex=True, squeeze=False
    )
    for axis, result in zip(axes[:, 0], results, strict=True):
        axis.plot(hours, result.transformer_w / 1000, linewidth=0.8, label="transformer load")
        axis.axhline(scenario.cap_w / 1000, color="red", linestyle="--", label="cap")
        axis.set_title(f"{result.strategy.value}: peak {result.peak_w / 1000:.0f} kW", fontsize=9)
        axis.set_ylabel("kW")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel(f"hours from {scenario.start:%Y-%m-%d %H:%M} UTC")
    figure.tight_layout()
    path = out / "transformer_load.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_costs(results: Sequence[StrategyResult], out: Path) -> Path:
    figure, axis = plt.subplots(figsize=(10, 4))
    for result in results:
        axis.plot(np.sort(result.household_cost_eur), label=result.strategy.value, linewidth=1)
    axis.set_xlabel("households, sorted by cost")
    axis.set_ylabel("EUR over the period (electricity and gas)")
    axis.set_title("Cost per household")
    axis.legend(fontsize=8)
    figure.tight_layout()
    path = out / "household_costs.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
