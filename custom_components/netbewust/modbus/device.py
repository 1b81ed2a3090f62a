"""A device behind a transport, driven by its profile: readings in, setpoints out.

Readings become the engine's own types (DeviceState, MeterReading) so the guard uses
them unchanged; the engine's setpoints are written the way the profile describes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..core.model import (
    NOMINAL_VOLTAGE_V,
    BatterySetpoint,
    ChargerSetpoint,
    ChargerState,
    DeviceState,
    HeatPumpSetpoint,
    MeterReading,
    PhaseReading,
    PvSetpoint,
    Setpoint,
)
from .codec import DataType, decode, encode
from .errors import ModbusDeviceException, ModbusError, ProfileMismatch
from .profile import (
    ControlMethod,
    PauseMethod,
    Profile,
    ProfileKind,
    ReadField,
    RegisterSpec,
    RegisterTable,
    ScaleKind,
)
from .sunspec import SunSpecMap, discover

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .transport import ModbusTransport

_LOGGER = logging.getLogger(__name__)
_MAX_BLOCK_WORDS = 120  # below the 125-register limit of one read request
_CHARGING_PHASE_A = 1.0  # a phase carrying more than this counts as active
_GRID_SETPOINT_RANGE_W = 30000.0  # within a signed 16-bit register in watts

type Value = float | int | str | None


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """What the device says about itself, for the device registry."""

    profile_id: str
    unit_id: int
    manufacturer: str
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    sunspec_models: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    """One poll: the engine's view plus every decoded register, scaled to SI units."""

    state: DeviceState
    values: Mapping[str, Value]
    meter: MeterReading | None = None
    energy_wh: float | None = None
    raw_charger_state: str | None = None


@dataclass(frozen=True, slots=True)
class _Block:
    unit_id: int
    table: RegisterTable
    start: int
    count: int
    members: tuple[RegisterSpec, ...] = field(default=())


