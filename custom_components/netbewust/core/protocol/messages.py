"""Community membership protocol, version 1: the one schema household and server share.

Every MQTT payload is a JSON envelope (`v`, `type`, `id`, `community`, `household`,
`sent_at`, `body`) on the topic `netbewust/v1/{community}/{household}/{channel}`.
Decoding is strict: every field present (optional ones as `null`), no extra fields, exact
JSON types, finite numbers within physical bounds, UTC timestamps; else `ProtocolError`.
The facts added to v1 later (an envelope's `min_power_w`, telemetry's `battery_soc_pct`)
are optional on the wire: absent means unknown, and a writer leaves out an unknown one,
so a message without them is exactly what it was before they existed.
Limits reuse the engine's `ExternalLimit`, so what arrives is what the guard enforces.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING

from ..limits import ExternalLimit, LimitError, LimitInterval, LimitSource
from ..timegrid import QUARTER, is_quarter_aligned

# The physical ranges are the engine's one set, re-exported for the protocol's users.
from ..units import (
    EARLIEST_TIMESTAMP as EARLIEST_TIMESTAMP,  # noqa: PLC0414
)
from ..units import (
    LATEST_TIMESTAMP as LATEST_TIMESTAMP,  # noqa: PLC0414
)
from ..units import (
    MAX_CONNECTION_POWER_W as MAX_CONNECTION_POWER_W,  # noqa: PLC0414
)
from ..units import (
    MAX_ENERGY_WH as MAX_ENERGY_WH,  # noqa: PLC0414
)
from ..units import (
    MAX_FUSE_CURRENT_A as MAX_FUSE_CURRENT_A,  # noqa: PLC0414
)
from ..units import (
    MAX_PHASE_POWER_W as MAX_PHASE_POWER_W,  # noqa: PLC0414
)
from ..units import (
    MIN_FUSE_CURRENT_A,
    PHASE_COUNTS,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

PROTOCOL_VERSION = 1
TOPIC_PREFIX = f"netbewust/v{PROTOCOL_VERSION}"
MAX_MESSAGE_BYTES = 64 * 1024
TELEMETRY_INTERVAL_S = 10
QUARTER_HOUR = QUARTER
MAX_SERIES_INTERVALS = 200  # two days of quarter hours, with room for a DST change
MAX_ENVELOPES = 32
MAX_TEXT_LENGTH = 200
COMMUNITY_LIMIT_SOURCES = frozenset({LimitSource.COMMUNITY, LimitSource.DSO, LimitSource.EMERGENCY})

# Lower-case slugs: never an MQTT wildcard, separator or ACL pattern character.
_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_MESSAGE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TARIFF_CLASS_PATTERN = re.compile(r"[A-Za-z0-9 ._-]{1,32}")
_EAN_LENGTH = 18


class ErrorCode(StrEnum):
    """Why a message was rejected; also the label of the server's rejection metric."""

    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    UNKNOWN_VERSION = "unknown_version"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_FIELD = "missing_field"
    EXTRA_FIELD = "extra_field"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    NOT_UTC = "not_utc"
    BAD_TOPIC = "bad_topic"
    WRONG_CHANNEL = "wrong_channel"
    WRONG_HOUSEHOLD = "wrong_household"


