"""Protocol v1: every message round-trips, and nothing hostile gets past decode()."""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.protocol.messages import (
    MAX_MESSAGE_BYTES,
    AssetKind,
    Capabilities,
    Channel,
    EmergencyCommand,
    EmergencyLevel,
    EmergencyReason,
    ErrorCode,
    FlexEnvelope,
    LimitUpdate,
    Message,
    Notice,
    NoticeCode,
    ProtocolError,
    Telemetry,
    Topic,
    decode,
    decode_for_topic,
    encode,
)

from .strategies import bodies, messages

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
# Added to v1 later: a reader accepts them absent, a writer leaves out an unknown one.
WIRE_OPTIONAL = {"min_power_w", "battery_soc_pct"}


def _telemetry_document() -> dict[str, Any]:
    message = Message(
        community="wijk-1",
        household="huis-7",
        sent_at=NOW,
        message_id="m1",
        body=Telemetry(measured_at=NOW, interval_s=10, power_w=(1200.0,), participating=True),
    )
    document: dict[str, Any] = json.loads(encode(message))
    return document


def _capabilities_document() -> dict[str, Any]:
    return {
        "v": 1,
        "type": "capabilities",
        "id": "c1",
        "community": "wijk-1",
        "household": "huis-7",
        "sent_at": "2026-11-22T12:00:00Z",
        "body": {
            "phases": 1,
            "fuse_current_a": 25,
            "ean": "871687123456789011",
            "tariff_class": "1x25A",
            "pv_peak_w": 3600,
            "battery": {"energy_wh": 10_000, "max_charge_w": 3000, "max_discharge_w": 3000},
            "heat_pump": {"flexible_power_w": 1500},
            "envelopes": [
                {
                    "asset": "ev",
                    "energy_wh": 20_000,
                    "max_power_w": 3700,
                    "earliest_start": "2026-11-22T18:00:00Z",
                    "deadline": "2026-11-23T07:00:00Z",
                }
            ],
        },
    }


def _rejects(document: object, code: ErrorCode) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode(json.dumps(document))
    assert caught.value.code is code, caught.value
    return caught.value


@given(messages)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_every_valid_message_round_trips(message: Message) -> None:
    payload = encode(message)
    assert len(payload) <= MAX_MESSAGE_BYTES
    assert decode(payload) == message
    assert decode_for_topic(str(message.topic), payload) == message


def test_capabilities_decode_with_integers_for_numbers() -> None:
    message = decode(json.dumps(_capabilities_document()))
    assert message.type_name == "capabilities"
    assert message.channel is Channel.CAPABILITIES
    body = message.body
    assert body == decode(encode(message)).body
    assert str(message.topic) == "netbewust/v1/wijk-1/huis-7/capabilities"


@pytest.mark.parametrize("version", [0, 2, "1", True, None, 1.5, 1.0])
def test_unknown_versions_are_rejected(version: object) -> None:
    document = _telemetry_document()
    document["v"] = version
    _rejects(document, ErrorCode.UNKNOWN_VERSION)


def test_missing_version_is_unknown() -> None:
    document = _telemetry_document()
    del document["v"]
    _rejects(document, ErrorCode.UNKNOWN_VERSION)


def test_unknown_type_is_rejected() -> None:
    document = _telemetry_document()
    document["type"] = "firmware_update"
    _rejects(document, ErrorCode.UNKNOWN_TYPE)


def test_a_notice_is_on_the_receipts_channel_with_a_known_code_only() -> None:
    notice = Message(
        community="wijk-1",
        household="huis-7",
        sent_at=NOW,
        message_id="n1",
        body=Notice(ref_id="t1", code=NoticeCode.FUTURE_TIMESTAMP, server_time=NOW),
    )
    document = json.loads(encode(notice))
    assert (document["type"], document["body"]) == (
        "notice",
        {"ref_id": "t1", "code": "future_timestamp", "server_time": "2026-11-22T12:00:00Z"},
    )
    assert str(notice.topic) == "netbewust/v1/wijk-1/huis-7/receipts"
    document["body"]["code"] = "too_cold"
    _rejects(document, ErrorCode.OUT_OF_RANGE)
    del document["body"]["server_time"]
    _rejects(document, ErrorCode.MISSING_FIELD)


def test_missing_optional_field_is_still_missing() -> None:
    document = _capabilities_document()
    del document["body"]["ean"]
    error = _rejects(document, ErrorCode.MISSING_FIELD)
    assert "ean" in error.reason


