"""Transport and probe faults: refused, timeouts, unit ids, exceptions, loss and return."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pymodbus import FramerType
from pymodbus.constants import ExcCodes

from custom_components.netbewust.modbus import (
    DeviceUnavailable,
    Link,
    ModbusConnectionRefused,
    ModbusDevice,
    ModbusDeviceException,
    ModbusError,
    ModbusTimeout,
    ModbusTransport,
    Profile,
    ProfileMismatch,
    TransportPool,
    TransportSettings,
    WrongUnitId,
    probe,
)
from custom_components.netbewust.modbus.profile import RegisterTable

from .conftest import device_for, serving, settings_for
from .sim_chargers import AlfenSim, VictronEvcsSim
from .simulator import RegisterBank, SimServer, Table, free_port


async def test_refused_connection_is_reported(profiles: dict[str, Profile]) -> None:
    settings = TransportSettings(host="127.0.0.1", port=free_port(), timeout_s=0.5)
    with pytest.raises(ModbusConnectionRefused, match=r"cannot connect to 127\.0\.0\.1"):
        await probe(settings, 1, profiles["alfen_ng9xx"])


async def test_slow_device_times_out_with_unit_id_hint(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    AlfenSim(bank)
    bank.delay_s = 1.0
    async with serving(bank) as server:
        with pytest.raises(ModbusTimeout, match=r"no answer within 0.3 s.*check the unit id"):
            await probe(settings_for(server, timeout_s=0.3), 1, profiles["alfen_ng9xx"])


async def test_unknown_unit_id_behind_gateway_is_wrong_unit_id(
    profiles: dict[str, Profile],
) -> None:
    bank = RegisterBank()
    AlfenSim(bank)
    async with serving(bank) as server:
        with pytest.raises(WrongUnitId, match="check the unit id"):
            await probe(settings_for(server), 7, profiles["alfen_ng9xx"])


async def test_silent_unit_id_times_out(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    AlfenSim(bank)
    async with serving(bank, silent_units=True) as server:
        with pytest.raises(ModbusTimeout, match=r"check the unit id \(9\)"):
            await probe(settings_for(server, timeout_s=0.3), 9, profiles["alfen_ng9xx"])


async def test_device_of_another_brand_is_a_profile_mismatch(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    VictronEvcsSim(bank)
    async with serving(bank) as server:
        with pytest.raises(ProfileMismatch, match="choose another profile"):
            await probe(settings_for(server), 1, profiles["alfen_ng9xx"])
        with pytest.raises(ProfileMismatch, match="not a SunSpec device"):
            await probe(settings_for(server), 1, profiles["sunspec_battery"])


async def test_identity_check_rejects_other_device(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    VictronEvcsSim(bank)
    bank.set(1, Table.HOLDING, 5000, [0x1234])  # a product id that is no EV charging station
    async with serving(bank) as server:
        with pytest.raises(ProfileMismatch, match="reads 4660"):
            await probe(settings_for(server), 1, profiles["victron_evcs"])


async def test_modbus_exception_becomes_clear_message(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    AlfenSim(bank)
    bank.forced_exception = ExcCodes.DEVICE_BUSY
    async with serving(bank) as server:
        device = device_for(server, profiles["alfen_ng9xx"], 1)
        with pytest.raises(
            ModbusDeviceException, match="Modbus exception 6 \\(device busy"
        ) as info:
            await device.read()
    assert info.value.code == 6
    assert device.available is False


async def test_requests_are_serialised_on_a_shared_connection() -> None:
    bank = RegisterBank()
    bank.set(1, Table.HOLDING, 0, list(range(10)))
    bank.set(2, Table.HOLDING, 0, list(range(100, 110)))
    bank.delay_s = 0.01
    async with serving(bank) as server:
        transport = ModbusTransport(settings_for(server, timeout_s=2.0))
        results = await asyncio.gather(
            *(transport.read(1 + i % 2, RegisterTable.HOLDING, i % 10, 1) for i in range(12))
        )
        await transport.close()
    assert results[0] == [0]
    assert results[1] == [101]
    assert bank.max_in_flight == 1


def _available(device: ModbusDevice) -> bool:
    return device.available


async def test_server_going_away_and_coming_back(
    profiles: dict[str, Profile], caplog: pytest.LogCaptureFixture
) -> None:
    bank = RegisterBank()
    sim = AlfenSim(bank, lag_s=0.0)
    caplog.set_level(logging.INFO, logger="custom_components.netbewust.modbus")
    async with serving(bank, sim.step) as server:
        device = device_for(server, profiles["alfen_ng9xx"], 1)
        await device.read()
        await server.stop_serving()
        for _ in range(4):
            with pytest.raises(ModbusError):
                await device.read()
            await asyncio.sleep(0.06)
        assert not _available(device)
        assert device.transport.available is False
        assert device.unavailable_state().available is False
        await server.start()
        snapshot = None
        for _ in range(50):  # back-off expires within a second at these settings
            try:
                snapshot = await device.read()
                break
            except DeviceUnavailable, ModbusConnectionRefused:
                await asyncio.sleep(0.05)
        assert snapshot is not None
        assert _available(device)
    lost = [
        r for r in caplog.records if "unavailable" in r.getMessage() or "lost" in r.getMessage()
    ]
    back = [
        r
        for r in caplog.records
        if "available again" in r.getMessage() or "is back" in r.getMessage()
    ]
    assert len(lost) == 2  # once for the connection, once for the device
    assert len(back) == 2


async def test_back_off_fails_fast_without_touching_the_network() -> None:
    now = [100.0]
    settings = TransportSettings(host="127.0.0.1", port=free_port(), timeout_s=0.5)
    transport = ModbusTransport(settings, clock=lambda: now[0])
    with pytest.raises(ModbusConnectionRefused):
        await transport.read(1, RegisterTable.HOLDING, 0, 1)
    with pytest.raises(DeviceUnavailable, match="next attempt in 1 s"):
        await transport.read(1, RegisterTable.HOLDING, 0, 1)
    now[0] += 1.5
    with pytest.raises(ModbusConnectionRefused):
        await transport.read(1, RegisterTable.HOLDING, 0, 1)
    with pytest.raises(DeviceUnavailable, match="next attempt in 2 s"):  # doubled
        await transport.read(1, RegisterTable.HOLDING, 0, 1)


async def test_pool_shares_one_transport_per_host_port() -> None:
    pool = TransportPool()
    settings = TransportSettings(host="127.0.0.1", port=1502)
    first = pool.acquire(settings)
    second = pool.acquire(settings)
    other = pool.acquire(TransportSettings(host="127.0.0.1", port=1503))
    assert first is second
    assert other is not first
    with pytest.raises(ValueError, match="other link settings"):
        pool.acquire(TransportSettings(host="127.0.0.1", port=1502, timeout_s=3.0))
    await pool.release(first)
    assert len(pool) == 2
    await pool.release(second)
    await pool.release(other)
    assert len(pool) == 0


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="serial port"):
        TransportSettings(link="serial")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="host and a port"):
        TransportSettings(host="", port=502)
    with pytest.raises(ValueError, match="timeout"):
        TransportSettings(host="gx.local", timeout_s=0)


async def test_rtu_frames_through_a_tcp_gateway(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    sim = AlfenSim(bank, lag_s=0.0)
    server = SimServer(bank, framer=FramerType.RTU)
    server.on_tick(sim.step)
    await server.start()
    try:
        settings = TransportSettings(
            link=Link.RTU_OVER_TCP, host="127.0.0.1", port=server.port, timeout_s=0.5
        )
        identity = await probe(settings, 1, profiles["alfen_ng9xx"])
    finally:
        await server.close()
    assert identity.model == "NG910"
