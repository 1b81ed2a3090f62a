"""SunSpec model discovery: walk the model chain from the 'SunS' marker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ModbusDeviceException, ProfileMismatch
from .profile import SUNSPEC_MARKER, RegisterTable

if TYPE_CHECKING:
    from .transport import ModbusTransport

END_MARKER = 0xFFFF
_MAX_MODELS = 64  # a real chain has a handful; this stops a looping or garbage chain


@dataclass(frozen=True, slots=True)
class ModelLocation:
    model_id: int
    start: int  # address of the model's first data point (after ID and L)
    length: int


@dataclass(frozen=True, slots=True)
class SunSpecMap:
    base_address: int
    models: tuple[ModelLocation, ...]

    def find(self, model_id: int) -> ModelLocation | None:
        """The first instance of a model (devices may repeat some, e.g. model 160)."""
        return next((model for model in self.models if model.model_id == model_id), None)

    @property
    def model_ids(self) -> tuple[int, ...]:
        return tuple(model.model_id for model in self.models)


async def discover(transport: ModbusTransport, unit_id: int, bases: tuple[int, ...]) -> SunSpecMap:
    """Find the 'SunS' marker at one of `bases` and list the models that follow it."""
    for base in bases:
        try:
            marker = await transport.read(unit_id, RegisterTable.HOLDING, base, 2)
        except ModbusDeviceException:
            continue  # an illegal address here just means "not at this base"
        if tuple(marker) == SUNSPEC_MARKER:
            return SunSpecMap(base, await _walk(transport, unit_id, base + 2))
    tried = ", ".join(str(base) for base in bases)
    raise ProfileMismatch(
        f"no SunSpec 'SunS' marker at {tried} (unit {unit_id}); not a SunSpec device"
    )


async def _walk(
    transport: ModbusTransport, unit_id: int, address: int
) -> tuple[ModelLocation, ...]:
    models: list[ModelLocation] = []
    for _ in range(_MAX_MODELS):
        model_id, length = await transport.read(unit_id, RegisterTable.HOLDING, address, 2)
        if model_id in (END_MARKER, 0):
            return tuple(models)
        if length == 0 or address + 2 + length > 0xFFFF:
            raise ProfileMismatch(
                f"SunSpec model {model_id} at {address} has invalid length {length}"
            )
        models.append(ModelLocation(model_id, address + 2, length))
        address += 2 + length
    raise ProfileMismatch(f"SunSpec model chain longer than {_MAX_MODELS} models; giving up")
