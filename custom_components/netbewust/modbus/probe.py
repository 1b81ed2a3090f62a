"""Probe a device before it is added: connect, check the profile fits, read once.

The config flow calls `probe` and shows the typed error's message to the user.
"""

from __future__ import annotations

from .device import DeviceIdentity, ModbusDevice
from .errors import ModbusDeviceException, ModbusTimeout, ProfileMismatch
from .profile import Profile, ProfileKind
from .transport import ModbusTransport, TransportSettings

_ILLEGAL_ADDRESS = 2


async def probe(settings: TransportSettings, unit_id: int, profile: Profile) -> DeviceIdentity:
    """Identify the device or raise ModbusConnectionRefused, ModbusTimeout, WrongUnitId,
    ProfileMismatch or ModbusDeviceException (all ModbusError) with a clear message."""
    transport = ModbusTransport(settings)
    device = ModbusDevice(transport, unit_id, profile, device_id="probe")
    try:
        snapshot = await device.read()  # at the chosen unit id first: the clearest errors
        identity = await device.identify()
    except ModbusTimeout as err:
        raise ModbusTimeout(
            f"{err}; if the address is right, check the unit id ({unit_id})"
        ) from err
    except ModbusDeviceException as err:
        if err.code == _ILLEGAL_ADDRESS:
            raise ProfileMismatch(
                f"the device at unit {unit_id} lacks registers {profile.name} uses ({err}); "
                "choose another profile"
            ) from err
        raise
    finally:
        await transport.close()
    if profile.kind is ProfileKind.CHARGER and snapshot.state.charger_state is None:
        raise ProfileMismatch(
            f"the charger state reads {snapshot.raw_charger_state!r}, which {profile.name} "
            "does not know; choose another profile"
        )
    return identity
