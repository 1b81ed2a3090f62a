"""Community membership protocol, version 1: the one schema household and server share.

Every MQTT payload is a JSON envelope (`v`, `type`, `id`, `community`, `household`,
`sent_at`, `body`) on the topic `netbewust/v1/{community}/{household}/{channel}`.
Decoding is strict: every field present (optional ones as `null`), no extra fields, exact
JSON types, finite numbers within physical bounds, UTC timestamps; else `ProtocolError`.
The facts added to v1 later (an envelope's `min_power_w`, telemetry's `battery_soc_pct`,
`comfort_margin_min`, `paused_until` and `outdoor_temperature_c`, the capabilities'
`thermal_heat_pumps`) are
optional on the wire: absent means unknown, and a writer leaves out an unknown one, so a
message without them is exactly what it was before they existed. A reader that predates
one rejects it (`extra_field`), so the heat-pump facts go only to a server whose
`features` message names `heat_pump_flexibility`.
Limits reuse the engine's `ExternalLimit`, so what arrives is what the guard enforces.

The bodies are pydantic dataclasses in strict mode; their bounds are the engine's one
set of ranges (`units`). Building one in code validates it as decoding does, and both
raise `ProtocolError` with the field's path and the reason.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    InstanceOf,
    PlainValidator,
    TypeAdapter,
    ValidationError,
)
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from ..limits import ExternalLimit, LimitError, LimitInterval, LimitSource
from ..timegrid import QUARTER, is_quarter_aligned
from ..units import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    ComfortMarginMin,
    Cop,
    EnergyWh,
    FuseCurrentA,
    HeatFlowKw,
    HeatPowerW,
    HeatPriceEurPerKwh,
    OutdoorC,
    Percent,
    PhaseCount,
    PhasePowerW,
    PowerW,
    SignedPhasePowerW,
    SignedPowerW,
    StartsPerDay,
    StoredHeatKwh,
    TimeConstantH,
)

# The physical ranges are the engine's one set, re-exported for the protocol's users.
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

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

PROTOCOL_VERSION = 1
TOPIC_PREFIX = f"netbewust/v{PROTOCOL_VERSION}"
MAX_MESSAGE_BYTES = 64 * 1024
TELEMETRY_INTERVAL_S = 10
QUARTER_HOUR = QUARTER
MAX_SERIES_INTERVALS = 200  # two days of quarter hours, with room for a DST change
MAX_ENVELOPES = 32
MAX_THERMAL_HEAT_PUMPS = 4
MAX_FEATURES = 32
MAX_RECEIPT_IDS = 100
MAX_TEXT_LENGTH = 200
COMMUNITY_LIMIT_SOURCES = frozenset({LimitSource.COMMUNITY, LimitSource.DSO, LimitSource.EMERGENCY})

# Lower-case slugs: never an MQTT wildcard, separator or ACL pattern character.
_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_EAN_LENGTH = 18
# Strict: exact JSON types (no "25" for 25, no true for 1), no unknown fields, no NaN.
_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


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
    """The last topic level. Households publish the first five, the server the last three."""

    CAPABILITIES = "capabilities"
    TELEMETRY = "telemetry"
    BASELINE = "baseline"
    ACK = "ack"
    STATUS = "status"
    LIMITS = "limits"
    COMMAND = "command"
    # Added to v1 later: a household that does not read it loses nothing. It carries
    # receipts and notices, and a household ignores the types on it it does not know.
    RECEIPTS = "receipts"


HOUSEHOLD_CHANNELS = (
    Channel.CAPABILITIES,
    Channel.TELEMETRY,
    Channel.BASELINE,
    Channel.ACK,
    Channel.STATUS,
)
SERVER_CHANNELS = (Channel.LIMITS, Channel.COMMAND, Channel.RECEIPTS)


@dataclasses.dataclass(frozen=True, slots=True)
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


# --- field types ------------------------------------------------------------------------


def _timestamp(value: object) -> datetime:
    """A UTC moment: on the wire an ISO 8601 text ending in Z or +00:00."""
    if isinstance(value, str):
        if not value.endswith(("Z", "+00:00")):
            raise PydanticCustomError("not_utc", "must end in Z or +00:00")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError("wrong_type", "must be an ISO 8601 timestamp") from None
    elif isinstance(value, datetime):
        moment = value
        if moment.tzinfo is None or moment.utcoffset() != timedelta(0):
            raise PydanticCustomError("not_utc", "must be UTC, got {value}", {"value": repr(value)})
    else:
        raise PydanticCustomError(
            "wrong_type", "must be a timestamp, got {kind}", {"kind": type(value).__name__}
        )
    if not EARLIEST_TIMESTAMP <= moment < LATEST_TIMESTAMP:
        raise PydanticCustomError(
            "out_of_range", "{moment} is outside 2020-2100", {"moment": moment.isoformat()}
        )
    return moment.astimezone(UTC)


def _exactly(kind: type, name: str) -> BeforeValidator:
    """Checks the JSON type before an enum reads the value (an enum alone accepts 2.0)."""

    def check(value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, kind):
            raise PydanticCustomError(
                "wrong_type",
                "must be {name}, got {kind}",
                {"name": name, "kind": type(value).__name__},
            )
        return value

    return BeforeValidator(check)


def _ean(value: str) -> str:
    """An 18-digit GS1 connection EAN with a valid mod-10 check digit."""
    if len(value) != _EAN_LENGTH or not value.isascii() or not value.isdigit():
        raise PydanticCustomError("out_of_range", "ean must be 18 digits")
    payload = [int(digit) for digit in value[:-1]]
    weighted = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(payload)))
    if (10 - weighted % 10) % 10 != int(value[-1]):
        raise PydanticCustomError("out_of_range", "ean check digit does not match")
    return value


# Patterns checked by pydantic itself (fast), each with the rule a rejection states.
_RULES: dict[str, str] = {}


def _matching(pattern: str, rule: str) -> Any:
    anchored = f"^{pattern}$"
    _RULES[anchored] = f"must be {rule}"
    return Field(pattern=anchored)


UtcTimestamp = Annotated[datetime, PlainValidator(_timestamp)]
Slug = Annotated[str, _matching(_ID_PATTERN.pattern, "1-63 of a-z, 0-9 and '-' (not first)")]
MessageId = Annotated[str, _matching(r"[A-Za-z0-9_-]{1,64}", "1-64 of A-Z, a-z, 0-9, '_' and '-'")]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_LENGTH)]
Ean = Annotated[str, AfterValidator(_ean)]
TariffClass = Annotated[str, _matching(r"[A-Za-z0-9 ._-]{1,32}", "1-32 letters, digits, ' ._-'")]
IntervalS = Annotated[int, Field(ge=1, le=900)]


def _protocol_errors[T](cls: type[T]) -> type[T]:
    """Building the class in code raises `ProtocolError`, as decoding does."""
    init = cls.__init__

    def __init__(self: T, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as err:
            raise _rejection(err.errors(), cls.__name__) from None

    cls.__init__ = __init__  # type: ignore[assignment]
    return cls


# --- household -> server bodies -------------------------------------------------------


class AssetKind(StrEnum):
    EV = "ev"
    BATTERY = "battery"
    HEAT_PUMP = "heat_pump"
    OTHER = "other"


@_protocol_errors
@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class FlexEnvelope:
    """Can shift up to `energy_wh`, at up to `max_power_w`, from `earliest_start` to `deadline`.

    `min_power_w`: the smallest non-zero power the device can draw (an EV charger pauses
    below 6 A on its phases); None when unknown.
    """

    asset: Annotated[AssetKind, _exactly(str, "a string")]
    energy_wh: EnergyWh
    max_power_w: PowerW
    earliest_start: UtcTimestamp
    deadline: UtcTimestamp
    min_power_w: PowerW | None = None

    def __post_init__(self) -> None:
        if self.min_power_w is not None and self.min_power_w > self.max_power_w:
            raise _out_of_range(
                f"min_power_w must be within [0.0, {self.max_power_w}], got {self.min_power_w}"
            )
        if self.deadline <= self.earliest_start:
            raise _out_of_range("an envelope's deadline must follow its earliest start")
        hours = (self.deadline - self.earliest_start).total_seconds() / 3600
        if self.energy_wh > self.max_power_w * hours:
            raise _out_of_range("an envelope's energy cannot be delivered before its deadline")


@_protocol_errors
@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class BatteryCapability:
    energy_wh: EnergyWh
    max_charge_w: PowerW
    max_discharge_w: PowerW


@_protocol_errors
@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class HeatPumpCapability:
    """Electrical power the heat pump can give up on request without losing comfort."""

    flexible_power_w: PowerW


_SeriesLength = Field(min_length=1, max_length=MAX_SERIES_INTERVALS)
StoredHeatSeries = Annotated[tuple[StoredHeatKwh, ...], _SeriesLength]


@_protocol_errors
@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class HeatPumpFlexibility:
    """One heat pump's home as a leaky thermal store, per quarter hour from `start`.

    Energy terms only, never temperatures: heat (kWh) is counted above a reference
    temperature the household keeps to itself. Over a quarter hour (h = 0.25 h) the
    stored heat E follows E' = a E + (1 - a) tau (cop P + B - loss), a = exp(-h / tau),
    with P the pump's electric power (kW), B a hybrid's boiler heat (kW, up to
    `hybrid_heat_w`) and `heat_loss_kw` the heat lost to outside at the reference less
    the gains (negative: a net gain). The plan keeps E within `stored_heat_min_kwh` and
    `stored_heat_max_kwh` (the comfort band) in every step; `stored_heat_kwh` is E at
    `start`. `gas_eur_per_kwh_heat` prices the boiler's heat; `max_starts_per_day`
    bounds an on/off pump's starts (None: no bound known).
    """

    start: UtcTimestamp
    stored_heat_kwh: StoredHeatKwh
    stored_heat_min_kwh: StoredHeatSeries
    stored_heat_max_kwh: StoredHeatSeries
    time_constant_h: TimeConstantH
    heat_loss_kw: Annotated[tuple[HeatFlowKw, ...], _SeriesLength]
    cop: Annotated[tuple[Cop, ...], _SeriesLength]
    min_power_w: PowerW
    max_power_w: PowerW
    modulating: bool
    max_starts_per_day: StartsPerDay | None = None
    hybrid_heat_w: HeatPowerW | None = None
    gas_eur_per_kwh_heat: HeatPriceEurPerKwh | None = None

    def __post_init__(self) -> None:
        if not is_quarter_aligned(self.start):
            raise _out_of_range("a heat pump's series must start on a quarter hour")
        steps = len(self.stored_heat_min_kwh)
        if {len(self.stored_heat_max_kwh), len(self.heat_loss_kw), len(self.cop)} != {steps}:
            raise _out_of_range("a heat pump's series must be equally long")
        bounds = zip(self.stored_heat_min_kwh, self.stored_heat_max_kwh, strict=True)
        if any(low > high for low, high in bounds):
            raise _out_of_range("stored_heat_min_kwh must not exceed stored_heat_max_kwh")
        if self.min_power_w > self.max_power_w:
            raise _out_of_range(
                f"min_power_w must be within [0.0, {self.max_power_w}], got {self.min_power_w}"
            )
        if (self.hybrid_heat_w is None) != (self.gas_eur_per_kwh_heat is None):
            raise _out_of_range("a hybrid needs both hybrid_heat_w and gas_eur_per_kwh_heat")

    @property
    def steps(self) -> int:
        return len(self.cop)


@_protocol_errors
@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class Capabilities:
    """Sent on join and on change: the connection and its aggregated flexibility."""

    phases: PhaseCount
    fuse_current_a: FuseCurrentA
    ean: Ean | None = None
    tariff_class: TariffClass | None = None
    pv_peak_w: PowerW | None = None
    battery: BatteryCapability | None = None
    heat_pump: HeatPumpCapability | None = None
    envelopes: Annotated[tuple[FlexEnvelope, ...], Field(max_length=MAX_ENVELOPES)] = ()
    # Optional v1: only to a server that announced `heat_pump_flexibility`.
    thermal_heat_pumps: Annotated[
        tuple[HeatPumpFlexibility, ...], Field(max_length=MAX_THERMAL_HEAT_PUMPS)
    ] = ()


@_protocol_errors
@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class Telemetry:
    """Mean grid power per phase (+ import) over the `interval_s` ending at `measured_at`.

    `battery_soc_pct`: the home battery's state of charge at `measured_at` (several
    batteries: their capacity-weighted mean); None when unknown or there is none.
    `comfort_margin_min`: minutes until the home reaches the bottom of its comfort band
    with its heat pumps off (the nearest of several), capped at a day; `paused_until`:
    the household paused the steering of its heat pumps until then.
    `outdoor_temperature_c`: the outdoor air temperature over the interval (its heat
    pump's outdoor sensor or weather entity; never an indoor one), for the server's load
    forecast. All three None
    when unknown, not paused, or sent to a server that does not read them.
    """

    measured_at: UtcTimestamp
    interval_s: IntervalS
    power_w: Annotated[tuple[SignedPhasePowerW, ...], Field(min_length=1, max_length=3)]
    participating: bool
    battery_soc_pct: Percent | None = None
    comfort_margin_min: ComfortMarginMin | None = None
    paused_until: UtcTimestamp | None = None
    outdoor_temperature_c: OutdoorC | None = None

    def __post_init__(self) -> None:
        if len(self.power_w) == 2:
            raise _out_of_range("power_w needs one value per phase (1 or 3)")

    @property
    def total_power_w(self) -> float:
        return sum(self.power_w)


@_protocol_errors
@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class BaselineForecast:
    """Expected mean grid power per quarter hour from `start` (typically a day: 92-100)."""

    start: UtcTimestamp
    power_w: Annotated[
        tuple[SignedPowerW, ...], Field(min_length=1, max_length=MAX_SERIES_INTERVALS)
    ]

    def __post_init__(self) -> None:
        if not is_quarter_aligned(self.start):
            raise _out_of_range("a baseline must start on a quarter hour")

    @property
    def end(self) -> datetime:
        return self.start + QUARTER_HOUR * len(self.power_w)


class AckStatus(StrEnum):
    APPLIED = "applied"
    REJECTED = "rejected"  # did not validate or does not belong to this household
    EXPIRED = "expired"  # arrived after its expiry; nothing was applied


@_protocol_errors
@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class Ack:
    """The household's answer to one limit or command, by its message id."""

    ref_id: MessageId
    status: Annotated[AckStatus, _exactly(str, "a string")]
    reason: Text | None = None


@_protocol_errors
@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class Presence:
    """Retained; the household's last will sets `online` false when it drops."""

    online: bool


# --- server -> household bodies -------------------------------------------------------

_POWER: TypeAdapter[float | None] = TypeAdapter(PowerW | None, config=_STRICT)
_PHASE_POWER: TypeAdapter[float] = TypeAdapter(PhasePowerW, config=_STRICT)
_TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(UtcTimestamp)


@_protocol_errors
@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class LimitUpdate:
    """Replaces every earlier limit for the household; retained on the limits topic."""

    limit: InstanceOf[ExternalLimit]

    def __post_init__(self) -> None:
        # The engine's type checks itself; the protocol adds its source and ranges.
        if self.limit.source not in COMMUNITY_LIMIT_SOURCES:
            raise _out_of_range(f"a community limit cannot have source {self.limit.source}")
        if len(self.limit.intervals) > MAX_SERIES_INTERVALS:
            raise _out_of_range(f"at most {MAX_SERIES_INTERVALS} limit intervals")
        _checked(_TIMESTAMP, self.limit.issued_at, "issued_at")
        _checked(_TIMESTAMP, self.limit.expires_at, "expires_at")
        for index, interval in enumerate(self.limit.intervals):
            path = f"intervals[{index}]"
            _checked(_TIMESTAMP, interval.start, f"{path}.start")
            _checked(_TIMESTAMP, interval.end, f"{path}.end")
            _checked(_POWER, interval.max_import_w, f"{path}.max_import_w")
            _checked(_POWER, interval.max_export_w, f"{path}.max_export_w")
            for name in ("max_import_w_per_phase", "max_export_w_per_phase"):
                for value in getattr(interval, name) or ():
                    _checked(_PHASE_POWER, value, f"{path}.{name}")


def _checked(adapter: TypeAdapter[Any], value: object, path: str) -> None:
    try:
        adapter.validate_python(value)
    except ValidationError as err:
        raise _rejection(err.errors(), path) from None


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


@_protocol_errors
@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class EmergencyCommand:
    """Immediate curtailment from `starts_at` until released or `expires_at`."""

    level: Annotated[EmergencyLevel, _exactly(int, "an integer")]
    reason: Annotated[EmergencyReason, _exactly(str, "a string")]
    starts_at: UtcTimestamp
    expires_at: UtcTimestamp
    max_import_w: PowerW | None = None
    max_export_w: PowerW | None = None
    detail: Text | None = None

    def __post_init__(self) -> None:
        if self.expires_at <= self.starts_at:
            raise _out_of_range("an emergency must expire after it starts")
        if self.level >= EmergencyLevel.CURTAIL and self.max_import_w is None:
            raise _out_of_range("a curtailing emergency needs max_import_w")

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


@_protocol_errors
@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class ReleaseCommand:
    """Ends the emergency `releases` (a command's message id), or every one when None."""

    releases: MessageId | None = None


@_protocol_errors
@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class Receipt:
    """The server stored these reports of the household (by message id): it may forget them."""

    ids: Annotated[tuple[MessageId, ...], Field(min_length=1, max_length=MAX_RECEIPT_IDS)]


class ServerFeature(StrEnum):
    """What a server reads beyond the v1 it first shipped, named in its `features`."""

    # The capabilities' `thermal_heat_pumps`, telemetry's `comfort_margin_min`,
    # `paused_until` and `outdoor_temperature_c`.
    HEAT_PUMP_FLEXIBILITY = "heat_pump_flexibility"


FeatureName = Annotated[str, _matching(r"[a-z0-9_]{1,40}", "1-40 of a-z, 0-9 and '_'")]


@_protocol_errors
@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class Features:
    """The optional v1 facts this server reads (names a household does not know are
    a later server's: ignored). Sent on the receipts channel after the household's
    capabilities, so an older household never sees it."""

    features: Annotated[tuple[FeatureName, ...], Field(max_length=MAX_FEATURES)]

    def known(self) -> frozenset[ServerFeature]:
        return frozenset(ServerFeature(n) for n in self.features if n in ServerFeature)


class NoticeCode(StrEnum):
    """Why the server refused a household's message, as a notice names it."""

    FUTURE_TIMESTAMP = "future_timestamp"  # stamped ahead of the server's clock


@_protocol_errors
@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class Notice:
    """The server refused the household's message `ref_id` for `code`; `server_time` is
    the server's clock when it did (sent at most once per code every few minutes)."""

    ref_id: MessageId
    code: Annotated[NoticeCode, _exactly(str, "a string")]
    server_time: UtcTimestamp


Body = (
    Capabilities
    | Telemetry
    | BaselineForecast
    | Ack
    | Presence
    | LimitUpdate
    | EmergencyCommand
    | ReleaseCommand
    | Receipt
    | Notice
    | Features
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
    Receipt: "receipt",
    Notice: "notice",
    Features: "features",
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
    Receipt: Channel.RECEIPTS,
    Notice: Channel.RECEIPTS,
    Features: Channel.RECEIPTS,
}


@_protocol_errors
@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class Message:
    """One protocol message: who sent it about which household, and its typed body."""

    community: Slug
    household: Slug
    body: Body
    sent_at: UtcTimestamp
    message_id: MessageId = dataclasses.field(default_factory=new_message_id)

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


# Optional on the wire: added to v1 after it shipped, left out when None (see `_WIRE_OPTIONAL`).
_ENVELOPE_OPTIONAL = ("min_power_w",)
_TELEMETRY_OPTIONAL = (
    "battery_soc_pct",
    "comfort_margin_min",
    "paused_until",
    "outdoor_temperature_c",
)


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


def _flexibility_to_json(pump: HeatPumpFlexibility) -> dict[str, object]:
    return {
        "start": format_timestamp(pump.start),
        "stored_heat_kwh": pump.stored_heat_kwh,
        "stored_heat_min_kwh": list(pump.stored_heat_min_kwh),
        "stored_heat_max_kwh": list(pump.stored_heat_max_kwh),
        "time_constant_h": pump.time_constant_h,
        "heat_loss_kw": list(pump.heat_loss_kw),
        "cop": list(pump.cop),
        "min_power_w": pump.min_power_w,
        "max_power_w": pump.max_power_w,
        "modulating": pump.modulating,
        "max_starts_per_day": pump.max_starts_per_day,
        "hybrid_heat_w": pump.hybrid_heat_w,
        "gas_eur_per_kwh_heat": pump.gas_eur_per_kwh_heat,
    }


def _capabilities_to_json(body: Capabilities) -> dict[str, object]:
    document: dict[str, object] = {
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
        "heat_pump": _optional(body.heat_pump, lambda h: {"flexible_power_w": h.flexible_power_w}),
        "envelopes": [_envelope_to_json(envelope) for envelope in body.envelopes],
    }
    if body.thermal_heat_pumps:  # left out when there are none, as it was before
        document["thermal_heat_pumps"] = [_flexibility_to_json(p) for p in body.thermal_heat_pumps]
    return document


def _body_to_json(body: Body) -> dict[str, object]:
    match body:
        case Capabilities():
            return _capabilities_to_json(body)
        case Telemetry():
            return _without_unknown(
                {
                    "measured_at": format_timestamp(body.measured_at),
                    "interval_s": body.interval_s,
                    "power_w": list(body.power_w),
                    "participating": body.participating,
                    "battery_soc_pct": body.battery_soc_pct,
                    "comfort_margin_min": body.comfort_margin_min,
                    "paused_until": _optional(body.paused_until, format_timestamp),
                    "outdoor_temperature_c": body.outdoor_temperature_c,
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
        case Receipt():
            return {"ids": list(body.ids)}
        case Notice():
            return {
                "ref_id": body.ref_id,
                "code": body.code.value,
                "server_time": format_timestamp(body.server_time),
            }
        case Features():
            return {"features": list(body.features)}


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


@dataclass(frozen=True, kw_only=True, config=_STRICT)
class _IntervalBody:
    """A limit interval on the wire; it becomes the engine's `LimitInterval`."""

    start: UtcTimestamp
    end: UtcTimestamp
    max_import_w: PowerW | None
    max_export_w: PowerW | None
    max_import_w_per_phase: Annotated[tuple[PhasePowerW, ...], Field(max_length=3)] | None
    max_export_w_per_phase: Annotated[tuple[PhasePowerW, ...], Field(max_length=3)] | None

    def __post_init__(self) -> None:
        self.interval()  # the engine's own checks, reported at this interval's path

    def interval(self) -> LimitInterval:
        return LimitInterval(
            start=self.start,
            end=self.end,
            max_import_w=self.max_import_w,
            max_export_w=self.max_export_w,
            max_import_w_per_phase=self.max_import_w_per_phase,
            max_export_w_per_phase=self.max_export_w_per_phase,
        )


@dataclass(frozen=True, kw_only=True, config=_STRICT)
class _LimitsBody:
    """A `LimitUpdate` on the wire: the limit's fields directly in the body."""

    source: Annotated[LimitSource, _exactly(str, "a string")]
    issued_at: UtcTimestamp
    expires_at: UtcTimestamp
    intervals: Annotated[tuple[_IntervalBody, ...], Field(max_length=MAX_SERIES_INTERVALS)]

    def __post_init__(self) -> None:
        self.update()

    def update(self) -> LimitUpdate:
        limit = ExternalLimit(
            source=self.source,
            issued_at=self.issued_at,
            expires_at=self.expires_at,
            intervals=tuple(interval.interval() for interval in self.intervals),
        )
        return LimitUpdate(limit=limit)


class _Envelope[B](TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]

    v: int
    type: str
    id: MessageId
    community: Slug
    household: Slug
    sent_at: UtcTimestamp
    body: B


_BODIES: Mapping[str, type[Any]] = {
    "capabilities": Capabilities,
    "telemetry": Telemetry,
    "baseline": BaselineForecast,
    "ack": Ack,
    "presence": Presence,
    "limits": _LimitsBody,
    "emergency": EmergencyCommand,
    "release": ReleaseCommand,
    "receipt": Receipt,
    "notice": Notice,
    "features": Features,
}
_ENVELOPES: Mapping[str, TypeAdapter[Any]] = {
    name: TypeAdapter(_Envelope[body])  # type: ignore[valid-type]
    for name, body in _BODIES.items()
}
_ANY_ENVELOPE: TypeAdapter[Any] = TypeAdapter(_Envelope[object])

# Which error is reported when a message has several: the most basic one (shape before
# type before value), the shallowest first, as a reader going through it meets them.
_CODES = {
    "missing_field": ErrorCode.MISSING_FIELD,
    "missing": ErrorCode.MISSING_FIELD,
    "missing_keyword_argument": ErrorCode.MISSING_FIELD,
    "extra_forbidden": ErrorCode.EXTRA_FIELD,
    "unexpected_keyword_argument": ErrorCode.EXTRA_FIELD,
    "not_utc": ErrorCode.NOT_UTC,
    "wrong_type": ErrorCode.WRONG_TYPE,
}
_BASIC = (ErrorCode.MISSING_FIELD, ErrorCode.EXTRA_FIELD, ErrorCode.WRONG_TYPE, ErrorCode.NOT_UTC)


def _code(error: Mapping[str, Any]) -> tuple[ErrorCode, str]:
    """The protocol's code and reason for one pydantic error."""
    kind: str = error["type"]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ProtocolError):
        return cause.code, cause.reason
    if isinstance(cause, LimitError | ValueError):
        return ErrorCode.OUT_OF_RANGE, str(cause)
    if kind in _CODES:
        return _CODES[kind], error["msg"]
    given = error.get("input")
    if kind == "string_pattern_mismatch":
        return ErrorCode.OUT_OF_RANGE, _RULES[(error.get("ctx") or {})["pattern"]]
    if kind == "float_type" and type(given) is int:
        return ErrorCode.OUT_OF_RANGE, "must be finite"  # an integer beyond any float
    if kind.endswith("_type") or kind in {"is_instance_of", "dataclass_exact_type"}:
        return ErrorCode.WRONG_TYPE, f"{error['msg']}, got {type(given).__name__}"
    if isinstance(given, int | float) and not isinstance(given, bool):
        return ErrorCode.OUT_OF_RANGE, f"{error['msg']}, got {given!r}"
    return ErrorCode.OUT_OF_RANGE, error["msg"]


def _path(prefix: str, loc: Sequence[int | str]) -> str:
    path = "" if loc[:1] == ("body",) else prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


def _rejection(errors: Sequence[Mapping[str, Any]], prefix: str = "") -> ProtocolError:
    """The one error a message is rejected for, with its path, among all it has."""
    ranked = []
    for index, error in enumerate(errors):
        code, reason = _code(error)
        loc = tuple(error["loc"])
        in_body = loc[:1] == ("body",)
        # The envelope's missing or unknown fields first, its other fields after the body.
        group = 1 if in_body else 0 if code in _BASIC[:2] else 2
        depth = len(loc) + (error["type"] == "missing_field")  # that one names the object
        basic = code in _BASIC
        rank = (group, not basic, depth, _BASIC.index(code) if basic else 4, index)
        ranked.append((rank, code, reason, loc))
    _, code, reason, loc = min(ranked, key=lambda item: item[0])
    path = _path(prefix, loc)
    return ProtocolError(code, f"{path}: {reason}" if path else reason)


# Every field is present on the wire (`null` when unknown) although code may leave the
# optional ones out; pydantic sees only the dataclass defaults, so presence is checked on
# the JSON document: per class, the fields added to v1 later and the nested objects.
_WIRE_OPTIONAL: Mapping[type, frozenset[str]] = {
    FlexEnvelope: frozenset({"min_power_w"}),
    Telemetry: frozenset(_TELEMETRY_OPTIONAL),
    Capabilities: frozenset({"thermal_heat_pumps"}),
}
_NESTED: Mapping[type, Mapping[str, type]] = {
    Capabilities: {"battery": BatteryCapability, "heat_pump": HeatPumpCapability},
    _LimitsBody: {},
}
_NESTED_ARRAYS: Mapping[type, Mapping[str, type]] = {
    Capabilities: {"envelopes": FlexEnvelope, "thermal_heat_pumps": HeatPumpFlexibility},
    _LimitsBody: {"intervals": _IntervalBody},
}


def _absent(cls: type, raw: object, loc: tuple[int | str, ...]) -> list[dict[str, Any]]:
    """Pydantic-style errors for the fields `raw` (a body or part of one) leaves out."""
    if not isinstance(raw, dict):
        return []
    optional = _WIRE_OPTIONAL.get(cls, frozenset())
    names = [n for n in cls.__dataclass_fields__ if n not in raw and n not in optional]  # type: ignore[attr-defined]
    found = (
        [{"type": "missing_field", "loc": loc, "msg": f"lacks {', '.join(names)}"}] if names else []
    )
    for name, part in _NESTED.get(cls, {}).items():
        found += _absent(part, raw.get(name), (*loc, name))
    for name, part in _NESTED_ARRAYS.get(cls, {}).items():
        items = raw.get(name)
        for index, item in enumerate(items if isinstance(items, list) else ()):
            found += _absent(part, item, (*loc, name, index))
    return found


def _reject_constant(name: str) -> object:
    raise ProtocolError(ErrorCode.OUT_OF_RANGE, f"{name} is not a number")


def _parse_json(payload: bytes | str) -> tuple[bytes, object]:
    if isinstance(payload, str):
        try:
            payload = payload.encode()
        except UnicodeEncodeError:  # a lone surrogate: no JSON text can hold it
            raise ProtocolError(ErrorCode.MALFORMED, "not UTF-8 text") from None
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"{len(payload)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        return payload, json.loads(payload, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProtocolError(ErrorCode.MALFORMED, f"not JSON: {err}") from None
    except RecursionError:
        raise ProtocolError(ErrorCode.MALFORMED, "nested too deeply") from None


def _validated(
    adapter: TypeAdapter[Any], payload: bytes, document: dict[str, Any], body: type
) -> Any:
    absent = _absent(body, document.get("body"), ("body",))
    try:
        envelope = adapter.validate_json(payload)
    except ValidationError as err:
        errors = err.errors()
    else:
        if absent:
            raise _rejection(absent, "message")
        return envelope
    if any(error["type"] == "json_invalid" for error in errors):
        # JSON that Python reads and pydantic's parser does not (a byte-order mark,
        # UTF-16): validate the document as Python read it.
        return _validated(adapter, json.dumps(document).encode(), document, body)
    raise _rejection([*errors, *absent], "message")


def decode(payload: bytes | str) -> Message:
    """Parse and validate one message; any deviation raises `ProtocolError`."""
    raw, document = _parse_json(payload)
    if not isinstance(document, dict):
        raise ProtocolError(
            ErrorCode.WRONG_TYPE, f"message must be an object, got {type(document).__name__}"
        )
    version = document.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:  # not True, not 1.0
        raise ProtocolError(ErrorCode.UNKNOWN_VERSION, f"version {version!r} is not supported")
    type_name = document.get("type")
    if not isinstance(type_name, str) or type_name not in _ENVELOPES:
        try:
            _ANY_ENVELOPE.validate_python(document)
        except ValidationError as err:
            rejection = _rejection(err.errors(), "message")
            if rejection.code in (ErrorCode.MISSING_FIELD, ErrorCode.EXTRA_FIELD):
                raise rejection from None
        if not isinstance(type_name, str):
            raise ProtocolError(
                ErrorCode.WRONG_TYPE, f"type must be a string, got {type(type_name).__name__}"
            )
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {type_name[:40]!r}")
    envelope = _validated(_ENVELOPES[type_name], raw, document, _BODIES[type_name])
    body = envelope["body"]
    return _validated_message(
        community=envelope["community"],
        household=envelope["household"],
        body=body.update() if isinstance(body, _LimitsBody) else body,
        sent_at=envelope["sent_at"],
        message_id=envelope["id"],
    )


def _validated_message(**parts: Any) -> Message:
    """A `Message` of parts the envelope's adapter has validated: not validated again,
    which would take as long as decoding the whole message did."""
    message = object.__new__(Message)
    for name, value in parts.items():
        object.__setattr__(message, name, value)
    return message


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