class ProtocolError(ValueError):
    """A message or topic that does not validate, with a machine code and a clear reason."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class Channel(StrEnum):
    """The last topic level. Households publish the first five, the server the last two."""

    CAPABILITIES = "capabilities"
    TELEMETRY = "telemetry"
    BASELINE = "baseline"
    ACK = "ack"
    STATUS = "status"
    LIMITS = "limits"
    COMMAND = "command"


HOUSEHOLD_CHANNELS = (
    Channel.CAPABILITIES,
    Channel.TELEMETRY,
    Channel.BASELINE,
    Channel.ACK,
    Channel.STATUS,
)
SERVER_CHANNELS = (Channel.LIMITS, Channel.COMMAND)


@dataclass(frozen=True, slots=True)
class Topic:
    community: str
    household: str
    channel: Channel

    def __post_init__(self) -> None:
        check_id(self.community, "community")
        check_id(self.household, "household")

    def __str__(self) -> str:
        return f"{TOPIC_PREFIX}/{self.community}/{self.household}/{self.channel}"

    @classmethod
    def parse(cls, topic: str) -> Topic:
        parts = topic.split("/")
        if len(parts) != 5 or "/".join(parts[:2]) != TOPIC_PREFIX:
            raise ProtocolError(ErrorCode.BAD_TOPIC, f"not a {TOPIC_PREFIX} household topic")
        try:
            channel = Channel(parts[4])
        except ValueError:
            raise ProtocolError(ErrorCode.BAD_TOPIC, "unknown channel in topic") from None
        return cls(parts[2], parts[3], channel)


def check_id(value: str, name: str) -> None:
    if not _ID_PATTERN.fullmatch(value):
        raise ProtocolError(
            ErrorCode.OUT_OF_RANGE, f"{name} id must be 1-63 of a-z, 0-9 and '-' (not first)"
        )


def new_message_id() -> str:
    return uuid.uuid4().hex


def _out_of_range(reason: str) -> ProtocolError:
    return ProtocolError(ErrorCode.OUT_OF_RANGE, reason)


def _check_range(value: float, name: str, low: float, high: float) -> None:
    if not (math.isfinite(value) and low <= value <= high):
        raise _out_of_range(f"{name} must be within [{low}, {high}], got {value!r}")


def _check_utc(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ProtocolError(ErrorCode.NOT_UTC, f"{name} must be UTC, got {value!r}")
    if not EARLIEST_TIMESTAMP <= value < LATEST_TIMESTAMP:
        raise _out_of_range(f"{name} {value.isoformat()} is outside 2020-2100")


def _check_text(value: str | None, name: str) -> None:
    if value is not None and not 0 < len(value) <= MAX_TEXT_LENGTH:
        raise _out_of_range(f"{name} must be 1-{MAX_TEXT_LENGTH} characters")


def _check_ean(ean: str) -> None:
    """An 18-digit GS1 connection EAN with a valid mod-10 check digit."""
    if len(ean) != _EAN_LENGTH or not ean.isascii() or not ean.isdigit():
        raise _out_of_range("ean must be 18 digits")
    payload = [int(digit) for digit in ean[:-1]]
    weighted = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(payload)))
    if (10 - weighted % 10) % 10 != int(ean[-1]):
        raise _out_of_range("ean check digit does not match")


# --- household -> server bodies -------------------------------------------------------


class AssetKind(StrEnum):
    EV = "ev"
    BATTERY = "battery"
    HEAT_PUMP = "heat_pump"
    OTHER = "other"


@dataclass(frozen=True, slots=True, kw_only=True)
class FlexEnvelope:
    """Can shift up to `energy_wh`, at up to `max_power_w`, from `earliest_start` to `deadline`.

    `min_power_w`: the smallest non-zero power the device can draw (an EV charger pauses
    below 6 A on its phases); None when unknown.
    """

    asset: AssetKind
    energy_wh: float
    max_power_w: float
    earliest_start: datetime
    deadline: datetime
    min_power_w: float | None = None

    def __post_init__(self) -> None:
        _check_range(self.energy_wh, "energy_wh", 0.0, MAX_ENERGY_WH)
        _check_range(self.max_power_w, "max_power_w", 0.0, MAX_CONNECTION_POWER_W)
        if self.min_power_w is not None:
            _check_range(self.min_power_w, "min_power_w", 0.0, self.max_power_w)
        _check_utc(self.earliest_start, "earliest_start")
        _check_utc(self.deadline, "deadline")
        if self.deadline <= self.earliest_start:
            raise _out_of_range("an envelope's deadline must follow its earliest start")
        hours = (self.deadline - self.earliest_start).total_seconds() / 3600
        if self.energy_wh > self.max_power_w * hours:
            raise _out_of_range("an envelope's energy cannot be delivered before its deadline")


@dataclass(frozen=True, slots=True, kw_only=True)
class BatteryCapability:
    energy_wh: float
    max_charge_w: float
    max_discharge_w: float

    def __post_init__(self) -> None:
        _check_range(self.energy_wh, "battery energy_wh", 0.0, MAX_ENERGY_WH)
        _check_range(self.max_charge_w, "max_charge_w", 0.0, MAX_CONNECTION_POWER_W)
        _check_range(self.max_discharge_w, "max_discharge_w", 0.0, MAX_CONNECTION_POWER_W)


@dataclass(frozen=True, slots=True, kw_only=True)
class HeatPumpCapability:
    """Electrical power the heat pump can give up on request without losing comfort."""

    flexible_power_w: float

    def __post_init__(self) -> None:
        _check_range(self.flexible_power_w, "flexible_power_w", 0.0, MAX_CONNECTION_POWER_W)


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """Sent on join and on change: the connection and its aggregated flexibility."""

    phases: int
    fuse_current_a: float
    ean: str | None = None
    tariff_class: str | None = None
    pv_peak_w: float | None = None
    battery: BatteryCapability | None = None
    heat_pump: HeatPumpCapability | None = None
    envelopes: tuple[FlexEnvelope, ...] = ()

    def __post_init__(self) -> None:
        if self.phases not in PHASE_COUNTS:
            raise _out_of_range(f"phases must be 1 or 3, got {self.phases}")
        _check_range(self.fuse_current_a, "fuse_current_a", MIN_FUSE_CURRENT_A, MAX_FUSE_CURRENT_A)
        if self.ean is not None:
            _check_ean(self.ean)
        if self.tariff_class is not None and not _TARIFF_CLASS_PATTERN.fullmatch(self.tariff_class):
            raise _out_of_range("tariff_class must be 1-32 letters, digits, ' ._-'")
        if self.pv_peak_w is not None:
            _check_range(self.pv_peak_w, "pv_peak_w", 0.0, MAX_CONNECTION_POWER_W)
        if len(self.envelopes) > MAX_ENVELOPES:
            raise _out_of_range(f"at most {MAX_ENVELOPES} envelopes")


@dataclass(frozen=True, slots=True, kw_only=True)
class Telemetry:
    """Mean grid power per phase (+ import) over the `interval_s` ending at `measured_at`.

    `battery_soc_pct`: the home battery's state of charge at `measured_at` (several
    batteries: their capacity-weighted mean); None when unknown or there is none.
    """

    measured_at: datetime
    interval_s: int
    power_w: tuple[float, ...]
    participating: bool
    battery_soc_pct: float | None = None

    def __post_init__(self) -> None:
        _check_utc(self.measured_at, "measured_at")
        if not 1 <= self.interval_s <= 900:
            raise _out_of_range("interval_s must be 1-900")
        if len(self.power_w) not in (1, 3):
            raise _out_of_range("power_w needs one value per phase (1 or 3)")
        for value in self.power_w:
            _check_range(value, "power_w", -MAX_PHASE_POWER_W, MAX_PHASE_POWER_W)
        if self.battery_soc_pct is not None:
            _check_range(self.battery_soc_pct, "battery_soc_pct", 0.0, 100.0)

    @property
    def total_power_w(self) -> float:
        return sum(self.power_w)


@dataclass(frozen=True, slots=True, kw_only=True)
class BaselineForecast:
    """Expected mean grid power per quarter hour from `start` (typically a day: 92-100)."""

    start: datetime
    power_w: tuple[float, ...]

    def __post_init__(self) -> None:
        _check_utc(self.start, "start")
        if not is_quarter_aligned(self.start):
            raise _out_of_range("a baseline must start on a quarter hour")
        if not 1 <= len(self.power_w) <= MAX_SERIES_INTERVALS:
            raise _out_of_range(f"a baseline has 1-{MAX_SERIES_INTERVALS} quarter hours")
        for value in self.power_w:
            _check_range(value, "power_w", -MAX_CONNECTION_POWER_W, MAX_CONNECTION_POWER_W)

    @property
    def end(self) -> datetime:
        return self.start + QUARTER_HOUR * len(self.power_w)


class AckStatus(StrEnum):
    APPLIED = "applied"
    REJECTED = "rejected"  # did not validate or does not belong to this household
    EXPIRED = "expired"  # arrived after its expiry; nothing was applied


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """The household's answer to one limit or command, by its message id."""

    ref_id: str
    status: AckStatus
    reason: str | None = None

    def __post_init__(self) -> None:
        if not _MESSAGE_ID_PATTERN.fullmatch(self.ref_id):
            raise _out_of_range("ref_id must be a message id")
        _check_text(self.reason, "reason")


