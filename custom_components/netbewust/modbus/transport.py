"""One Modbus connection per host:port (or serial port), shared by every unit id behind it.

Requests are serialised with a lock, bounded by a timeout, and a lost connection is
retried with exponential back-off. While backing off, requests fail at once with
DeviceUnavailable instead of waiting, so the guard is never blocked on a dead device.
"""

from __future__ import annotations

import asyncio
import logging
import termios
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from .errors import (
    DeviceUnavailable,
    ModbusConnectionRefused,
    ModbusDeviceException,
    ModbusTimeout,
    WrongUnitId,
)
from .profile import RegisterTable

_LOGGER = logging.getLogger(__name__)
_GATEWAY_CODES = (10, 11)  # gateway path unavailable / target failed to respond
_TIMEOUTS_BEFORE_RECONNECT = 3
# What RS-485 energy devices offer; anything else is a typo, not a device setting.
SERIAL_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
SERIAL_PARITIES = ("N", "E", "O")
SERIAL_STOPBITS = (1, 2)
DEFAULT_BAUDRATE, DEFAULT_PARITY, DEFAULT_STOPBITS = 9600, "N", 1  # 9600 8N1, most devices


class Link(StrEnum):
    TCP = "tcp"  # Modbus TCP
    RTU_OVER_TCP = "rtu_over_tcp"  # RTU frames through a transparent TCP gateway
    SERIAL = "serial"  # Modbus RTU on a local RS-485 port


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportSettings:
    link: Link = Link.TCP
    host: str = ""
    port: int = 502
    serial_port: str = ""
    baudrate: int = DEFAULT_BAUDRATE
    parity: str = DEFAULT_PARITY
    stopbits: int = DEFAULT_STOPBITS
    bytesize: int = 8
    timeout_s: float = 1.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "link", Link(self.link))  # config entries store plain text
        if self.link is Link.SERIAL and not self.serial_port:
            raise ValueError("a serial link needs a serial port")
        if self.link is not Link.SERIAL and (not self.host or not 0 < self.port < 65536):
            raise ValueError("a TCP link needs a host and a port in 1..65535")
        if self.baudrate not in SERIAL_BAUDRATES:
            raise ValueError(f"the baud rate must be one of {SERIAL_BAUDRATES}")
        if self.parity not in SERIAL_PARITIES:
            raise ValueError("the parity must be N (none), E (even) or O (odd)")
        if self.stopbits not in SERIAL_STOPBITS or self.bytesize not in (7, 8):
            raise ValueError("a serial frame has 7 or 8 data bits and 1 or 2 stop bits")
        if not 0 < self.timeout_s <= 30:
            raise ValueError("the request timeout must be within 0..30 s")

    @property
    def key(self) -> str:
        """What identifies one physical connection."""
        return self.serial_port if self.link is Link.SERIAL else f"{self.host}:{self.port}"


type ClientFactory = Callable[[TransportSettings], Any]


def default_client(settings: TransportSettings) -> Any:
    """A pymodbus client; its own retries and reconnects are off because we own them."""
    if settings.link is Link.SERIAL:
        return AsyncModbusSerialClient(
            settings.serial_port,
            framer=FramerType.RTU,
            baudrate=settings.baudrate,
            parity=settings.parity,
            stopbits=settings.stopbits,
            bytesize=settings.bytesize,
            timeout=settings.timeout_s,
            retries=0,
            reconnect_delay=0,
        )
    return AsyncModbusTcpClient(
        settings.host,
        port=settings.port,
        framer=FramerType.RTU if settings.link is Link.RTU_OVER_TCP else FramerType.SOCKET,
        timeout=settings.timeout_s,
        retries=0,
        reconnect_delay=0,
    )


