"""OpenADR 3 events (as JSON documents, 3.0.1 or 3.1.0 shape) to transformer cap signals.

Accepted payloads, one value each:
- `IMPORT_CAPACITY_LIMIT` / `EXPORT_CAPACITY_LIMIT` in KW or W (from the event's
  payload descriptor; the grid-aware-charging (GAC) profile requires KW);
- `ALERT_GRID_EMERGENCY`, or `SIMPLE` level 3, makes the event an emergency; an emergency
  interval without its own import limit gets the configured emergency cap;
- `X_NETBEWUST_NON_MEMBER_LOAD` (KW or W), our extension: the DSO's measurement of the
  transformer's non-member load.
Targets are EANs (3.0.1: `POWER_SERVICE_LOCATION` values; 3.1.0: plain strings) mapped to
transformers. The GAC safe-mode event (named `safe-mode`, any case, `_` or `-`) gives the
fallback cap when the link is lost instead of a cap in force.

Each event is judged on its own: any value that cannot be used (a start in year 9999,
a 400-digit number, a stamp ahead of our clock) is a `SignalError` naming it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..timestamps import CLOCK_TOLERANCE, ahead_by
from .signals import (
    MAX_INTERVALS,
    CapInterval,
    CapMode,
    CapSignal,
    SignalError,
    SignalSource,
    check_ahead,
    parse_timestamp,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

IMPORT_LIMIT = "IMPORT_CAPACITY_LIMIT"
EXPORT_LIMIT = "EXPORT_CAPACITY_LIMIT"
GRID_EMERGENCY = "ALERT_GRID_EMERGENCY"
SIMPLE = "SIMPLE"
NON_MEMBER_LOAD = "X_NETBEWUST_NON_MEMBER_LOAD"
EMERGENCY_SIMPLE_LEVEL = 3
_WATTS_PER_UNIT = {"KW": 1000.0, "W": 1.0}
_SAFE_MODE_NAMES = {"safe-mode", "safe_mode", "safemode"}
_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_INFINITE = "P9999Y"
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class EanMap:
    """Which transformer each EAN (connection point) is behind."""

    transformer_by_ean: Mapping[str, str]
    default_transformer: str | None = None  # for events without targets


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    event_id: str
    program_id: str
    version_tag: str  # changes whenever the VTN modifies the event
    signals: tuple[CapSignal, ...]  # one per transformer
    safe_mode_import_w: Mapping[str, float]  # per transformer, from a safe-mode event
    report_usage: bool  # the event asks for USAGE reports


def parse_duration(text: object) -> timedelta | None:
    """ISO 8601 duration; None for the spec's 'infinite' P9999Y."""
    if text == _INFINITE:
        return None
    match = _DURATION.match(text) if isinstance(text, str) and len(text) < 40 else None
    if match is None or text == "P" or str(text).endswith("T"):
        raise SignalError(f"not a supported ISO 8601 duration: {str(text)[:40]!r}")
    parts = {key: float(value) for key, value in match.groupdict().items() if value}
    try:
        return timedelta(**parts)
    except OverflowError:
        raise SignalError(f"duration out of range: {str(text)[:40]!r}") from None


def _start(text: object, now: datetime) -> datetime:
    if isinstance(text, str) and text.startswith("0001-01-01"):  # the spec's "now"
        return now
    start = parse_timestamp(text, "intervalPeriod.start")
    check_ahead(start, now, "intervalPeriod.start")
    return start


def _period(raw: object, now: datetime) -> tuple[datetime, datetime]:
    if not isinstance(raw, dict):
        raise SignalError("an interval has no intervalPeriod (neither its own nor the event's)")
    start = _start(raw.get("start"), now)
    duration = parse_duration(raw.get("duration", _INFINITE))
    try:
        return start, FAR_FUTURE if duration is None else start + duration
    except OverflowError:
        raise SignalError("intervalPeriod ends after the last date-time") from None


def _targets(event: Mapping[str, Any]) -> list[str]:
    raw = event.get("targets") or []
    if not isinstance(raw, list):
        raise SignalError("targets must be a list")
    values: list[str] = []
    for target in raw:
        if isinstance(target, str):  # 3.1.0
            values.append(target)
        elif isinstance(target, dict) and isinstance(target.get("values"), list):  # 3.0.1
            values.extend(str(value) for value in target["values"])
        else:
            raise SignalError("a target must be a string (3.1) or a {type, values} map (3.0)")
    return values


