"""Builds the planner's (MI)LP as sparse numpy arrays, vectorised per device.

Units inside the model: kW, kWh, hours, EUR. Which steps carry binaries (no
simultaneous import/export or charge/discharge) and which charging steps are
"minimum power or off" is chosen by the caller through `BinarySteps`, so the solver
can start from the LP relaxation and add integrality only where it is violated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from .baseline import baseline_schedule, schedule_cost
from .grid_caps import GridCaps, step_caps
from .heat import HeatFigures, comfort_shortfall_kh, heat_figures, no_intervention
from .problem import HeatPumpControl

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .problem import (
        PlanBattery,
        PlanCharger,
        PlanEvSession,
        PlanHeatPump,
        PlanningProblem,
        PlanThermalHeatPump,
    )

    IntArray = NDArray[np.int64]
    FloatArray = NDArray[np.float64]
    BoolArray = NDArray[np.bool_]

# EUR per kWh of an EV or heat need the plan cannot meet: far above any real price, so
# it only matters when the need is physically impossible (then the plan does its best).
SHORTFALL_PENALTY_EUR_PER_KWH = 100.0
# EUR per kelvin-hour outside a thermal pump's comfort band: soft, so a home that starts
# below its band still gets a plan, yet far above what any price makes worth it.
COMFORT_PENALTY_EUR_PER_KH = 10.0
# EUR per kelvin-hour below the band beyond what no intervention would have.
COMFORT_BUDGET_PENALTY_EUR_PER_KH = 1000.0
# Penalty per EUR a plan would cost above no intervention (only where that breaks a limit).
MONEY_BUDGET_PENALTY = 1000.0
# Flatness tie-break, as a fraction of a step's typical price (see `_tie_break`).
TIE_BREAK_FRACTION = 1e-4
# A modulating pump that gives no minimum power counts as running from this share of its
# maximum (inverter pumps modulate down to 20-40 %; see `running_min_kw`).
RUNNING_MIN_FRACTION = 0.1


@dataclass(slots=True)
class BinarySteps:
    """Per step, whether a complementarity binary or a minimum-power rule is imposed."""

    grid: BoolArray
    batteries: list[BoolArray]
    sessions: list[list[BoolArray]]  # per charger, per session: complementarity (V2G)
    min_power: list[list[BoolArray]]  # per charger, per session: semi-continuous charge
    # per thermal pump: steps with a modulating pump's off-window binary (all or none)
    pump_windows: list[BoolArray] = field(default_factory=list)

    @classmethod
    def none(cls, problem: PlanningProblem) -> BinarySteps:
        n = problem.n_steps

        def per_session() -> list[list[BoolArray]]:
            return [
                [np.zeros(s.end_step - s.start_step, dtype=bool) for s in c.sessions]
                for c in problem.chargers
            ]

        return cls(
            grid=np.zeros(n, dtype=bool),
            batteries=[np.zeros(n, dtype=bool) for _ in problem.batteries],
            sessions=per_session(),
            min_power=per_session(),
            pump_windows=[np.zeros(n, dtype=bool) for _ in problem.thermal_heat_pumps],
        )

    @classmethod
    def where_losses_pay(cls, problem: PlanningProblem) -> BinarySteps:
        """Complementarity binaries on the steps where wasting energy can pay.

        Charging and discharging at once (or importing and exporting) only burns energy;
        that earns money only at a negative price, or where export pays more than
        import. Elsewhere the LP does not do it unless a limit forces energy away, which
        the caller's rounds still catch. Imposing these from the first round saves the
        LP that would burn there and the rounds that would chase the burning from one
        negative step to the next.
        """
        steps = cls.none(problem)
        import_price = np.asarray(problem.import_price_eur_per_kwh, dtype=float)
        export_price = np.asarray(problem.export_price_eur_per_kwh, dtype=float)
        negative = (import_price < 0) | (export_price < 0)
        steps.grid[:] = export_price > import_price
        for mask in steps.batteries:
            mask[:] = negative
        for charger, masks in zip(problem.chargers, steps.sessions, strict=True):
            for session, mask in zip(charger.sessions, masks, strict=True):
                if charger.bidirectional:
                    mask[:] = negative[session.start_step : session.end_step]
        return steps

    @classmethod
    def all(cls, problem: PlanningProblem) -> BinarySteps:
        steps = cls.none(problem)
        steps.grid[:] = True
        for mask in (*steps.batteries, *_flat(steps.sessions), *_flat(steps.min_power)):
            mask[:] = True
        for heat_pump, mask in zip(problem.thermal_heat_pumps, steps.pump_windows, strict=True):
            mask[:] = heat_pump.control is HeatPumpControl.MODULATING
        return steps

    def count(self) -> int:
        masks = (
            self.grid,
            *self.batteries,
            *_flat(self.sessions),
            *_flat(self.min_power),
            *self.pump_windows,
        )
        return int(sum(int(mask.sum()) for mask in masks))


def _flat(nested: list[list[BoolArray]]) -> list[BoolArray]:
    return [mask for inner in nested for mask in inner]


@dataclass(frozen=True, slots=True)
class StorageVars:
    """Columns of one storage over steps `steps`: charge, discharge (maybe empty), level."""

    steps: IntArray
    charge: IntArray
    discharge: IntArray
    level: IntArray
    shortfall: int | None = None  # session energy the plan cannot deliver


@dataclass(frozen=True, slots=True)
class HeatPumpVars:
    on: IntArray
    starts: IntArray
    shortfalls: IntArray  # one per day


@dataclass(frozen=True, slots=True)
class ThermalPumpVars:
    """Columns of a thermally modelled pump."""

    power: IntArray  # space heating, electric kW (an on/off pump's duty cycle x rated)
    boiler: IntArray  # boiler heat kW (empty without a boiler)
    indoor: IntArray  # degC at the end of each step
    below: IntArray  # K below the band
    above: IntArray  # K above the band
    blocked: IntArray  # binary per step: an on/off pump blocked (empty otherwise)


@dataclass(slots=True)
class Model:
    """The assembled problem and where each quantity lives in the solution vector."""

    cost: FloatArray
    lower: FloatArray
    upper: FloatArray
    integrality: NDArray[np.uint8]
    matrix: sparse.csr_array
    row_lower: FloatArray
    row_upper: FloatArray
    grid_import: IntArray
    grid_export: IntArray
    curtail: IntArray
    curtail_steps: IntArray
    batteries: list[StorageVars]
    sessions: list[list[StorageVars]]
    heat_pumps: list[HeatPumpVars]
    thermal_pumps: list[ThermalPumpVars]
    peak: int | None
    import_cap_kw: FloatArray
    export_cap_kw: FloatArray
    energy_cost: FloatArray = field(default_factory=lambda: np.zeros(0))
    proven_optimal: bool = True  # False when the solver stopped at its time limit


class _Builder:
    """Accumulates columns and COO entries; rows are numbered as they are added."""

    def __init__(self) -> None:
        self.n_vars = 0
        self.n_rows = 0
        self._cost: list[FloatArray] = []
        self._lower: list[FloatArray] = []
        self._upper: list[FloatArray] = []
        self._integrality: list[NDArray[np.uint8]] = []
        self._rows: list[IntArray] = []
        self._cols: list[IntArray] = []
        self._vals: list[FloatArray] = []
        self._row_lower: list[FloatArray] = []
        self._row_upper: list[FloatArray] = []
        self._semi_continuous: list[tuple[IntArray, float]] = []

    def variables(
        self,
        n: int,
        lower: float | FloatArray,
        upper: float | FloatArray,
        cost: float | FloatArray = 0.0,
        integrality: int | NDArray[np.uint8] = 0,
    ) -> IntArray:
        index = np.arange(self.n_vars, self.n_vars + n, dtype=np.int64)
        self.n_vars += n
        self._lower.append(np.broadcast_to(np.asarray(lower, dtype=float), n))
        self._upper.append(np.broadcast_to(np.asarray(upper, dtype=float), n))
        self._cost.append(np.broadcast_to(np.asarray(cost, dtype=float), n))
        self._integrality.append(np.broadcast_to(np.asarray(integrality, dtype=np.uint8), n))
        return index

    def rows(self, n: int, lower: float | FloatArray, upper: float | FloatArray) -> IntArray:
        index = np.arange(self.n_rows, self.n_rows + n, dtype=np.int64)
        self.n_rows += n
        self._row_lower.append(np.broadcast_to(np.asarray(lower, dtype=float), n))
        self._row_upper.append(np.broadcast_to(np.asarray(upper, dtype=float), n))
        return index

    def entries(self, rows: IntArray, cols: IntArray, vals: float | FloatArray) -> None:
        rows, cols, vals_array = np.broadcast_arrays(rows, cols, np.asarray(vals, dtype=float))
        self._rows.append(rows.ravel())
        self._cols.append(cols.ravel())
        self._vals.append(vals_array.ravel())

    def semi_continuous(self, cols: IntArray, minimum: float) -> None:
        """Make `cols` "0 or between `minimum` and their upper bound" (HiGHS type 2)."""
        self._semi_continuous.append((cols, minimum))

    def arrays(
        self,
    ) -> tuple[
        FloatArray,
        FloatArray,
        FloatArray,
        NDArray[np.uint8],
        sparse.csr_array,
        FloatArray,
        FloatArray,
    ]:
        matrix = sparse.csr_array(
            (np.concatenate(self._vals), (np.concatenate(self._rows), np.concatenate(self._cols))),
            shape=(self.n_rows, self.n_vars),
        )
        lower = np.concatenate(self._lower)
        integrality = np.concatenate(self._integrality)
        for cols, minimum in self._semi_continuous:
            lower[cols] = minimum
            integrality[cols] = 2
        return (
            np.concatenate(self._cost),
            lower,
            np.concatenate(self._upper),
            integrality,
            matrix,
            np.concatenate(self._row_lower),
            np.concatenate(self._row_upper),
        )


@dataclass(slots=True)
class _Draws:
    """Terms of the power drawn from the home's wiring (kW), per step and phase set."""

    cols: list[IntArray] = field(default_factory=list)
    steps: list[IntArray] = field(default_factory=list)
    coefs: list[float] = field(default_factory=list)
    phases: list[tuple[int, ...]] = field(default_factory=list)

    def add(self, cols: IntArray, steps: IntArray, coef: float, phases: tuple[int, ...]) -> None:
        self.cols.append(cols)
        self.steps.append(steps)
        self.coefs.append(coef)
        self.phases.append(phases)


