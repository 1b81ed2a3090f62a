"""Typed errors of the Modbus layer; every message says what to check."""

from __future__ import annotations

# Modbus exception codes (Modbus Application Protocol v1.1b3, section 7).
_EXCEPTION_MEANINGS = {
    1: "illegal function: the device does not support this request",
    2: "illegal data address: the register does not exist on this device",
    3: "illegal data value: the device rejected the value",
    4: "device failure while handling the request",
    5: "acknowledged, still processing",
    6: "device busy, try again later",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target did not respond (wrong unit id or device offline)",
}


class ModbusError(Exception):
    """Base class for every error this package raises."""


class ProfileError(ModbusError):
    """A profile file that does not validate; the message names the file and field."""


class ModbusConnectionRefused(ModbusError):
    """Nothing listens at host:port (or the serial port cannot be opened)."""


class ModbusTimeout(ModbusError):
    """The device did not answer within the request timeout."""


class WrongUnitId(ModbusError):
    """The gateway or device has nothing at this unit id."""


class ProfileMismatch(ModbusError):
    """The device answers, but not like the chosen profile."""


class ModbusDeviceException(ModbusError):
    """The device answered with a Modbus exception response."""

    def __init__(self, code: int, request: str) -> None:
        self.code = code
        self.request = request
        meaning = _EXCEPTION_MEANINGS.get(code, "unknown exception code")
        super().__init__(f"{request}: Modbus exception {code} ({meaning})")


class DeviceUnavailable(ModbusError):
    """The connection is down and the back-off has not expired; no request was sent."""
