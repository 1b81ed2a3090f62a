"""The household side of membership protocol v1, written once for every host.

A `HouseholdSession` decides everything a member household does with the protocol:
which limits and commands it accepts (order, staleness, expiry), what each emergency
level does (`EMERGENCY_EFFECTS`), how it acknowledges, which caps are in force for the
guard now, and what it reports (capabilities with EV envelopes, telemetry means over a
report period, the day-ahead baseline, kept until the server's receipt says it stored
them and sent again otherwise), and how far its clock is off the server's (`ClockSkew`).
Heat pumps planned on the thermal model are offered as leaky thermal stores in energy
terms (`heat_pump_flexibility`), with each home's comfort margin and a steering pause in
telemetry, but only to a server whose `features` message says it reads them.
Home Assistant and the simulated household only
translate their entities or profiles into these calls and carry the messages it returns
over MQTT. Plain Python: no I/O, and the time is always passed in.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from ..limits import ExternalLimit, LimitInterval, LimitSource
from ..model import NOMINAL_VOLTAGE_V, BatterySpec, ChargerSpec, Connection, HeatPumpControl
from ..planning.problem import HeatPumpControl as PlanControl
from ..timegrid import QUARTER, QUARTERS_PER_DAY, floor_to_quarter_hour
from ..units import MAX_COMFORT_MARGIN_MIN, MAX_OUTDOOR_C, MIN_OUTDOOR_C
from .messages import (
    MAX_SERIES_INTERVALS,
    SERVER_CHANNELS,
    TELEMETRY_INTERVAL_S,
    Ack,
    AckStatus,
    AssetKind,
    BaselineForecast,
    BatteryCapability,
    Body,
    Capabilities,
    Channel,
    EmergencyCommand,
    EmergencyLevel,
    ErrorCode,
    Features,
    FlexEnvelope,
    HeatPumpCapability,
    HeatPumpFlexibility,
    LimitUpdate,
    Message,
    Notice,
    NoticeCode,
    Presence,
    ProtocolError,
    Receipt,
    ReleaseCommand,
    ServerFeature,
    Telemetry,
    Topic,
    decode_for_topic,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from ..model import HeatPumpSpec
    from ..planning.problem import PlanStep, PlanThermalHeatPump

# A server message stamped further ahead than this is refused: the household's clock (or
# the server's) is off, and a limit "issued" in the future would outrank every later one.
CLOCK_TOLERANCE = timedelta(minutes=5)
# The server repeats a notice at most every few minutes while the refusals go on: a skew
# learned from one is forgotten when none came for this long (two of its windows).
SKEW_FORGET_AFTER = timedelta(minutes=10)
# QoS 1 may deliver a message twice; ids seen recently are answered, not applied again.
REMEMBERED_IDS = 512
BASELINE_STEPS = QUARTERS_PER_DAY  # a day ahead
# The baseline is sent daily, and sooner when a quarter hour moved by more than this.
BASELINE_RESEND = timedelta(hours=24)
BASELINE_CHANGE_W = 100.0
# An envelope below this is noise, not worth an offer.
MIN_ENVELOPE_WH = 1.0
MAX_REASON_LENGTH = 200
PAUSED = "participation paused"
# Reports the server has not confirmed are kept, up to this many (a few hours of
# telemetry), and sent again once they are this old, a bounded number per call.
MAX_UNCONFIRMED = 1000
RESEND_AFTER = timedelta(seconds=60)
RESEND_PER_CALL = 20
# The guard slots a membership owns: it sets or clears exactly these.
COMMUNITY_SLOTS = (LimitSource.COMMUNITY, LimitSource.DSO, LimitSource.EMERGENCY)
# A pause without an end is reported as lasting this long from each telemetry on (the
# server then never plans the pump into it); renewed while it lasts.
OPEN_PAUSE_REPORTED = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class EmergencyEffect:
    """What a household does while an emergency of one level is in force."""

    caps: bool  # the command's max_import_w / max_export_w become a guard limit
    switch_off: bool  # every flexible device to its safe state (the guard's emergency input)


# The one table of emergency levels; docs/protocol.md describes it.
EMERGENCY_EFFECTS: Mapping[EmergencyLevel, EmergencyEffect] = {
    # Acknowledged and shown; nothing is capped or switched (the household may defer).
    EmergencyLevel.ADVISORY: EmergencyEffect(caps=False, switch_off=False),
    EmergencyLevel.CURTAIL: EmergencyEffect(caps=True, switch_off=False),
    EmergencyLevel.CRITICAL: EmergencyEffect(caps=True, switch_off=True),
}


class BaselineSource(StrEnum):
    PLAN = "plan"
    BASE_LOAD_PROFILE = "base_load_profile"
    FLAT_ESTIMATE = "flat_estimate"


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one delivery from the broker.

    `ack`: the answer, if the message has an id to answer; `reply` carries it (publish
    that). `invalid`: why the message did not validate or is not this household's (the
    host logs it); None for a valid message, whatever its ack says.
    """

    ack: Ack | None
    reply: Message | None
    invalid: str | None = None
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class InForce:
    """What the guard must hold now: exactly `guard_limits` in the `COMMUNITY_SLOTS`
    (a slot not named is cleared), and every flexible device off when `switch_off`."""

    limit: ExternalLimit | None
    emergency: EmergencyCommand | None
    guard_limits: Mapping[LimitSource, ExternalLimit]
    switch_off: bool
    lapsed: tuple[str, ...] = ()  # what expired at this call: "limit", "emergency"