def build_model(problem: PlanningProblem, binaries: BinarySteps) -> Model:
    """Assemble the problem with binaries imposed on the steps marked in `binaries`."""
    n = problem.n_steps
    dt = problem.step_hours
    steps = np.arange(n, dtype=np.int64)
    b = _Builder()
    draws = _Draws()
    import_price = np.asarray(problem.import_price_eur_per_kwh, dtype=float)
    export_price = np.asarray(problem.export_price_eur_per_kwh, dtype=float)
    load_kw = np.asarray(problem.base_load_w, dtype=float) / 1000.0
    pv_kw = np.asarray(problem.pv_w, dtype=float) / 1000.0
    caps = step_caps(problem)
    tie_break = _tie_break(import_price, export_price, dt)

    grid_import = b.variables(n, 0.0, caps.import_kw, import_price * dt)
    grid_export = b.variables(n, 0.0, caps.export_kw, -export_price * dt)
    curtail_steps = steps[pv_kw > 0] if problem.pv_curtailment_allowed else steps[:0]
    curtail = b.variables(len(curtail_steps), 0.0, pv_kw[curtail_steps])
    all_phases = tuple(range(1, problem.connection.phases + 1))
    pv_phases = problem.pv_phases or all_phases
    draws.add(curtail, curtail_steps, 1.0, pv_phases)

    batteries = [_battery(b, draws, battery, n, dt) for battery in problem.batteries]
    sessions = [
        [_session(b, draws, charger, session, dt) for session in charger.sessions]
        for charger in problem.chargers
    ]
    heat_pumps = [_heat_pump(b, draws, hp, n, dt) for hp in problem.heat_pumps]
    thermal_pumps = [
        _thermal_pump(b, draws, hp, dt, windows=bool(mask.any()))
        for hp, mask in zip(problem.thermal_heat_pumps, binaries.pump_windows, strict=True)
    ]

    # Energy balance: import - export - flexible draws = base load - PV.
    balance = b.rows(n, load_kw - pv_kw, load_kw - pv_kw)
    b.entries(balance, grid_import, 1.0)
    b.entries(balance, grid_export, -1.0)
    for cols, at, coef in zip(draws.cols, draws.steps, draws.coefs, strict=True):
        b.entries(balance[at], cols, -coef)
    if problem.connection.phases > 1:
        _phase_rows(b, draws, problem, caps)

    peak = _peaks(b, problem, (grid_import, grid_export), caps.import_kw, tie_break=tie_break)
    _complementarity(b, (grid_import, grid_export), (caps.import_kw, caps.export_kw), binaries.grid)
    for battery, storage, mask in zip(
        problem.batteries, batteries, binaries.batteries, strict=True
    ):
        _storage_complementarity(
            b, storage, mask, battery.max_charge_w / 1000, battery.max_discharge_w / 1000
        )
    for charger, charger_sessions, masks, minimums in zip(
        problem.chargers, sessions, binaries.sessions, binaries.min_power, strict=True
    ):
        for session, storage, mask, minimum in zip(
            charger.sessions, charger_sessions, masks, minimums, strict=True
        ):
            if charger.bidirectional:
                _storage_complementarity(
                    b,
                    storage,
                    mask,
                    charger.session_power_w(session) / 1000,
                    charger.max_discharge_w / 1000,
                )
            if charger.min_power_w > 0:
                _minimum_power(b, storage, minimum, charger.min_power_w / 1000)

    if problem.thermal_heat_pumps:
        _money_budget(b, problem, grid=(grid_import, grid_export), peak=peak, pumps=thermal_pumps)
    cost, lower, upper, integrality, matrix, row_lower, row_upper = b.arrays()
    energy_cost = np.zeros_like(cost)
    energy_cost[grid_import] = import_price * dt
    energy_cost[grid_export] = -export_price * dt
    for heat_pump, pump_vars in zip(problem.thermal_heat_pumps, thermal_pumps, strict=True):
        if heat_pump.boiler is not None:
            energy_cost[pump_vars.boiler] = heat_pump.boiler.heat_price_eur_per_kwh * dt
    return Model(
        cost=cost,
        lower=lower,
        upper=upper,
        integrality=integrality,
        matrix=matrix,
        row_lower=row_lower,
        row_upper=row_upper,
        grid_import=grid_import,
        grid_export=grid_export,
        curtail=curtail,
        curtail_steps=curtail_steps,
        batteries=batteries,
        sessions=sessions,
        heat_pumps=heat_pumps,
        thermal_pumps=thermal_pumps,
        peak=peak,
        import_cap_kw=caps.import_kw,
        export_cap_kw=caps.export_kw,
        energy_cost=energy_cost,
    )