def test_new_facts_round_trip_and_are_left_out_when_unknown() -> None:
    document = _capabilities_document()
    document["body"]["envelopes"][0]["min_power_w"] = 1380
    message = decode(json.dumps(document))
    assert isinstance(message.body, Capabilities)
    assert message.body.envelopes[0].min_power_w == 1380.0
    assert decode(encode(message)) == message
    assert b'"min_power_w":1380.0' in encode(message)

    telemetry = decode(json.dumps(_telemetry_document()))
    assert isinstance(telemetry.body, Telemetry)
    assert telemetry.body.battery_soc_pct is None
    with_soc = replace(telemetry, body=replace(telemetry.body, battery_soc_pct=72.5))
    assert b'"battery_soc_pct":72.5' in encode(with_soc)
    assert decode(encode(with_soc)) == with_soc


def test_a_payload_without_the_new_facts_is_what_it_was() -> None:
    # Written before the new fields existed: decodes, and encodes back byte for byte.
    old = (
        b'{"v":1,"type":"telemetry","id":"m1","community":"wijk-1","household":"huis-7",'
        b'"sent_at":"2026-11-22T12:00:00Z","body":{"measured_at":"2026-11-22T12:00:00Z",'
        b'"interval_s":10,"power_w":[1200.0],"participating":true}}'
    )
    message = decode(old)
    assert isinstance(message.body, Telemetry)
    assert message.body.battery_soc_pct is None
    assert encode(message) == old

    capabilities = decode(json.dumps(_capabilities_document()))
    assert isinstance(capabilities.body, Capabilities)
    assert capabilities.body.envelopes[0].min_power_w is None
    encoded = encode(capabilities)
    assert b"min_power_w" not in encoded
    assert b"battery_soc_pct" not in encode(message)


def test_an_explicit_null_new_fact_reads_as_unknown() -> None:
    document = _telemetry_document()
    document["body"]["battery_soc_pct"] = None
    message = decode(json.dumps(document))
    assert isinstance(message.body, Telemetry)
    assert message.body.battery_soc_pct is None


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (3701, ErrorCode.OUT_OF_RANGE),  # above the envelope's max_power_w
        (-1, ErrorCode.OUT_OF_RANGE),
        ("1380", ErrorCode.WRONG_TYPE),
        (True, ErrorCode.WRONG_TYPE),
    ],
)
def test_a_bad_min_power_is_rejected_with_its_path(value: object, code: ErrorCode) -> None:
    document = _capabilities_document()
    document["body"]["envelopes"][0]["min_power_w"] = value
    error = _rejects(document, code)
    assert "body.envelopes[0]" in error.reason
    assert "min_power_w" in error.reason


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (101, ErrorCode.OUT_OF_RANGE),
        (-0.5, ErrorCode.OUT_OF_RANGE),
        ("80", ErrorCode.WRONG_TYPE),
        (True, ErrorCode.WRONG_TYPE),
        (False, ErrorCode.WRONG_TYPE),
        ([80], ErrorCode.WRONG_TYPE),
    ],
)
def test_a_bad_state_of_charge_is_rejected_with_its_path(value: object, code: ErrorCode) -> None:
    document = _telemetry_document()
    document["body"]["battery_soc_pct"] = value
    error = _rejects(document, code)
    assert "body" in error.reason
    assert "battery_soc_pct" in error.reason


def test_the_new_facts_are_checked_when_built() -> None:
    with pytest.raises(ProtocolError, match="min_power_w"):
        FlexEnvelope(
            asset=AssetKind.EV,
            energy_wh=1000.0,
            max_power_w=3700.0,
            earliest_start=NOW,
            deadline=NOW + timedelta(hours=1),
            min_power_w=4140.0,
        )
    with pytest.raises(ProtocolError, match="battery_soc_pct"):
        Telemetry(
            measured_at=NOW,
            interval_s=10,
            power_w=(0.0,),
            participating=True,
            battery_soc_pct=math.nan,
        )


