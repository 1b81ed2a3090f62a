"""A real pymodbus server (TCP on loopback, or RTU on a serial port) whose registers are
plain Python dicts.

Device simulators build on this: they fill registers from the vendor documents (named
at each map) and react to writes. Faults can be injected: a response delay (timeouts),
a forced Modbus exception, or the server going away and coming back on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Callable
from enum import StrEnum

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer


class Table(StrEnum):
    HOLDING = "holding"
    INPUT = "input"
    COIL = "coil"
    DISCRETE = "discrete"


_TABLE_BY_FUNCTION = {
    1: Table.COIL,
    5: Table.COIL,
    15: Table.COIL,
    2: Table.DISCRETE,
    3: Table.HOLDING,
    6: Table.HOLDING,
    16: Table.HOLDING,
    23: Table.HOLDING,
    4: Table.INPUT,
}

type WriteHook = Callable[[int, Table, int, list[int]], ExcCodes | None]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def f32(value: float) -> list[int]:
    """IEEE float32, high word first (Alfen: 'big-endian format')."""
    raw = struct.pack(">f", value)
    return [int.from_bytes(raw[0:2], "big"), int.from_bytes(raw[2:4], "big")]


def f64(value: float) -> list[int]:
    raw = struct.pack(">d", value)
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, 8, 2)]


def to_f32(words: list[int]) -> float:
    value: float = struct.unpack(">f", b"".join(w.to_bytes(2, "big") for w in words))[0]
    return value


def text(value: str, words: int) -> list[int]:
    raw = value.encode("ascii")[: words * 2].ljust(words * 2, b"\x00")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


def s16(value: int) -> int:
    return value & 0xFFFF


def from_s16(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


class RegisterBank(ModbusServerContext):
    """Per unit id, per table: address -> 16-bit word (or 0/1 for bits)."""

    def __init__(self) -> None:  # no super().__init__: we replace the datastore entirely
        self.simdevices = []
        self.words: dict[tuple[int, Table], dict[int, int]] = {}
        self.writable: set[tuple[int, Table, int]] = set()
        self.hooks: list[WriteHook] = []
        self.delay_s = 0.0
        self.forced_exception: ExcCodes | None = None
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._closing = asyncio.Event()

    async def _delay(self) -> None:
        """Answer late; ends early when the server closes so no handler task lingers."""
        if self.delay_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.delay_s)

    def wake(self) -> None:
        self._closing.set()

    def set(
        self, unit: int, table: Table, address: int, values: list[int], *, writable: bool = False
    ) -> None:
        block = self.words.setdefault((unit, table), {})
        for index, value in enumerate(values):
            block[address + index] = value
            if writable:
                self.writable.add((unit, table, address + index))

    def get(self, unit: int, table: Table, address: int, count: int = 1) -> list[int]:
        block = self.words[(unit, table)]
        return [block[address + index] for index in range(count)]

    def device_ids(self) -> list[int]:
        return sorted({unit for unit, _ in self.words})

    def _check_unit(self, unit: int) -> None:
        if unit not in self.device_ids():
            raise NoSuchIdException(f"no unit {unit}")  # type: ignore[no-untyped-call]

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self._delay()
        finally:
            self.in_flight -= 1
        self._check_unit(device_id)
        if self.forced_exception is not None:
            return self.forced_exception
        table = _TABLE_BY_FUNCTION[func_code]
        block = self.words.get((device_id, table), {})
        if any(address + index not in block for index in range(count)):
            return ExcCodes.ILLEGAL_ADDRESS
        values = [block[address + index] for index in range(count)]
        if table in (Table.COIL, Table.DISCRETE):
            return [bool(value) for value in values]
        return values

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        self.requests += 1
        await self._delay()
        self._check_unit(device_id)
        if self.forced_exception is not None:
            return self.forced_exception
        table = _TABLE_BY_FUNCTION[func_code]
        words = [int(value) for value in values]
        if any((device_id, table, address + i) not in self.writable for i in range(len(words))):
            return ExcCodes.ILLEGAL_ADDRESS
        for hook in self.hooks:
            refused = hook(device_id, table, address, words)
            if refused is not None:
                return refused
        self.set(device_id, table, address, words)
        return None


class SimServer:
    """Serves a RegisterBank on 127.0.0.1, or as an RTU device on `serial_port` when given;
    `tick` runs every `tick_s` while serving."""

    def __init__(
        self,
        bank: RegisterBank,
        *,
        tick_s: float = 0.02,
        silent_units: bool = False,
        framer: FramerType = FramerType.SOCKET,
        serial_port: str | None = None,
    ) -> None:
        self.framer = framer
        self.serial_port = serial_port
        self.bank = bank
        self.port = free_port()
        self.tick_s = tick_s
        self.silent_units = silent_units  # True: unknown unit ids get no answer at all
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._tick_fns: list[Callable[[float, float], None]] = []
        self._last_tick = time.monotonic()

    def on_tick(self, fn: Callable[[float, float], None]) -> None:
        """`fn(now, dt)` is called every tick to move the simulated physics."""
        self._tick_fns.append(fn)

    async def start(self) -> None:
        if self.serial_port is not None:
            self._server = ModbusSerialServer(
                self.bank,
                framer=FramerType.RTU,
                port=self.serial_port,
                ignore_missing_devices=self.silent_units,
            )
        else:
            self._server = ModbusTcpServer(
                self.bank,
                framer=self.framer,
                address=("127.0.0.1", self.port),
                ignore_missing_devices=self.silent_units,
            )
        await self._server.serve_forever(background=True)
        if self._ticker is None:
            self._last_tick = time.monotonic()
            self._ticker = asyncio.create_task(self._tick_loop())

    async def stop_serving(self) -> None:
        """The device goes away (connections drop, port closed); physics keep running."""
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    async def close(self) -> None:
        self.bank.wake()
        await asyncio.sleep(0.05)  # let delayed request handlers finish
        await self.stop_serving()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None

    def step(self) -> None:
        now = time.monotonic()
        dt = now - self._last_tick
        self._last_tick = now
        for fn in self._tick_fns:
            fn(now, dt)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self.step()