def _transformers(event: Mapping[str, Any], eans: EanMap) -> list[str]:
    targets = _targets(event)
    if not targets:
        if eans.default_transformer is None:
            raise SignalError("the event has no targets and no default transformer is set")
        return [eans.default_transformer]
    found = sorted({eans.transformer_by_ean[t] for t in targets if t in eans.transformer_by_ean})
    if not found:
        raise SignalError("the event targets no EAN of this community")
    return found


def _units(event: Mapping[str, Any]) -> dict[str, str]:
    descriptors = event.get("payloadDescriptors") or []
    if not isinstance(descriptors, list):
        raise SignalError("payloadDescriptors must be a list")
    return {
        str(d.get("payloadType")): str(d.get("units"))
        for d in descriptors
        if isinstance(d, dict) and d.get("units") is not None
    }


def _single_value(payload: Mapping[str, Any], kind: str) -> object:
    values = payload.get("values")
    if not isinstance(values, list) or len(values) != 1:
        raise SignalError(f"{kind} needs exactly one value")
    return values[0]


def _watts(payload: Mapping[str, Any], kind: str, units: Mapping[str, str]) -> float:
    value = _single_value(payload, kind)
    unit = units.get(kind)
    if unit not in _WATTS_PER_UNIT:
        raise SignalError(f"{kind} must be in KW or W, the event says {str(unit)[:20]!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SignalError(f"{kind} must be a number, got {str(value)[:40]!r}")
    try:
        watts = float(value) * _WATTS_PER_UNIT[unit]
    except OverflowError:  # an integer of hundreds of digits
        raise SignalError(f"{kind} is out of range") from None
    if not math.isfinite(watts):
        raise SignalError(f"{kind} must be a finite number, got {str(value)[:40]}")
    if watts < 0:
        raise SignalError(f"{kind} must not be negative, got {value!r}")
    return watts


@dataclass(frozen=True, slots=True)
class _Caps:
    import_w: float | None = None
    export_w: float | None = None
    non_member_w: float | None = None
    emergency: bool = False


def _interval_caps(interval: Mapping[str, Any], units: Mapping[str, str]) -> _Caps:
    payloads = interval.get("payloads")
    if not isinstance(payloads, list) or not payloads:
        raise SignalError("an interval has no payloads")
    caps: dict[str, Any] = {}
    for payload in payloads:
        if not isinstance(payload, dict):
            raise SignalError("a payload must be an object")
        kind = payload.get("type")
        if kind == IMPORT_LIMIT:
            caps["import_w"] = _watts(payload, IMPORT_LIMIT, units)
        elif kind == EXPORT_LIMIT:
            caps["export_w"] = _watts(payload, EXPORT_LIMIT, units)
        elif kind == NON_MEMBER_LOAD:
            caps["non_member_w"] = _watts(payload, NON_MEMBER_LOAD, units)
        elif kind == GRID_EMERGENCY:
            caps["emergency"] = True
        elif kind == SIMPLE:
            level = _single_value(payload, SIMPLE)
            if not _is_level(level):
                raise SignalError(f"SIMPLE level must be 0 to 3, got {str(level)[:20]!r}")
            caps["emergency"] = caps.get("emergency", False) or level == EMERGENCY_SIMPLE_LEVEL
        # Other payload types (prices, GHG, ...) are not ours to act on.
    return _Caps(**caps)


def _is_level(value: object) -> bool:
    """A SIMPLE level: 0 to 3 (a JSON number, never true or false)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and value in {0, 1, 2, 3}


def _report_usage(event: Mapping[str, Any]) -> bool:
    descriptors = event.get("reportDescriptors") or []
    return isinstance(descriptors, list) and any(
        isinstance(d, dict) and d.get("payloadType") == "USAGE" for d in descriptors
    )


def _required_string(event: Mapping[str, Any], key: str) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= 128:
        raise SignalError(f"the event's {key} must be a string of 1 to 128 characters")
    return value


def _check_stamps(event: Mapping[str, Any], now: datetime) -> None:
    """The VTN's creation and modification times cannot be ahead of our clock: one of the
    two clocks is wrong, and the event's times cannot be trusted."""
    for key in ("createdDateTime", "modificationDateTime"):
        raw = event.get(key)
        if raw is None:
            continue
        stamp = parse_timestamp(raw, key)
        if ahead_by(stamp, now) is not None:
            # No gap in the text: the VEN audits a rejection once per event version and
            # reason, and the gap would change with every poll.
            raise SignalError(
                f"{key} {stamp.isoformat()} is over {CLOCK_TOLERANCE} ahead of the server's "
                "clock: check the clock (the VTN's or ours)"
            )


def is_emergency(event: Mapping[str, Any]) -> bool:
    """Whether any interval carries ALERT_GRID_EMERGENCY or SIMPLE level 3 (no validation)."""
    intervals = event.get("intervals")
    for interval in intervals if isinstance(intervals, list) else []:
        payloads = interval.get("payloads") if isinstance(interval, dict) else None
        for payload in payloads if isinstance(payloads, list) else []:
            if not isinstance(payload, dict):
                continue
            kind, values = payload.get("type"), payload.get("values")
            if kind == GRID_EMERGENCY or (kind == SIMPLE and values == [EMERGENCY_SIMPLE_LEVEL]):
                return True
    return False


def is_safe_mode(event: Mapping[str, Any]) -> bool:
    name = event.get("eventName")
    return isinstance(name, str) and name.strip().lower() in _SAFE_MODE_NAMES


def parse_event(
    event: Mapping[str, Any],
    eans: EanMap,
    *,
    now: datetime,
    emergency_import_w: float,
) -> ParsedEvent:
    """Turn one event into signals; raises SignalError with the reason to log and audit."""
    event_id = _required_string(event, "id")
    program_id = _required_string(event, "programID")
    _check_stamps(event, now)
    version_tag = str(event.get("modificationDateTime", ""))[:40]
    intervals = event.get("intervals")
    if not isinstance(intervals, list) or not intervals:
        raise SignalError("the event has no intervals")
    if len(intervals) > MAX_INTERVALS:
        raise SignalError(f"the event has {len(intervals)} intervals, at most {MAX_INTERVALS}")
    units = _units(event)
    transformers = _transformers(event, eans)
    default_period = event.get("intervalPeriod")
    caps: list[CapInterval] = []
    emergency = False
    offset = timedelta(0)
    for index, interval in enumerate(intervals):
        if not isinstance(interval, dict):
            raise SignalError(f"interval {index} is not an object")
        own_period = interval.get("intervalPeriod")
        start, end = _period(own_period or default_period, now)
        if own_period is None:  # back to back from the event's start
            try:
                start, end = start + offset, end + offset
            except OverflowError:
                raise SignalError(f"interval {index} starts after an infinite one") from None
            offset += end - start
        values = _interval_caps(interval, units)
        emergency = emergency or values.emergency
        import_w = values.import_w
        if values.emergency and import_w is None:
            import_w = emergency_import_w
        if import_w is None and values.export_w is None:
            continue  # e.g. SIMPLE level 0: nothing to cap in this interval
        try:
            caps.append(CapInterval(start, end, import_w, values.export_w, values.non_member_w))
        except SignalError as err:
            raise SignalError(f"interval {index}: {err}") from None
    if not caps:
        raise SignalError("the event carries no capacity limit or emergency")
    if is_safe_mode(event):
        import_values = {c.import_w for c in caps if c.import_w is not None}
        if len(import_values) != 1:
            raise SignalError("a safe-mode event needs one import limit")
        value = import_values.pop()
        return ParsedEvent(
            event_id, program_id, version_tag, (), dict.fromkeys(transformers, value), False
        )
    signals = tuple(
        CapSignal(
            signal_id=f"oadr-{event_id}-{transformer}-{version_tag}"[:200],
            transformer_id=transformer,
            source=SignalSource.OPENADR,
            mode=CapMode.EMERGENCY if emergency else CapMode.FRAME,
            received_at=now,
            intervals=tuple(caps),
            issuer=f"vtn:{program_id}",
            request_id=f"{event_id}/{version_tag}/{transformer}",
        )
        for transformer in transformers
    )
    return ParsedEvent(event_id, program_id, version_tag, signals, {}, _report_usage(event))
