"""Event parsing edge cases, the cap types' own checks, and the audit store's durability."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

from community_server.dso.audit import DsoStore, IdempotencyConflict
from community_server.dso.openadr_events import EanMap, parse_duration, parse_event
from community_server.dso.signals import (
    CapInterval,
    CapMode,
    CapSignal,
    SignalError,
    SignalSource,
)

from .conftest import NOW, QUARTER
from .vtn import event

if TYPE_CHECKING:
    from pathlib import Path

EANS = EanMap({"871685900000000011": "trafo-12"}, default_transformer="trafo-1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT15M", timedelta(minutes=15)),
        ("PT900S", timedelta(minutes=15)),
        ("PT1H30M", timedelta(minutes=90)),
        ("P1DT1H", timedelta(hours=25)),
        ("P1W", timedelta(days=7)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("P9999Y", None),
    ],
)
def test_durations(text: str, expected: timedelta | None) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["P", "PT", "15M", "P1M", "P1Y", "-PT1H", 900, None, "P" * 50])
def test_bad_durations(text: object) -> None:
    with pytest.raises(SignalError):
        parse_duration(text)


def _parse(document: dict[str, object], now: datetime = NOW) -> list[CapSignal]:
    return list(parse_event(document, EANS, now=now, emergency_import_w=1.0).signals)


def test_separated_intervals_use_their_own_periods() -> None:
    document = event("ev", NOW, [300.0, 200.0])
    document["intervalPeriod"] = None
    document["intervals"][0]["intervalPeriod"] = {"start": NOW.isoformat(), "duration": "PT1H"}
    later = NOW + timedelta(hours=2)
    document["intervals"][1]["intervalPeriod"] = {"start": later.isoformat(), "duration": "PT15M"}
    [signal] = _parse(document)
    assert [(i.start, i.end) for i in signal.intervals] == [
        (NOW, NOW + timedelta(hours=1)),
        (later, later + QUARTER),
    ]


def test_the_specs_now_and_offsets_become_utc() -> None:
    document = event("ev", NOW, [300.0])
    document["intervalPeriod"] = {"start": "0001-01-01T00:00:00Z", "duration": "PT15M"}
    [signal] = _parse(document, now=NOW + timedelta(minutes=3))
    assert signal.start == NOW + timedelta(minutes=3)

    local = NOW.astimezone(timezone(timedelta(hours=1)))
    [signal] = _parse(event("ev", local, [300.0]))
    assert signal.start == NOW
    assert signal.start.tzinfo is UTC


def test_events_without_targets_go_to_the_default_transformer() -> None:
    document = event("ev", NOW, [300.0])
    document["targets"] = None
    assert [s.transformer_id for s in _parse(document)] == ["trafo-1"]
    with pytest.raises(SignalError, match="no default transformer"):
        parse_event(document, EanMap({}), now=NOW, emergency_import_w=1.0)


@pytest.mark.parametrize(
    "broken",
    [
        {
            "intervals": [
                {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [1, 2]}]}
            ]
        },
        {"intervals": [{"id": 0, "payloads": []}]},
        {"intervals": ["x"]},
        {"targets": "871685900000000011"},
        {"targets": [17]},
        {"payloadDescriptors": "KW"},
        {"intervalPeriod": {"start": "2026-11-22T12:00:00", "duration": "PT15M"}},
        {"intervalPeriod": {"start": "soon", "duration": "PT15M"}},
    ],
)
def test_malformed_events(broken: dict[str, object]) -> None:
    with pytest.raises(SignalError):
        _parse(event("ev", NOW, [300.0]) | broken)


def test_nothing_after_an_infinite_interval() -> None:
    with pytest.raises(SignalError, match="infinite"):
        _parse(event("ev", NOW, [300.0, 200.0], duration="P9999Y"))


def test_a_safe_mode_event_needs_one_value() -> None:
    with pytest.raises(SignalError, match="one import limit"):
        _parse(event("ev", NOW, [300.0, 200.0], name="SAFE_MODE"))
    parsed = parse_event(
        event("ev", NOW, [180.0], name="Safe-Mode", duration="P9999Y"),
        EANS,
        now=NOW,
        emergency_import_w=1.0,
    )
    assert parsed.signals == ()
    assert parsed.safe_mode_import_w == {"trafo-12": 180_000.0}


def test_cap_types_check_themselves() -> None:
    with pytest.raises(SignalError, match="UTC"):
        CapInterval(NOW.replace(tzinfo=None), NOW + QUARTER, 1.0)
    with pytest.raises(SignalError, match="finite"):
        CapInterval(NOW, NOW + QUARTER, float("inf"))
    interval = CapInterval(NOW, NOW + QUARTER, 300_000.0, 250_000.0, 40_000.0)
    limit = interval.as_limit_interval()
    assert (limit.max_import_w, limit.max_export_w) == (300_000.0, 250_000.0)
    with pytest.raises(SignalError, match="at least one"):
        _signal("a", ())


def _signal(request_id: str, intervals: tuple[CapInterval, ...]) -> CapSignal:
    return CapSignal(
        signal_id=f"s-{request_id}",
        transformer_id="trafo-12",
        source=SignalSource.HTTP,
        mode=CapMode.FRAME,
        received_at=NOW,
        intervals=intervals,
        issuer="stedin",
        request_id=request_id,
    )


def test_signals_survive_a_reopen_and_migrations_run_once(tmp_path: Path) -> None:
    path = tmp_path / "server.db"
    store = DsoStore.open(path)
    store.save(_signal("r1", (CapInterval(NOW, NOW + QUARTER, 300_000.0, None, 40_000.0),)), "h1")
    store.close()
    reopened = DsoStore.open(path)
    assert reopened.schema_version() == 1
    [signal] = reopened.signals_for("trafo-12", NOW)
    assert signal.intervals[0].non_member_load_w == 40_000.0
    assert signal.received_at == NOW
    same, created = reopened.save(_signal("r1", signal.intervals), "h1")
    assert not created
    assert same.signal_id == "s-r1"
    with pytest.raises(IdempotencyConflict):
        reopened.save(_signal("r1", signal.intervals), "h2")
    assert reopened.signals_for("trafo-12", NOW + QUARTER) == []  # ended
    reopened.close()