def _tie_break(import_price: FloatArray, export_price: FloatArray, dt: float) -> float:
    """EUR per kW of the highest import and export step.

    The cost optimum can move by at most this times the two peaks: with the default
    fraction, 1e-4 of one step's typical price per kW, that stays far below 0.01 % of
    any horizon's cost, yet well above HiGHS's optimality tolerance (1e-7).
    """
    scale = float(np.abs(import_price).mean() + np.abs(export_price).mean()) / 2
    return TIE_BREAK_FRACTION * max(scale, 0.01) * dt


def _storage(
    b: _Builder,
    at: IntArray,
    dt: float,
    *,
    charge_kw: float,
    discharge_kw: float,
    charge_efficiency: float,
    discharge_efficiency: float,
    initial_kwh: float,
    level_lower: FloatArray,
    level_upper: FloatArray,
) -> StorageVars:
    """Charge, discharge and level columns with the level recurrence rows."""
    count = len(at)
    charge = b.variables(count, 0.0, charge_kw)
    discharge = b.variables(count, 0.0, discharge_kw) if discharge_kw > 0 else at[:0]
    level = b.variables(count, level_lower, level_upper)
    # level[k] - level[k-1] - eta_c dt charge[k] + dt/eta_d discharge[k] = 0 (level[-1] given)
    rhs = np.zeros(count)
    rhs[0] = initial_kwh
    rows = b.rows(count, rhs, rhs)
    b.entries(rows, level, 1.0)
    b.entries(rows[1:], level[:-1], -1.0)
    b.entries(rows, charge, -charge_efficiency * dt)
    if len(discharge):
        b.entries(rows, discharge, dt / discharge_efficiency)
    return StorageVars(steps=at, charge=charge, discharge=discharge, level=level)