@dataclass(frozen=True, slots=True)
class ClockSkew:
    """How far this household's clock is off the server's (positive: ahead), learned
    `learned_at` from a server notice (`from_notice`: the server refuses our reports) or
    from a server message stamped ahead of our clock (we refuse the server's)."""

    clock_skew_s: float
    learned_at: datetime
    from_notice: bool

    @property
    def beyond_tolerance(self) -> bool:
        return abs(self.clock_skew_s) > CLOCK_TOLERANCE.total_seconds()


@dataclass(frozen=True, slots=True)
class HomeBattery:
    spec: BatterySpec
    capacity_wh: float | None  # usable energy; None when the household did not say
    soc_pct: float | None  # None when unknown now


@dataclass(frozen=True, slots=True)
class PluggedCar:
    """A plugged-in car: the charger, the energy the driver still wants and by when."""

    charger: ChargerSpec
    energy_wh: float
    departure: datetime


@dataclass(frozen=True, slots=True)
class ThermalPump:
    """A heat pump as the household's planner plans it (`row`, from `start` on), and the
    home's indoor temperature now (None: no usable reading). Stays in the home: only
    energy terms and minutes leave it."""

    start: datetime
    row: PlanThermalHeatPump
    indoor_now_c: float | None = None


@dataclass(frozen=True, slots=True)
class SteeringPause:
    """The household paused the steering of its heat pumps until `until` (None: until it
    ends the pause itself)."""

    until: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HouseholdAssets:
    """The connection and its devices as the engine describes them, at one moment."""

    connection: Connection
    pv_peak_w: float | None = None
    batteries: tuple[HomeBattery, ...] = ()
    heat_pumps: tuple[HeatPumpSpec, ...] = ()
    thermal_pumps: tuple[ThermalPump, ...] = ()
    pause: SteeringPause | None = None
    cars: tuple[PluggedCar, ...] = ()
    ean: str | None = None
    tariff_class: str | None = None
    # The outdoor air temperature now (a heat pump's outdoor sensor or a weather entity),
    # reported with the heat-pump facts for the server's load forecast; None: unknown.
    outdoor_c: float | None = None

    def paused_until(self, now: datetime) -> datetime | None:
        """When the pause ends as reported (an open one: `OPEN_PAUSE_REPORTED` ahead);
        None when not paused."""
        if self.pause is None:
            return None
        until = self.pause.until or now + OPEN_PAUSE_REPORTED
        return until.replace(microsecond=0) if until > now else None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """Messages to publish, and why others could not be built (for the host's log)."""

    messages: tuple[Message, ...] = ()
    problems: tuple[str, ...] = ()


# --- reports from engine types ---------------------------------------------------------


def ev_envelope(car: PluggedCar, now: datetime) -> FlexEnvelope | None:
    """The car as the community may plan it from this quarter hour; None if nothing fits."""
    spec = car.charger
    start = floor_to_quarter_hour(now)
    deadline = car.departure.replace(microsecond=0)
    if deadline <= start:
        return None
    max_power_w = spec.max_current_a * NOMINAL_VOLTAGE_V * len(spec.phases)
    # Below its minimum current the charger pauses; on one phase if it can switch.
    min_phases = 1 if spec.can_switch_phases else len(spec.phases)
    min_power_w = spec.min_current_a * NOMINAL_VOLTAGE_V * min_phases
    hours = (deadline - start).total_seconds() / 3600
    # What cannot be delivered by departure is not offered.
    energy_wh = min(round(car.energy_wh, 1), max_power_w * hours)
    if energy_wh < MIN_ENVELOPE_WH:
        return None
    return FlexEnvelope(
        asset=AssetKind.EV,
        energy_wh=energy_wh,
        max_power_w=max_power_w,
        earliest_start=start,
        deadline=deadline,
        min_power_w=min(min_power_w, max_power_w),
    )


