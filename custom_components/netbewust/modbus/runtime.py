"""Modbus devices at runtime: poll each one, write the guard's setpoints, keep watchdogs fed.

Nothing here ever blocks the guard: reads and writes run as tasks with timeouts, the
guard only sees the last polled `DeviceState`, and a setpoint is handed to a per-device
writer that always writes the newest one (older, unwritten setpoints are dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeassistant.helpers import issue_registry as ir

from ..const import (
    CONF_DEVICE_PHASES,
    CONF_MAX_CHARGE_POWER,
    CONF_MAX_CURRENT,
    CONF_MAX_DISCHARGE_POWER,
    CONF_MIN_CURRENT,
    CONF_MIN_SOC,
    CONF_MODBUS_IDENTITY,
    CONF_MODBUS_PROFILE,
    CONF_MODBUS_UNIT_ID,
    CONF_PRIORITY,
    CONF_RATED_POWER,
    CONF_SAFE_CURRENT,
    DEFAULT_MIN_SOC_PCT,
    DOMAIN,
    LOGGER,
    SUBENTRY_MODBUS,
)
from ..core.guard.safe_state import safe_current_allowed
from ..core.model import (
    AnyDeviceSpec,
    BatterySpec,
    ChargerSpec,
    ChargerState,
    DeviceState,
    HeatPumpControl,
    HeatPumpSpec,
    MeterReading,
    PvSpec,
    Setpoint,
)
from ..entity import Updates
from ..flows.modbus import modbus_profiles, transport_settings
from . import (
    DeviceSnapshot,
    ModbusDevice,
    ModbusError,
    Profile,
    ProfileKind,
    TransportPool,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from homeassistant.config_entries import ConfigEntry, ConfigSubentry
    from homeassistant.core import HomeAssistant

POLL_INTERVAL_S = 1.0
REQUEST_TIMEOUT_S = 2.0  # per Modbus request, inside the transport
# The most one poll or write may take before it counts as failed; under the meter period
# of most P1 meters, so a hung device never delays the guard's view of the others.
OPERATION_TIMEOUT_S = 5.0
MISSING_METER_ISSUE = "modbus_meter_missing"  # translation key; the id adds the entry id


class ModbusConfigError(ValueError):
    """A Modbus subentry whose data cannot describe a device; names the subentry."""


@dataclass(frozen=True, slots=True)
class ModbusBattery:
    """A Modbus battery as the planner needs it: its spec and its last polled charge."""

    spec: BatterySpec
    soc_pct: float | None  # None while unreachable or not reported: not plannable


@dataclass(frozen=True, slots=True)
class ModbusCharger:
    """A Modbus charger as the planner needs it: its spec and its last polled pilot state."""

    spec: ChargerSpec
    state: ChargerState | None  # None while unreachable or not reported: plug unknown


@dataclass(slots=True)
class ModbusRunner:
    """One Modbus device of the entry: its engine spec, its connection, its last poll."""

    subentry_id: str
    title: str
    profile: Profile
    device: ModbusDevice
    spec: AnyDeviceSpec | None  # None for a meter: a measurement source, not a device
    identity: Mapping[str, Any]
    snapshot: DeviceSnapshot | None = None
    reachable: bool = False
    pending: Setpoint | None = None
    unwritten: Setpoint | None = None  # failed to write; retried once the device answers
    writer: asyncio.Task[None] | None = field(default=None, repr=False)
    write_errors: int = 0
    last_error: str | None = None  # the last failed poll or write, for diagnostics

    @property
    def state(self) -> DeviceState:
        """What the guard sees: the last poll, or unavailable while unreachable."""
        if not self.reachable or self.snapshot is None:
            return self.device.unavailable_state()
        return self.snapshot.state


def _number(subentry: ConfigSubentry, key: str, default: float | None = None) -> float:
    value = subentry.data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ModbusConfigError(f"{subentry.title}: {key} must be a number >= 0, got {value!r}")
    return float(value)


def _spec(subentry: ConfigSubentry, profile: Profile) -> AnyDeviceSpec | None:
    """The engine's description of the device, by the profile's kind."""
    try:
        phases = tuple(sorted({int(phase) for phase in subentry.data[CONF_DEVICE_PHASES]}))
    except (KeyError, TypeError, ValueError) as err:
        raise ModbusConfigError(f"{subentry.title}: bad phases ({err})") from err
    common: dict[str, Any] = {
        "device_id": subentry.subentry_id,
        "name": subentry.title,
        "priority": int(_number(subentry, CONF_PRIORITY)),
        "phases": phases,
    }
    match profile.kind:
        case ProfileKind.CHARGER:
            return _charger_spec(subentry, profile, common)
        case ProfileKind.BATTERY:
            return BatterySpec(
                **common,
                max_charge_w=_number(subentry, CONF_MAX_CHARGE_POWER),
                max_discharge_w=_number(subentry, CONF_MAX_DISCHARGE_POWER),
                min_soc_pct=_number(subentry, CONF_MIN_SOC, DEFAULT_MIN_SOC_PCT),
            )
        case ProfileKind.PV:
            return PvSpec(**common, rated_power_w=_number(subentry, CONF_RATED_POWER))
        case ProfileKind.HEAT_PUMP:
            return HeatPumpSpec(
                **common,
                rated_power_w=_number(subentry, CONF_RATED_POWER),
                control=HeatPumpControl.SG_READY,
            )
        case ProfileKind.METER:
            return None


def _charger_spec(
    subentry: ConfigSubentry, profile: Profile, common: dict[str, Any]
) -> ChargerSpec:
    min_a = _number(subentry, CONF_MIN_CURRENT, profile.control.min_current_a)
    max_a = _number(subentry, CONF_MAX_CURRENT, profile.control.max_current_a)
    safe_a = None  # none set: the engine's default, the minimum current
    if subentry.data.get(CONF_SAFE_CURRENT) is not None:
        safe_a = _number(subentry, CONF_SAFE_CURRENT)
        if not safe_current_allowed(safe_a, min_a, max_a):
            raise ModbusConfigError(
                f"{subentry.title}: the safe current must be 0 or from {min_a:g} to "
                f"{max_a:g} A, got {safe_a:g} A"
            )
    return ChargerSpec(
        **common,
        min_current_a=min_a,
        max_current_a=max_a,
        safe_current_a=safe_a,
        can_switch_phases="phases" in profile.control.registers and len(common["phases"]) == 3,
    )


class ModbusDevices:
    """Every Modbus device of one config entry, sharing one connection per host:port."""

    def __init__(self, runners: Iterable[ModbusRunner], pool: TransportPool) -> None:
        self.runners: dict[str, ModbusRunner] = {r.subentry_id: r for r in runners}
        self._pool = pool
        self.updates = Updates()  # after every poll round
        self._poller: asyncio.Task[None] | None = None
        self._meter: tuple[ModbusRunner, Callable[[MeterReading], None]] | None = None
        self.waiting_for_meter = False

    @classmethod
    def from_subentries(cls, subentries: Iterable[ConfigSubentry]) -> ModbusDevices:
        """Raises ModbusConfigError for a subentry that names no known profile or bad data."""
        pool = TransportPool()
        runners = []
        for subentry in subentries:
            if subentry.subentry_type != SUBENTRY_MODBUS:
                continue
            profile = modbus_profiles().get(str(subentry.data.get(CONF_MODBUS_PROFILE)))
            if profile is None:
                raise ModbusConfigError(
                    f"{subentry.title}: unknown Modbus profile "
                    f"{subentry.data.get(CONF_MODBUS_PROFILE)!r}"
                )
            try:
                settings = transport_settings(subentry.data, REQUEST_TIMEOUT_S)
                transport = pool.acquire(settings)
                device = ModbusDevice(
                    transport,
                    int(subentry.data[CONF_MODBUS_UNIT_ID]),
                    profile,
                    subentry.subentry_id,
                )
            except (KeyError, TypeError, ValueError) as err:
                raise ModbusConfigError(f"{subentry.title}: {err}") from err
            runners.append(
                ModbusRunner(
                    subentry_id=subentry.subentry_id,
                    title=subentry.title,
                    profile=profile,
                    device=device,
                    spec=_spec(subentry, profile),
                    identity=subentry.data.get(CONF_MODBUS_IDENTITY) or {},
                )
            )
        return cls(runners, pool)

    def use_as_meter(self, on_reading: Callable[[MeterReading], None]) -> None:
        """Hand each poll of the first Modbus meter to `on_reading`: the guard's measurement.

        Without one yet, the guard gets no readings (safe mode) and `start` raises a
        repair issue asking for the meter.
        """
        meter = next(
            (r for r in self.runners.values() if r.profile.kind is ProfileKind.METER), None
        )
        self.waiting_for_meter = meter is None
        if meter is not None:
            self._meter = (meter, on_reading)

    @property
    def connections(self) -> int:
        """Open connections: one per host:port (or serial port), however many unit ids."""
        return len(self._pool)

    @property
    def specs(self) -> tuple[AnyDeviceSpec, ...]:
        return tuple(r.spec for r in self.runners.values() if r.spec is not None)

    def states(self) -> dict[str, DeviceState]:
        """The guard's view of every controlled Modbus device, as last polled."""
        return {r.subentry_id: r.state for r in self.runners.values() if r.spec is not None}

    def batteries(self) -> tuple[ModbusBattery, ...]:
        """Every Modbus battery with its state of charge from the runner's last poll."""
        return tuple(
            ModbusBattery(runner.spec, _plausible_soc(runner.state))
            for runner in self.runners.values()
            if isinstance(runner.spec, BatterySpec)
        )

    def chargers(self) -> tuple[ModbusCharger, ...]:
        """Every Modbus charger with its IEC 61851 state from the runner's last poll."""
        return tuple(
            ModbusCharger(
                runner.spec, runner.state.charger_state if runner.state.available else None
            )
            for runner in self.runners.values()
            if isinstance(runner.spec, ChargerSpec)
        )

    def diagnostics(self) -> list[dict[str, Any]]:
        """Each device's profile, link, reachability and last error; the caller redacts
        `host` and the identity's `serial`."""
        return [
            {
                "subentry_id": runner.subentry_id,
                "profile_id": runner.profile.profile_id,
                "kind": runner.profile.kind.value,
                "link": runner.device.transport.settings.link.value,
                "host": runner.device.transport.settings.host,
                "port": runner.device.transport.settings.port,
                "unit_id": runner.device.unit_id,
                "available": runner.reachable,
                "last_error": runner.last_error or runner.device.transport.last_error,
                "write_errors": runner.write_errors,
                "measures_connection": self._meter is not None and self._meter[0] is runner,
                "identity": dict(runner.identity),
            }
            for runner in self.runners.values()
        ]

    def start(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        if self.waiting_for_meter:
            _raise_missing_meter_issue(hass, entry)
        if self.runners:
            self._poller = entry.async_create_background_task(
                hass, self._poll_forever(), "netbewust modbus poll"
            )

    async def stop(self) -> None:
        tasks = [self._poller, *(r.writer for r in self.runners.values())]
        for task in tasks:
            if task is not None:
                task.cancel()
        for task in tasks:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for runner in self.runners.values():
            await self._pool.release(runner.device.transport)

    def apply(self, device_id: str, setpoint: Setpoint) -> bool:
        """Queue the setpoint for the device's writer; False if it is not a Modbus device."""
        runner = self.runners.get(device_id)
        if runner is None:
            return False
        runner.pending = setpoint
        if runner.writer is None or runner.writer.done():
            runner.writer = asyncio.get_running_loop().create_task(
                self._write_pending(runner), name=f"netbewust modbus write {runner.title}"
            )
        return True

    async def poll_once(self) -> None:
        """Read every device (concurrently: different connections do not wait on each
        other), feed the watchdogs, tell the listeners."""
        await asyncio.gather(*(self._poll(runner) for runner in self.runners.values()))
        self.updates.notify()

    async def _poll_forever(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(POLL_INTERVAL_S)

    async def _poll(self, runner: ModbusRunner) -> None:
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT_S):
                runner.snapshot = await runner.device.read()
                runner.reachable = True
                # Straight to the guard, not after the slowest other device. Unreachable:
                # no reading at all, so the guard's own staleness rules apply.
                if self._meter is not None and self._meter[0] is runner and runner.snapshot.meter:
                    self._meter[1](runner.snapshot.meter)
                if runner.unwritten is not None and runner.pending is None:
                    self.apply(runner.subentry_id, runner.unwritten)
                elif runner.pending is None:  # a queued write refreshes the watchdog anyway
                    await runner.device.keep_alive()
        except ModbusError as err:
            runner.reachable = False  # the device logs the loss once and the return once
            runner.last_error = str(err)
        except TimeoutError:
            if runner.reachable:
                LOGGER.warning("%s: no answer within %.0f s", runner.title, OPERATION_TIMEOUT_S)
            runner.reachable = False
            runner.last_error = f"no answer within {OPERATION_TIMEOUT_S:g} s"

    async def _write_pending(self, runner: ModbusRunner) -> None:
        while (setpoint := runner.pending) is not None:
            runner.pending = None
            runner.unwritten = None
            try:
                async with asyncio.timeout(OPERATION_TIMEOUT_S):
                    await runner.device.apply(setpoint)
            except (ModbusError, TimeoutError, ValueError) as err:
                runner.write_errors += 1
                runner.unwritten = setpoint
                runner.last_error = f"cannot write {setpoint}: {err}"
                if runner.write_errors == 1:
                    LOGGER.warning("%s: cannot write %s: %s", runner.title, setpoint, err)
                continue
            if runner.write_errors:
                LOGGER.info("%s accepts setpoints again", runner.title)
                runner.write_errors = 0


def _plausible_soc(state: DeviceState) -> float | None:
    """The polled state of charge, or None when unavailable or outside 0-100 %
    (an unimplemented register reads as e.g. 0xFFFF)."""
    soc = state.soc_pct
    if not state.available or soc is None or not 0.0 <= soc <= 100.0:
        return None
    return soc


def has_modbus_meter(subentries: Iterable[ConfigSubentry]) -> bool:
    """True when a Modbus subentry reads a meter (it can replace the P1 entities)."""
    profiles = modbus_profiles()
    return any(
        subentry.subentry_type == SUBENTRY_MODBUS
        and (profile := profiles.get(str(subentry.data.get(CONF_MODBUS_PROFILE)))) is not None
        and profile.kind is ProfileKind.METER
        for subentry in subentries
    )


def _raise_missing_meter_issue(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Ask for the Modbus meter; the issue goes when the entry reloads with one (or unloads)."""
    issue_id = f"{MISSING_METER_ISSUE}_{entry.entry_id}"
    LOGGER.warning("%s: no Modbus meter yet; the guard stays in safe mode", entry.title)
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=MISSING_METER_ISSUE,
        translation_placeholders={"title": entry.title},
    )
    entry.async_on_unload(lambda: ir.async_delete_issue(hass, DOMAIN, issue_id))