def _battery(b: _Builder, draws: _Draws, battery: PlanBattery, n: int, dt: float) -> StorageVars:
    capacity = battery.capacity_wh / 1000
    charge_kw = battery.max_charge_w / 1000
    discharge_kw = battery.max_discharge_w / 1000
    initial = battery.soc_initial_pct / 100 * capacity
    elapsed = np.arange(1, n + 1) * dt
    # A battery that starts outside its SoC window may only move back towards it.
    lower = np.minimum(
        battery.soc_min_pct / 100 * capacity,
        initial + elapsed * charge_kw * battery.charge_efficiency,
    )
    upper = np.maximum(
        battery.soc_max_pct / 100 * capacity,
        initial - elapsed * discharge_kw / battery.discharge_efficiency,
    )
    if battery.soc_final_min_pct is not None:
        lower[-1] = max(lower[-1], battery.soc_final_min_pct / 100 * capacity)
    if battery.soc_final_max_pct is not None:
        upper[-1] = min(upper[-1], battery.soc_final_max_pct / 100 * capacity)
    storage = _storage(
        b,
        np.arange(n, dtype=np.int64),
        dt,
        charge_kw=charge_kw,
        discharge_kw=discharge_kw,
        charge_efficiency=battery.charge_efficiency,
        discharge_efficiency=battery.discharge_efficiency,
        initial_kwh=initial,
        level_lower=lower,
        level_upper=upper,
    )
    draws.add(storage.charge, storage.steps, 1.0, battery.phases)
    if len(storage.discharge):
        draws.add(storage.discharge, storage.steps, -1.0, battery.phases)
    return storage


