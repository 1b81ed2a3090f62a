"""Register encoding: Modbus words <-> numbers and strings, numbers by pymodbus's converters."""

from __future__ import annotations

import math
import struct
from enum import StrEnum

from pymodbus.client.mixin import ModbusClientMixin


class DataType(StrEnum):
    U16 = "u16"
    S16 = "s16"
    U32 = "u32"
    S32 = "s32"
    U64 = "u64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"  # two ASCII characters per word, high byte first
    SUNSSF = "sunssf"  # SunSpec scale factor: a signed power of ten
    BOOL = "bool"  # a coil or discrete input


class WordOrder(StrEnum):
    BIG = "big"  # most significant word first (Modbus convention, SunSpec, Alfen)
    LITTLE = "little"  # least significant word first (e.g. Phoenix Contact meters)


# pymodbus's converters do the numbers; the register count comes with the type.
_CONVERT = ModbusClientMixin.DATATYPE
_PYMODBUS = {
    DataType.U16: _CONVERT.UINT16,
    DataType.S16: _CONVERT.INT16,
    DataType.SUNSSF: _CONVERT.INT16,
    DataType.U32: _CONVERT.UINT32,
    DataType.S32: _CONVERT.INT32,
    DataType.U64: _CONVERT.UINT64,
    DataType.FLOAT32: _CONVERT.FLOAT32,
    DataType.FLOAT64: _CONVERT.FLOAT64,
}

# SunSpec "not implemented" markers per type; a device reports these for absent points.
_NOT_IMPLEMENTED = {
    DataType.U16: 0xFFFF,
    DataType.S16: -0x8000,
    DataType.SUNSSF: -0x8000,
    DataType.U32: 0xFFFFFFFF,
    DataType.S32: -0x80000000,
}


def word_count(data_type: DataType, string_words: int = 1) -> int:
    """How many 16-bit registers a value of this type occupies."""
    if data_type is DataType.STRING:
        return string_words
    if data_type is DataType.BOOL:
        return 1
    words: int = _PYMODBUS[data_type].value[1]
    return words


def decode(words: list[int], data_type: DataType, order: WordOrder) -> float | int | str | None:
    """Decode registers; None for NaN and SunSpec "not implemented" values."""
    if data_type is DataType.BOOL:
        return int(bool(words[0]))
    if data_type is DataType.STRING:
        # Not pymodbus's: devices pad on either side and send the odd non-ASCII byte.
        raw = b"".join(word.to_bytes(2, "big") for word in words)
        return raw.replace(b"\x00", b"").decode("ascii", errors="replace").strip()
    value = ModbusClientMixin.convert_from_registers(
        list(words),  # pymodbus reverses a little-endian list in place
        _PYMODBUS[data_type],
        word_order=order.value,
    )
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if not isinstance(value, int) or _NOT_IMPLEMENTED.get(data_type) == value:
        return None
    return value


def encode(value: float | int, data_type: DataType, order: WordOrder) -> list[int]:
    """Encode a number into registers; integers are rounded and range-checked."""
    if data_type in (DataType.STRING, DataType.BOOL, DataType.SUNSSF):
        raise ValueError(f"cannot write a {data_type} register as a number")
    target = _PYMODBUS[data_type]
    number: float | int = value if target in (_CONVERT.FLOAT32, _CONVERT.FLOAT64) else round(value)
    try:
        return ModbusClientMixin.convert_to_registers(number, target, word_order=order.value)
    except struct.error as err:
        raise ValueError(f"{value} does not fit in a {data_type} register") from err


def encode_string(text: str, words: int) -> list[int]:
    """Encode ASCII text, zero padded, into `words` registers (simulators use this)."""
    registers = ModbusClientMixin.convert_to_registers(
        text[: words * 2], _CONVERT.STRING, string_encoding="ascii"
    )
    return registers + [0] * (words - len(registers))
