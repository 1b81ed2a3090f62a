"""The local grid guard: per-device setpoints that keep the connection within its limits.

Decision order (docs/guard.md explains it for installers):
1. measure the current per phase; reject unusable readings; stale data, an emergency or
   a failed evaluation -> every device in its safe state (`safe_state.py`); before the
   first reading (within the meter's timeout) devices keep what they were doing;
2. resolve the limits in force (fuse, household peak, external limits) and their source;
3. base load = measured - what the controllable devices draw; reserve each device's floor;
4. a phase still overloaded sheds heat pumps (the fuse may break their switch budget),
   then whatever is left is inflexible overload, reported and not "fixed" elsewhere;
5. serve devices in priority order from the room left; 6. limit export;
7. rate-limit loosening changes per device (tightening is always immediate).
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ..limits import ExternalLimit, LimitSource
from ..model import (
    ChargerSpec,
    DeviceState,
    GuardConfig,
    GuardDecision,
    GuardState,
    HeatPumpSetpoint,
    Limitation,
    LimitReason,
    MeterReading,
    Setpoint,
)
from .charger import ChargerController
from .controllers import SETPOINT_TYPES, AnyController, make_controller
from .device_base import DeviceContext, Prepared, Served
from .export import ExportLimiter
from .headroom import Headroom, circuit_chains
from .heat_pump import HeatPumpController
from .limit_resolution import ResolvedLimits, reason_for, resolve_limits
from .measurement import Measurement, measure
from .peak import PeakTracker
from .safe_state import safe_current_a, safe_setpoint

if TYPE_CHECKING:
    from collections.abc import Mapping

LOGGER = logging.getLogger(__name__)
_OVERLOAD_TOLERANCE_A = 1e-6
# A total cap met exactly leaves a float's last bits of "overload": not a reason to act.
_OVERLOAD_TOLERANCE_W = 1e-3
_SOURCES = frozenset(source.value for source in LimitSource)
_AMBIGUOUS_A = 0.5  # two explanations of a reading this close: take the safe one


def _validate(config: GuardConfig) -> None:
    ids = [d.device_id for d in config.devices]
    if len(set(ids)) != len(ids):
        raise ValueError("device ids must be unique")
    circuits = {c.circuit_id for c in config.circuits}
    for device in config.devices:
        phases = device.phases
        if not phases or len(set(phases)) != len(phases):
            raise ValueError(f"device {device.device_id!r} needs distinct phases")
        if any(not 1 <= p <= config.connection.phases for p in phases):
            raise ValueError(
                f"device {device.device_id!r} uses phases {phases} on a "
                f"{config.connection.phases}-phase connection"
            )
        if device.circuit_id is not None and device.circuit_id not in circuits:
            raise ValueError(f"device {device.device_id!r} is on unknown circuit")
        if isinstance(device, ChargerSpec) and device.safe_current_a is not None:
            safe = safe_current_a(device)
            if not (safe == 0 or device.min_current_a <= safe) or not math.isfinite(safe):
                raise ValueError(
                    f"charger {device.device_id!r}: a safe current is 0 or at least its "
                    f"minimum {device.min_current_a:g} A, not {device.safe_current_a!r}"
                )
    if not config.stale_after_s > 0:
        raise ValueError("stale_after_s must be positive")


class Guard:
    """Event-driven: call `on_meter` for every meter update and `on_tick` about every second."""

    def __init__(self, config: GuardConfig) -> None:
        _validate(config)
        self.config = config
        self._chains = circuit_chains(config.circuits)
        ordered = sorted(config.devices, key=lambda d: (d.priority, d.device_id))
        self._controllers: dict[str, AnyController] = {
            d.device_id: make_controller(d) for d in ordered
        }
        self._peak = PeakTracker(config.connection)
        self._external: dict[LimitSource, ExternalLimit] = {}
        self._plan: dict[str, Setpoint] = {}
        self._charge_now: set[str] = set()
        self._emergency = False
        self._paused = False
        self._export_price: float | None = None
        self._measurement: Measurement | None = None
        self._devices: Mapping[str, DeviceState] = {}
        self._last_reading_at: datetime | None = None
        self._latest_now: datetime | None = None
        self._last: GuardDecision | None = None
        self._rejecting = False
        self._settled_base: tuple[float, ...] | None = None
        self._started_at: datetime | None = None  # the first moment it was told
        self._failing = False  # an evaluation raised; safe until one succeeds

    # -- inputs ------------------------------------------------------------------------

    def on_meter(self, reading: MeterReading, devices: Mapping[str, DeviceState]) -> GuardDecision:
        """Decide every device's setpoint for this reading.

        Never raises: a failing evaluation gives the safe state (see `fail_safe`).
        """
        try:
            return self._on_meter(reading, devices)
        except Exception as err:  # any bug must leave the devices safe
            moment = reading.timestamp
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return self.fail_safe(self._latest_now or moment, err)

    def _on_meter(self, reading: MeterReading, devices: Mapping[str, DeviceState]) -> GuardDecision:
        moment = reading.timestamp
        if moment.tzinfo is None:
            return self._reject(reading, "it has no time zone")
        if self._last_reading_at is not None and moment <= self._last_reading_at:
            # A late sample: normal on a busy link, and already superseded.
            LOGGER.debug("Meter reading of %s ignored: not newer than the last one", moment)
            return self._hold(reading)
        measurement = measure(reading, self.config.connection)
        if measurement is None:
            return self._reject(reading, "no phase current can be derived from it")
        if self._rejecting:
            LOGGER.info("Meter readings are usable again")
            self._rejecting = False
        self._measurement = measurement
        self._devices = devices
        self._last_reading_at = moment
        self._advance(moment)
        self._peak.update(moment, measurement.total_power_w, reading.quarter_hour_average_w)
        decision = self._decide(self._latest_now or moment, fresh=True)
        if self._failing:
            LOGGER.info("The guard's evaluations succeed again")
            self._failing = False
        return self._publish(decision)

    def on_tick(self, now: datetime) -> GuardDecision | None:
        """Check for stale meter data; returns a decision only when the state changes."""
        if now.tzinfo is None:
            LOGGER.error("on_tick needs an aware datetime, got %r", now)
            return None
        previous = self._last
        try:
            self._advance(now)
            decision = self._decide(self._latest_now or now)
        except Exception as err:  # any bug must leave the devices safe
            return self.fail_safe(self._latest_now or now, err)
        if previous is not None and not decision.changed and _same_status(previous, decision):
            self._last = decision
            return None
        return self._publish(decision)

    def fail_safe(self, now: datetime, error: BaseException) -> GuardDecision:
        """Every device to its safe state because an evaluation raised `error`.

        For the engine's own failures and for a host whose adapters failed around it.
        Logged once with the traceback; held until a meter reading is evaluated again.
        """
        if not self._failing:
            LOGGER.error(
                "The guard's evaluation failed; every device goes to its safe state until "
                "an evaluation succeeds",
                exc_info=error,
            )
        self._failing = True
        self._advance(now)
        return self._publish(self._safe(self._latest_now or now, LimitReason.GUARD_ERROR))

    def adopt(self, setpoints: Mapping[str, Setpoint], now: datetime) -> None:
        """What the devices were doing when this guard started, as their control entities
        show it (a reload or restart keeps them running): an unmeasured battery or charger
        then counts its draw from the first reading instead of hiding it in the base load,
        which would let the guard stop a discharge the connection needs. A device the guard
        has already decided for, or a setpoint of another kind than the device, is left out.
        """
        for device_id, setpoint in setpoints.items():
            controller = self._controllers.get(device_id)
            if controller is None:
                continue
            if isinstance(setpoint, SETPOINT_TYPES[type(controller.spec)]):
                controller.adopt(setpoint, now)

    def set_external_limit(self, limit: ExternalLimit) -> None:
        """Replace the limit held for `limit.source`; it can only lower what is allowed."""
        self._external[limit.source] = limit

    def clear_external_limit(self, source: LimitSource) -> None:
        self._external.pop(source, None)

    def set_plan(self, requests: Mapping[str, Setpoint]) -> None:
        """Desired setpoints from the planner; the guard only ever lowers them."""
        plan: dict[str, Setpoint] = {}
        for device_id, request in requests.items():
            controller = self._controllers.get(device_id)
            if controller is None:
                LOGGER.warning("Plan names unknown device %r; ignored", device_id)
                continue
            expected = SETPOINT_TYPES[type(controller.spec)]
            if not isinstance(request, expected):
                LOGGER.warning(
                    "Plan for %r is a %s, not a %s; ignored",
                    device_id,
                    type(request).__name__,
                    expected.__name__,
                )
                continue
            plan[device_id] = request
        self._plan = plan

    def set_charge_now(self, device_id: str, enabled: bool) -> None:
        controller = self._controllers.get(device_id)
        if not isinstance(controller, ChargerController):
            LOGGER.warning("Charge now ignored: %r is not a charger", device_id)
            return
        if enabled:
            self._charge_now.add(device_id)
        else:
            self._charge_now.discard(device_id)

    def set_emergency(self, active: bool) -> None:
        """An external emergency input: every flexible device to its safe state."""
        self._emergency = active

    def set_optimisation_paused(self, paused: bool) -> None:
        """Ignore the planner's requests; limits and the fuse protection stay in force."""
        self._paused = paused

    def set_export_price(self, price_eur_per_kwh: float | None) -> None:
        """A negative export price makes the guard limit PV and battery export."""
        if price_eur_per_kwh is not None and not math.isfinite(price_eur_per_kwh):
            LOGGER.warning("Export price %r is not a number; treated as unknown", price_eur_per_kwh)
            price_eur_per_kwh = None
        self._export_price = price_eur_per_kwh

    # -- bookkeeping -------------------------------------------------------------------

    def _advance(self, now: datetime) -> None:
        if self._started_at is None:
            self._started_at = now
        if self._latest_now is None or now > self._latest_now:
            self._latest_now = now

    def _is_stale(self, now: datetime) -> bool:
        # Before the first reading the meter gets its own timeout, counted from the start.
        since = self._last_reading_at or self._started_at
        if since is None:
            return True
        return now - since > timedelta(seconds=self.config.stale_after_s)

    def _reject(self, reading: MeterReading, why: str) -> GuardDecision:
        log = LOGGER.debug if self._rejecting else LOGGER.warning
        log("Meter reading of %s rejected: %s", reading.timestamp, why)
        self._rejecting = True
        return self._hold(reading)

    def _hold(self, reading: MeterReading) -> GuardDecision:
        """The last decision again (nothing changed), or a safe one if there is none yet."""
        if self._last is not None:
            return replace(self._last, changed=frozenset())
        moment = reading.timestamp
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        self._advance(moment)
        return self._publish(self._decide(self._latest_now or moment))

    def _publish(self, decision: GuardDecision) -> GuardDecision:
        self._last = decision
        return decision

    def _changed(self, setpoints: Mapping[str, Setpoint]) -> frozenset[str]:
        if self._last is None:
            return frozenset(setpoints)
        before = self._last.setpoints
        return frozenset(k for k, v in setpoints.items() if before.get(k) != v)

    def _context(
        self, controller: AnyController, now: datetime, voltage: tuple[float, ...]
    ) -> DeviceContext:
        device_id = controller.spec.device_id
        return DeviceContext(
            now=now,
            measured_at=self._last_reading_at or now,
            state=self._devices.get(device_id),
            request=None if self._paused else self._plan.get(device_id),
            charge_now=device_id in self._charge_now,
            voltage_v=voltage,
            connection_phases=self.config.connection.phases,
        )

    # -- deciding ----------------------------------------------------------------------

    def _limits(self, measurement: Measurement, now: datetime) -> ResolvedLimits:
        return resolve_limits(
            connection=self.config.connection,
            measurement=measurement,
            external=self._external.values(),
            peak_cap_w=self._peak.cap_w(now),
            export_price_eur_per_kwh=self._export_price,
            now=now,
        )

    def _decide(self, now: datetime, *, fresh: bool = False) -> GuardDecision:
        """`fresh`: on a new reading, which may end a failure; a tick cannot."""
        if self._emergency:
            return self._safe(now, LimitReason.EMERGENCY)
        if self._failing and not fresh:
            return self._safe(now, LimitReason.GUARD_ERROR)
        if self._is_stale(now):
            return self._safe(now, LimitReason.STALE_METER)
        if self._measurement is None:
            return self._starting(now)
        return self._normal(self._measurement, now)

    def _real_voltages(self, measurement: Measurement) -> tuple[float, ...]:
        if measurement.per_phase:
            return measurement.voltage_v
        return (measurement.voltage_v[0],) * self.config.connection.phases

    def _normal(self, measurement: Measurement, now: datetime) -> GuardDecision:
        connection = self.config.connection
        limits = self._limits(measurement, now)
        voltage = self._real_voltages(measurement)
        contexts = {i: self._context(c, now, voltage) for i, c in self._controllers.items()}
        prepared = {i: c.prepare(contexts[i]) for i, c in self._controllers.items()}

        enforced = len(measurement.current_a)
        base = self._estimate_base(measurement, prepared)
        base_power = sum(b * v for b, v in zip(base, measurement.voltage_v, strict=True))
        import_cap = limits.import_cap
        room = Headroom(
            phase_room_a=[limits.phase_limit_a[q] - base[q] for q in range(enforced)],
            phase_source=limits.phase_source,
            voltage_v=measurement.voltage_v,
            per_phase=measurement.per_phase,
            total_room_w=None if import_cap is None else import_cap.power_w - base_power,
            total_source=None if import_cap is None else import_cap.source,
            circuits=self.config.circuits,
            chains=self._chains,
            connection_phases=connection.phases,
        )
        for i, item in prepared.items():
            room.take(item.phases, self._controllers[i].spec.circuit_id, item.floor_a)

        limitations: list[Limitation] = []
        self._shed_heat_pumps(now, prepared, room, limits, limitations)
        unresolved = self._report_overload(room, limits, measurement, limitations)

        served: dict[str, Served] = {}
        for i, controller in self._controllers.items():
            item = prepared[i]
            circuit = controller.spec.circuit_id
            room.take(item.phases, circuit, -item.floor_a)
            result = controller.serve(contexts[i], item, room)
            room.take(result.phases, circuit, result.reserve_a)
            served[i] = result
            if result.binding is not None:
                limitations.append(Limitation(result.binding.reason, i, result.binding.phase))

        proposals = {i: s.setpoint for i, s in served.items()}
        export_driven = ExportLimiter(limits, measurement, room).apply(
            self._controllers, contexts, prepared, proposals, limitations
        )

        settling = {i for i, c in self._controllers.items() if c.settling_increase(now)}
        setpoints = {
            i: c.finalize(
                proposals[i], now, immediate=i in export_driven, hold=bool(settling - {i})
            )
            for i, c in self._controllers.items()
        }
        if not measurement.per_phase:
            limitations.append(Limitation(LimitReason.PER_PHASE_UNAVAILABLE))
        return self._assemble(
            now=now,
            measurement=measurement,
            limits=limits,
            setpoints=setpoints,
            limitations=limitations,
            unresolved=unresolved,
        )

    def _estimate_base(
        self, measurement: Measurement, prepared: Mapping[str, Prepared]
    ) -> list[float]:
        """Inflexible load per enforced phase: measured less what the devices draw.

        A device without sensors that was given a new setpoint moments ago may still
        follow the old one. Of the two explanations, take the one that keeps the base
        closest to what it was when nothing was settling; when unsure, the higher base.
        """
        index_of = (lambda p: p - 1) if measurement.per_phase else (lambda p: 0)
        base = list(measurement.current_a)
        for item in prepared.values():
            for phase, current in item.present.items():
                base[index_of(phase)] -= current
        settling = False
        for item in prepared.values():
            if item.alternative is None:
                continue
            settling = True
            shift = [0.0] * len(base)
            for phase, current in item.present.items():
                shift[index_of(phase)] += current
            for phase, current in item.alternative.items():
                shift[index_of(phase)] -= current
            candidate = [b + d for b, d in zip(base, shift, strict=True)]
            if self._more_plausible(candidate, base, shift):
                base = candidate
        if not settling:
            self._settled_base = tuple(base)
        return base

    def _more_plausible(
        self, candidate: list[float], current: list[float], shift: list[float]
    ) -> bool:
        prior = self._settled_base
        pessimistic = sum(shift) > 0
        if prior is None or len(prior) != len(current):
            return pessimistic
        touched = [q for q, d in enumerate(shift) if d != 0]
        candidate_error = sum(abs(candidate[q] - prior[q]) for q in touched)
        current_error = sum(abs(current[q] - prior[q]) for q in touched)
        if abs(candidate_error - current_error) < _AMBIGUOUS_A:
            return pessimistic
        return candidate_error < current_error

    def _shed_heat_pumps(
        self,
        now: datetime,
        prepared: Mapping[str, Prepared],
        room: Headroom,
        limits: ResolvedLimits,
        limitations: list[Limitation],
    ) -> None:
        """Switch heat pumps off on phases that stay overloaded with every device at its floor."""
        for device_id in reversed(list(self._controllers)):
            controller = self._controllers[device_id]
            if not isinstance(controller, HeatPumpController):
                continue
            item = prepared[device_id]
            if not controller.is_on and item.floor_a <= 0:
                continue  # off, and not yet due to come back on
            overloaded = [
                p
                for p in item.phases
                if room.phase_room_a[room.enforced_index(p)] < -_OVERLOAD_TOLERANCE_A
            ]
            if not overloaded and room.total_room_w >= -_OVERLOAD_TOLERANCE_W:
                continue
            fuse_binds = any(
                limits.phase_source[room.enforced_index(p)] is LimitSource.FUSE for p in overloaded
            )
            if controller.is_on and not controller.may_switch_off(now):
                if not fuse_binds:
                    continue
                if controller.force_off(now):
                    limitations.append(
                        Limitation(LimitReason.HEAT_PUMP_SWITCH_BUDGET, device_id, overloaded[0])
                    )
            item.fixed = HeatPumpSetpoint(on=False)
            room.take(item.phases, controller.spec.circuit_id, -item.floor_a)
            item.floor_a = 0.0
            if overloaded:
                source = limits.phase_source[room.enforced_index(overloaded[0])]
                limitations.append(Limitation(reason_for(source), device_id, overloaded[0]))
            elif limits.import_cap is not None:
                limitations.append(Limitation(reason_for(limits.import_cap.source), device_id))

    def _report_overload(
        self,
        room: Headroom,
        limits: ResolvedLimits,
        measurement: Measurement,
        limitations: list[Limitation],
    ) -> bool:
        unresolved = False
        for index, spare in enumerate(room.phase_room_a):
            if spare < -_OVERLOAD_TOLERANCE_A:
                unresolved = True
                phase = index + 1 if measurement.per_phase else None
                limitations.append(
                    Limitation(LimitReason.INFLEXIBLE_OVERLOAD, None, phase, f"{-spare:.1f} A over")
                )
        if room.total_room_w < -_OVERLOAD_TOLERANCE_W and limits.import_cap is not None:
            unresolved = True
            limitations.append(
                Limitation(
                    LimitReason.INFLEXIBLE_OVERLOAD, None, None, f"{-room.total_room_w:.0f} W over"
                )
            )
        return unresolved

    # -- output ------------------------------------------------------------------------

    def _reported_limits(
        self, measurement: Measurement, limits: ResolvedLimits
    ) -> tuple[tuple[float, ...], tuple[float, ...], LimitSource]:
        """Per real phase: current, the limit in force, and the source that binds most."""
        phases = self.config.connection.phases
        if measurement.per_phase:
            current = measurement.current_a
            limit = list(limits.phase_limit_a)
            sources = list(limits.phase_source)
        else:
            current = (measurement.current_a[0] / phases,) * phases
            limit = [limits.phase_limit_a[0] / phases] * phases
            sources = [limits.phase_source[0]] * phases
        cap = limits.import_cap
        if cap is not None:
            voltage = self._real_voltages(measurement)
            total_w = sum(c * v for c, v in zip(current, voltage, strict=True))
            for q in range(phases):
                others_w = total_w - current[q] * voltage[q]
                from_total = (cap.power_w - others_w) / voltage[q]
                if from_total < limit[q]:
                    limit[q] = max(from_total, 0.0)
                    sources[q] = cap.source
        tightest = min(range(phases), key=lambda q: limit[q] - current[q])
        return tuple(current), tuple(limit), sources[tightest]

    def _assemble(
        self,
        *,
        now: datetime,
        measurement: Measurement,
        limits: ResolvedLimits,
        setpoints: Mapping[str, Setpoint],
        limitations: list[Limitation],
        unresolved: bool,
    ) -> GuardDecision:
        current, limit, source = self._reported_limits(measurement, limits)
        # What actually held a device back says more than the tightest phase on paper.
        source = next(
            (LimitSource(x.reason.value) for x in limitations if x.reason.value in _SOURCES),
            source,
        )
        limiting = any(x.reason is not LimitReason.PER_PHASE_UNAVAILABLE for x in limitations)
        return GuardDecision(
            timestamp=now,
            state=GuardState.LIMITING if limiting else GuardState.NORMAL,
            setpoints=dict(setpoints),
            changed=self._changed(setpoints),
            phase_current_a=current,
            phase_limit_a=limit,
            limit_source=source,
            limitations=tuple(limitations),
            unresolved_overload=unresolved,
        )

    def _starting(self, now: datetime) -> GuardDecision:
        """No reading yet: no setpoints, so every device keeps what it was doing."""
        connection = self.config.connection
        return GuardDecision(
            timestamp=now,
            state=GuardState.STARTING,
            setpoints={},
            changed=frozenset(),
            phase_current_a=(0.0,) * connection.phases,
            phase_limit_a=(connection.max_current_a,) * connection.phases,
            limit_source=LimitSource.FUSE,
        )

    def _safe(self, now: datetime, reason: LimitReason) -> GuardDecision:
        """Every device to its safe state (stale meter, an emergency, a failed evaluation)."""
        connection = self.config.connection
        phases = connection.phases
        nominal = Measurement(
            current_a=(0.0,) * phases,
            voltage_v=(connection.nominal_voltage_v,) * phases,
            per_phase=True,
        )
        export_cap = self._limits(nominal, now).export_cap_w
        emergency = reason is LimitReason.EMERGENCY
        setpoints = {
            i: c.finalize(
                safe_setpoint(c, now, export_cap, emergency=emergency), now, immediate=True
            )
            for i, c in self._controllers.items()
        }
        measured = self._measurement
        current = (0.0,) * phases
        if measured is not None and reason is not LimitReason.GUARD_ERROR:
            current = self._reported_limits(measured, self._limits(measured, now))[0]
        return GuardDecision(
            timestamp=now,
            state=GuardState.SAFE_MODE,
            setpoints=setpoints,
            changed=self._changed(setpoints),
            phase_current_a=current,
            phase_limit_a=(connection.max_current_a,) * phases,
            limit_source=LimitSource.EMERGENCY
            if reason is LimitReason.EMERGENCY
            else LimitSource.FUSE,
            limitations=(Limitation(reason),),
        )


def _same_status(before: GuardDecision, after: GuardDecision) -> bool:
    return before.state == after.state and set(before.limitations) == set(after.limitations)
