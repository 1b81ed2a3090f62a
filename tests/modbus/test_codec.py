"""Register encoding round trips, word orders and SunSpec 'not implemented' values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custom_components.netbewust.modbus.codec import (
    DataType,
    WordOrder,
    decode,
    encode,
    encode_string,
    word_count,
)


@given(st.integers(-(2**31), 2**31 - 1), st.sampled_from(list(WordOrder)))
def test_s32_round_trip(value: int, order: WordOrder) -> None:
    assert decode(encode(value, DataType.S32, order), DataType.S32, order) == value or (
        value == -(2**31)  # the SunSpec "not implemented" marker decodes to None
    )


@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_float32_round_trip(value: float) -> None:
    assert (
        decode(encode(value, DataType.FLOAT32, WordOrder.BIG), DataType.FLOAT32, WordOrder.BIG)
        == value
    )


def test_word_order_and_known_values() -> None:
    assert encode(0x12345678, DataType.U32, WordOrder.BIG) == [0x1234, 0x5678]
    assert encode(0x12345678, DataType.U32, WordOrder.LITTLE) == [0x5678, 0x1234]
    assert decode([0x4150, 0x0000], DataType.FLOAT32, WordOrder.BIG) == 13.0
    assert decode([0xFFFF], DataType.S16, WordOrder.BIG) == -1
    assert decode(encode_string("C2", 5), DataType.STRING, WordOrder.BIG) == "C2"
    assert decode([ord("B")], DataType.STRING, WordOrder.BIG) == "B"  # a letter in the low byte
    assert word_count(DataType.FLOAT64) == 4
    assert word_count(DataType.STRING, 17) == 17


def test_absent_values_decode_to_none() -> None:
    assert decode([0xFFFF], DataType.U16, WordOrder.BIG) is None
    assert decode([0x8000], DataType.SUNSSF, WordOrder.BIG) is None
    assert decode([0x7FC0, 0x0000], DataType.FLOAT32, WordOrder.BIG) is None  # NaN (Alfen)
    assert decode([0, 0], DataType.FLOAT32, WordOrder.BIG) == 0.0


def test_encode_rejects_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="does not fit in a u16"):
        encode(70000, DataType.U16, WordOrder.BIG)
    with pytest.raises(ValueError, match="does not fit in a u16"):
        encode(-1, DataType.U16, WordOrder.BIG)
    with pytest.raises(ValueError, match="cannot write a string"):
        encode(1, DataType.STRING, WordOrder.BIG)


def test_decoding_leaves_the_registers_as_read() -> None:
    # pymodbus reverses a little-endian register list in place; the caller's stays as read.
    words = [0x5678, 0x1234]
    assert decode(words, DataType.U32, WordOrder.LITTLE) == 0x12345678
    assert words == [0x5678, 0x1234]


@given(st.integers(0, 2**64 - 1), st.sampled_from(list(WordOrder)))
def test_u64_round_trip(value: int, order: WordOrder) -> None:
    assert decode(encode(value, DataType.U64, order), DataType.U64, order) == value