def _session(
    b: _Builder, draws: _Draws, charger: PlanCharger, session: PlanEvSession, dt: float
) -> StorageVars:
    """One plug-in session as a storage whose level is the energy in (or added to) the car."""
    at = np.arange(session.start_step, session.end_step, dtype=np.int64)
    arrival = session.arrival_energy_wh / 1000
    top = arrival + (session.energy_max_wh or session.energy_wh) / 1000
    if session.capacity_wh is not None:
        top = min(top, session.capacity_wh / 1000)
    lower = np.full(len(at), session.reserve_wh / 1000 if charger.bidirectional else 0.0)
    upper = np.full(len(at), top)
    storage = _storage(
        b,
        at,
        dt,
        charge_kw=charger.session_power_w(session) / 1000,
        discharge_kw=charger.max_discharge_w / 1000,
        charge_efficiency=charger.charge_efficiency,
        discharge_efficiency=charger.discharge_efficiency,
        initial_kwh=arrival,
        level_lower=lower,
        level_upper=upper,
    )
    # Soft targets: level + shortfall >= target, shortfall heavily penalised.
    shortfall = b.variables(1, 0.0, np.inf, SHORTFALL_PENALTY_EUR_PER_KWH)
    targets = [(len(at) - 1, arrival + session.energy_wh / 1000)]
    if session.guaranteed_by_step is not None and session.guaranteed_wh > 0:
        targets.append(
            (
                session.guaranteed_by_step - session.start_step - 1,
                arrival + session.guaranteed_wh / 1000,
            )
        )
    for index, target in targets:
        row = b.rows(1, target, np.inf)
        b.entries(row, storage.level[index : index + 1], 1.0)
        b.entries(row, shortfall, 1.0)
    draws.add(storage.charge, at, 1.0, charger.phases)
    if len(storage.discharge):
        draws.add(storage.discharge, at, -1.0, charger.phases)
    return StorageVars(
        steps=at,
        charge=storage.charge,
        discharge=storage.discharge,
        level=storage.level,
        shortfall=int(shortfall[0]),
    )


def _heat_pump(
    b: _Builder, draws: _Draws, heat_pump: PlanHeatPump, n: int, dt: float
) -> HeatPumpVars:
    allowed = np.zeros(n)
    for day in heat_pump.days:
        allowed[day.start_step : day.end_step] = 1.0
    rated_kw = heat_pump.rated_power_w / 1000
    on = b.variables(n, 0.0, allowed, 0.0, 1)
    starts = b.variables(n, 0.0, 1.0)
    # starts[t] >= on[t] - on[t-1]
    rows = b.rows(n, np.r_[-float(heat_pump.running_at_start), np.zeros(n - 1)], np.inf)
    b.entries(rows, starts, 1.0)
    b.entries(rows, on, -1.0)
    b.entries(rows[1:], on[:-1], 1.0)
    shortfalls = b.variables(
        len(heat_pump.days), 0.0, np.inf, SHORTFALL_PENALTY_EUR_PER_KWH / heat_pump.cop
    )
    for day, shortfall in zip(heat_pump.days, shortfalls, strict=True):
        window = slice(day.start_step, day.end_step)
        start_row = b.rows(1, -np.inf, day.max_starts)
        b.entries(start_row, starts[window], 1.0)
        heat_row = b.rows(1, day.heat_need_wh / 1000, np.inf)
        b.entries(heat_row, on[window], rated_kw * heat_pump.cop * dt)
        b.entries(heat_row, np.asarray([shortfall]), 1.0)
    if heat_pump.max_starts_total is not None:
        total_row = b.rows(1, -np.inf, heat_pump.max_starts_total)
        b.entries(total_row, starts, 1.0)
    draws.add(on, np.arange(n, dtype=np.int64), rated_kw, heat_pump.phases)
    return HeatPumpVars(on=on, starts=starts, shortfalls=shortfalls)


