"""Protocol v1 golden set: recorded accept/reject results and reason codes must not change.

`golden/*.json` was recorded from the hand-written decoder (commit 927064a), before
any change to protocol v1's validation. Each case is a payload (text, or `payload_hex`
for bytes that are not UTF-8), an optional topic, and what decoding gave: accepted with
its canonical encoding, or rejected with its `ErrorCode`. A case with
`crashed_when_recorded` raised a non-protocol exception then (a bug); it is now
rejected with the code given. `golden/heat_pump.json` was recorded when the optional
heat-pump fields and the `features` message joined v1 (issue 14).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from netbewust_core.protocol.messages import (
    Message,
    ProtocolError,
    decode,
    decode_for_topic,
    encode,
)

GOLDEN = Path(__file__).parent / "golden"


def _cases() -> list[Any]:
    cases = []
    for path in sorted(GOLDEN.glob("*.json")):
        for case in json.loads(path.read_text()):
            cases.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return cases


def test_the_golden_set_covers_every_outcome() -> None:
    codes = {case.values[0]["expected"].get("code", "accepted") for case in _cases()}
    assert codes == {
        "accepted",
        "too_large",
        "malformed",
        "unknown_version",
        "unknown_type",
        "missing_field",
        "extra_field",
        "wrong_type",
        "out_of_range",
        "not_utc",
        "bad_topic",
        "wrong_channel",
        "wrong_household",
    }


def _decode(case: dict[str, Any]) -> Message:
    payload: bytes | str = (
        bytes.fromhex(case["payload_hex"]) if "payload_hex" in case else case["payload"]
    )
    return decode_for_topic(case["topic"], payload) if "topic" in case else decode(payload)


@pytest.mark.parametrize("case", _cases())
def test_golden_case_gives_the_recorded_result(case: dict[str, Any]) -> None:
    expected = case["expected"]
    if expected["accepted"]:
        assert encode(_decode(case)).decode() == expected["encoded"]
        return
    with pytest.raises(ProtocolError) as caught:
        _decode(case)
    assert caught.value.code == expected["code"], caught.value
    assert caught.value.reason, "a rejection names its reason"


def test_text_that_is_not_unicode_is_malformed() -> None:
    # A lone surrogate cannot be UTF-8: once an UnicodeEncodeError escaped decode().
    with pytest.raises(ProtocolError) as caught:
        decode("\udcff")
    assert caught.value.code == "malformed"