@dataclass(frozen=True, slots=True, kw_only=True)
class Presence:
    """Retained; the household's last will sets `online` false when it drops."""

    online: bool


# --- server -> household bodies -------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitUpdate:
    """Replaces every earlier limit for the household; retained on the limits topic."""

    limit: ExternalLimit

    def __post_init__(self) -> None:
        if self.limit.source not in COMMUNITY_LIMIT_SOURCES:
            raise _out_of_range(f"a community limit cannot have source {self.limit.source}")
        if len(self.limit.intervals) > MAX_SERIES_INTERVALS:
            raise _out_of_range(f"at most {MAX_SERIES_INTERVALS} limit intervals")
        _check_utc(self.limit.issued_at, "issued_at")
        _check_utc(self.limit.expires_at, "expires_at")
        for interval in self.limit.intervals:
            _check_utc(interval.start, "start")
            _check_utc(interval.end, "end")
            for total in (interval.max_import_w, interval.max_export_w):
                if total is not None:
                    _check_range(total, "limit", 0.0, MAX_CONNECTION_POWER_W)
            for per_phase in (interval.max_import_w_per_phase, interval.max_export_w_per_phase):
                for value in per_phase or ():
                    _check_range(value, "per-phase limit", 0.0, MAX_PHASE_POWER_W)