def running_min_kw(heat_pump: PlanThermalHeatPump, space_max_kw: FloatArray) -> FloatArray:
    """Per step, the least space-heating power of a running modulating pump (kW).

    Its minimum power, or a share of its maximum when it gives none: a step planned below
    that would in fact be off, and its restart would escape the start budget. Where hot
    water leaves less room the pump runs for the hot water anyway.
    """
    minimum = heat_pump.min_power_w or RUNNING_MIN_FRACTION * heat_pump.max_power_w
    return np.minimum(minimum / 1000, space_max_kw)


def _thermal_pump(
    b: _Builder, draws: _Draws, heat_pump: PlanThermalHeatPump, dt: float, *, windows: bool
) -> ThermalPumpVars:
    """The 1R1C model's rows: indoor temperature states driven by pump and boiler heat.

    T[k] - a T[k-1] - (1 - a) R (COP[k] P[k] + B[k]) = (1 - a)(T_out[k] + R G), the band
    soft on both sides, and the degree-hours below it at most no intervention's.
    `windows`: a modulating pump's off windows are binaries (see `_off_windows`).
    """
    fig = heat_figures(heat_pump)
    n = len(fig.cop)
    at = np.arange(n, dtype=np.int64)
    params = heat_pump.thermal
    a = params.decay(dt)
    r = params.resistance_k_per_kw
    power = b.variables(n, 0.0, fig.space_max_kw)
    modulating = heat_pump.control is HeatPumpControl.MODULATING
    if heat_pump.min_power_w > 0 and not (modulating and windows):
        b.semi_continuous(power, heat_pump.min_power_w / 1000)
    boiler = (
        b.variables(n, 0.0, fig.boiler_max_kw, fig.gas_eur_per_kwh_heat * dt)
        if heat_pump.boiler is not None
        else at[:0]
    )
    indoor = b.variables(n, -np.inf, np.inf)
    rhs = (1 - a) * (fig.outdoor_c + r * params.internal_gain_kw)
    rhs[0] += a * heat_pump.indoor_temperature_c
    rows = b.rows(n, rhs, rhs)
    b.entries(rows, indoor, 1.0)
    b.entries(rows[1:], indoor[:-1], -a)
    b.entries(rows, power, -(1 - a) * r * fig.cop)
    if len(boiler):
        b.entries(rows, boiler, -(1 - a) * r)
    below = b.variables(n, 0.0, np.inf, COMFORT_PENALTY_EUR_PER_KH * dt)
    above = b.variables(n, 0.0, np.inf, COMFORT_PENALTY_EUR_PER_KH * dt)
    rows = b.rows(n, fig.lower_c, np.inf)
    b.entries(rows, indoor, 1.0)
    b.entries(rows, below, 1.0)
    rows = b.rows(n, -np.inf, fig.upper_c)
    b.entries(rows, indoor, 1.0)
    b.entries(rows, above, -1.0)
    # Comfort at least as good as no intervention's (a slack keeps it feasible).
    budget_kh = comfort_shortfall_kh(heat_pump, no_intervention(heat_pump, dt).indoor_c, dt)
    slack = b.variables(1, 0.0, np.inf, COMFORT_BUDGET_PENALTY_EUR_PER_KH)
    row = b.rows(1, -np.inf, budget_kh)
    b.entries(row, below, dt)
    b.entries(row, slack, -1.0)
    blocks = at[:0]
    if not modulating:
        blocks = _block_windows(b, heat_pump, fig, power=power, indoor=indoor, dt=dt)
    elif windows:
        _off_windows(b, heat_pump, fig, power=power, dt=dt)
    draws.add(power, at, 1.0, heat_pump.phases)
    reserved = fig.dhw_kw > 0
    if reserved.any():
        dhw = b.variables(int(reserved.sum()), fig.dhw_kw[reserved], fig.dhw_kw[reserved])
        draws.add(dhw, at[reserved], 1.0, heat_pump.phases)
    return ThermalPumpVars(power, boiler, indoor, below, above, blocks)