def test_extra_fields_are_rejected_at_any_depth() -> None:
    document = _capabilities_document()
    document["body"]["envelopes"][0]["priority"] = 1
    error = _rejects(document, ErrorCode.EXTRA_FIELD)
    assert "body.envelopes[0]" in error.reason
    document = _telemetry_document()
    document["debug"] = True
    _rejects(document, ErrorCode.EXTRA_FIELD)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("body", "phases"), "1"),
        (("body", "phases"), 1.0),
        (("body", "fuse_current_a"), True),
        (("body", "fuse_current_a"), "25"),
        (("body", "envelopes"), {}),
        (("body", "battery"), [1, 2, 3]),
        (("id",), 7),
        (("sent_at",), 1_763_812_800),
    ],
)
def test_wrong_types_are_rejected(path: tuple[str, ...], value: object) -> None:
    document = _capabilities_document()
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    _rejects(document, ErrorCode.WRONG_TYPE)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("body", "phases"), 2),
        (("body", "fuse_current_a"), 0),
        (("body", "fuse_current_a"), 1e6),
        (("body", "fuse_current_a"), 1e400),  # json reads this as infinity
        (("body", "pv_peak_w"), -1),
        (("body", "battery", "energy_wh"), -5),
        (("body", "battery", "max_charge_w"), 5e9),
        (("body", "envelopes", 0, "energy_wh"), -1),
        (("body", "envelopes", 0, "energy_wh"), 1e12),
        # 100 kWh cannot flow at 3.7 kW in 13 hours
        (("body", "envelopes", 0, "energy_wh"), 100_000),
        (("body", "envelopes", 0, "deadline"), "2026-11-22T17:00:00Z"),
        (("body", "envelopes", 0, "asset"), "toaster"),
        (("body", "ean"), "871687123456789012"),
        (("body", "ean"), "87168712345678901"),
        (
            ("body", "ean"),
            "".join(chr(0xFF10 + int(d)) for d in "871687123456789011"),
        ),  # full-width
        (("body", "tariff_class"), "x" * 33),
        (("household",), "Huis/7"),
        (("household",), "+"),
        (("community",), "#"),
        (("id",), "a" * 65),
        (("sent_at",), "1970-01-01T00:00:00Z"),
    ],
)
def test_out_of_range_values_are_rejected(path: tuple[str | int, ...], value: object) -> None:
    document: Any = _capabilities_document()
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    _rejects(document, ErrorCode.OUT_OF_RANGE)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_numbers_in_json_are_rejected(literal: str) -> None:
    payload = json.dumps(_telemetry_document()).replace("1200.0", literal)
    with pytest.raises(ProtocolError) as caught:
        decode(payload)
    assert caught.value.code is ErrorCode.OUT_OF_RANGE


@pytest.mark.parametrize(
    "timestamp",
    ["2026-11-22T13:00:00+01:00", "2026-11-22T12:00:00", "2026-11-22T12:00:00-00:30"],
)
def test_timestamps_must_be_utc(timestamp: str) -> None:
    document = _telemetry_document()
    document["body"]["measured_at"] = timestamp
    _rejects(document, ErrorCode.NOT_UTC)


def test_garbage_timestamp_is_a_type_error() -> None:
    document = _telemetry_document()
    document["sent_at"] = "yesterdayZ"
    _rejects(document, ErrorCode.WRONG_TYPE)


def test_telemetry_rejects_absurd_power_and_two_phases() -> None:
    document = _telemetry_document()
    document["body"]["power_w"] = [1e7]
    _rejects(document, ErrorCode.OUT_OF_RANGE)
    document["body"]["power_w"] = [1.0, 2.0]
    _rejects(document, ErrorCode.OUT_OF_RANGE)
    document["body"]["power_w"] = [1.0, 2.0, 3.0, 4.0]
    _rejects(document, ErrorCode.OUT_OF_RANGE)


def test_baseline_must_start_on_a_quarter_hour_and_be_bounded() -> None:
    base = {**_telemetry_document(), "type": "baseline"}
    base["body"] = {"start": "2026-11-23T00:00:00Z", "power_w": [500.0] * 96}
    assert len(decode(json.dumps(base)).body.power_w) == 96  # type: ignore[union-attr]
    base["body"]["start"] = "2026-11-23T00:05:00Z"
    _rejects(base, ErrorCode.OUT_OF_RANGE)
    base["body"] = {"start": "2026-11-23T00:00:00Z", "power_w": []}
    _rejects(base, ErrorCode.OUT_OF_RANGE)
    base["body"]["power_w"] = [0.0] * 201
    _rejects(base, ErrorCode.OUT_OF_RANGE)