class ModbusDevice:
    """One unit id on a (possibly shared) transport, speaking one profile."""

    def __init__(
        self,
        transport: ModbusTransport,
        unit_id: int,
        profile: Profile,
        device_id: str,
        *,
        nominal_voltage_v: float = NOMINAL_VOLTAGE_V,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= unit_id <= 255:
            raise ValueError(f"unit id {unit_id} is outside 0..255")
        self.transport = transport
        self.unit_id = unit_id
        self.profile = profile
        self.device_id = device_id
        self.nominal_voltage_v = nominal_voltage_v
        self._clock = clock
        self._addresses: dict[str, int] | None = None
        self._sunspec: SunSpecMap | None = None
        self._blocks: tuple[_Block, ...] = ()
        self._scale_cache: dict[str, int | float] = {}
        self._last_setpoint: Setpoint | None = None
        self._last_write_at: float | None = None
        self._phases_written: int | None = None
        self._paused_by_enable = False
        self.available = True
        self.last_snapshot: DeviceSnapshot | None = None

    # ---------------------------------------------------------------- addresses

    async def _resolve(self) -> dict[str, int]:
        if self._addresses is not None:
            return self._addresses
        addresses: dict[str, int] = {}
        if self.profile.sunspec is not None:
            self._sunspec = await discover(
                self.transport, self.unit_id, self.profile.sunspec.base_addresses
            )
            missing = set(self.profile.sunspec.required_models) - set(self._sunspec.model_ids)
            if missing:
                raise ProfileMismatch(
                    f"SunSpec device at unit {self.unit_id} lacks model(s) "
                    f"{', '.join(map(str, sorted(missing)))} that {self.profile.name} needs"
                )
        for spec in self.profile.registers.values():
            if spec.address is not None:
                addresses[spec.name] = spec.address
                continue
            assert self._sunspec is not None
            assert spec.model is not None
            assert spec.offset is not None
            location = self._sunspec.find(spec.model)
            if location is None:
                continue  # optional model absent; its points read as None
            if spec.offset + spec.words > location.length:
                raise ProfileMismatch(
                    f"register {spec.name!r} lies beyond SunSpec model {spec.model} "
                    f"(length {location.length})"
                )
            addresses[spec.name] = location.start + spec.offset
        for role, name in self.profile.control.registers.items():
            if name not in addresses:
                raise ProfileMismatch(
                    f"the device has no register {name!r} for control role {role}"
                )
        self._addresses = addresses
        self._blocks = self._plan_blocks(addresses)
        return addresses

    def _read_set(self) -> list[RegisterSpec]:
        names = {name for names in self.profile.reads.values() for name in names}
        names |= set(self.profile.extra_values)
        specs = [self.profile.registers[name] for name in names]
        names |= {spec.scale_register for spec in specs if spec.scale_register}
        return [self.profile.registers[name] for name in sorted(names)]

    def _plan_blocks(self, addresses: Mapping[str, int]) -> tuple[_Block, ...]:
        """Merge neighbouring registers into as few requests as the profile allows."""
        groups: dict[tuple[int, RegisterTable], list[RegisterSpec]] = {}
        for spec in self._read_set():
            if spec.name in addresses:
                key = (spec.unit_id if spec.unit_id is not None else self.unit_id, spec.table)
                groups.setdefault(key, []).append(spec)
        blocks: list[_Block] = []
        for (unit_id, table), specs in groups.items():
            specs.sort(key=lambda spec: addresses[spec.name])
            current: list[RegisterSpec] = []
            start = end = 0
            for spec in specs:
                address = addresses[spec.name]
                fits = (
                    current
                    and address - end <= self.profile.max_block_gap
                    and max(end, address + spec.words) - start <= _MAX_BLOCK_WORDS
                )
                if not fits:
                    if current:
                        blocks.append(_Block(unit_id, table, start, end - start, tuple(current)))
                    current, start, end = [], address, address
                current.append(spec)
                end = max(end, address + spec.words)
            blocks.append(_Block(unit_id, table, start, end - start, tuple(current)))
        return tuple(blocks)

    # ---------------------------------------------------------------- reading

    async def _read_raw(self, spec: RegisterSpec) -> Value:
        addresses = await self._resolve()
        if spec.name not in addresses:
            return None
        unit_id = spec.unit_id if spec.unit_id is not None else self.unit_id
        words = await self.transport.read(unit_id, spec.table, addresses[spec.name], spec.words)
        return decode(words, spec.data_type, spec.word_order)

    def _scaled(self, spec: RegisterSpec, raw: Value, scales: Mapping[str, Value]) -> Value:
        if raw is None or isinstance(raw, str) or spec.data_type is DataType.SUNSSF:
            return raw
        value = raw * spec.scale
        if spec.scale_register is None:
            return value if spec.scale != 1 or isinstance(raw, float) else raw
        factor = scales.get(spec.scale_register)
        if not isinstance(factor, int | float):
            return None  # scale unknown: better no value than a wrong one
        if spec.scale_kind is ScaleKind.POWER_OF_TEN:
            return value * 10.0**factor
        return value / factor if factor else None

    async def read(self) -> DeviceSnapshot:
        """Poll every register the profile reads; marks the device (un)available."""
        try:
            await self._resolve()
            raw: dict[str, Value] = {}
            for block in self._blocks:
                words = await self.transport.read(
                    block.unit_id, block.table, block.start, block.count
                )
                for spec in block.members:
                    offset = self._address(spec) - block.start
                    raw[spec.name] = decode(
                        words[offset : offset + spec.words], spec.data_type, spec.word_order
                    )
        except ModbusError as err:
            self._mark_unavailable(str(err))
            raise
        self._mark_available()
        for name, value in raw.items():
            is_scale = self.profile.registers[name].data_type is DataType.SUNSSF
            if is_scale and isinstance(value, int | float):
                self._scale_cache[name] = value
        values = {
            name: self._scaled(self.profile.registers[name], value, raw)
            for name, value in raw.items()
        }
        snapshot = self._snapshot(values)
        self.last_snapshot = snapshot
        return snapshot

    def _address(self, spec: RegisterSpec) -> int:
        assert self._addresses is not None
        return self._addresses[spec.name]

    def unavailable_state(self) -> DeviceState:
        """What the guard gets while the device cannot be reached."""
        return DeviceState(self.device_id, available=False)

    def _mark_unavailable(self, reason: str) -> None:
        if self.available:
            self.available = False
            _LOGGER.warning("%s (%s) is unavailable: %s", self.device_id, self.profile.name, reason)

    def _mark_available(self) -> None:
        if not self.available:
            self.available = True
            _LOGGER.info("%s (%s) is available again", self.device_id, self.profile.name)

    # ---------------------------------------------------------------- mapping

    def _snapshot(self, values: Mapping[str, Value]) -> DeviceSnapshot:
        reads = self.profile.reads
        sign = self.profile.power_sign

        def one(read_field: ReadField) -> float | None:
            names = reads.get(read_field)
            value = values.get(names[0]) if names else None
            return float(value) if isinstance(value, int | float) else None

        def many(read_field: ReadField) -> tuple[float, ...] | None:
            names = reads.get(read_field)
            if not names:
                return None
            found = [values.get(name) for name in names]
            if not all(isinstance(value, int | float) for value in found):
                return None
            return tuple(float(value) for value in found if isinstance(value, int | float))

        phase_powers = many(ReadField.PHASE_POWERS_W)
        phase_powers = tuple(power * sign for power in phase_powers) if phase_powers else None
        power = one(ReadField.POWER_W)
        power = power * sign if power is not None else (sum(phase_powers) if phase_powers else None)
        currents = many(ReadField.PHASE_CURRENTS_A)
        if currents is None and phase_powers is not None:
            currents = tuple(abs(p) / self.nominal_voltage_v for p in phase_powers)
        raw_state, charger_state = self._charger_state(values)
        active = one(ReadField.ACTIVE_PHASES)
        active_phases = int(active) if active in (1.0, 3.0) else None
        if active_phases is None and currents and charger_state in (ChargerState.C, ChargerState.D):
            active_phases = sum(1 for current in currents if current > _CHARGING_PHASE_A) or None
        state = DeviceState(
            self.device_id,
            power_w=power,
            phase_currents_a=currents if self.profile.kind is not ProfileKind.METER else None,
            soc_pct=one(ReadField.SOC_PCT),
            charger_state=charger_state,
            active_phases=active_phases,
        )
        meter = None
        if self.profile.kind is ProfileKind.METER and phase_powers is not None:
            voltages = many(ReadField.PHASE_VOLTAGES_V)
            meter_currents = many(ReadField.PHASE_CURRENTS_A)
            meter = MeterReading(
                timestamp=datetime.now(UTC),
                phases=tuple(
                    PhaseReading(
                        power_w=phase_power,
                        voltage_v=voltages[index] if voltages else None,
                        current_a=meter_currents[index] if meter_currents else None,
                    )
                    for index, phase_power in enumerate(phase_powers)
                ),
                total_power_w=power,
            )
        return DeviceSnapshot(
            state=state,
            values=values,
            meter=meter,
            energy_wh=one(ReadField.ENERGY_WH),
            raw_charger_state=raw_state,
        )

    def _charger_state(self, values: Mapping[str, Value]) -> tuple[str | None, ChargerState | None]:
        names = self.profile.reads.get(ReadField.CHARGER_STATE)
        value = values.get(names[0]) if names else None
        if value is None:
            return None, None
        raw = str(int(value)) if isinstance(value, int | float) else value
        return raw, self.profile.charger_states.get(raw)

    # ---------------------------------------------------------------- identity

    async def identify(self) -> DeviceIdentity:
        """Resolve addresses, check the device is what the profile expects, read its identity."""
        await self._resolve()
        identity = self.profile.identity
        if identity.check_register is not None:
            found = await self._read_raw(self.profile.registers[identity.check_register])
            if not _matches(found, identity.check_one_of):
                raise ProfileMismatch(
                    f"unit {self.unit_id}: register {identity.check_register!r} reads {found!r}, "
                    f"expected one of {', '.join(identity.check_one_of)}: "
                    f"this is not a {self.profile.name}"
                )

        async def text(name: str | None) -> str | None:
            if name is None:
                return None
            value = await self._read_raw(self.profile.registers[name])
            return None if value is None or value == "" else str(value)

        return DeviceIdentity(
            profile_id=self.profile.profile_id,
            unit_id=self.unit_id,
            manufacturer=await text(identity.manufacturer) or self.profile.manufacturer,
            model=await text(identity.model) or self.profile.name,
            firmware=await text(identity.firmware),
            serial=await text(identity.serial),
            sunspec_models=self._sunspec.model_ids if self._sunspec else (),
        )

    # ---------------------------------------------------------------- writing

    async def _scale_value(self, spec: RegisterSpec) -> float:
        if spec.scale_register is None:
            return spec.scale
        factor = self._scale_cache.get(spec.scale_register)
        if factor is None:
            read = await self._read_raw(self.profile.registers[spec.scale_register])
            if not isinstance(read, int | float):
                raise ProfileMismatch(f"scale register {spec.scale_register!r} has no value")
            factor = self._scale_cache[spec.scale_register] = read
        if spec.scale_kind is ScaleKind.POWER_OF_TEN:
            return spec.scale * 10.0**factor
        return spec.scale / factor

    async def _read_si(self, role: str) -> float:
        spec = self.profile.register(role)
        raw = await self._read_raw(spec)
        if not isinstance(raw, int | float):
            raise ProfileMismatch(f"register {spec.name!r} ({role}) has no value")
        return raw * await self._scale_value(spec)

    async def _write(self, role: str, value: float, *, raw: bool = False) -> None:
        spec = self.profile.register(role)
        addresses = await self._resolve()
        unit_id = spec.unit_id if spec.unit_id is not None else self.unit_id
        address = addresses[spec.name]
        if spec.data_type is DataType.BOOL:
            await self.transport.write_coil(unit_id, address, bool(value))
            return
        register_value = value if raw else value / await self._scale_value(spec)
        try:
            words = encode(register_value, spec.data_type, spec.word_order)
        except ValueError as err:
            raise ModbusDeviceException(3, f"writing {value} to {spec.name!r}: {err}") from err
        await self.transport.write_registers(unit_id, address, words)

    async def apply(self, setpoint: Setpoint) -> None:
        """Write one of the engine's setpoints the way the profile says."""
        method = self.profile.control.method
        match setpoint:
            case ChargerSetpoint() if method is ControlMethod.CHARGER_CURRENT:
                await self._apply_charger(setpoint)
            case BatterySetpoint() if method is ControlMethod.SUNSPEC_STORAGE:
                await self._apply_sunspec_storage(setpoint)
            case BatterySetpoint() if method is ControlMethod.GRID_SETPOINT:
                await self._apply_grid_setpoint(setpoint)
            case PvSetpoint() if method is ControlMethod.SUNSPEC_POWER_LIMIT:
                await self._apply_pv_limit(setpoint)
            case HeatPumpSetpoint() if method is ControlMethod.SG_READY_RELAYS:
                await self._apply_sg_ready(setpoint)
            case _:
                raise ValueError(
                    f"{self.profile.name} ({method.value}) cannot apply {type(setpoint).__name__}"
                )
        self._last_setpoint = setpoint
        self._last_write_at = self._clock()

    async def keep_alive(self) -> bool:
        """Rewrite the last setpoint when the device's watchdog needs it; True if written."""
        watchdog = self.profile.watchdog
        if watchdog is None or self._last_setpoint is None or self._last_write_at is None:
            return False
        if self._clock() - self._last_write_at < watchdog.refresh_s:
            return False
        await self.apply(self._last_setpoint)
        return True

    async def _apply_charger(self, setpoint: ChargerSetpoint) -> None:
        control = self.profile.control
        roles = control.registers
        if self._phases_written is None:
            self._phases_written = self._phases_read_back()
        if (
            "phases" in roles
            and setpoint.phases in (1, 3)
            and setpoint.phases != self._phases_written
        ):
            value = control.one_phase_value if setpoint.phases == 1 else control.three_phase_value
            await self._write("phases", value, raw=True)
            self._phases_written = setpoint.phases
        # Below the minimum a charger cannot charge: pause rather than round up.
        current = min(setpoint.current_a, control.max_current_a)
        if current < control.min_current_a:
            if control.pause is PauseMethod.ENABLE_REGISTER:
                await self._write("enable", control.disabled_value, raw=True)
                self._paused_by_enable = True
            else:
                await self._write("current", 0.0)
            return
        await self._write("current", current)
        if "enable" in roles and (self._paused_by_enable or self._last_setpoint is None):
            await self._write("enable", control.enabled_value, raw=True)
            self._paused_by_enable = False

    def _phases_read_back(self) -> int | None:
        """The phase setting as last read, when the read register is the written one.

        Writing an unchanged phase setting is skipped: some chargers refuse the write
        unless phase switching is enabled on site (Alfen: 'Allow 1- and 3-phased charging').
        """
        names = self.profile.reads.get(ReadField.ACTIVE_PHASES, ())
        same_register = names == (self.profile.control.registers.get("phases"),)
        if not same_register or self.last_snapshot is None:
            return None
        return self.last_snapshot.state.active_phases

    async def _apply_sunspec_storage(self, setpoint: BatterySetpoint) -> None:
        if setpoint.power_w is None:
            await self._write("mode", 0, raw=True)  # no limits active: the battery's own mode
            return
        reference_w = await self._read_si("max_charge_w")
        if reference_w <= 0:
            raise ProfileMismatch("WChaMax is 0: cannot express a power as a rate")
        percent = min(abs(setpoint.power_w) / reference_w * 100.0, 100.0)
        # A window [-discharge, +charge] of one point forces that power (SunSpec 124 rates).
        charge, discharge = (percent, -percent) if setpoint.power_w >= 0 else (-percent, percent)
        if "revert_s" in self.profile.control.registers and self.profile.watchdog:
            await self._write("revert_s", self.profile.watchdog.validity_s, raw=True)
        await self._write("charge_rate_pct", charge)
        await self._write("discharge_rate_pct", discharge)
        await self._write("mode", 3, raw=True)  # bit 0 charge limit, bit 1 discharge limit

    async def _apply_grid_setpoint(self, setpoint: BatterySetpoint) -> None:
        control = self.profile.control
        if setpoint.power_w is None:
            await self._write("setpoint", control.idle_setpoint_w)
            await self._write("max_discharge_w", control.no_limit_value, raw=True)
            return
        snapshot = await self.read()
        grid_names = self.profile.reads.get(ReadField.GRID_PHASE_POWERS_W, ())
        grid = [snapshot.values.get(name) for name in grid_names]
        battery = snapshot.state.power_w
        if not grid or not all(isinstance(p, int | float) for p in grid) or battery is None:
            raise ProfileMismatch(
                "grid or battery power unreadable: cannot place the grid setpoint"
            )
        grid_w = sum(float(p) for p in grid if isinstance(p, int | float))
        # The GX loop moves the battery until the grid reads the setpoint, so shift the
        # grid by the change we want from the battery.
        target = grid_w + setpoint.power_w - battery
        target = max(-_GRID_SETPOINT_RANGE_W, min(_GRID_SETPOINT_RANGE_W, target))
        await self._write("max_discharge_w", max(0.0, -setpoint.power_w))
        await self._write("setpoint", target)

    async def _apply_pv_limit(self, setpoint: PvSetpoint) -> None:
        if setpoint.power_limit_w is None:
            await self._write("enable", 0, raw=True)
            return
        rated_w = await self._read_si("rated_w")
        if rated_w <= 0:
            raise ProfileMismatch("the inverter reports no rated power: cannot set a limit")
        percent = max(0.0, min(setpoint.power_limit_w / rated_w * 100.0, 100.0))
        if "revert_s" in self.profile.control.registers and self.profile.watchdog:
            await self._write("revert_s", self.profile.watchdog.validity_s, raw=True)
        await self._write("limit_pct", percent)
        await self._write("enable", 1, raw=True)

    async def _apply_sg_ready(self, setpoint: HeatPumpSetpoint) -> None:
        # SG-Ready: relay 1 on, relay 2 off is "blocked" (state 1); both off is normal.
        await self._write("relay_1", 0 if setpoint.on else 1)
        await self._write("relay_2", 0)


def _matches(found: Value, expected: tuple[str, ...]) -> bool:
    if found is None:
        return False
    if isinstance(found, str):
        return any(option.lower() in found.lower() for option in expected)
    return any(option == str(int(found)) for option in expected)
