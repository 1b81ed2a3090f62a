"""Register encoding: Modbus words <-> numbers and strings."""

from __future__ import annotations

import math
import struct
from enum import StrEnum


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


_FORMATS = {
    DataType.U16: ">H",
    DataType.S16: ">h",
    DataType.SUNSSF: ">h",
    DataType.U32: ">I",
    DataType.S32: ">i",
    DataType.U64: ">Q",
    DataType.FLOAT32: ">f",
    DataType.FLOAT64: ">d",
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
    return struct.calcsize(_FORMATS[data_type]) // 2


def _ordered(words: list[int], order: WordOrder) -> list[int]:
    return list(reversed(words)) if order is WordOrder.LITTLE else list(words)


def decode(words: list[int], data_type: DataType, order: WordOrder) -> float | int | str | None:
    """Decode registers; None for NaN and SunSpec "not implemented" values."""
    if data_type is DataType.BOOL:
        return int(bool(words[0]))
    if data_type is DataType.STRING:
        raw = b"".join(word.to_bytes(2, "big") for word in words)
        return raw.replace(b"\x00", b"").decode("ascii", errors="replace").strip()
    fmt = _FORMATS[data_type]
    raw = b"".join(word.to_bytes(2, "big") for word in _ordered(words, order))
    (value,) = struct.unpack(fmt, raw)
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if _NOT_IMPLEMENTED.get(data_type) == value:
        return None
    return int(value)


def encode(value: float | int, data_type: DataType, order: WordOrder) -> list[int]:
    """Encode a number into registers; integers are rounded and range-checked."""
    if data_type in (DataType.STRING, DataType.BOOL, DataType.SUNSSF):
        raise ValueError(f"cannot write a {data_type} register as a number")
    fmt = _FORMATS[data_type]
    number: float | int = value if fmt[-1] in "fd" else round(value)
    try:
        raw = struct.pack(fmt, number)
    except struct.error as err:
        raise ValueError(f"{value} does not fit in a {data_type} register") from err
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    return _ordered(words, order)


def encode_string(text: str, words: int) -> list[int]:
    """Encode ASCII text, zero padded, into `words` registers (simulators use this)."""
    raw = text.encode("ascii")[: words * 2].ljust(words * 2, b"\x00")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
