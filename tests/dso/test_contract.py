"""Contract: every OpenADR payload we accept or emit validates against the shared specs.

See `spec.py`; 3.1.0's enumeration schema for event payload values is checked too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jsonschema
import pytest

from community_server.dso.openadr_events import EanMap, ParsedEvent, parse_event
from community_server.dso.signals import SignalError
from community_server.dso.ven import subscription_document, usage_report_document

from .conftest import NOW, QUARTER
from .spec import REQUEST_SCHEMA, VERSIONS, payload_values, validate
from .vtn import event, program

EANS = EanMap({"871685900000000011": "trafo-12"})


def _accepted_events(version: str) -> list[dict[str, Any]]:
    return [
        event("ev-frame", NOW, [320.0, 300.0], version=version),
        event("ev-report", NOW, [320.0], version=version, report_usage=True),
        event("ev-export", NOW, [250.0], version=version, payload_type="EXPORT_CAPACITY_LIMIT"),
        event("ev-w", NOW, [250_000], version=version, units="W"),
        event("ev-simple", NOW, [3], version=version, payload_type="SIMPLE"),
        event("ev-safe", NOW, [180.0], version=version, name="safe-mode", duration="P9999Y"),
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_event_we_accept_validates(version: str) -> None:
    for document in _accepted_events(version):
        parse_event(document, EANS, now=NOW, emergency_import_w=150_000.0)  # accepted...
        validate(version, "event", document)  # ...and valid by the specification
        for interval in document["intervals"]:
            for payload in interval["payloads"]:
                jsonschema.validate(payload["values"], payload_values()[payload["type"]])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("gac", [True, False])
def test_the_test_vtns_programsvalidate(version: str, gac: bool) -> None:
    validate(version, "program", program(version=version, gac=gac))


def _parsed(version: str) -> ParsedEvent:
    document = event("ev-report", NOW, [320.0], version=version, report_usage=True)
    return parse_event(document, EANS, now=NOW, emergency_import_w=1.0)


@pytest.mark.parametrize("version", VERSIONS)
def test_usage_reports_we_sendvalidate(version: str) -> None:
    report = usage_report_document(
        _parsed(version),
        ven_name="netbewust",
        transformer_id="trafo-12",
        start=NOW,
        end=NOW + QUARTER,
        usage_w=251_500.0,
    )
    validate(version, REQUEST_SCHEMA[version].format("report"), report)


@pytest.mark.parametrize("version", VERSIONS)
def test_subscriptions_we_sendvalidate(version: str) -> None:
    document = subscription_document("netbewust", "prog-1", "https://coop.example/n", "t0ken")
    validate(version, REQUEST_SCHEMA[version].format("subscription"), document)


@pytest.mark.parametrize("version", VERSIONS)
def test_notifications_we_acceptvalidate(version: str) -> None:
    document = event("ev-1", NOW, [300.0], version=version)
    operation = "POST" if version == "3.0.1" else "CREATE"
    notification = {"objectType": "EVENT", "operation": operation, "object": document}
    validate(version, "notification", notification)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "broken",
    [
        {"intervals": None},
        {"programID": None},
        {"intervalPeriod": {"start": NOW.isoformat(), "duration": 15}},
        {"intervals": [{"id": 0, "payloads": "IMPORT_CAPACITY_LIMIT"}]},
    ],
)
def test_what_the_spec_refuses_we_refuse(version: str, broken: dict[str, object]) -> None:
    document = event("ev-bad", NOW, [300.0], version=version) | broken
    with pytest.raises(jsonschema.ValidationError):
        validate(version, "event", document)
    with pytest.raises(SignalError):
        parse_event(document, EANS, now=NOW, emergency_import_w=1.0)


def test_the_validator_is_not_vacuous() -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate("3.1.0", "event", {"programID": "p", "intervals": [], "targets": [{"a": 1}]})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([-1], payload_values()["SIMPLE"])
    assert timedelta(0) < QUARTER
