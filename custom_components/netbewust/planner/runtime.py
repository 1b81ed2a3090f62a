"""The planner inside Home Assistant: prices and forecasts in, the current step's
setpoints out to the guard, which keeps the last word.

It re-plans every quarter hour, when prices or limits change, when the EV settings
change and when the guard had to clamp the plan. The solve runs in a separate process
(`solver_process`): in an executor thread a 672-step solve held the interpreter long
enough to delay the guard (figures in docs/planner.md).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from homeassistant.const import EVENT_HOMEASSISTANT_STOP, STATE_ON
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers.event import (
    async_track_point_in_utc_time,
    async_track_state_change_event,
    async_track_utc_time_change,
)
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from ..const import DOMAIN, LOGGER
from ..core.model import (
    NOMINAL_VOLTAGE_V,
    BatterySpec,
    ChargerSpec,
    ChargerState,
    HeatPumpSpec,
    LimitReason,
    PvSpec,
)
from ..core.planning.baseline import baseline_schedule
from ..core.planning.forecast import heat_pump_days
from ..core.planning.planner import INFEASIBLE, fallback_plan
from ..core.planning.problem import (
    Plan,
    PlanBattery,
    PlanCharger,
    PlanEvSession,
    PlanHeatPump,
    PlanningError,
    PlanningProblem,
    PlanStatus,
    PlanThermalHeatPump,
)
from ..core.thermal.steering import may_steer
from ..core.timegrid import QUARTER, QUARTERS_PER_DAY, floor_to_quarter_hour, local_day_windows
from ..entity import Updates
from ..guard.devices import charger_state_from_text
from ..guard.issues import Issue
from ..guard.runtime import is_measured
from .forecast_source import async_temperature_forecast
from .metered_cost import MeteredQuarter, OpenQuarter, QuarterHourMeter
from .price_source import PriceBook
from .solver_process import async_acquire_solver
from .thermal import (
    OUTDOOR_RANGE_C,
    ComfortSettings,
    outdoor_series,
    plausible_temperature,
    thermal_configs,
    thermal_heat_pump,
)
from .thermal_fit import REFIT_INTERVAL, async_fit, defaults_result

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..core.limits import ExternalLimit, LimitSource
    from ..core.model import GuardDecision
    from ..core.planning.problem import PlanStep
    from ..core.thermal import FitResult
    from ..guard.devices import DeviceBinding
    from ..guard.runtime import NetbewustRuntime
    from .forecast_source import Forecasts, ForecastSource
    from .price_source import PriceSource
    from .solver_process import SolverProcess
    from .thermal import ThermalConfig

MAX_STEPS = 2 * QUARTERS_PER_DAY  # 48 hours: today and tomorrow's published prices
FALLBACK_STEPS = QUARTERS_PER_DAY
# Re-plan at most this often because the guard clamped: a lasting limit, not a blip.
CLAMP_REPLAN_INTERVAL = timedelta(minutes=5)
CLAMP_REASONS = frozenset(
    {
        LimitReason.FUSE,
        LimitReason.CIRCUIT,
        LimitReason.HOUSEHOLD_PEAK,
        LimitReason.COMMUNITY,
        LimitReason.DSO,
        LimitReason.EXPORT_LIMIT,
    }
)
PLUGGED_IN = frozenset({ChargerState.B, ChargerState.C, ChargerState.D})
DEFAULT_BATTERY_CAPACITY_WH = 0.0
METERED_STORE_VERSION = 1
# Metered quarter hours are kept this long: today and yesterday, whatever the DST change.
METERED_KEEP = timedelta(hours=50)
METERED_SAVE_DELAY_S = 10.0


class PlanReason(StrEnum):
    """Why the plan is only the simple rule: the plan sensor's `reason` attribute (a
    translated state) and, but for not_started, a repair issue of its own."""

    NO_PRICES = "no_prices"
    BAD_INPUT = "bad_input"
    SOLVER_ERROR = "solver_error"
    INFEASIBLE = "infeasible"
    NOT_STARTED = "not_started"  # only between set-up and the solver's start


PLANNER_ISSUES = {
    PlanReason.BAD_INPUT: Issue.PLANNER_BAD_INPUT,
    PlanReason.SOLVER_ERROR: Issue.PLANNER_ERROR,
    PlanReason.INFEASIBLE: Issue.PLANNER_INFEASIBLE,
}


@dataclass(slots=True)
class EvSettings:
    """What the driver asked for: energy by departure, and a guaranteed part earlier."""

    departure: time = time(7, 0)
    energy_kwh: float = 10.0
    guaranteed_kwh: float = 0.0
    guaranteed_by: time = time(7, 0)


class PlanningRuntime:
    """Plans one connection; owned by its `NetbewustRuntime`."""

    def __init__(
        self,
        hass: HomeAssistant,
        runtime: NetbewustRuntime,
        prices: PriceSource,
        forecasts: ForecastSource,
        battery_capacity_wh: dict[str, float],
    ) -> None:
        self.hass = hass
        self.runtime = runtime
        self.prices = prices
        self.forecasts = forecasts
        self.book = PriceBook()
        self.battery_capacity_wh = battery_capacity_wh
        self.ev: dict[str, EvSettings] = {
            b.device_id: EvSettings() for b in runtime.devices.values() if _is(b, ChargerSpec)
        }
        if runtime.modbus is not None:
            self.ev.update((c.spec.device_id, EvSettings()) for c in runtime.modbus.chargers())
        self.external_limits: dict[LimitSource, ExternalLimit] = {}
        self.plan: Plan | None = None
        self.planned_at: datetime | None = None
        self.last_forecasts: Forecasts | None = None
        self.replans = 0
        # Why the plan in force is only the simple rule; None when it is the optimum.
        self.why: PlanReason | None = None
        self._lock = asyncio.Lock()
        self.updates = Updates()  # after every plan and applied step
        self._price_timer: CALLBACK_TYPE | None = None
        # Set at unload: a price refresh still in flight then schedules no further attempt.
        self._stopped = False
        self._last_clamp_replan: datetime | None = None
        self._requested: frozenset[str] = frozenset()
        self._solver: SolverProcess | None = None
        self.meter = QuarterHourMeter()
        self.metered: dict[datetime, MeteredQuarter] = {}
        # The baseline's energy cost per step of the plan in force (EUR).
        self.baseline_step_eur: dict[datetime, float] = {}
        # Modbus batteries left out of the last plan because their charge was unknown.
        self.soc_unknown: frozenset[str] = frozenset()
        # Whether each Modbus charger had a car plugged in (None: unknown) in the last plan.
        self.planned_plugs: dict[str, bool | None] = {}
        self._modbus_replan_pending = False
        self._store: Store[dict[str, Any]] = Store(
            hass, METERED_STORE_VERSION, f"{DOMAIN}.metered_{runtime.entry.entry_id}"
        )
        # Heat pumps planned on the thermal model, their comfort settings and fits.
        self.thermal: dict[str, ThermalConfig] = {
            device_id: config
            for device_id, config in thermal_configs(runtime.entry.subentries.values()).items()
            if _is_heat_pump(runtime.devices.get(device_id))
        }
        self.comfort = {device_id: ComfortSettings() for device_id in self.thermal}
        self.fits: dict[str, FitResult] = {
            device_id: defaults_result(config, "not fitted yet")
            for device_id, config in self.thermal.items()
        }
        self.fitted_at: datetime | None = None
        # The indoor temperature each thermal pump was last planned from, per plan start.
        self._planned_indoor: dict[str, tuple[datetime, float]] = {}
        # Why a thermal pump was planned from its daily heat need instead (None: it was not).
        self.thermal_notes: dict[str, str] = {}
        # The last plan's start and thermal rows: a community offers them as thermal stores.
        self.last_thermal: tuple[datetime, tuple[PlanThermalHeatPump, ...]] | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.hass.config.time_zone)

    @callback
    def async_start(self) -> None:
        on_unload = self.runtime.entry.async_on_unload
        self._solver = async_acquire_solver(self.hass)
        on_unload(self._solver.async_release)
        on_unload(
            async_track_utc_time_change(
                self.hass, self._on_quarter_hour, minute=(0, 15, 30, 45), second=0
            )
        )
        on_unload(self.runtime.updates.add_listener(self._on_decision))
        on_unload(self._stop_price_refresh)
        on_unload(self.hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, self._on_stop))
        on_unload(self._save_metered)
        if self.runtime.modbus is not None:
            on_unload(self.runtime.modbus.updates.add_listener(self._on_modbus_poll))
        readings = [
            entity_id
            for config in self.thermal.values()
            for entity_id in (config.indoor_entity, config.dhw_entity)
            if entity_id is not None
        ]
        if readings:
            on_unload(async_track_state_change_event(self.hass, readings, self._on_thermal_reading))
        self.runtime.entry.async_create_task(
            self.hass, self.async_restore_metered(), "netbewust metered cost"
        )
        self.runtime.entry.async_create_task(
            self.hass, self.async_refresh_prices(), "netbewust prices"
        )

    @callback
    def _cancel_price_timer(self) -> None:
        if self._price_timer is not None:
            self._price_timer()
            self._price_timer = None

    @callback
    def _stop_price_refresh(self) -> None:
        """At unload: no price timer now, and none from a refresh that ends later (Home
        Assistant runs the unload callbacks first, then waits for the entry's tasks)."""
        self._stopped = True
        self._cancel_price_timer()

    async def async_refresh_prices(self, _now: datetime | None = None) -> None:
        """Fetch the days still missing, re-plan, and schedule the next attempt."""
        self._cancel_price_timer()  # called before the timer fired: this replaces it
        now = dt_util.utcnow()
        self.book.prune(now)
        changed = False
        for day in self.book.wanted(now):
            changed |= self.book.record(await self.prices.async_fetch_day(day))
        await self.async_replan("prices" if changed else "price check")
        self._cancel_price_timer()
        if self._stopped:  # unloaded while fetching or planning
            return
        self._price_timer = async_track_point_in_utc_time(
            self.hass, self._on_price_timer, self.book.next_attempt(now)
        )

    @callback
    def _on_price_timer(self, now: datetime) -> None:
        self._price_timer = None
        self.runtime.entry.async_create_task(
            self.hass, self.async_refresh_prices(now), "netbewust prices"
        )

    @callback
    def _on_quarter_hour(self, now: datetime) -> None:
        self.runtime.entry.async_create_task(
            self.hass, self.async_replan("quarter hour"), "netbewust replan"
        )

    @callback
    def async_set_external_limit(self, limit: ExternalLimit) -> None:
        """A limit for guard and planner alike; the plan follows it at once."""
        self.external_limits[limit.source] = limit
        self.runtime.guard.set_external_limit(limit)
        self._schedule_replan("limit")

    @callback
    def async_update_ev(self, device_id: str, **changes: object) -> None:
        settings = self.ev[device_id]
        for name, value in changes.items():
            setattr(settings, name, value)
        self._schedule_replan("EV settings")

    @callback
    def async_update_comfort(self, device_id: str, **changes: object) -> None:
        """A comfort setting changed: the band, a pause or "comfort now"; re-plan."""
        settings = self.comfort[device_id]
        for name, value in changes.items():
            setattr(settings, name, value)
        # A pause or its end takes effect at once, before the new plan is ready.
        self.async_apply(dt_util.utcnow())
        self._schedule_replan("comfort settings")

    @callback
    def _on_thermal_reading(self, _event: Event[Any]) -> None:
        """The indoor temperature or hot-water state changed: a block may have to go."""
        self.async_apply(dt_util.utcnow())

    @callback
    def _schedule_replan(self, reason: str) -> None:
        self.runtime.entry.async_create_task(
            self.hass, self.async_replan(reason), "netbewust replan"
        )

    @callback
    def _on_modbus_poll(self) -> None:
        """Re-plan as soon as a battery left out for want of a charge reports one, or a
        car is plugged into or out of a Modbus charger (not on every poll)."""
        modbus = self.runtime.modbus
        if self._modbus_replan_pending or modbus is None:
            return
        if self.soc_unknown and any(
            b.spec.device_id in self.soc_unknown and b.soc_pct is not None
            for b in modbus.batteries()
        ):
            reason = "Modbus battery charge known"
        elif any(
            _plugged(c.state) != self.planned_plugs.get(c.spec.device_id) for c in modbus.chargers()
        ):
            reason = "Modbus charger plugged in or out"
        else:
            return
        self._modbus_replan_pending = True
        self._schedule_replan(reason)

    @callback
    def _on_decision(self) -> None:
        decision: GuardDecision | None = self.runtime.last_decision
        if decision is None:
            return
        self._meter_decision(decision)
        self._replan_if_clamped(decision)

    @callback
    def _meter_decision(self, decision: GuardDecision) -> None:
        """Meter what the guard measured; a stale meter or a failed evaluation is no reading."""
        if not is_measured(decision):
            return
        volts = self.runtime.config.guard.connection.nominal_voltage_v
        net_w = sum(decision.phase_current_a) * volts
        closed = self.meter.add(decision.timestamp, net_w)
        for quarter in closed:
            self.metered[quarter.start] = self._costed(quarter)
        if closed:
            self._prune_metered(decision.timestamp)
            self._save_metered(METERED_SAVE_DELAY_S)

    def _costed(self, quarter: OpenQuarter) -> MeteredQuarter:
        """Price a metered quarter hour with the all-in tariff of its own spot price."""
        cost = None
        series = self.book.series()
        spot = series.window(quarter.start, 1) if series is not None else None
        if spot is not None:
            tariff = self.forecasts.config.tariff
            cost = (
                quarter.import_wh * tariff.import_price(spot[0])
                - quarter.export_wh * tariff.export_price(spot[0])
            ) / 1000
        return MeteredQuarter(
            quarter.start,
            quarter.import_wh,
            quarter.export_wh,
            cost,
            self.baseline_step_eur.get(quarter.start),
        )

    def _prune_metered(self, now: datetime) -> None:
        for start in [s for s in self.metered if s < now - METERED_KEEP]:
            del self.metered[start]

    async def async_restore_metered(self) -> None:
        stored = await self._store.async_load()
        quarters = stored.get("quarters") if isinstance(stored, dict) else None
        for raw in quarters if isinstance(quarters, list) else []:
            quarter = MeteredQuarter.from_list(raw)
            if quarter is None:
                LOGGER.warning("Ignoring a stored metered quarter hour that does not validate")
                continue
            # What was metered since start-up is newer than what was stored.
            self.metered.setdefault(quarter.start, quarter)
        self._prune_metered(dt_util.utcnow())

    @callback
    def _save_metered(self, delay: float = 0.0) -> None:
        self._store.async_delay_save(self._metered_data, delay)

    @callback
    def _on_stop(self, _event: Event) -> None:
        self._save_metered()

    def _metered_data(self) -> dict[str, Any]:
        return {"quarters": [q.as_list() for q in sorted(self.metered.values(), key=_start)]}

    @callback
    def _replan_if_clamped(self, decision: GuardDecision) -> None:
        """Re-plan when the guard had to hold back what the plan asked for."""
        if not self._requested:
            return
        clamped = any(
            limitation.reason in CLAMP_REASONS and limitation.device_id in self._requested
            for limitation in decision.limitations
        )
        now = dt_util.utcnow()
        last = self._last_clamp_replan
        if clamped and (last is None or now - last >= CLAMP_REPLAN_INTERVAL):
            self._last_clamp_replan = now
            self._schedule_replan("guard clamped the plan")

    async def async_replan(self, reason: str) -> None:
        async with self._lock:
            if self._stopped:  # unloaded: the solver is released, the guard no longer ours
                return
            now = dt_util.utcnow()
            start = floor_to_quarter_hour(now)
            result, why = await self._solve(start)
            self._report(why, result.reason)
            self.plan = result
            self.why = why
            self.planned_at = now
            self.replans += 1
            LOGGER.debug("Re-planned (%s): %s %s", reason, result.status, result.reason)
            self.async_apply(now)

    def _report(self, why: PlanReason | None, detail: str) -> None:
        """Once per outage: a repair issue and a log line when planning degrades (or why
        changes), and one line when it recovers; the issue goes with the cause."""
        for reason, issue in PLANNER_ISSUES.items():
            self.runtime.issues.update(issue, why is reason)
        title = self.runtime.entry.title
        if why is not None and why is not self.why:
            LOGGER.warning("%s: planning as without Netbewust (%s): %s", title, why, detail)
        elif why is None and self.why is not None:
            LOGGER.info("%s: planning normally again", title)

    async def _solve(self, start: datetime) -> tuple[Plan, PlanReason | None]:
        """The plan, and why it is only the simple rule (None: it is not)."""
        series = self.book.series()
        prices = None
        n_steps = 0
        if series is not None and series.end > start:
            n_steps = min(MAX_STEPS, int((series.end - start) / QUARTER))
            prices = series.window(start, n_steps)
        missing = prices is None
        detail = self.book.last_detail or "none fetched yet"
        self.runtime.issues.update(Issue.NO_PRICES, missing, {"detail": detail})
        if prices is None:
            n_steps = FALLBACK_STEPS
            # The fallback looks at no price; zeros only make the problem well-formed.
            prices = (0.0,) * n_steps
        forecasts = await self.forecasts.async_forecasts(start, n_steps)
        self.last_forecasts = forecasts
        self.runtime.issues.update(
            Issue.NO_FORECAST,
            bool(forecasts.missing_entities),
            {"entities": ", ".join(forecasts.missing_entities)},
        )
        await self._async_refit_if_due()
        outdoor = await self._outdoor_series(start, n_steps)
        try:
            problem = self._problem(start, prices, forecasts, outdoor)
        except PlanningError as err:
            return _empty_fallback(f"bad planning input: {err}"), PlanReason.BAD_INPUT
        self.last_thermal = (start, problem.thermal_heat_pumps)
        if missing:
            self.baseline_step_eur = {}  # without prices the baseline has no cost
            plan = fallback_plan(problem, f"no day-ahead prices ({detail})", priced=False)
            return plan, PlanReason.NO_PRICES
        self.baseline_step_eur = _baseline_step_costs(problem)
        if self._solver is None:
            return fallback_plan(problem, "planner not started"), PlanReason.NOT_STARTED
        try:
            plan = await self._solver.async_solve(problem, self._pv_device_id())
        except Exception as err:  # a solver bug must not stop the guard
            if self.why is not PlanReason.SOLVER_ERROR:  # the traceback once per outage
                LOGGER.exception("The planner failed")
            return fallback_plan(problem, f"planner error: {err!r}"), PlanReason.SOLVER_ERROR
        if plan.status is not PlanStatus.FALLBACK:
            return plan, None
        # The solver falls back when no plan keeps every limit, or its process died.
        infeasible = plan.reason == INFEASIBLE
        return plan, PlanReason.INFEASIBLE if infeasible else PlanReason.SOLVER_ERROR

    def _pv_device_id(self) -> str | None:
        for binding in self.runtime.devices.values():
            if isinstance(binding.spec, PvSpec) and binding.spec.can_limit_power:
                return binding.device_id
        return None

    async def _async_refit_if_due(self) -> None:
        """Fit each thermal pump's R and C from the recorder, at start and then daily."""
        now = dt_util.utcnow()
        if not self.thermal or (
            self.fitted_at is not None and now - self.fitted_at < REFIT_INTERVAL
        ):
            return
        self.fitted_at = now
        for device_id, config in self.thermal.items():
            try:
                self.fits[device_id] = await async_fit(self.hass, config, now)
            except Exception:  # a recorder fault must not stop planning
                LOGGER.exception(
                    "%s: thermal fit failed", self.runtime.devices[device_id].spec.name
                )
                # The traceback is in the log; the sensor's attribute says only that.
                self.fits[device_id] = defaults_result(config, "fit failed")

    async def _outdoor_series(self, start: datetime, n_steps: int) -> dict[str, tuple[float, ...]]:
        """Per thermal pump, the outdoor temperature per step: the weather forecast (its
        own weather entity, else the planner's) from the current reading on."""
        series: dict[str, tuple[float, ...]] = {}
        for device_id, config in self.thermal.items():
            current = self.measured_outdoor(device_id)
            weather = (
                config.outdoor_entity
                if config.outdoor_is_weather
                else self.forecasts.config.weather_entity
            )
            samples = await async_temperature_forecast(self.hass, weather) if weather else []
            values = outdoor_series(samples, current, start, n_steps)
            if values is None:
                self.thermal_notes[device_id] = "no outdoor temperature: planned by heat need"
            else:
                self.thermal_notes.pop(device_id, None)
                series[device_id] = values
        return series

    def _thermal_row(
        self, spec: HeatPumpSpec, start: datetime, n_steps: int, outdoor: tuple[float, ...]
    ) -> PlanThermalHeatPump:
        config = self.thermal[spec.device_id]
        band = self.comfort[spec.device_id].band(start, n_steps, self.zone)
        indoor = self.measured_indoor(spec.device_id)
        if indoor is None:
            # Without a reading: the model's own prediction, else the thermostat's set point.
            indoor = self._predicted_indoor(spec.device_id, start)
        if indoor is None:
            indoor = band.setpoint_c[0]
        self._planned_indoor[spec.device_id] = (start, indoor)
        return thermal_heat_pump(
            spec,
            config,
            band,
            parameters=self.fits[spec.device_id].parameters,
            outdoor_c=outdoor,
            indoor_c=indoor,
            min_off_s=spec.min_off_s,
        )

    def measured_outdoor(self, device_id: str) -> float | None:
        """The outdoor entity's reading (a weather entity's `temperature`); None without
        one, or when it is not plausible."""
        config = self.thermal[device_id]
        if (state := self.hass.states.get(config.outdoor_entity)) is None:
            return None
        raw = state.attributes.get("temperature") if config.outdoor_is_weather else state.state
        return plausible_temperature(_float(raw), OUTDOOR_RANGE_C)

    def measured_indoor(self, device_id: str) -> float | None:
        """The indoor sensor's reading; None without one, or when it is not plausible."""
        entity_id = self.thermal[device_id].indoor_entity
        return plausible_temperature(_number_state(self.hass, entity_id))

    def _predicted_indoor(self, device_id: str, start: datetime) -> float | None:
        """What the plan in force expected the indoor temperature to be at `start`."""
        planned = self._planned_indoor.get(device_id)
        if planned is not None and planned[0] == start:
            return planned[1]
        for step in self.plan.steps if self.plan is not None else ():
            heat_pump = step.heat_pumps.get(device_id)
            if step.start + QUARTER == start and heat_pump is not None:
                return heat_pump.indoor_temperature_c
        return None

    def _problem(
        self,
        start: datetime,
        spot: tuple[float, ...],
        forecasts: Forecasts,
        outdoor: Mapping[str, tuple[float, ...]],
    ) -> PlanningProblem:
        tariff = self.forecasts.config.tariff
        import_price, export_price = tariff.all_in(spot)
        n_steps = len(spot)
        batteries, chargers, heat_pumps = [], [], []
        thermal_pumps: list[PlanThermalHeatPump] = []
        for binding in self.runtime.devices.values():
            spec = binding.spec
            if isinstance(spec, BatterySpec):
                soc = _number_state(self.hass, binding.soc_entity)
                # Without a reading an entity battery is planned from its minimum charge.
                battery = self._battery(spec, spec.min_soc_pct if soc is None else soc)
                if battery is not None:
                    batteries.append(battery)
            elif isinstance(spec, ChargerSpec):
                chargers.append(self._charger(spec, self._plugged_in(binding), start, n_steps))
            elif isinstance(spec, HeatPumpSpec) and spec.device_id in outdoor:
                thermal_pumps.append(
                    self._thermal_row(spec, start, n_steps, outdoor[spec.device_id])
                )
            elif isinstance(spec, HeatPumpSpec):
                windows = local_day_windows(start, n_steps, QUARTER, self.zone)
                days = heat_pump_days(
                    windows, dict(forecasts.heat_need_wh), spec.max_switches_per_day
                )
                heat_pumps.append(
                    PlanHeatPump(
                        device_id=spec.device_id,
                        rated_power_w=spec.rated_power_w,
                        days=days,
                        phases=spec.phases,
                    )
                )
        batteries.extend(self._modbus_batteries())
        chargers.extend(self._modbus_chargers(start, n_steps))
        self._modbus_replan_pending = False
        return PlanningProblem(
            start=start,
            connection=self.runtime.config.guard.connection,
            import_price_eur_per_kwh=import_price,
            export_price_eur_per_kwh=export_price,
            base_load_w=forecasts.base_load_w,
            pv_w=forecasts.pv_w,
            batteries=tuple(batteries),
            chargers=tuple(chargers),
            heat_pumps=tuple(heat_pumps),
            thermal_heat_pumps=tuple(thermal_pumps),
            external_limits=tuple(self.external_limits.values()),
            # The peak already billed this month is not tracked: every horizon's own
            # highest quarter hour is priced, which errs towards flatter plans.
            tariff=self.forecasts.config.capacity_tariff,
            pv_curtailment_allowed=self._pv_device_id() is not None,
        )

    def _modbus_batteries(self) -> list[PlanBattery]:
        """Modbus batteries with a polled charge; one without is left to its own mode
        (planning it from a guess could drain it), noted once until it reports."""
        modbus = self.runtime.modbus
        planned: list[PlanBattery] = []
        unknown: set[str] = set()
        for battery in modbus.batteries() if modbus is not None else ():
            if battery.soc_pct is None:
                if self._capacity_wh(battery.spec) > 0:
                    unknown.add(battery.spec.device_id)
                    if battery.spec.device_id not in self.soc_unknown:
                        LOGGER.info(
                            "%s: state of charge unknown; not planned until it is read",
                            battery.spec.name,
                        )
            elif (planned_battery := self._battery(battery.spec, battery.soc_pct)) is not None:
                planned.append(planned_battery)
        self.soc_unknown = frozenset(unknown)
        return planned

    def _modbus_chargers(self, start: datetime, n_steps: int) -> list[PlanCharger]:
        """Modbus chargers, with a session while their polled state says a car is plugged
        in; one whose state is unknown (unreachable, unmapped) gets none, noted once."""
        modbus = self.runtime.modbus
        planned: list[PlanCharger] = []
        plugs: dict[str, bool | None] = {}
        for charger in modbus.chargers() if modbus is not None else ():
            device_id = charger.spec.device_id
            plugs[device_id] = plugged = _plugged(charger.state)
            if plugged is None and self.planned_plugs.get(device_id, False) is not None:
                LOGGER.info(
                    "%s: charger state unknown; no charging session planned until it is read",
                    charger.spec.name,
                )
            planned.append(self._charger(charger.spec, bool(plugged), start, n_steps))
        self.planned_plugs = plugs
        return planned

    def _capacity_wh(self, spec: BatterySpec) -> float:
        return self.battery_capacity_wh.get(spec.device_id, DEFAULT_BATTERY_CAPACITY_WH)

    def _battery(self, spec: BatterySpec, soc: float) -> PlanBattery | None:
        capacity = self._capacity_wh(spec)
        if capacity <= 0:
            return None  # without a capacity the battery keeps its own mode
        low, high = spec.min_soc_pct, spec.max_soc_pct
        return PlanBattery(
            device_id=spec.device_id,
            capacity_wh=capacity,
            max_charge_w=spec.max_charge_w,
            max_discharge_w=spec.max_discharge_w,
            soc_min_pct=low,
            soc_max_pct=high,
            soc_initial_pct=min(100.0, max(0.0, soc)),
            phases=spec.phases,
        )

    def _charger(
        self, spec: ChargerSpec, plugged: bool, start: datetime, n_steps: int
    ) -> PlanCharger:
        volts = NOMINAL_VOLTAGE_V * len(spec.phases)
        sessions: tuple[PlanEvSession, ...] = ()
        settings = self.ev[spec.device_id]
        if plugged and settings.energy_kwh > 0:
            end = min(n_steps, self._steps_until(start, settings.departure))
            guaranteed_by = min(end, self._steps_until(start, settings.guaranteed_by))
            energy_wh = settings.energy_kwh * 1000
            guaranteed_wh = min(settings.guaranteed_kwh * 1000, energy_wh)
            sessions = (
                PlanEvSession(
                    start_step=0,
                    end_step=end,
                    energy_wh=energy_wh,
                    guaranteed_wh=guaranteed_wh if guaranteed_by > 0 else 0.0,
                    guaranteed_by_step=guaranteed_by if guaranteed_by > 0 else None,
                ),
            )
        return PlanCharger(
            device_id=spec.device_id,
            max_power_w=spec.max_current_a * volts,
            min_power_w=spec.min_current_a * volts,
            phases=spec.phases,
            sessions=sessions,
        )

    def _plugged_in(self, binding: DeviceBinding) -> bool:
        """Whether an entity charger's status entity says a car is plugged in."""
        status = self.hass.states.get(binding.status_entity) if binding.status_entity else None
        return status is not None and charger_state_from_text(status.state) in PLUGGED_IN

    def _steps_until(self, start: datetime, local_time: time) -> int:
        """Steps from `start` to the next `local_time` (at least one step ahead)."""
        local = start.astimezone(self.zone)
        moment = datetime.combine(local.date(), local_time, tzinfo=self.zone)
        if moment <= local:
            moment = datetime.combine(local.date() + timedelta(days=1), local_time, self.zone)
        return max(1, int((moment - start) / QUARTER))

    def current_step(self, now: datetime) -> PlanStep | None:
        if self.plan is None:
            return None
        start = floor_to_quarter_hour(now)
        for step in self.plan.steps:
            if step.start == start:
                return step
        return None

    @callback
    def async_apply(self, now: datetime) -> None:
        """Hand this quarter hour's setpoints and export price to the guard."""
        step = self.current_step(now)
        if step is not None:
            setpoints = {
                device_id: setpoint
                for device_id, setpoint in step.setpoints.items()
                if device_id not in self.thermal or self.may_steer(device_id, now)
            }
            self._requested = frozenset(setpoints)
            self.runtime.async_set_plan(setpoints, step.export_price_eur_per_kwh)
        self.updates.notify()

    def may_steer(self, device_id: str, now: datetime) -> bool:
        """Whether the plan may steer a thermal pump now (core/thermal/steering.py)."""
        settings = self.comfort[device_id]
        dhw = self.thermal[device_id].dhw_entity
        dhw_state = self.hass.states.get(dhw) if dhw is not None else None
        return may_steer(
            paused=settings.is_paused(now),
            hot_water_running=dhw_state is not None and dhw_state.state == STATE_ON,
            indoor_c=self.measured_indoor(device_id),
            lower_c=settings.band(floor_to_quarter_hour(now), 1, self.zone).lower_c[0],
        )

    @property
    def status(self) -> str:
        if self.plan is None:
            return "waiting"
        return self.plan.status.value

    @property
    def is_fallback(self) -> bool:
        return self.plan is not None and self.plan.status is PlanStatus.FALLBACK


def _baseline_step_costs(problem: PlanningProblem) -> dict[datetime, float]:
    """The baseline's energy cost per step (EUR); its peak cost is a horizon figure."""
    net = baseline_schedule(problem).net_w
    costs = {}
    for index, net_w in enumerate(net):
        price = (
            problem.import_price_eur_per_kwh[index]
            if net_w >= 0
            else problem.export_price_eur_per_kwh[index]
        )
        costs[problem.step_start(index)] = float(net_w) * price * problem.step_hours / 1000
    return costs


def _start(quarter: MeteredQuarter) -> datetime:
    return quarter.start


def _empty_fallback(reason: str) -> Plan:
    return Plan(
        status=PlanStatus.FALLBACK,
        steps=(),
        expected_cost_eur=None,
        energy_cost_eur=None,
        peak_cost_eur=None,
        baseline_cost_eur=None,
        reason=reason,
    )


def _plugged(state: ChargerState | None) -> bool | None:
    """Whether the IEC 61851 state says a car is plugged in; None when it is unknown."""
    return None if state is None else state in PLUGGED_IN


def _is(binding: DeviceBinding, kind: type) -> bool:
    return isinstance(binding.spec, kind)


def _number_state(hass: HomeAssistant, entity_id: str | None) -> float | None:
    if entity_id is None or (state := hass.states.get(entity_id)) is None:
        return None
    return _float(state.state)


def _float(raw: object) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def _is_heat_pump(binding: DeviceBinding | None) -> bool:
    return binding is not None and isinstance(binding.spec, HeatPumpSpec)
