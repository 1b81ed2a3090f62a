"""The running guard of one connection: meter events in, device commands out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import (
    Event,
    EventStateChangedData,
    EventStateReportedData,
    HomeAssistant,
    callback,
)
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.event import (
    async_track_state_change_event,
    async_track_state_report_event,
    async_track_time_interval,
)
from homeassistant.util import dt as dt_util

from ..const import LOGGER, SLOW_METER_INTERVAL_S
from ..core.guard.engine import Guard
from ..core.guard.reported import ReportedState
from ..core.model import DeviceState, GuardDecision, GuardState, LimitReason, MeterReading
from ..entity import Updates
from .actuators import ActuatorError, Command, commands_for, present_setpoint
from .devices import DeviceBinding, read_device_state
from .issues import Issue, IssueTracker
from .meter import read_meter
from .pace import MeterPace
from .states import Rejections
from .switches import GuardSwitches

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..core.limits import ExternalLimit, LimitSource
    from ..core.model import Setpoint
    from ..modbus.runtime import ModbusDevices
    from ..planner.runtime import PlanningRuntime
    from .entry_config import EntryConfig

TICK_INTERVAL = timedelta(seconds=1)
# A short overload is the guard's job; only one that persists needs the household.
OVERLOAD_ISSUE_AFTER_S = 30.0

type NetbewustConfigEntry = ConfigEntry[NetbewustRuntime]


@dataclass(slots=True)
class Counters:
    """What happened since setup; shown in diagnostics."""

    meter_events: int = 0
    evaluations: int = 0
    decisions_with_changes: int = 0
    commands_sent: int = 0
    commands_failed: int = 0
    commands_clamped: int = 0
    actuator_errors: int = 0
    guard_errors: int = 0
    last_command_error: str | None = None
    failing_entities: set[str] = field(default_factory=set)


class NetbewustRuntime:
    """Owns the guard of one config entry and everything wired to it."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: NetbewustConfigEntry,
        config: EntryConfig,
        connection_device_id: str,
    ) -> None:
        self.hass = hass
        self.entry = entry
        self.config = config
        self.guard = Guard(config.guard)
        self.devices: dict[str, DeviceBinding] = {b.device_id: b for b in config.devices}
        self.last_decision: GuardDecision | None = None
        # What the guard state sensor shows: steadied, unlike the decisions themselves.
        self.reported = ReportedState()
        self.last_reading_at: datetime | None = None
        self.pace = MeterPace()
        self.rejections = Rejections()
        self.counters = Counters()
        self.issues = IssueTracker(hass, entry.entry_id, entry.title)
        self.switches = GuardSwitches(hass, entry.entry_id)
        self.optimisation_paused = False
        self.charge_now: set[str] = set()
        self.emergency_reason: str | None = None
        # Set when the entry has a planner subentry.
        self.planner: PlanningRuntime | None = None
        # The connection's device; devices of subentries name it as their parent.
        self.connection_device_id = connection_device_id
        # Devices Netbewust reads and writes itself over Modbus, not through entities.
        self.modbus: ModbusDevices | None = None
        self.updates = Updates()  # after every decision and control change
        self._evaluation_pending = False
        self._overload_since: datetime | None = None

    @property
    def emergency_active(self) -> bool:
        return self.emergency_reason is not None

    @property
    def meter_stale(self) -> bool:
        """True while the guard has no fresh meter data: starting, stale or failed."""
        decision = self.last_decision
        return decision is not None and not is_measured(decision)

    @callback
    def async_start(self) -> None:
        """Subscribe to the meter and start the tick; undone on unload."""
        # A reload or restart keeps devices running: the guard starts from what they were told.
        told = {
            device_id: setpoint
            for device_id, binding in self.devices.items()
            if (setpoint := present_setpoint(self.hass.states.get, binding)) is not None
        }
        self.guard.adopt(told, dt_util.utcnow())
        meter_entities = self.config.meter.all()
        on_unload = self.entry.async_on_unload
        on_unload(async_track_state_change_event(self.hass, meter_entities, self._on_meter_event))
        # A meter that reports an unchanged value is still alive: count those too.
        on_unload(async_track_state_report_event(self.hass, meter_entities, self._on_meter_event))
        on_unload(
            async_track_time_interval(
                self.hass, self._on_tick, TICK_INTERVAL, name="netbewust guard tick"
            )
        )
        on_unload(self.issues.clear_all)

    @callback
    def _on_meter_event(
        self, event: Event[EventStateChangedData] | Event[EventStateReportedData]
    ) -> None:
        self.counters.meter_events += 1
        if event.data["entity_id"] == self.config.meter.pace_entity:
            self.pace.record(event.time_fired)
            self._check_pace()
        # A telegram updates several entities in one go: decide once, after all of them.
        if not self._evaluation_pending:
            self._evaluation_pending = True
            self.hass.loop.call_soon(self._evaluate_pending)

    @callback
    def _evaluate_pending(self) -> None:
        self._evaluation_pending = False
        self.last_reading_at = dt_util.utcnow()
        self.async_evaluate()

    @callback
    def async_on_meter_reading(self, reading: MeterReading) -> None:
        """A reading from a meter Netbewust reads itself (Modbus) instead of P1 entities."""
        self.counters.meter_events += 1
        self.last_reading_at = reading.timestamp
        self.async_evaluate(reading)

    @callback
    def async_evaluate(self, reading: MeterReading | None = None) -> None:
        """Run the guard on the meter and devices as they are now.

        The engine never raises; should reading the states fail, the engine still puts
        every device in its safe state (and logs it once).
        """
        self.counters.evaluations += 1
        get_state = self.hass.states.get
        try:
            if reading is None:
                reading = read_meter(
                    get_state,
                    self.config.meter,
                    self.last_reading_at or dt_util.utcnow(),
                    self.rejections,
                )
            devices: dict[str, DeviceState] = {
                device_id: read_device_state(get_state, binding, self.rejections)
                for device_id, binding in self.devices.items()
            }
            if self.modbus is not None:
                devices.update(self.modbus.states())
        except Exception as err:  # any adapter bug must leave the devices safe
            decision = self.guard.fail_safe(dt_util.utcnow(), err)
        else:
            decision = self.guard.on_meter(reading, devices)
        if _has(decision, LimitReason.GUARD_ERROR):
            self.counters.guard_errors += 1
        self._apply(decision)

    @callback
    def _on_tick(self, now: datetime) -> None:
        decision = self.guard.on_tick(now)
        if decision is not None:
            self._apply(decision)
        elif self.last_decision is not None:
            self._update_issues(self.last_decision, now)
            if self.reported.update(self.last_decision, now):
                self.updates.notify()

    @callback
    def _apply(self, decision: GuardDecision) -> None:
        self.last_decision = decision
        if decision.changed:
            self.counters.decisions_with_changes += 1
        for device_id in decision.changed:
            binding = self.devices.get(device_id)
            setpoint = decision.setpoints.get(device_id)
            if setpoint is not None and self.modbus and self.modbus.apply(device_id, setpoint):
                continue
            if binding is None or setpoint is None:
                continue
            try:
                commands = commands_for(self.hass.states.get, binding, setpoint)
            except ActuatorError as err:
                self.counters.actuator_errors += 1
                LOGGER.warning("%s: cannot apply %s: %s", binding.spec.name, setpoint, err)
                continue
            for command in self.switches.filter(binding, setpoint, commands):
                self._send(command)
        self._update_issues(decision, decision.timestamp)
        self.reported.update(decision, decision.timestamp)
        self.updates.notify()

    @callback
    def _update_issues(self, decision: GuardDecision, now: datetime) -> None:
        stale_after_s = self.config.guard.stale_after_s
        self.issues.update(
            Issue.STALE_METER,
            _has(decision, LimitReason.STALE_METER),
            {"stale_after": f"{stale_after_s:g}"},
        )
        self.issues.update(Issue.GUARD_ERROR, _has(decision, LimitReason.GUARD_ERROR))
        self._track_overload(decision, now)

    @callback
    def _track_overload(self, decision: GuardDecision, now: datetime) -> None:
        if not decision.unresolved_overload:
            self._overload_since = None
            self.issues.update(Issue.INFLEXIBLE_OVERLOAD, present=False)
            return
        if self._overload_since is None:
            self._overload_since = now
        if (now - self._overload_since).total_seconds() >= OVERLOAD_ISSUE_AFTER_S:
            phases = ", ".join(
                f"L{phase}: {current:.1f} A / {limit:.1f} A"
                for phase, (current, limit) in enumerate(
                    zip(decision.phase_current_a, decision.phase_limit_a, strict=True), start=1
                )
            )
            self.issues.update(Issue.INFLEXIBLE_OVERLOAD, True, {"phases": phases})

    @callback
    def _check_pace(self) -> None:
        interval = self.pace.interval_s
        if interval is None:
            return
        self.issues.update(
            Issue.SLOW_METER,
            interval > SLOW_METER_INTERVAL_S,
            {"interval": f"{interval:.0f}", "limit": f"{SLOW_METER_INTERVAL_S:.0f}"},
        )

    @callback
    def _send(self, command: Command) -> None:
        if command.clamped_from is not None:
            self.counters.commands_clamped += 1
            LOGGER.warning(
                "%s accepts no %s; sent %s instead",
                command.entity_id,
                command.clamped_from,
                command.data.get("value"),
            )
        self.counters.commands_sent += 1
        # Eager start: the service call begins now, and the guard never waits for it.
        self.entry.async_create_task(
            self.hass,
            self._call(command),
            f"netbewust {command.domain}.{command.service} {command.entity_id}",
            eager_start=True,
        )

    async def _call(self, command: Command) -> None:
        try:
            await self.hass.services.async_call(
                command.domain, command.service, command.service_data, blocking=True
            )
        except (HomeAssistantError, ValueError) as err:
            self.counters.commands_failed += 1
            self.counters.last_command_error = f"{command.entity_id}: {err}"
            if command.entity_id not in self.counters.failing_entities:
                self.counters.failing_entities.add(command.entity_id)
                LOGGER.warning(
                    "%s.%s on %s failed: %s",
                    command.domain,
                    command.service,
                    command.entity_id,
                    err,
                )
            return
        if command.entity_id in self.counters.failing_entities:
            self.counters.failing_entities.discard(command.entity_id)
            LOGGER.info("%s accepts commands again", command.entity_id)

    @callback
    def async_set_optimisation_paused(self, paused: bool) -> None:
        self.optimisation_paused = paused
        self.guard.set_optimisation_paused(paused)
        self._reevaluate()

    @callback
    def async_set_charge_now(self, device_id: str, enabled: bool) -> None:
        if enabled:
            self.charge_now.add(device_id)
        else:
            self.charge_now.discard(device_id)
        self.guard.set_charge_now(device_id, enabled)
        self._reevaluate()

    @callback
    def async_set_emergency(self, active: bool, reason: str) -> None:
        if active:
            LOGGER.warning("%s: emergency: %s", self.entry.title, reason)
        elif self.emergency_active:
            LOGGER.info("%s: emergency released", self.entry.title)
        self.emergency_reason = reason if active else None
        self.guard.set_emergency(active)
        self._reevaluate()

    @callback
    def async_set_external_limit(self, source: LimitSource, limit: ExternalLimit | None) -> None:
        """A remote cap (community, DSO) for `source`, or None to lift it; acted on at once."""
        if limit is None:
            self.guard.clear_external_limit(source)
        else:
            self.guard.set_external_limit(limit)
        self._reevaluate()

    @callback
    def async_set_plan(
        self, setpoints: Mapping[str, Setpoint], export_price_eur_per_kwh: float | None
    ) -> None:
        """The planner's wishes for this quarter hour; the guard still clamps them."""
        self.guard.set_plan(setpoints)
        self.guard.set_export_price(export_price_eur_per_kwh)
        self._reevaluate()

    @callback
    def _reevaluate(self) -> None:
        """Act on a control change now rather than at the next meter update.

        A tick re-decides on the last reading; replaying the reading as new would hide
        a stale meter.
        """
        self._on_tick(dt_util.utcnow())
        self.updates.notify()

    def as_dict(self) -> dict[str, Any]:
        """Live state for diagnostics; no names."""
        counters = self.counters
        return {
            "optimisation_paused": self.optimisation_paused,
            "charge_now": sorted(self.charge_now),
            "emergency_active": self.emergency_active,
            "meter_interval_s": self.pace.interval_s,
            "last_reading_at": self.last_reading_at,
            "active_issues": sorted(self.issues.active),
            "rejected_values": dict(self.rejections.by_reason),
            "counters": {
                "meter_events": counters.meter_events,
                "evaluations": counters.evaluations,
                "decisions_with_changes": counters.decisions_with_changes,
                "commands_sent": counters.commands_sent,
                "commands_failed": counters.commands_failed,
                "commands_clamped": counters.commands_clamped,
                "actuator_errors": counters.actuator_errors,
                "guard_errors": counters.guard_errors,
                "last_command_error": counters.last_command_error,
                "failing_entities": sorted(counters.failing_entities),
            },
        }


def is_measured(decision: GuardDecision) -> bool:
    """Whether the decision rests on a fresh meter reading (its currents mean something)."""
    return decision.state is not GuardState.STARTING and not (
        _has(decision, LimitReason.STALE_METER) or _has(decision, LimitReason.GUARD_ERROR)
    )


def _has(decision: GuardDecision, reason: LimitReason) -> bool:
    return any(limitation.reason is reason for limitation in decision.limitations)