class EmergencyLevel(IntEnum):
    ADVISORY = 1  # defer flexible loads where possible
    CURTAIL = 2  # hold the given caps, curtailing flexible devices
    CRITICAL = 3  # every flexible device off, and hold the given caps


class EmergencyReason(StrEnum):
    TRANSFORMER_OVERLOAD = "transformer_overload"
    CONGESTION = "congestion"
    VOLTAGE = "voltage"
    DSO_REQUEST = "dso_request"
    TEST = "test"
    OTHER = "other"


@dataclass(frozen=True, slots=True, kw_only=True)
class EmergencyCommand:
    """Immediate curtailment from `starts_at` until released or `expires_at`."""

    level: EmergencyLevel
    reason: EmergencyReason
    starts_at: datetime
    expires_at: datetime
    max_import_w: float | None = None
    max_export_w: float | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        _check_utc(self.starts_at, "starts_at")
        _check_utc(self.expires_at, "expires_at")
        if self.expires_at <= self.starts_at:
            raise _out_of_range("an emergency must expire after it starts")
        for name in ("max_import_w", "max_export_w"):
            value: float | None = getattr(self, name)
            if value is not None:
                _check_range(value, name, 0.0, MAX_CONNECTION_POWER_W)
        if self.level >= EmergencyLevel.CURTAIL and self.max_import_w is None:
            raise _out_of_range("a curtailing emergency needs max_import_w")
        _check_text(self.detail, "detail")

    def as_limit(self, issued_at: datetime) -> ExternalLimit:
        """The caps as the guard's limit type (an advisory holds no cap)."""
        interval = LimitInterval(
            start=self.starts_at,
            end=self.expires_at,
            max_import_w=self.max_import_w,
            max_export_w=self.max_export_w,
        )
        return ExternalLimit(
            source=LimitSource.EMERGENCY,
            issued_at=min(issued_at, self.starts_at),
            expires_at=self.expires_at,
            intervals=(interval,),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseCommand:
    """Ends the emergency `releases` (a command's message id), or every one when None."""

    releases: str | None = None

    def __post_init__(self) -> None:
        if self.releases is not None and not _MESSAGE_ID_PATTERN.fullmatch(self.releases):
            raise _out_of_range("releases must be a message id")


Body = (
    Capabilities
    | Telemetry
    | BaselineForecast
    | Ack
    | Presence
    | LimitUpdate
    | EmergencyCommand
    | ReleaseCommand
)

_TYPE_NAMES: Mapping[type[Body], str] = {
    Capabilities: "capabilities",
    Telemetry: "telemetry",
    BaselineForecast: "baseline",
    Ack: "ack",
    Presence: "presence",
    LimitUpdate: "limits",
    EmergencyCommand: "emergency",
    ReleaseCommand: "release",
}
_CHANNELS: Mapping[type[Body], Channel] = {
    Capabilities: Channel.CAPABILITIES,
    Telemetry: Channel.TELEMETRY,
    BaselineForecast: Channel.BASELINE,
    Ack: Channel.ACK,
    Presence: Channel.STATUS,
    LimitUpdate: Channel.LIMITS,
    EmergencyCommand: Channel.COMMAND,
    ReleaseCommand: Channel.COMMAND,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One protocol message: who sent it about which household, and its typed body."""

    community: str
    household: str
    body: Body
    sent_at: datetime
    message_id: str = field(default_factory=new_message_id)

    def __post_init__(self) -> None:
        check_id(self.community, "community")
        check_id(self.household, "household")
        _check_utc(self.sent_at, "sent_at")
        if not _MESSAGE_ID_PATTERN.fullmatch(self.message_id):
            raise _out_of_range("id must be 1-64 of A-Z, a-z, 0-9, '_' and '-'")

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES[type(self.body)]

    @property
    def channel(self) -> Channel:
        return _CHANNELS[type(self.body)]

    @property
    def topic(self) -> Topic:
        return Topic(self.community, self.household, self.channel)


# --- encoding -------------------------------------------------------------------------


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# Optional on the wire: added to v1 after it shipped, left out when None (see `_fields`).
_ENVELOPE_OPTIONAL = ("min_power_w",)
_TELEMETRY_OPTIONAL = ("battery_soc_pct",)


def _optional[T](value: T | None, convert: Callable[[T], object]) -> object:
    return None if value is None else convert(value)


def _without_unknown(document: dict[str, object], optional: Sequence[str]) -> dict[str, object]:
    """Leaves out the wire-optional keys that are None, so older payloads stay byte-equal."""
    return {
        key: value for key, value in document.items() if value is not None or key not in optional
    }


def _interval_to_json(interval: LimitInterval) -> dict[str, object]:
    return {
        "start": format_timestamp(interval.start),
        "end": format_timestamp(interval.end),
        "max_import_w": interval.max_import_w,
        "max_export_w": interval.max_export_w,
        "max_import_w_per_phase": _optional(interval.max_import_w_per_phase, list),
        "max_export_w_per_phase": _optional(interval.max_export_w_per_phase, list),
    }


def _envelope_to_json(envelope: FlexEnvelope) -> dict[str, object]:
    return _without_unknown(
        {
            "asset": envelope.asset.value,
            "energy_wh": envelope.energy_wh,
            "max_power_w": envelope.max_power_w,
            "earliest_start": format_timestamp(envelope.earliest_start),
            "deadline": format_timestamp(envelope.deadline),
            "min_power_w": envelope.min_power_w,
        },
        _ENVELOPE_OPTIONAL,
    )


def _body_to_json(body: Body) -> dict[str, object]:
    match body:
        case Capabilities():
            return {
                "phases": body.phases,
                "fuse_current_a": body.fuse_current_a,
                "ean": body.ean,
                "tariff_class": body.tariff_class,
                "pv_peak_w": body.pv_peak_w,
                "battery": _optional(
                    body.battery,
                    lambda b: {
                        "energy_wh": b.energy_wh,
                        "max_charge_w": b.max_charge_w,
                        "max_discharge_w": b.max_discharge_w,
                    },
                ),
                "heat_pump": _optional(
                    body.heat_pump, lambda h: {"flexible_power_w": h.flexible_power_w}
                ),
                "envelopes": [_envelope_to_json(envelope) for envelope in body.envelopes],
            }
        case Telemetry():
            return _without_unknown(
                {
                    "measured_at": format_timestamp(body.measured_at),
                    "interval_s": body.interval_s,
                    "power_w": list(body.power_w),
                    "participating": body.participating,
                    "battery_soc_pct": body.battery_soc_pct,
                },
                _TELEMETRY_OPTIONAL,
            )
        case BaselineForecast():
            return {"start": format_timestamp(body.start), "power_w": list(body.power_w)}
        case Ack():
            return {"ref_id": body.ref_id, "status": body.status.value, "reason": body.reason}
        case Presence():
            return {"online": body.online}
        case LimitUpdate():
            return {
                "source": body.limit.source.value,
                "issued_at": format_timestamp(body.limit.issued_at),
                "expires_at": format_timestamp(body.limit.expires_at),
                "intervals": [_interval_to_json(i) for i in body.limit.intervals],
            }
        case EmergencyCommand():
            return {
                "level": int(body.level),
                "reason": body.reason.value,
                "starts_at": format_timestamp(body.starts_at),
                "expires_at": format_timestamp(body.expires_at),
                "max_import_w": body.max_import_w,
                "max_export_w": body.max_export_w,
                "detail": body.detail,
            }
        case ReleaseCommand():
            return {"releases": body.releases}


def encode(message: Message) -> bytes:
    document = {
        "v": PROTOCOL_VERSION,
        "type": message.type_name,
        "id": message.message_id,
        "community": message.community,
        "household": message.household,
        "sent_at": format_timestamp(message.sent_at),
        "body": _body_to_json(message.body),
    }
    payload = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"{len(payload)} bytes > {MAX_MESSAGE_BYTES}")
    return payload


# --- strict decoding ------------------------------------------------------------------


def _wrong_type(path: str, expected: str, value: object) -> ProtocolError:
    return ProtocolError(
        ErrorCode.WRONG_TYPE, f"{path} must be {expected}, got {type(value).__name__}"
    )


def _fields(
    raw: object, path: str, names: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, object]:
    """The object at `path`, which must have exactly the keys `names`, and may have any of
    `optional` (an absent one reads as None)."""
    if not isinstance(raw, dict):
        raise _wrong_type(path, "an object", raw)
    missing = [name for name in names if name not in raw]
    if missing:
        raise ProtocolError(ErrorCode.MISSING_FIELD, f"{path} lacks {', '.join(missing)}")
    extra = sorted(str(key) for key in raw if key not in names and key not in optional)
    if extra:
        raise ProtocolError(ErrorCode.EXTRA_FIELD, f"{path} has unknown {', '.join(extra)}")
    return dict.fromkeys(optional) | raw


def _number(raw: object, path: str) -> float:
    # bool is an int in Python but never a number on the wire.
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _wrong_type(path, "a number", raw)
    try:
        value = float(raw)
    except OverflowError:  # an integer of hundreds of digits
        raise _out_of_range(f"{path} must be finite") from None
    if not math.isfinite(value):
        raise _out_of_range(f"{path} must be finite")
    return value


def _integer(raw: object, path: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise _wrong_type(path, "an integer", raw)
    return raw


def _string(raw: object, path: str) -> str:
    if not isinstance(raw, str):
        raise _wrong_type(path, "a string", raw)
    return raw


def _boolean(raw: object, path: str) -> bool:
    if not isinstance(raw, bool):
        raise _wrong_type(path, "true or false", raw)
    return raw


def _timestamp(raw: object, path: str) -> datetime:
    text = _string(raw, path)
    if not text.endswith(("Z", "+00:00")):
        raise ProtocolError(ErrorCode.NOT_UTC, f"{path} must end in Z or +00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _wrong_type(path, "an ISO 8601 timestamp", raw) from None
    return moment.astimezone(UTC)


def _array(raw: object, path: str, max_length: int) -> list[object]:
    if not isinstance(raw, list):
        raise _wrong_type(path, "an array", raw)
    if len(raw) > max_length:
        raise _out_of_range(f"{path} has more than {max_length} items")
    return raw


def _numbers(raw: object, path: str, max_length: int) -> tuple[float, ...]:
    items = _array(raw, path, max_length)
    return tuple(_number(item, f"{path}[{index}]") for index, item in enumerate(items))


def _choice[E: StrEnum](raw: object, path: str, enum: type[E]) -> E:
    text = _string(raw, path)
    try:
        return enum(text)
    except ValueError:
        raise _out_of_range(f"{path} must be one of {', '.join(enum)}") from None


def _maybe[T](raw: object, path: str, read: Callable[[object, str], T]) -> T | None:
    return None if raw is None else read(raw, path)


def _built[T](path: str, build: Callable[[], T]) -> T:
    """Construct a body part; its own range checks are reported with their path."""
    try:
        return build()
    except ProtocolError as err:
        if err.reason.startswith(path):
            raise
        raise ProtocolError(err.code, f"{path}: {err.reason}") from None
    except LimitError as err:
        raise _out_of_range(f"{path}: {err}") from None


def _read_envelope(raw: object, path: str) -> FlexEnvelope:
    f = _fields(
        raw,
        path,
        ("asset", "energy_wh", "max_power_w", "earliest_start", "deadline"),
        _ENVELOPE_OPTIONAL,
    )
    return _built(
        path,
        lambda: FlexEnvelope(
            asset=_choice(f["asset"], f"{path}.asset", AssetKind),
            energy_wh=_number(f["energy_wh"], f"{path}.energy_wh"),
            max_power_w=_number(f["max_power_w"], f"{path}.max_power_w"),
            earliest_start=_timestamp(f["earliest_start"], f"{path}.earliest_start"),
            deadline=_timestamp(f["deadline"], f"{path}.deadline"),
            min_power_w=_maybe(f["min_power_w"], f"{path}.min_power_w", _number),
        ),
    )


def _read_battery(raw: object, path: str) -> BatteryCapability:
    f = _fields(raw, path, ("energy_wh", "max_charge_w", "max_discharge_w"))
    return _built(
        path,
        lambda: BatteryCapability(
            energy_wh=_number(f["energy_wh"], f"{path}.energy_wh"),
            max_charge_w=_number(f["max_charge_w"], f"{path}.max_charge_w"),
            max_discharge_w=_number(f["max_discharge_w"], f"{path}.max_discharge_w"),
        ),
    )


def _read_heat_pump(raw: object, path: str) -> HeatPumpCapability:
    f = _fields(raw, path, ("flexible_power_w",))
    return _built(
        path,
        lambda: HeatPumpCapability(
            flexible_power_w=_number(f["flexible_power_w"], f"{path}.flexible_power_w")
        ),
    )


def _read_capabilities(raw: object, path: str) -> Capabilities:
    f = _fields(
        raw,
        path,
        (
            "phases",
            "fuse_current_a",
            "ean",
            "tariff_class",
            "pv_peak_w",
            "battery",
            "heat_pump",
            "envelopes",
        ),
    )
    envelopes = _array(f["envelopes"], f"{path}.envelopes", MAX_ENVELOPES)
    return _built(
        path,
        lambda: Capabilities(
            phases=_integer(f["phases"], f"{path}.phases"),
            fuse_current_a=_number(f["fuse_current_a"], f"{path}.fuse_current_a"),
            ean=_maybe(f["ean"], f"{path}.ean", _string),
            tariff_class=_maybe(f["tariff_class"], f"{path}.tariff_class", _string),
            pv_peak_w=_maybe(f["pv_peak_w"], f"{path}.pv_peak_w", _number),
            battery=_maybe(f["battery"], f"{path}.battery", _read_battery),
            heat_pump=_maybe(f["heat_pump"], f"{path}.heat_pump", _read_heat_pump),
            envelopes=tuple(
                _read_envelope(item, f"{path}.envelopes[{index}]")
                for index, item in enumerate(envelopes)
            ),
        ),
    )


def _read_telemetry(raw: object, path: str) -> Telemetry:
    f = _fields(
        raw,
        path,
        ("measured_at", "interval_s", "power_w", "participating"),
        _TELEMETRY_OPTIONAL,
    )
    return _built(
        path,
        lambda: Telemetry(
            measured_at=_timestamp(f["measured_at"], f"{path}.measured_at"),
            interval_s=_integer(f["interval_s"], f"{path}.interval_s"),
            power_w=_numbers(f["power_w"], f"{path}.power_w", 3),
            participating=_boolean(f["participating"], f"{path}.participating"),
            battery_soc_pct=_maybe(f["battery_soc_pct"], f"{path}.battery_soc_pct", _number),
        ),
    )


def _read_baseline(raw: object, path: str) -> BaselineForecast:
    f = _fields(raw, path, ("start", "power_w"))
    return _built(
        path,
        lambda: BaselineForecast(
            start=_timestamp(f["start"], f"{path}.start"),
            power_w=_numbers(f["power_w"], f"{path}.power_w", MAX_SERIES_INTERVALS),
        ),
    )


def _read_ack(raw: object, path: str) -> Ack:
    f = _fields(raw, path, ("ref_id", "status", "reason"))
    return _built(
        path,
        lambda: Ack(
            ref_id=_string(f["ref_id"], f"{path}.ref_id"),
            status=_choice(f["status"], f"{path}.status", AckStatus),
            reason=_maybe(f["reason"], f"{path}.reason", _string),
        ),
    )


def _read_presence(raw: object, path: str) -> Presence:
    f = _fields(raw, path, ("online",))
    return Presence(online=_boolean(f["online"], f"{path}.online"))


def _read_interval(raw: object, path: str) -> LimitInterval:
    f = _fields(
        raw,
        path,
        (
            "start",
            "end",
            "max_import_w",
            "max_export_w",
            "max_import_w_per_phase",
            "max_export_w_per_phase",
        ),
    )

    def per_phase(key: str) -> tuple[float, ...] | None:
        return _maybe(f[key], f"{path}.{key}", lambda value, p: _numbers(value, p, 3))

    return _built(
        path,
        lambda: LimitInterval(
            start=_timestamp(f["start"], f"{path}.start"),
            end=_timestamp(f["end"], f"{path}.end"),
            max_import_w=_maybe(f["max_import_w"], f"{path}.max_import_w", _number),
            max_export_w=_maybe(f["max_export_w"], f"{path}.max_export_w", _number),
            max_import_w_per_phase=per_phase("max_import_w_per_phase"),
            max_export_w_per_phase=per_phase("max_export_w_per_phase"),
        ),
    )


def _read_limits(raw: object, path: str) -> LimitUpdate:
    f = _fields(raw, path, ("source", "issued_at", "expires_at", "intervals"))
    intervals = _array(f["intervals"], f"{path}.intervals", MAX_SERIES_INTERVALS)
    return _built(
        path,
        lambda: LimitUpdate(
            limit=ExternalLimit(
                source=_choice(f["source"], f"{path}.source", LimitSource),
                issued_at=_timestamp(f["issued_at"], f"{path}.issued_at"),
                expires_at=_timestamp(f["expires_at"], f"{path}.expires_at"),
                intervals=tuple(
                    _read_interval(item, f"{path}.intervals[{index}]")
                    for index, item in enumerate(intervals)
                ),
            )
        ),
    )


def _read_level(raw: object, path: str) -> EmergencyLevel:
    value = _integer(raw, path)
    try:
        return EmergencyLevel(value)
    except ValueError:
        raise _out_of_range(f"{path} must be 1, 2 or 3") from None


def _read_emergency(raw: object, path: str) -> EmergencyCommand:
    f = _fields(
        raw,
        path,
        ("level", "reason", "starts_at", "expires_at", "max_import_w", "max_export_w", "detail"),
    )
    return _built(
        path,
        lambda: EmergencyCommand(
            level=_read_level(f["level"], f"{path}.level"),
            reason=_choice(f["reason"], f"{path}.reason", EmergencyReason),
            starts_at=_timestamp(f["starts_at"], f"{path}.starts_at"),
            expires_at=_timestamp(f["expires_at"], f"{path}.expires_at"),
            max_import_w=_maybe(f["max_import_w"], f"{path}.max_import_w", _number),
            max_export_w=_maybe(f["max_export_w"], f"{path}.max_export_w", _number),
            detail=_maybe(f["detail"], f"{path}.detail", _string),
        ),
    )


def _read_release(raw: object, path: str) -> ReleaseCommand:
    f = _fields(raw, path, ("releases",))
    return _built(
        path, lambda: ReleaseCommand(releases=_maybe(f["releases"], f"{path}.releases", _string))
    )


_READERS: Mapping[str, Callable[[object, str], Body]] = {
    "capabilities": _read_capabilities,
    "telemetry": _read_telemetry,
    "baseline": _read_baseline,
    "ack": _read_ack,
    "presence": _read_presence,
    "limits": _read_limits,
    "emergency": _read_emergency,
    "release": _read_release,
}


def _reject_constant(name: str) -> object:
    raise ProtocolError(ErrorCode.OUT_OF_RANGE, f"{name} is not a number")


def _parse_json(payload: bytes | str) -> object:
    if isinstance(payload, str):
        try:
            payload = payload.encode()
        except UnicodeEncodeError:  # a lone surrogate: no JSON text can hold it
            raise ProtocolError(ErrorCode.MALFORMED, "not UTF-8 text") from None
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"{len(payload)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        return json.loads(payload, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProtocolError(ErrorCode.MALFORMED, f"not JSON: {err}") from None
    except RecursionError:
        raise ProtocolError(ErrorCode.MALFORMED, "nested too deeply") from None


def decode(payload: bytes | str) -> Message:
    """Parse and validate one message; any deviation raises `ProtocolError`."""
    document = _parse_json(payload)
    if not isinstance(document, dict):
        raise _wrong_type("message", "an object", document)
    version = document.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:  # not True, not 1.0
        raise ProtocolError(ErrorCode.UNKNOWN_VERSION, f"version {version!r} is not supported")
    f = _fields(
        document, "message", ("v", "type", "id", "community", "household", "sent_at", "body")
    )
    type_name = _string(f["type"], "type")
    reader = _READERS.get(type_name)
    if reader is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {type_name[:40]!r}")
    body = reader(f["body"], "body")
    return _built(
        "message",
        lambda: Message(
            community=_string(f["community"], "community"),
            household=_string(f["household"], "household"),
            body=body,
            sent_at=_timestamp(f["sent_at"], "sent_at"),
            message_id=_string(f["id"], "id"),
        ),
    )


def decode_for_topic(topic: str, payload: bytes | str) -> Message:
    """Decode a payload and check it belongs on `topic`: same household, right channel."""
    where = Topic.parse(topic)
    message = decode(payload)
    if (message.community, message.household) != (where.community, where.household):
        raise ProtocolError(
            ErrorCode.WRONG_HOUSEHOLD,
            f"message for {message.community}/{message.household} on another household's topic",
        )
    if message.channel != where.channel:
        raise ProtocolError(
            ErrorCode.WRONG_CHANNEL, f"a {message.type_name} message on the {where.channel} topic"
        )
    return message
