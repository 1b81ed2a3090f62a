"""Direct device control over Modbus (TCP, RTU over TCP, RTU on RS-485).

No Home Assistant imports: the integration and the simulator both use this package.
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