def battery_soc_pct(batteries: Sequence[HomeBattery]) -> float | None:
    """The batteries' charge weighted by capacity.

    None without a battery, or when one's charge or every capacity is unknown: a mean
    over part of them would misstate the whole.
    """
    total_wh = sum(battery.capacity_wh or 0.0 for battery in batteries)
    known = [b for b in batteries if b.soc_pct is not None]
    if not batteries or len(known) < len(batteries) or total_wh <= 0:
        return None
    return sum((b.soc_pct or 0.0) * (b.capacity_wh or 0.0) for b in known) / total_wh


def _flexible_power_w(spec: HeatPumpSpec) -> float:
    # A power limit keeps the compressor at `limited_power_w`; SG-ready blocks it fully.
    if spec.control is HeatPumpControl.POWER_LIMIT:
        return max(0.0, spec.rated_power_w - spec.limited_power_w)
    return spec.rated_power_w


def _kwh(value: float) -> float:
    return round(value, 3)


def heat_pump_flexibility(pump: ThermalPump) -> HeatPumpFlexibility:
    """The pump's home as a leaky thermal store in energy terms (see
    `HeatPumpFlexibility`): heat above the lowest bottom of its comfort band over the
    horizon, so the band's temperatures themselves never leave the home.

    The store is the engine's 1R1C model rewritten: with E = C (T - T_ref) the exact
    step T' = a T + (1 - a)(T_out + R (Q + G)) becomes E' = a E + (1 - a) RC (Q - loss),
    loss = (T_ref - T_out) / R - G. Raises ProtocolError on values out of range."""
    row = pump.row
    model = row.thermal
    capacity = model.capacitance_kwh_per_k
    resistance = model.resistance_k_per_kw
    # At most the series a message carries (a plan over two days with a DST change fits).
    steps = slice(MAX_SERIES_INTERVALS)
    lower_c, upper_c = row.comfort.lower_c[steps], row.comfort.upper_c[steps]
    outdoor_c = row.outdoor_temperature_c[steps]
    reference_c = min(lower_c)
    boiler = row.boiler
    return HeatPumpFlexibility(
        start=pump.start,
        stored_heat_kwh=_kwh(capacity * (row.indoor_temperature_c - reference_c)),
        stored_heat_min_kwh=tuple(_kwh(capacity * (t - reference_c)) for t in lower_c),
        stored_heat_max_kwh=tuple(_kwh(capacity * (t - reference_c)) for t in upper_c),
        time_constant_h=round(model.time_constant_h, 3),
        heat_loss_kw=tuple(
            _kwh((reference_c - outdoor) / resistance - model.internal_gain_kw)
            for outdoor in outdoor_c
        ),
        cop=tuple(round(row.cop.cop(outdoor), 3) for outdoor in outdoor_c),
        min_power_w=row.min_power_w,
        max_power_w=row.max_power_w,
        modulating=row.control is PlanControl.MODULATING,
        # An on/off pump starts once after each block the plan may give it.
        max_starts_per_day=None
        if row.control is PlanControl.MODULATING
        else row.max_windows_per_day,
        hybrid_heat_w=None if boiler is None else boiler.max_heat_w,
        gas_eur_per_kwh_heat=None if boiler is None else round(boiler.heat_price_eur_per_kwh, 4),
    )


