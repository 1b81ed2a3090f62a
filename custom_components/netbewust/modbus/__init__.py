"""Direct device control over Modbus (TCP, RTU over TCP, RTU on RS-485).

The driver modules import nothing from Home Assistant; only `runtime.py` (polling and
writing inside Home Assistant) and `entities.py` (its sensors) are Home Assistant glue.
"""

from __future__ import annotations

from .device import DeviceIdentity, DeviceSnapshot, ModbusDevice
from .errors import (
    DeviceUnavailable,
    ModbusConnectionRefused,
    ModbusDeviceException,
    ModbusError,
    ModbusTimeout,
    ProfileError,
    ProfileMismatch,
    WrongUnitId,
)
from .probe import probe
from .profile import Profile, ProfileKind, load_profile, load_profiles
from .transport import (
    DEFAULT_BAUDRATE,
    DEFAULT_PARITY,
    DEFAULT_STOPBITS,
    SERIAL_BAUDRATES,
    SERIAL_PARITIES,
    SERIAL_STOPBITS,
    Link,
    ModbusTransport,
    TransportPool,
    TransportSettings,
)

__all__ = [
    "DEFAULT_BAUDRATE",
    "DEFAULT_PARITY",
    "DEFAULT_STOPBITS",
    "SERIAL_BAUDRATES",
    "SERIAL_PARITIES",
    "SERIAL_STOPBITS",
    "DeviceIdentity",
    "DeviceSnapshot",
    "DeviceUnavailable",
    "Link",
    "ModbusConnectionRefused",
    "ModbusDevice",
    "ModbusDeviceException",
    "ModbusError",
    "ModbusTimeout",
    "ModbusTransport",
    "Profile",
    "ProfileError",
    "ProfileKind",
    "ProfileMismatch",
    "TransportPool",
    "TransportSettings",
    "WrongUnitId",
    "load_profile",
    "load_profiles",
    "probe",
]