def _limit_document(**changes: object) -> dict[str, Any]:
    interval = {
        "start": "2026-11-22T12:00:00Z",
        "end": "2026-11-22T12:15:00Z",
        "max_import_w": 4000,
        "max_export_w": None,
        "max_import_w_per_phase": None,
        "max_export_w_per_phase": None,
    }
    body: dict[str, object] = {
        "source": "community",
        "issued_at": "2026-11-22T12:00:00Z",
        "expires_at": "2026-11-22T12:30:00Z",
        "intervals": [interval],
    }
    return {**_telemetry_document(), "type": "limits", "body": {**body, **changes}}


def test_limits_decode_into_the_engines_external_limit() -> None:
    message = decode(json.dumps(_limit_document()))
    assert isinstance(message.body, LimitUpdate)
    limit = message.body.limit
    assert isinstance(limit, ExternalLimit)
    assert limit.source is LimitSource.COMMUNITY
    assert limit.interval_at(NOW + timedelta(minutes=5)) == LimitInterval(
        start=NOW, end=NOW + timedelta(minutes=15), max_import_w=4000.0
    )


def test_limits_reject_fuse_source_expiry_before_issue_and_overlap() -> None:
    _rejects(_limit_document(source="fuse"), ErrorCode.OUT_OF_RANGE)
    _rejects(_limit_document(expires_at="2026-11-22T11:00:00Z"), ErrorCode.OUT_OF_RANGE)
    document = _limit_document()
    document["body"]["intervals"].append(dict(document["body"]["intervals"][0]))
    error = _rejects(document, ErrorCode.OUT_OF_RANGE)
    assert "overlap" in error.reason
    document = _limit_document()
    document["body"]["intervals"][0]["max_import_w"] = -1
    _rejects(document, ErrorCode.OUT_OF_RANGE)
    document["body"]["intervals"][0]["max_import_w"] = 1
    document["body"]["intervals"][0]["max_import_w_per_phase"] = [1, 2]
    _rejects(document, ErrorCode.OUT_OF_RANGE)


def test_emergency_needs_a_cap_to_curtail_and_converts_to_a_limit() -> None:
    with pytest.raises(ProtocolError) as caught:
        EmergencyCommand(
            level=EmergencyLevel.CURTAIL,
            reason=EmergencyReason.TRANSFORMER_OVERLOAD,
            starts_at=NOW,
            expires_at=NOW + timedelta(minutes=10),
        )
    assert caught.value.code is ErrorCode.OUT_OF_RANGE
    command = EmergencyCommand(
        level=EmergencyLevel.CRITICAL,
        reason=EmergencyReason.DSO_REQUEST,
        starts_at=NOW,
        expires_at=NOW + timedelta(minutes=10),
        max_import_w=2300.0,
    )
    limit = command.as_limit(issued_at=NOW - timedelta(seconds=1))
    assert limit.source is LimitSource.EMERGENCY
    assert limit.expires_at == command.expires_at
    interval = limit.interval_at(NOW + timedelta(minutes=1))
    assert interval is not None
    assert interval.max_import_w == 2300.0
    assert limit.interval_at(NOW + timedelta(minutes=10)) is None


def test_oversized_and_deeply_nested_payloads_are_rejected() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(b" " * (MAX_MESSAGE_BYTES + 1))
    assert caught.value.code is ErrorCode.TOO_LARGE
    with pytest.raises(ProtocolError) as caught:
        decode(b"[" * 60_000 + b"]" * 60_000)
    assert caught.value.code is ErrorCode.TOO_LARGE
    with pytest.raises(ProtocolError) as caught:
        decode(b"[" * 30_000 + b"]" * 30_000)
    assert caught.value.code in (ErrorCode.MALFORMED, ErrorCode.WRONG_TYPE)


