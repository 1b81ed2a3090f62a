"""Fixtures: run a simulated device on loopback and talk to it through the real stack."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest

from custom_components.netbewust.modbus import (
    ModbusDevice,
    ModbusTransport,
    Profile,
    TransportSettings,
    load_profiles,
)

from .simulator import RegisterBank, SimServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable


@pytest.fixture(autouse=True)
def _loopback_sockets(socket_enabled: None) -> None:
    """The simulators are real TCP servers on 127.0.0.1 (the HA plugin blocks sockets)."""


@pytest.fixture(scope="session")
def profiles() -> dict[str, Profile]:
    return load_profiles()


@asynccontextmanager
async def serving(
    bank: RegisterBank,
    *steps: Callable[[float, float], None],
    silent_units: bool = False,
    serial_port: str | None = None,
) -> AsyncIterator[SimServer]:
    server = SimServer(bank, silent_units=silent_units, serial_port=serial_port)
    for step in steps:
        server.on_tick(step)
    server.step()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def settings_for(server: SimServer, timeout_s: float = 0.5) -> TransportSettings:
    return TransportSettings(
        host="127.0.0.1", port=server.port, timeout_s=timeout_s, backoff_initial_s=0.05
    )


def device_for(
    server: SimServer, profile: Profile, unit_id: int, device_id: str = "dev"
) -> ModbusDevice:
    return ModbusDevice(ModbusTransport(settings_for(server)), unit_id, profile, device_id)