class ModbusTransport:
    """A serialised, self-healing Modbus connection."""

    def __init__(
        self,
        settings: TransportSettings,
        client_factory: ClientFactory = default_client,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._client_factory = client_factory
        self._clock = clock
        self._client: Any = None
        self._lock = asyncio.Lock()
        self._backoff_s = 0.0
        self._retry_at = 0.0
        self._timeouts = 0
        self.available = True  # optimistic until the first failure; logged on change
        self.last_error: str | None = None

    @property
    def connected(self) -> bool:
        return self._client is not None and bool(self._client.connected)

    async def read(self, unit_id: int, table: RegisterTable, address: int, count: int) -> list[int]:
        """Read `count` registers or bits; bits come back as 0/1."""
        name = f"read {count} {table.value} at {address} (unit {unit_id})"

        async def call(client: Any) -> Any:
            method = {
                RegisterTable.HOLDING: client.read_holding_registers,
                RegisterTable.INPUT: client.read_input_registers,
                RegisterTable.COIL: client.read_coils,
                RegisterTable.DISCRETE_INPUT: client.read_discrete_inputs,
            }[table]
            return await method(address, count=count, device_id=unit_id)

        response = await self._request(name, call)
        if table in (RegisterTable.COIL, RegisterTable.DISCRETE_INPUT):
            return [int(bit) for bit in response.bits[:count]]
        registers: list[int] = list(response.registers)
        if len(registers) != count:
            raise ModbusDeviceException(3, f"{name}: got {len(registers)} registers")
        return registers

    async def write_registers(self, unit_id: int, address: int, words: list[int]) -> None:
        """Write holding registers in one request (multi-word values must not be split)."""
        name = f"write {len(words)} registers at {address} (unit {unit_id})"

        async def call(client: Any) -> Any:
            return await client.write_registers(address, words, device_id=unit_id)

        await self._request(name, call)

    async def write_coil(self, unit_id: int, address: int, value: bool) -> None:
        name = f"write coil {address} (unit {unit_id})"

        async def call(client: Any) -> Any:
            return await client.write_coil(address, value, device_id=unit_id)

        await self._request(name, call)

    async def close(self) -> None:
        async with self._lock:
            self._drop_client()

    async def _request(self, name: str, call: Callable[[Any], Awaitable[Any]]) -> Any:
        timeout_s = self.settings.timeout_s
        budget = timeout_s * 2 + 0.5  # the request itself plus queueing behind one other
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(budget):
                async with self._lock:
                    client = await self._connected_client()
                    started = loop.time()
                    # pymodbus enforces `timeout_s` itself; this cap only guards against a hang.
                    response = await asyncio.wait_for(call(client), timeout_s + 0.5)
        except (TimeoutError, ModbusIOException, ConnectionException, OSError) as err:
            # pymodbus reports its own timeout as an I/O error: tell them apart by the clock.
            if isinstance(err, TimeoutError) or loop.time() - started >= timeout_s * 0.95:
                self._note_timeout()
                raise ModbusTimeout(
                    f"{self.settings.key}: no answer within {timeout_s:g} s to {name}"
                ) from None
            self._connection_failed(f"{name} failed: {err}")
            raise DeviceUnavailable(f"{self.settings.key}: connection lost during {name}") from err
        self._timeouts = 0
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            if code in _GATEWAY_CODES:
                raise WrongUnitId(
                    f"{self.settings.key}: {name}: the gateway got no answer from this unit id "
                    f"(Modbus exception {code}); check the unit id"
                )
            raise ModbusDeviceException(code, f"{self.settings.key}: {name}")
        return response

    async def _connected_client(self) -> Any:
        if self.connected:
            return self._client
        now = self._clock()
        if now < self._retry_at:
            raise DeviceUnavailable(
                f"{self.settings.key} is unreachable ({self.last_error}); "
                f"next attempt in {self._retry_at - now:.0f} s"
            )
        self._drop_client()
        try:
            self._client = self._client_factory(self.settings)
        except RuntimeError as err:  # pymodbus refuses a serial client without pyserial
            self._connection_failed(str(err))
            raise ModbusConnectionRefused(f"cannot open {self.settings.key}: {err}") from err
        try:
            ok = await asyncio.wait_for(self._client.connect(), self.settings.timeout_s)
        # termios.error: a serial port that refuses the line settings (pyserial lets it out).
        except (TimeoutError, OSError, ConnectionException, termios.error) as err:
            ok = False
            reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        else:
            reason = (
                "the serial port does not exist, is in use or may not be opened"
                if self.settings.link is Link.SERIAL
                else "connection refused or port closed"
            )
        if not ok:
            self._drop_client()
            self._connection_failed(reason)
            raise ModbusConnectionRefused(f"cannot connect to {self.settings.key}: {reason}")
        self._connection_ok()
        return self._client

    def _note_timeout(self) -> None:
        self._timeouts += 1
        if self._timeouts >= _TIMEOUTS_BEFORE_RECONNECT:
            # A half-open TCP connection or a desynchronised RTU stream: start afresh.
            self._connection_failed(f"{self._timeouts} requests in a row timed out")

    def _connection_failed(self, reason: str) -> None:
        self._drop_client()
        self._timeouts = 0
        self.last_error = reason
        self._backoff_s = (
            self.settings.backoff_initial_s
            if self._backoff_s == 0
            else min(self._backoff_s * 2, self.settings.backoff_max_s)
        )
        self._retry_at = self._clock() + self._backoff_s
        if self.available:
            self.available = False
            _LOGGER.warning("Modbus connection to %s lost: %s", self.settings.key, reason)

    def _connection_ok(self) -> None:
        self._backoff_s = 0.0
        self._retry_at = 0.0
        if not self.available:
            _LOGGER.info("Modbus connection to %s is back", self.settings.key)
        self.available = True
        self.last_error = None

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class TransportPool:
    """Shares one transport per connection key; the last release closes it."""

    def __init__(self, client_factory: ClientFactory = default_client) -> None:
        self._client_factory = client_factory
        self._transports: dict[str, tuple[ModbusTransport, int]] = {}

    def acquire(self, settings: TransportSettings) -> ModbusTransport:
        existing = self._transports.get(settings.key)
        if existing is not None:
            transport, users = existing
            if transport.settings != settings:
                raise ValueError(f"{settings.key} is already open with other link settings")
            self._transports[settings.key] = (transport, users + 1)
            return transport
        transport = ModbusTransport(settings, self._client_factory)
        self._transports[settings.key] = (transport, 1)
        return transport

    async def release(self, transport: ModbusTransport) -> None:
        key = transport.settings.key
        existing = self._transports.get(key)
        if existing is None or existing[0] is not transport:
            return
        _, users = existing
        if users > 1:
            self._transports[key] = (transport, users - 1)
            return
        del self._transports[key]
        await transport.close()

    def __len__(self) -> int:
        return len(self._transports)
