"""A simulated home: profile-driven load, an EV charger and a heat pump, run by the real guard.

The guard is the engine the Home Assistant integration runs; the charger and heat pump
are the closed-loop test devices of `plant.py`, so they obey its setpoints with their
lags. Each `step` is one meter reading a second. The profile clock (time of day) may run
faster than the guard's clock, so a day's curve fits in a short demo while limits,
expiries and device dynamics keep real time.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING

from netbewust_core.guard.engine import Guard
from netbewust_core.model import (
    ChargerSetpoint,
    ChargerSpec,
    Connection,
    GuardConfig,
    HeatPumpSpec,
    MeterReading,
    PhaseReading,
    PvSpec,
)
from netbewust_core.units import NOMINAL_VOLTAGE_V

from .plant import SimCharger, SimHeatPump, SimPv
from .profiles import (
    LOCAL_OFFSET,
    HouseholdProfile,
    base_load_w,
    heat_pump_demand_w,
    pv_clear_sky_w,
)

if TYPE_CHECKING:
    from netbewust_core.model import GuardDecision

# Above 16 A (3.68 kW) Dutch rules want a three-phase inverter.
SINGLE_PHASE_INVERTER_MAX_W = 16 * NOMINAL_VOLTAGE_V
EV_DEPARTURE_H = 7.0
TICK_AFTER_READING = timedelta(milliseconds=500)


class SimulatedHome:
    """One home. `step(now, profile_moment, profile_seconds)` advances it by one reading."""

    def __init__(
        self, profile: HouseholdProfile, seed: int, *, controllable_pv: bool = False
    ) -> None:
        """`controllable_pv`: the inverter is a guard device (export limits), not fixed load."""
        self.profile = profile
        self._rng = random.Random(seed)
        phases = tuple(range(1, profile.phases + 1))
        weights = [self._rng.uniform(0.6, 1.4) for _ in phases]
        self._phase_share = tuple(w / sum(weights) for w in weights)
        self.connection = Connection(phases=profile.phases, fuse_current_a=profile.fuse_current_a)
        devices: list[ChargerSpec | HeatPumpSpec | PvSpec] = []
        self.charger: SimCharger | None = None
        self.heat_pump: SimHeatPump | None = None
        self.pv: SimPv | None = None
        self._t = 0.0  # guard-side seconds since start, for the device lags
        if profile.ev_session is not None:
            spec = ChargerSpec(
                device_id="ev",
                name="Laadpaal",
                priority=1,
                phases=phases,
                max_current_a=min(profile.ev_max_current_a, profile.fuse_current_a),
            )
            self.charger = SimCharger(
                spec,
                car_phases=profile.phases,
                connected=False,
                initial=ChargerSetpoint(0.0, len(phases)),
            )
            devices.append(spec)
        if profile.heat_pump_rated_w > 0:
            hp_spec = HeatPumpSpec(
                device_id="heat-pump",
                name="Warmtepomp",
                priority=2,
                rated_power_w=profile.heat_pump_rated_w,
            )
            self.heat_pump = SimHeatPump(hp_spec, demand_w=0.0)
            devices.append(hp_spec)
        if controllable_pv and profile.pv_peak_w > 0:
            single = self._single_phase_inverter
            pv_spec = PvSpec(
                device_id="pv",
                name="Omvormer",
                priority=3,
                phases=(1,) if single else phases,
                rated_power_w=min(profile.pv_peak_w, SINGLE_PHASE_INVERTER_MAX_W)
                if single
                else profile.pv_peak_w,
            )
            self.pv = SimPv(pv_spec, available_w=0.0)
            devices.append(pv_spec)
        self.guard = Guard(GuardConfig(connection=self.connection, devices=tuple(devices)))
        self._ev_delivered_wh = 0.0
        self._ev_day: int | None = None
        self.last_decision: GuardDecision | None = None
        self.last_power_w: tuple[float, ...] = (0.0,) * profile.phases

    def _update_car(self, profile_moment: datetime) -> None:
        session = self.profile.ev_session
        if self.charger is None or session is None:
            return
        local = profile_moment + LOCAL_OFFSET
        hours = local.hour + local.minute / 60
        day = local.toordinal()
        if hours >= session.arrival_h and self._ev_day != day:
            self._ev_day = day  # the car comes home: a new session
            self._ev_delivered_wh = 0.0
            self.charger.connected = True
        full = self._ev_delivered_wh >= session.energy_wh
        if full or EV_DEPARTURE_H <= hours < session.arrival_h:
            self.charger.connected = False

    @property
    def ev_plugged(self) -> bool:
        """A car is plugged in and still wants energy (a full car is unplugged)."""
        return self.charger is not None and self.charger.connected

    @property
    def ev_needed_wh(self) -> float:
        """Energy the plugged-in car still wants this session; 0 without a car."""
        session = self.profile.ev_session
        if not self.ev_plugged or session is None:
            return 0.0
        return max(0.0, session.energy_wh - self._ev_delivered_wh)

    @staticmethod
    def ev_departure(profile_moment: datetime) -> datetime:
        """The next departure (local `EV_DEPARTURE_H`) after `profile_moment`, in UTC."""
        local = profile_moment.astimezone(UTC) + LOCAL_OFFSET
        departure = datetime.combine(local.date(), time(int(EV_DEPARTURE_H)), tzinfo=UTC)
        if departure <= local:
            departure += timedelta(days=1)
        return departure - LOCAL_OFFSET

    def expected_grid_w(self, profile_moment: datetime) -> float:
        """What the community cannot move, as forecast: base load and heat pump less PV.

        The profile without its noise; the car is left out (the capabilities offer it).
        """
        power = base_load_w(profile_moment, self.profile.annual_kwh)
        if self.heat_pump is not None:
            power += heat_pump_demand_w(profile_moment, self.profile.heat_pump_rated_w)
        pv = pv_clear_sky_w(profile_moment, self.profile.pv_peak_w)
        if self._single_phase_inverter:
            pv = min(pv, SINGLE_PHASE_INVERTER_MAX_W)
        return power - pv

    @property
    def _single_phase_inverter(self) -> bool:
        return self.profile.phases == 1 or self.profile.pv_peak_w <= SINGLE_PHASE_INVERTER_MAX_W

    def inflexible_power_w(self, profile_moment: datetime) -> tuple[float, ...]:
        base = base_load_w(profile_moment, self.profile.annual_kwh)
        base *= max(0.2, self._rng.gauss(1.0, self.profile.noise))
        per_phase = [base * share for share in self._phase_share]
        if self.pv is not None:  # the inverter is a device: `step` adds what it produces
            return tuple(per_phase)
        pv = pv_clear_sky_w(profile_moment, self.profile.pv_peak_w)
        if self._single_phase_inverter:
            per_phase[0] -= min(pv, SINGLE_PHASE_INVERTER_MAX_W)
        else:
            per_phase = [p - pv / 3 for p in per_phase]
        return tuple(per_phase)

    def step(
        self, now: datetime, profile_moment: datetime, profile_seconds: float
    ) -> GuardDecision:
        """One reading at guard time `now`; `profile_seconds` of profile time have passed."""
        self._t += 1.0
        self._update_car(profile_moment)
        if self.heat_pump is not None:
            self.heat_pump.demand_w = heat_pump_demand_w(
                profile_moment, self.profile.heat_pump_rated_w
            )
        if self.pv is not None:
            self.pv.available_w = pv_clear_sky_w(profile_moment, self.profile.pv_peak_w)
        power = list(self.inflexible_power_w(profile_moment))
        for device in self._devices:
            for phase, current in device.draw_a(self._t).items():
                power[phase - 1] += current * NOMINAL_VOLTAGE_V
        if self.charger is not None:
            drawn_w = sum(self.charger.draw_a(self._t).values()) * NOMINAL_VOLTAGE_V
            self._ev_delivered_wh += drawn_w * profile_seconds / 3600
        self.last_power_w = tuple(round(p) for p in power)
        reading = MeterReading(
            timestamp=now,
            phases=tuple(
                PhaseReading(
                    power_w=p,
                    voltage_v=NOMINAL_VOLTAGE_V,
                    current_a=float(round(abs(p) / NOMINAL_VOLTAGE_V)),
                )
                for p in self.last_power_w
            ),
            total_power_w=float(sum(self.last_power_w)),
        )
        states = {device.device_id: device.state(self._t) for device in self._devices}
        decision = self.guard.on_meter(reading, states)
        self._apply(decision)
        ticked = self.guard.on_tick(now + TICK_AFTER_READING)
        if ticked is not None:
            decision = ticked
            self._apply(ticked)
        self.last_decision = decision
        return decision

    @property
    def _devices(self) -> list[SimCharger | SimHeatPump | SimPv]:
        return [d for d in (self.charger, self.heat_pump, self.pv) if d is not None]

    def _apply(self, decision: GuardDecision) -> None:
        for device in self._devices:
            if device.device_id in decision.setpoints:
                device.command(decision.setpoints[device.device_id], self._t)
