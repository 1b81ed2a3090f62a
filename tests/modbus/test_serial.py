"""Modbus RTU on a local serial port: a simulated device on one end of a socat pair."""

from __future__ import annotations

import asyncio
import termios
from typing import TYPE_CHECKING

import pytest

from custom_components.netbewust.core.model import ChargerSetpoint
from custom_components.netbewust.modbus import (
    Link,
    ModbusConnectionRefused,
    ModbusDevice,
    ModbusTimeout,
    ModbusTransport,
    Profile,
    TransportPool,
    TransportSettings,
    probe,
)
from custom_components.netbewust.modbus.profile import RegisterTable

from .conftest import serving
from .serial_pair import SerialPair, virtual_serial_pair
from .sim_chargers import AlfenSim
from .simulator import RegisterBank, SimServer, Table, to_f32

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


@pytest.fixture
async def serial_line(tmp_path: Path) -> AsyncIterator[SerialPair]:
    async with virtual_serial_pair(tmp_path) as pair:
        yield pair


@pytest.fixture
async def alfen_on_serial(
    serial_line: SerialPair,
) -> AsyncIterator[tuple[SimServer, AlfenSim, SerialPair]]:
    """An Alfen on an RS-485 line: like real RTU slaves, other unit ids stay silent."""
    bank = RegisterBank()
    sim = AlfenSim(bank, lag_s=0.0)
    async with serving(
        bank, sim.step, silent_units=True, serial_port=serial_line.device_end
    ) as server:
        yield server, sim, serial_line


def serial_settings(port: str, timeout_s: float = 0.5) -> TransportSettings:
    return TransportSettings(
        link=Link.SERIAL, serial_port=port, timeout_s=timeout_s, backoff_initial_s=0.05
    )


async def test_probe_over_serial_identifies_the_charger(
    profiles: dict[str, Profile], alfen_on_serial: tuple[SimServer, AlfenSim, SerialPair]
) -> None:
    _, _, line = alfen_on_serial
    identity = await probe(serial_settings(line.host_end), 1, profiles["alfen_ng9xx"])
    assert identity.model == "NG910"
    assert identity.firmware == "6.4.0-4210"
    assert identity.serial == "ACE0012345"


async def test_read_and_write_over_serial(
    profiles: dict[str, Profile], alfen_on_serial: tuple[SimServer, AlfenSim, SerialPair]
) -> None:
    server, sim, line = alfen_on_serial
    transport = ModbusTransport(serial_settings(line.host_end))
    device = ModbusDevice(transport, 1, profiles["alfen_ng9xx"], "alfen")
    try:
        await device.apply(ChargerSetpoint(current_a=11.0, phases=3))
        assert to_f32(server.bank.get(1, Table.HOLDING, 1210, 2)) == 11.0
        await asyncio.sleep(0.1)  # a few simulator ticks: the car follows the new limit
        snapshot = await device.read()
    finally:
        await transport.close()
    assert sim.cars[1].current_a == 11.0
    assert snapshot.state.phase_currents_a == (11.0, 11.0, 11.0)
    assert snapshot.raw_charger_state == "C2"


async def test_two_unit_ids_share_one_serial_line(
    profiles: dict[str, Profile], serial_line: SerialPair
) -> None:
    bank = RegisterBank()
    sim = AlfenSim(bank, lag_s=0.0, sockets=(1, 2))
    pool = TransportPool()
    settings = serial_settings(serial_line.host_end)
    first, second = pool.acquire(settings), pool.acquire(settings)
    assert first is second  # one port, opened once
    async with serving(bank, sim.step, silent_units=True, serial_port=serial_line.device_end):
        await ModbusDevice(first, 1, profiles["alfen_ng9xx"], "left").apply(
            ChargerSetpoint(current_a=8.0, phases=3)
        )
        await ModbusDevice(second, 2, profiles["alfen_ng9xx"], "right").apply(
            ChargerSetpoint(current_a=14.0, phases=3)
        )
    await pool.release(first)
    await pool.release(second)
    assert to_f32(bank.get(1, Table.HOLDING, 1210, 2)) == 8.0
    assert to_f32(bank.get(2, Table.HOLDING, 1210, 2)) == 14.0


async def test_wrong_unit_id_over_serial_times_out_with_a_hint(
    profiles: dict[str, Profile], alfen_on_serial: tuple[SimServer, AlfenSim, SerialPair]
) -> None:
    _, _, line = alfen_on_serial
    with pytest.raises(ModbusTimeout, match=r"no answer within 0.3 s.*check the unit id \(7\)"):
        await probe(serial_settings(line.host_end, timeout_s=0.3), 7, profiles["alfen_ng9xx"])


async def test_a_serial_port_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "ttyUSB9")
    transport = ModbusTransport(serial_settings(missing))
    with pytest.raises(ModbusConnectionRefused, match=r"ttyUSB9: the serial port does not exist"):
        await transport.read(1, RegisterTable.HOLDING, 0, 1)
    assert transport.available is False
    assert transport.last_error is not None


class _PortRefusingSettings:
    """pyserial raises termios.error when the port rejects the line settings."""

    connected = False

    async def connect(self) -> bool:
        raise termios.error(22, "Invalid argument")

    def close(self) -> None:
        pass


async def test_line_settings_the_port_refuses_are_a_clear_error() -> None:
    settings = serial_settings("/dev/ttyUSB0")
    transport = ModbusTransport(settings, client_factory=lambda _: _PortRefusingSettings())
    with pytest.raises(ModbusConnectionRefused, match=r"ttyUSB0: error: \(22, 'Invalid argument'"):
        await transport.read(1, RegisterTable.HOLDING, 0, 1)
    assert transport.available is False


def test_serial_settings_default_to_9600_8n1_and_reject_typos() -> None:
    settings = TransportSettings(link=Link.SERIAL, serial_port="/dev/ttyUSB0")
    assert (settings.baudrate, settings.bytesize, settings.parity, settings.stopbits) == (
        9600,
        8,
        "N",
        1,
    )
    with pytest.raises(ValueError, match="baud rate"):
        TransportSettings(link=Link.SERIAL, serial_port="/dev/ttyUSB0", baudrate=9601)
    with pytest.raises(ValueError, match="parity"):
        TransportSettings(link=Link.SERIAL, serial_port="/dev/ttyUSB0", parity="X")
    with pytest.raises(ValueError, match="stop bits"):
        TransportSettings(link=Link.SERIAL, serial_port="/dev/ttyUSB0", stopbits=3)