@pytest.mark.parametrize("payload", [b"", b"{", b"\xff\xfe", b"null", b"[]", b'"text"', b"42"])
def test_non_objects_are_rejected(payload: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(payload)
    assert caught.value.code in (ErrorCode.MALFORMED, ErrorCode.WRONG_TYPE)


def test_topic_must_match_household_and_channel() -> None:
    payload = json.dumps(_telemetry_document())
    assert decode_for_topic("netbewust/v1/wijk-1/huis-7/telemetry", payload).household == "huis-7"
    with pytest.raises(ProtocolError) as caught:
        decode_for_topic("netbewust/v1/wijk-1/huis-8/telemetry", payload)
    assert caught.value.code is ErrorCode.WRONG_HOUSEHOLD
    with pytest.raises(ProtocolError) as caught:
        decode_for_topic("netbewust/v1/wijk-1/huis-7/baseline", payload)
    assert caught.value.code is ErrorCode.WRONG_CHANNEL
    for topic in (
        "netbewust/v2/wijk-1/huis-7/telemetry",
        "netbewust/v1/wijk-1/huis-7/telemetry/extra",
        "netbewust/v1/wijk-1/huis-7/firmware",
        "netbewust/v1/wijk-1/+/telemetry",
    ):
        with pytest.raises(ProtocolError):
            decode_for_topic(topic, payload)


def test_topic_round_trips() -> None:
    topic = Topic("wijk-1", "huis-7", Channel.LIMITS)
    assert Topic.parse(str(topic)) == topic


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(node: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found: list[tuple[str | int, ...]] = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


@given(messages, st.data())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_messages_decode_or_raise_protocol_error(message: Message, data: Any) -> None:
    document = json.loads(encode(message))
    path = data.draw(st.sampled_from(_paths(document)))
    parent: Any = document
    for key in path[:-1]:
        parent = parent[key]
    action = data.draw(st.sampled_from(["delete", "replace", "add"]))
    if action == "delete" and isinstance(parent, dict) and path[-1] in WIRE_OPTIONAL:
        del parent[path[-1]]
        assert decode(json.dumps(document)) != message  # the same message, without the fact
        return
    if action == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
        expected = {ErrorCode.MISSING_FIELD, ErrorCode.UNKNOWN_VERSION}
    elif action == "add" and isinstance(parent, dict):
        parent["unexpected"] = data.draw(json_values)
        expected = {ErrorCode.EXTRA_FIELD}
    else:
        parent[path[-1]] = data.draw(json_values)
        expected = set(ErrorCode)
    try:
        payload = json.dumps(document, allow_nan=False)  # NaN has its own test
    except ValueError:
        return
    if expected != set(ErrorCode):
        with pytest.raises(ProtocolError) as caught:
            decode(payload)
        assert caught.value.code in expected
        return
    with contextlib.suppress(ProtocolError):  # a replacement may still be valid
        decoded = decode(payload)
        assert decode(encode(decoded)) == decoded


@given(st.binary(max_size=300) | st.text(max_size=300) | json_values.map(json.dumps))
def test_arbitrary_input_only_ever_raises_protocol_error(payload: bytes | str) -> None:
    with contextlib.suppress(ProtocolError):
        decode(payload)


@given(bodies)
def test_bodies_carry_their_channel(body: Any) -> None:
    message = Message(community="c", household="h", body=body, sent_at=NOW)
    assert Topic.parse(str(message.topic)).channel is message.channel


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (
            ("body", "fuse_current_a"),
            1e6,
            "body.fuse_current_a: Input should be less than or equal to 250, got 1000000.0",
        ),
        (("body", "phases"), 2, "body.phases: phases must be 1 or 3, got 2"),
        (("body", "phases"), "1", "body.phases: Input should be a valid integer, got str"),
        (
            ("body", "envelopes", 0, "deadline"),
            "2026-11-23T07:00:00",
            "body.envelopes[0].deadline: must end in Z or +00:00",
        ),
        (
            ("body", "battery", "max_charge_w"),
            -1,
            "body.battery.max_charge_w: Input should be greater than or equal to 0, got -1",
        ),
        (
            ("body", "envelopes", 0, "energy_wh"),
            100_000,
            "body.envelopes[0]: an envelope's energy cannot be delivered",
        ),
        (("household",), "Huis", "message.household: must be 1-63 of a-z, 0-9 and '-' (not first)"),
    ],
)
def test_a_rejection_names_the_field_path_and_the_reason(
    path: tuple[str | int, ...], value: object, reason: str
) -> None:
    document: Any = _capabilities_document()
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ProtocolError) as caught:
        decode(json.dumps(document))
    assert caught.value.reason.startswith(reason)


def test_a_missing_wire_field_is_named_with_its_object() -> None:
    document = _capabilities_document()
    del document["body"]["battery"]["max_charge_w"]
    error = _rejects(document, ErrorCode.MISSING_FIELD)
    assert error.reason == "body.battery.max_charge_w: Field required"
    document = _capabilities_document()
    del document["body"]["envelopes"][0]["asset"], document["body"]["tariff_class"]
    error = _rejects(document, ErrorCode.MISSING_FIELD)
    assert error.reason == "body: lacks tariff_class"  # optional in code, not on the wire