def comfort_margin_min(pump: ThermalPump, now: datetime) -> float | None:
    """Minutes until the home reaches the bottom of its band with the pump (and a
    hybrid's boiler) off, on the engine's model, capped at `MAX_COMFORT_MARGIN_MIN`.
    0 when it is below already; None without an indoor reading or past the plan's
    horizon. The band's bottom is that of each minute's quarter hour."""
    indoor = pump.indoor_now_c
    row = pump.row
    if indoor is None or not math.isfinite(indoor):
        return None
    if not 0 <= (now - pump.start) // QUARTER < row.n_steps:
        return None
    model = row.thermal
    keep = model.decay(1 / 60)  # per minute
    gains_k = model.resistance_k_per_kw * model.internal_gain_kw
    minute = 0
    while minute < MAX_COMFORT_MARGIN_MIN:
        # Beyond the horizon the last quarter hour's band and outdoor temperature hold.
        step = min((now + timedelta(minutes=minute) - pump.start) // QUARTER, row.n_steps - 1)
        if indoor < row.comfort.lower_c[step]:
            return float(minute)
        # Unheated, the home drifts towards outdoors plus what the gains hold above it.
        unheated_c = row.outdoor_temperature_c[step] + gains_k
        indoor = keep * indoor + (1 - keep) * unheated_c
        minute += 1
    return MAX_COMFORT_MARGIN_MIN


def _comfort_margin(pumps: Sequence[ThermalPump], now: datetime) -> float | None:
    """The nearest margin of the home's pumps; None when none is known."""
    margins = [m for pump in pumps if (m := comfort_margin_min(pump, now)) is not None]
    return min(margins) if margins else None


def build_capabilities(
    assets: HouseholdAssets,
    now: datetime,
    features: frozenset[ServerFeature] = frozenset(),
) -> Capabilities:
    """Aggregates only; raises ProtocolError on impossible values. The heat pumps'
    thermal stores only for a server that reads them, and not while steering is paused
    (the server must not plan a pump the household took back)."""
    thermal: tuple[HeatPumpFlexibility, ...] = ()
    if ServerFeature.HEAT_PUMP_FLEXIBILITY in features and assets.paused_until(now) is None:
        thermal = tuple(heat_pump_flexibility(pump) for pump in assets.thermal_pumps)
    batteries = [battery.spec for battery in assets.batteries]
    envelopes = (ev_envelope(car, now) for car in assets.cars)
    return Capabilities(
        phases=assets.connection.phases,
        fuse_current_a=assets.connection.fuse_current_a,
        ean=assets.ean,
        tariff_class=assets.tariff_class,
        pv_peak_w=assets.pv_peak_w,
        battery=BatteryCapability(
            energy_wh=sum(battery.capacity_wh or 0.0 for battery in assets.batteries),
            max_charge_w=sum(spec.max_charge_w for spec in batteries),
            max_discharge_w=sum(spec.max_discharge_w for spec in batteries),
        )
        if batteries
        else None,
        heat_pump=HeatPumpCapability(
            flexible_power_w=sum(_flexible_power_w(spec) for spec in assets.heat_pumps)
        )
        if assets.heat_pumps
        else None,
        envelopes=tuple(envelope for envelope in envelopes if envelope is not None),
        thermal_heat_pumps=thermal,
    )


def inflexible_w(step: PlanStep) -> float:
    """The step's planned grid power without its cars and batteries (offered separately)."""
    flexible = sum(car.charge_w - car.discharge_w for car in step.chargers.values()) + sum(
        battery.charge_w - battery.discharge_w for battery in step.batteries.values()
    )
    return step.import_w - step.export_w - flexible


def day_ahead_baseline(
    now: datetime,
    expected_w: Sequence[float],
    *,
    flat: bool = False,
    plan: Iterable[PlanStep] = (),
) -> tuple[BaselineForecast, BaselineSource]:
    """What the community cannot move over the next `BASELINE_STEPS` quarter hours.

    `expected_w`: the forecast net grid power per quarter hour from this one (base load
    and heat pumps less PV, without cars and batteries); `flat` when that forecast is a
    flat estimate. The plan's steps, where it has them, replace the forecast.
    """
    start = floor_to_quarter_hour(now)
    expected = [round(power, 1) for power in expected_w[:BASELINE_STEPS]]
    source = BaselineSource.FLAT_ESTIMATE if flat else BaselineSource.BASE_LOAD_PROFILE
    planned = {step.start: inflexible_w(step) for step in plan}
    times = [start + QUARTER * index for index in range(len(expected))]
    if any(moment in planned for moment in times):
        source = BaselineSource.PLAN
        expected = [planned.get(moment, expected[i]) for i, moment in enumerate(times)]
    return BaselineForecast(start=start, power_w=tuple(expected)), source


def differs(old: BaselineForecast, new: BaselineForecast, tolerance_w: float) -> bool:
    """True when any quarter hour both cover moved by more than `tolerance_w`."""
    shift = int((new.start - old.start) / QUARTER)
    if shift < 0:
        return True
    overlap = zip(old.power_w[shift:], new.power_w, strict=False)
    return any(abs(a - b) > tolerance_w for a, b in overlap)


def loose_message_id(payload: bytes) -> str | None:
    """The id of a message that did not validate, to reject it by name if it has one."""
    try:
        document = json.loads(payload)
        message_id = document["id"]
        Ack(ref_id=message_id, status=AckStatus.REJECTED)
    except ValueError, KeyError, TypeError, RecursionError:  # ProtocolError is a ValueError
        return None
    return str(message_id)


def _tighter(limit: ExternalLimit, cap: ExternalLimit) -> ExternalLimit:
    """One limit holding both (they share the guard's emergency slot): per moment the
    lower total caps, the limit's per-phase caps; each part ends at its own expiry."""
    edges = {cap.intervals[0].start, min(cap.intervals[0].end, cap.expires_at)}
    for interval in limit.intervals:
        edges |= {min(interval.start, limit.expires_at), min(interval.end, limit.expires_at)}
    ordered = sorted(edges)
    merged = []
    for start, end in itertools.pairwise(ordered):
        own = limit.interval_at(start)
        other = cap.interval_at(start)
        if own is None and other is None:
            continue
        merged.append(
            LimitInterval(
                start=start,
                end=end,
                max_import_w=_lower(
                    own.max_import_w if own else None, other.max_import_w if other else None
                ),
                max_export_w=_lower(
                    own.max_export_w if own else None, other.max_export_w if other else None
                ),
                max_import_w_per_phase=own.max_import_w_per_phase if own else None,
                max_export_w_per_phase=own.max_export_w_per_phase if own else None,
            )
        )
    return ExternalLimit(
        source=LimitSource.EMERGENCY,
        issued_at=min(limit.issued_at, cap.issued_at),
        expires_at=max(limit.expires_at, cap.expires_at),
        intervals=tuple(merged),
    )


def _lower(a: float | None, b: float | None) -> float | None:
    values = [value for value in (a, b) if value is not None]
    return min(values) if values else None


# --- the session -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _HeldEmergency:
    message_id: str
    command: EmergencyCommand
    cap: ExternalLimit | None  # the guard limit it holds, fixed when accepted


@dataclass(slots=True)
class SentBaseline:
    at: datetime
    body: BaselineForecast
    source: BaselineSource


@dataclass(slots=True)
class HouseholdSession:
    """One household's membership: what it holds, what it answers and what it reports."""

    community: str
    household: str
    participating: bool = True
    received: int = 0
    rejected: int = 0  # deliveries that did not validate or were not this household's
    outdoor_rejected: int = 0  # outdoor readings left out: not finite or not plausible
    limit: ExternalLimit | None = field(default=None, init=False)
    capabilities_sent: Capabilities | None = field(default=None, init=False)
    baseline_sent: SentBaseline | None = field(default=None, init=False)
    _emergency: _HeldEmergency | None = field(default=None, init=False)
    _answered: OrderedDict[str, tuple[bytes, Ack]] = field(default_factory=OrderedDict, init=False)
    _samples: list[tuple[float, ...]] = field(default_factory=list, init=False)
    _baseline_quarter: datetime | None = field(default=None, init=False)
    # Reports sent and not yet confirmed by a receipt, oldest first, with when last sent.
    _unconfirmed: OrderedDict[str, tuple[Message, datetime]] = field(
        default_factory=OrderedDict, init=False
    )
    receipts_seen: bool = field(default=False, init=False)  # the server confirms reports
    dropped: int = 0  # unconfirmed reports given up because the buffer was full
    _clock_skew: ClockSkew | None = field(default=None, init=False)
    # What the server said it reads beyond first v1 (its `features`); learned anew on
    # every connect, as the server may have changed meanwhile.
    server_features: frozenset[ServerFeature] = field(default=frozenset(), init=False)

    def __post_init__(self) -> None:
        Topic(self.community, self.household, Channel.LIMITS)  # validates both ids

    # --- addressing ------------------------------------------------------------------

    def topic(self, channel: Channel) -> str:
        return str(Topic(self.community, self.household, channel))

    @property
    def subscriptions(self) -> tuple[str, ...]:
        return tuple(self.topic(channel) for channel in SERVER_CHANNELS)

    def message(self, body: Body, now: datetime) -> Message:
        return Message(community=self.community, household=self.household, sent_at=now, body=body)

    def presence(self, online: bool, now: datetime) -> Message:
        """Retained on the status topic; the offline one is also the last will."""
        return self.message(Presence(online=online), now)

    # --- limits and commands in ------------------------------------------------------

    @property
    def emergency(self) -> EmergencyCommand | None:
        return self._emergency.command if self._emergency else None

    def receive(self, topic: str, payload: bytes, now: datetime) -> Delivery:
        """One delivery from the broker: validate, decide, and say how to acknowledge."""
        self.received += 1
        try:
            message = decode_for_topic(topic, payload)
            where = Topic.parse(topic)
            if (where.community, where.household) != (self.community, self.household):
                raise ProtocolError(ErrorCode.WRONG_HOUSEHOLD, "not this household's topic")
            if not isinstance(
                message.body,
                LimitUpdate | EmergencyCommand | ReleaseCommand | Receipt | Notice | Features,
            ):
                raise ProtocolError(
                    ErrorCode.WRONG_CHANNEL, f"a household does not accept {message.type_name}"
                )
        except ProtocolError as err:
            if err.code is ErrorCode.UNKNOWN_TYPE and topic == self.topic(Channel.RECEIPTS):
                return Delivery(None, None)  # a later server's news: nothing to answer
            return self._invalid(payload, err.reason, now)
        self._observe_clock(message, now)
        # Receipts and notices are news: no answer, nothing for the guard.
        if isinstance(message.body, Receipt):
            self._confirm(message.body.ids)
            return Delivery(None, None)
        if isinstance(message.body, Notice):
            self._take_notice(message.body, now)
            return Delivery(None, None)
        if isinstance(message.body, Features):
            # The next tick's capabilities differ once they may carry more: sent then.
            self.server_features = message.body.known()
            return Delivery(None, None)
        digest = hashlib.blake2b(payload, digest_size=16).digest()
        answered = self._answered.get(message.message_id)
        if answered is not None and answered[0] != digest:
            return self._invalid(payload, "a message id used before for another message", now)
        if answered is not None and not isinstance(message.body, LimitUpdate):
            # A command again (QoS 1, a reconnect): the same answer, never applied twice,
            # or a released emergency would start over. A limit is simply decided again.
            return Delivery(answered[1], self._report(answered[1], now), duplicate=True)
        status, reason = self._decide(message, now)
        ack = Ack(ref_id=message.message_id, status=status, reason=reason)
        self._answered[message.message_id] = (digest, ack)
        while len(self._answered) > REMEMBERED_IDS:
            self._answered.popitem(last=False)
        return Delivery(ack, self._report(ack, now), duplicate=answered is not None)

    # --- the clock -------------------------------------------------------------------

    def _take_notice(self, notice: Notice, now: datetime) -> None:
        if notice.code is NoticeCode.FUTURE_TIMESTAMP:
            skew = (now - notice.server_time).total_seconds()
            self._clock_skew = ClockSkew(skew, now, from_notice=True)

    def _observe_clock(self, message: Message, now: datetime) -> None:
        """A server message stamped ahead of our clock says ours is behind; one within
        the tolerance says it no longer is (the server's refusals of our reports,
        learned from a notice, are not answered by it)."""
        if message.sent_at > now + CLOCK_TOLERANCE:
            skew = (now - message.sent_at).total_seconds()
            self._clock_skew = ClockSkew(skew, now, from_notice=False)
        elif self._clock_skew is not None and not self._clock_skew.from_notice:
            self._clock_skew = None

    def clock_skew(self, now: datetime) -> ClockSkew | None:
        """How far our clock is off the server's, as last learned; None when not known
        to be off. A notice's skew lapses `SKEW_FORGET_AFTER` after the last notice."""
        skew = self._clock_skew
        if skew is not None and skew.from_notice and now - skew.learned_at >= SKEW_FORGET_AFTER:
            self._clock_skew = skew = None
        return skew

    def _invalid(self, payload: bytes, reason: str, now: datetime) -> Delivery:
        self.rejected += 1
        message_id = loose_message_id(payload)
        if message_id is None:
            return Delivery(None, None, invalid=reason)
        ack = Ack(ref_id=message_id, status=AckStatus.REJECTED, reason=reason[:MAX_REASON_LENGTH])
        return Delivery(ack, self._report(ack, now), invalid=reason)

    def _decide(self, message: Message, now: datetime) -> tuple[AckStatus, str | None]:
        if message.sent_at > now + CLOCK_TOLERANCE:
            return AckStatus.REJECTED, "sent in the future: is the household's clock right?"
        match message.body:
            case LimitUpdate(limit=limit):
                return self._take_limit(limit, now)
            case EmergencyCommand() as command:
                return self._take_emergency(message.message_id, command, now)
            case ReleaseCommand(releases=releases):
                if self._emergency is not None and releases in (None, self._emergency.message_id):
                    self._emergency = None
                return AckStatus.APPLIED, None
        raise AssertionError(f"not a server message: {message.type_name}")  # checked above

    def _take_limit(self, limit: ExternalLimit, now: datetime) -> tuple[AckStatus, str | None]:
        if limit.is_expired(now):
            return AckStatus.EXPIRED, None
        if limit.issued_at > now + CLOCK_TOLERANCE:
            return AckStatus.REJECTED, "issued in the future: is the household's clock right?"
        held = self.limit
        if held is not None and not held.is_expired(now) and limit.issued_at < held.issued_at:
            return AckStatus.REJECTED, "older than the limit in force"
        # Held while paused too, so it is in force the moment participation resumes.
        self.limit = limit
        if not self.participating:
            return AckStatus.REJECTED, PAUSED
        return AckStatus.APPLIED, None

    def _take_emergency(
        self, message_id: str, command: EmergencyCommand, now: datetime
    ) -> tuple[AckStatus, str | None]:
        if now >= command.expires_at:
            return AckStatus.EXPIRED, None
        if not self.participating:
            return AckStatus.REJECTED, PAUSED
        cap = command.as_limit(now) if EMERGENCY_EFFECTS[command.level].caps else None
        self._emergency = _HeldEmergency(message_id, command, cap)
        return AckStatus.APPLIED, None

    def set_participating(self, participating: bool) -> bool:
        """Pausing takes the community's caps out of the guard (the fuse guard stays);
        returns whether anything changed."""
        changed = participating != self.participating
        self.participating = participating
        return changed

    def leave(self) -> None:
        """The membership stops: nothing it held stays in force."""
        self.limit = None
        self._emergency = None

    def in_force(self, now: datetime) -> InForce:
        """The caps for the guard now; drops what expired (nothing applies past expiry)."""
        lapsed: list[str] = []
        if self.limit is not None and self.limit.is_expired(now):
            self.limit = None
            lapsed.append("limit")
        if self._emergency is not None and now >= self._emergency.command.expires_at:
            self._emergency = None
            lapsed.append("emergency")
        limit = self.limit if self.participating else None
        emergency = self._emergency if self.participating else None
        slots: dict[LimitSource, ExternalLimit] = {}
        if limit is not None:
            slots[limit.source] = limit
        if emergency is not None and emergency.cap is not None:
            shared = slots.get(LimitSource.EMERGENCY)
            slots[LimitSource.EMERGENCY] = (
                emergency.cap if shared is None else _tighter(shared, emergency.cap)
            )
        return InForce(
            limit=limit,
            emergency=emergency.command if emergency else None,
            guard_limits=slots,
            switch_off=emergency is not None
            and EMERGENCY_EFFECTS[emergency.command.level].switch_off,
            lapsed=tuple(lapsed),
        )

    # --- reports out -----------------------------------------------------------------

    def connected(self, now: datetime, assets: HouseholdAssets | None) -> Outgoing:
        """On every (re)connect: presence, and the capabilities even if unchanged."""
        self._baseline_quarter = None  # check the baseline again now
        self.server_features = frozenset()  # plain v1 until this server says more
        presence = Outgoing((self.presence(True, now),))
        return _joined(presence, self._capabilities(now, assets, force=True))

    def tick(
        self,
        now: datetime,
        power_w: tuple[float, ...] | None,
        assets: Callable[[], HouseholdAssets | None],
    ) -> Outgoing:
        """One meter sample a second (None: no usable reading). Every
        `TELEMETRY_INTERVAL_S` samples: their mean as telemetry, and the capabilities
        when they changed (a device added, a car plugged in, its envelope moved on)."""
        if power_w is not None:
            self._samples.append(power_w)
        if len(self._samples) < TELEMETRY_INTERVAL_S:
            return Outgoing()
        samples, self._samples = self._samples, []
        width = len(samples[-1])
        usable = [sample for sample in samples if len(sample) == width]
        mean = tuple(round(sum(column) / len(usable), 1) for column in zip(*usable, strict=True))
        current = assets()
        thermal = current if ServerFeature.HEAT_PUMP_FLEXIBILITY in self.server_features else None
        try:
            telemetry = Telemetry(
                measured_at=now,
                interval_s=TELEMETRY_INTERVAL_S,
                power_w=mean,
                participating=self.participating,
                battery_soc_pct=None if current is None else battery_soc_pct(current.batteries),
                comfort_margin_min=_comfort_margin(thermal.thermal_pumps, now) if thermal else None,
                paused_until=thermal.paused_until(now) if thermal else None,
                outdoor_temperature_c=self._outdoor_c(thermal),
            )
        except ProtocolError as err:
            report = Outgoing(problems=(f"telemetry not sent: {err}",))
        else:
            report = Outgoing((self._report(telemetry, now),))
        return _joined(report, self._capabilities(now, current, force=False))

    def _outdoor_c(self, assets: HouseholdAssets | None) -> float | None:
        """The outdoor reading to report: one outside the protocol's range is left out
        and counted, so a broken sensor never costs the power report."""
        value = None if assets is None else assets.outdoor_c
        if value is None:
            return None
        if not (math.isfinite(value) and MIN_OUTDOOR_C <= value <= MAX_OUTDOOR_C):
            self.outdoor_rejected += 1
            return None
        return round(value, 1)

    def _capabilities(
        self, now: datetime, assets: HouseholdAssets | None, *, force: bool
    ) -> Outgoing:
        if assets is None:
            return Outgoing()
        problems: tuple[str, ...] = ()
        try:
            capabilities = build_capabilities(assets, now, self.server_features)
        except ProtocolError as err:
            # A thermal store out of range must not hold back the connection's facts.
            problems = (f"heat-pump flexibility not sent: {err}",)
            try:
                capabilities = build_capabilities(assets, now)
            except ProtocolError as plain:
                return Outgoing(problems=(f"capabilities not sent: {plain}",))
        if not force and capabilities == self.capabilities_sent:
            return Outgoing(problems=problems)
        self.capabilities_sent = capabilities
        return Outgoing((self._report(capabilities, now),), problems)

    def baseline_due(self, now: datetime) -> bool:
        """Whether to build a baseline now: once a quarter hour, and after a connect."""
        quarter = floor_to_quarter_hour(now)
        if quarter == self._baseline_quarter:
            return False
        self._baseline_quarter = quarter
        return True

    def baseline(
        self, now: datetime, baseline: BaselineForecast, source: BaselineSource
    ) -> Message | None:
        """The baseline to send: daily, or sooner when a quarter hour moved noticeably."""
        sent = self.baseline_sent
        if (
            sent is not None
            and now - sent.at < BASELINE_RESEND
            and not differs(sent.body, baseline, BASELINE_CHANGE_W)
        ):
            return None
        self.baseline_sent = SentBaseline(now, baseline, source)
        return self._report(baseline, now)

    # --- reports until the server has them -------------------------------------------

    def _report(self, body: Body, now: datetime) -> Message:
        """A report kept until a receipt says the server stored it (a broker may lose
        what it acknowledged when it crashes)."""
        message = self.message(body, now)
        self._unconfirmed[message.message_id] = (message, now)
        while len(self._unconfirmed) > MAX_UNCONFIRMED:
            self._unconfirmed.popitem(last=False)
            # Without receipts the server never confirms: forgetting is not a loss then.
            self.dropped += self.receipts_seen
        return message

    def _confirm(self, ids: Iterable[str]) -> None:
        self.receipts_seen = True
        for message_id in ids:
            self._unconfirmed.pop(message_id, None)

    @property
    def unconfirmed(self) -> tuple[Message, ...]:
        """The reports kept for the server, oldest sent first."""
        return tuple(message for message, _sent_at in self._unconfirmed.values())

    def resend(self, now: datetime) -> Outgoing:
        """Reports still unconfirmed `RESEND_AFTER` after they were last sent, oldest
        first, at most `RESEND_PER_CALL`; the same message ids, so the server stores each
        once. Nothing while the server has never sent a receipt (an older server)."""
        if not self.receipts_seen:
            return Outgoing()
        due: list[tuple[str, Message]] = []
        # Oldest sent first: a resent report moves to the end.
        for message_id, (message, sent_at) in self._unconfirmed.items():
            if len(due) == RESEND_PER_CALL or now - sent_at < RESEND_AFTER:
                break
            due.append((message_id, message))
        for message_id, message in due:
            self._unconfirmed[message_id] = (message, now)
            self._unconfirmed.move_to_end(message_id)
        return Outgoing(tuple(message for _, message in due))


def _joined(first: Outgoing, second: Outgoing) -> Outgoing:
    return Outgoing(first.messages + second.messages, first.problems + second.problems)