def _money_budget(
    b: _Builder,
    problem: PlanningProblem,
    *,
    grid: tuple[IntArray, IntArray],
    peak: int | None,
    pumps: list[ThermalPumpVars],
) -> None:
    """Electricity, gas and peak cost at most no intervention's (a slack keeps it feasible
    where doing nothing breaks a limit): the optimum is then never dearer than doing nothing."""
    dt = problem.step_hours
    baseline = schedule_cost(problem, baseline_schedule(problem)).total_eur
    tariff = problem.tariff
    row = b.rows(1, -np.inf, baseline + tariff.peak_price_eur_per_kw * tariff.peak_already_w / 1000)
    b.entries(row, grid[0], np.asarray(problem.import_price_eur_per_kwh) * dt)
    b.entries(row, grid[1], -np.asarray(problem.export_price_eur_per_kwh) * dt)
    for heat_pump, pump_vars in zip(problem.thermal_heat_pumps, pumps, strict=True):
        if heat_pump.boiler is not None:
            b.entries(row, pump_vars.boiler, heat_pump.boiler.heat_price_eur_per_kwh * dt)
    if peak is not None:
        b.entries(row, np.asarray([peak]), tariff.peak_price_eur_per_kw)
    slack = b.variables(1, 0.0, np.inf, MONEY_BUDGET_PENALTY)
    b.entries(row, slack, -1.0)


def _block_windows(
    b: _Builder,
    heat_pump: PlanThermalHeatPump,
    fig: HeatFigures,
    *,
    power: IntArray,
    indoor: IntArray,
    dt: float,
) -> IntArray:
    """An on/off pump keeps its set point except in block windows (binary per step).

    Outside a window T[k] >= set point, softly (below the set point costs as below the
    band); in a window the pump is off. Windows per day, their minimum and maximum length.
    """
    n = len(power)
    blocked = b.variables(n, 0.0, 1.0, 0.0, 1)
    starts = b.variables(n, 0.0, 1.0)
    # power[k] <= max[k] (1 - blocked[k])
    rows = b.rows(n, -np.inf, fig.space_max_kw)
    b.entries(rows, power, 1.0)
    b.entries(rows, blocked, fig.space_max_kw)
    # T[k] + below_setpoint[k] + (set point - lower) blocked[k] >= set point
    short = b.variables(n, 0.0, np.inf, COMFORT_PENALTY_EUR_PER_KH * dt)
    rows = b.rows(n, fig.setpoint_c, np.inf)
    b.entries(rows, indoor, 1.0)
    b.entries(rows, short, 1.0)
    b.entries(rows, blocked, fig.setpoint_c - fig.lower_c)
    # starts[k] >= blocked[k] - blocked[k-1]
    rows = b.rows(n, 0.0, np.inf)
    b.entries(rows, starts, 1.0)
    b.entries(rows, blocked, -1.0)
    b.entries(rows[1:], blocked[:-1], 1.0)
    if heat_pump.min_window_steps > 1:
        rows = b.rows(n, -np.inf, 0.0)
        b.entries(rows, blocked, -1.0)
        for lag in range(heat_pump.min_window_steps):
            b.entries(rows[lag:], starts[: n - lag], 1.0)
    if heat_pump.max_window_steps is not None:
        span = heat_pump.max_window_steps + 1
        rows = b.rows(max(n - span + 1, 0), -np.inf, heat_pump.max_window_steps)
        for lag in range(span):
            b.entries(rows, blocked[lag : lag + len(rows)], 1.0)
    per_day = round(24 / dt)
    for first in range(0, n, per_day):
        row = b.rows(1, -np.inf, heat_pump.max_windows_per_day)
        b.entries(row, starts[first : first + per_day], 1.0)
    return blocked


def _off_windows(
    b: _Builder, heat_pump: PlanThermalHeatPump, fig: HeatFigures, *, power: IntArray, dt: float
) -> None:
    """A modulating pump restarts at most `max_windows_per_day` times per 24 h.

    Off (binary) means no space heating; otherwise at least `running_min_kw`. A restart
    ends an off window; the state before the horizon is the pump's own, so step 0 is none.
    """
    n = len(power)
    off = b.variables(n, 0.0, 1.0, 0.0, 1)
    running = running_min_kw(heat_pump, fig.space_max_kw)
    # running[k] (1 - off[k]) <= power[k] <= max[k] (1 - off[k])
    rows = b.rows(n, -np.inf, fig.space_max_kw)
    b.entries(rows, power, 1.0)
    b.entries(rows, off, fig.space_max_kw)
    rows = b.rows(n, running, np.inf)
    b.entries(rows, power, 1.0)
    b.entries(rows, off, running)
    # restarts[k] >= off[k-1] - off[k]
    restarts = b.variables(n - 1, 0.0, 1.0)
    rows = b.rows(n - 1, 0.0, np.inf)
    b.entries(rows, restarts, 1.0)
    b.entries(rows, off[:-1], -1.0)
    b.entries(rows, off[1:], 1.0)
    per_day = round(24 / dt)
    for first in range(0, n, per_day):
        row = b.rows(1, -np.inf, heat_pump.max_windows_per_day)
        # restarts[k - 1] is the restart at step k
        b.entries(row, restarts[max(first - 1, 0) : first + per_day - 1], 1.0)


def _phase_rows(b: _Builder, draws: _Draws, problem: PlanningProblem, caps: GridCaps) -> None:
    """-export cap <= net power on each phase <= import cap, devices split evenly."""
    n = problem.n_steps
    load_kw = np.asarray(problem.base_load_w, dtype=float) / 1000.0
    pv_kw = np.asarray(problem.pv_w, dtype=float) / 1000.0
    all_phases = tuple(range(1, problem.connection.phases + 1))
    load_phases = problem.base_load_phases or all_phases
    pv_phases = problem.pv_phases or all_phases
    for phase in all_phases:
        fixed = load_kw * (phase in load_phases) / len(load_phases)
        fixed = fixed - pv_kw * (phase in pv_phases) / len(pv_phases)
        rows = b.rows(
            n, -caps.phase_export_kw[phase - 1] - fixed, caps.phase_import_kw[phase - 1] - fixed
        )
        for cols, at, coef, phases in zip(
            draws.cols, draws.steps, draws.coefs, draws.phases, strict=True
        ):
            if phase in phases:
                b.entries(rows[at], cols, coef / len(phases))


def _peaks(
    b: _Builder,
    problem: PlanningProblem,
    grid: tuple[IntArray, IntArray],
    import_cap_kw: FloatArray,
    *,
    tie_break: float,
) -> int | None:
    """Highest import (priced by the capacity tariff) and export, both tie-broken."""
    tariff = problem.tariff
    peak = b.variables(
        1,
        min(tariff.peak_already_w / 1000, float(import_cap_kw.max())),
        np.inf,
        tariff.peak_price_eur_per_kw + tie_break,
    )
    export_peak = b.variables(1, 0.0, np.inf, tie_break)
    for cols, top in zip(grid, (peak, export_peak), strict=True):
        rows = b.rows(len(cols), -np.inf, 0.0)
        b.entries(rows, cols, 1.0)
        b.entries(rows, top, -1.0)
    return int(peak[0]) if tariff.peak_price_eur_per_kw > 0 else None


def _complementarity(
    b: _Builder,
    columns: tuple[IntArray, IntArray],
    caps: tuple[float | FloatArray, float | FloatArray],
    mask: BoolArray,
) -> None:
    """first <= cap1 z, second <= cap2 (1 - z), z binary, on the masked positions."""
    count = int(mask.sum())
    if count == 0:
        return
    first, second = columns
    cap1 = np.broadcast_to(np.asarray(caps[0], dtype=float), mask.shape)[mask]
    cap2 = np.broadcast_to(np.asarray(caps[1], dtype=float), mask.shape)[mask]
    z = b.variables(count, 0.0, 1.0, 0.0, 1)
    rows = b.rows(count, -np.inf, 0.0)
    b.entries(rows, first[mask], 1.0)
    b.entries(rows, z, -cap1)
    rows = b.rows(count, -np.inf, cap2)
    b.entries(rows, second[mask], 1.0)
    b.entries(rows, z, cap2)


def _storage_complementarity(
    b: _Builder, storage: StorageVars, mask: BoolArray, charge_kw: float, discharge_kw: float
) -> None:
    if len(storage.discharge):
        _complementarity(b, (storage.charge, storage.discharge), (charge_kw, discharge_kw), mask)


def _minimum_power(b: _Builder, storage: StorageVars, mask: BoolArray, minimum_kw: float) -> None:
    """Semi-continuous charge (and discharge): 0 or at least the minimum, on masked steps."""
    for cols in (storage.charge, storage.discharge):
        if len(cols):
            b.semi_continuous(cols[mask], minimum_kw)
