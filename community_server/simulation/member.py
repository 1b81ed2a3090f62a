"""A simulated household member: a `SimulatedHome` speaking protocol v1 over MQTT.

It behaves like the Home Assistant integration: presence (retained, with a last will),
capabilities and a day-ahead baseline on connect, telemetry every 10 s (the mean per
phase), every limit and command validated, handed to the guard and acknowledged. A
limit lapses at its expiry inside the guard, so a member whose server is gone falls
back to local-only operation by itself.

While its car is plugged in, the capabilities offer it to the community's day-ahead
plan as an EV envelope: the energy still wanted, the charger's power (6 A per phase at
least), from this quarter hour to the departure. They are sent again when that changes
(the car arrives or leaves, and every quarter hour while it is in, as the integration's
envelope start moves on). The baseline, sent every quarter hour, is what the community
cannot move: the base load and heat pump less PV, as forecast, without the car.

Profile time may run `speed` times faster than real time; the protocol speaks real
time. So the departure is where the profile clock reaches it in real time, and the
envelope's energy is divided by `speed` (the car charges `speed` times faster in real
time); at speed 1 both are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from netbewust_core.limits import LimitSource
from netbewust_core.protocol.messages import (
    QUARTER_HOUR,
    TELEMETRY_INTERVAL_S,
    Ack,
    AckStatus,
    AssetKind,
    BaselineForecast,
    Body,
    Capabilities,
    Channel,
    EmergencyCommand,
    ErrorCode,
    FlexEnvelope,
    HeatPumpCapability,
    LimitUpdate,
    Message,
    Presence,
    ProtocolError,
    ReleaseCommand,
    Telemetry,
    Topic,
    decode_for_topic,
    encode,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from .home import SimulatedHome

_LOGGER = logging.getLogger(__name__)
QOS = 1
REPLACED_BY_A_LIMIT = (LimitSource.COMMUNITY, LimitSource.DSO)
BASELINE_STEPS = 96
BASELINE_SAMPLES = 5  # profile moments averaged per quarter hour of the baseline


@dataclass(frozen=True, slots=True)
class MemberAccount:
    """What a join returned: where and as whom to connect."""

    community: str
    household: str
    username: str
    password: str
    host: str
    port: int
    protocol: str = "5"  # "3.1.1" for the embedded broker


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _quarter_floor(moment: datetime) -> datetime:
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


class SimulatedMember:
    """Runs on the event loop; paho's network thread only hands deliveries over."""

    def __init__(
        self,
        account: MemberAccount,
        home: SimulatedHome,
        *,
        speed: float = 1.0,
        profile_start: datetime | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.account = account
        self.home = home
        self.speed = speed
        self._clock = clock
        self._started_at = clock()
        self._profile_start = profile_start or self._started_at
        self._loop: asyncio.AbstractEventLoop | None = None
        self.connected = False
        self.acks_sent: list[Ack] = []
        self.rejected = 0
        self.telemetry_sent = 0
        self._emergency_id: str | None = None
        self._samples: list[tuple[float, ...]] = []
        self.capabilities_sent: Capabilities | None = None
        self._offer_sent: datetime | None = None  # the envelope's quarter hour, if any
        self._baseline_quarter: datetime | None = None
        v5 = account.protocol == "5"
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"sim-{account.household}",
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else False,
        )
        self._client.username_pw_set(account.username, account.password)
        self._client.will_set(
            self._topic(Channel.STATUS), encode(self._message(Presence(online=False))), QOS, True
        )
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def profile_moment(self, now: datetime) -> datetime:
        """The time of day the profiles are at: the demo may start them elsewhere, run faster."""
        return self._profile_start + (now - self._started_at) * self.speed

    def real_moment(self, profile_moment: datetime) -> datetime:
        """When, in real time, the profile clock reaches `profile_moment`."""
        return self._started_at + (profile_moment - self._profile_start) / self.speed

    def connect(self) -> None:
        """Start connecting on paho's thread; it reconnects by itself after a drop."""
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self.account.host, self.account.port, keepalive=30)
        self._client.loop_start()

    async def close(self) -> None:
        self._client.disconnect()  # a clean disconnect: the will is not published
        await asyncio.to_thread(self._client.loop_stop)
        self.connected = False

    async def run(self) -> None:
        """Connect, then read the meter every second and report, until cancelled."""
        self.connect()
        try:
            while True:
                await asyncio.sleep(1.0)
                self.tick(self._clock())
        finally:
            await self.close()

    def tick(self, now: datetime) -> None:
        """One second: a meter reading for the guard; telemetry every 10 readings."""
        self.home.step(now, self.profile_moment(now), self.speed)
        if self.connected:
            self._report_changes(now)
        self._samples.append(self.home.last_power_w)
        if len(self._samples) >= TELEMETRY_INTERVAL_S:
            phases = len(self._samples[0])
            mean = tuple(
                round(sum(sample[i] for sample in self._samples) / len(self._samples), 1)
                for i in range(phases)
            )
            self._samples.clear()
            if self.connected:
                body = Telemetry(
                    measured_at=now,
                    interval_s=TELEMETRY_INTERVAL_S,
                    power_w=mean,
                    participating=True,
                )
                self._publish(body)
                self.telemetry_sent += 1

    # --- protocol ---------------------------------------------------------------------

    def _topic(self, channel: Channel) -> str:
        return str(Topic(self.account.community, self.account.household, channel))

    def _message(self, body: Body) -> Message:
        return Message(
            community=self.account.community,
            household=self.account.household,
            sent_at=self._clock(),
            body=body,
        )

    def _publish(self, body: Body, *, retain: bool = False) -> None:
        message = self._message(body)
        self._client.publish(str(message.topic), encode(message), qos=QOS, retain=retain)

    def _report_changes(self, now: datetime) -> None:
        """Capabilities when the car's offer changed, the baseline every quarter hour."""
        if self._offer_quarter(now) != self._offer_sent:
            self._send_capabilities(now)
        if _quarter_floor(now) != self._baseline_quarter:
            self._send_baseline(now)

    def _offer_quarter(self, now: datetime) -> datetime | None:
        return _quarter_floor(now) if self.home.ev_needed_wh > 0 else None

    def _send_capabilities(self, now: datetime) -> None:
        capabilities = self.capabilities(now)
        offered = bool(capabilities.envelopes)
        if offered != bool(self.capabilities_sent and self.capabilities_sent.envelopes):
            _LOGGER.info(
                "%s: %s",
                self.account.household,
                f"car plugged in, offers {capabilities.envelopes[0].energy_wh / 1000:.1f} kWh "
                f"by {capabilities.envelopes[0].deadline:%H:%M} UTC"
                if offered
                else "no car to offer (left or full)",
            )
        self._publish(capabilities)
        self.capabilities_sent = capabilities
        self._offer_sent = self._offer_quarter(now)

    def _send_baseline(self, now: datetime) -> None:
        self._publish(self.baseline(now))
        self._baseline_quarter = _quarter_floor(now)

    def envelope(self, now: datetime) -> FlexEnvelope | None:
        """The plugged-in car as the community may plan it, from this quarter hour."""
        home = self.home
        needed_wh = home.ev_needed_wh
        if needed_wh <= 0:
            return None
        start = _quarter_floor(now)
        deadline = self.real_moment(home.ev_departure(self.profile_moment(now)))
        deadline = deadline.replace(microsecond=0)
        if deadline <= start:
            return None
        hours = (deadline - start).total_seconds() / 3600
        max_power_w = home.ev_max_power_w
        # What cannot be delivered by departure is not offered.
        energy_wh = min(round(needed_wh / self.speed, 1), max_power_w * hours)
        if energy_wh < 1.0:
            return None
        return FlexEnvelope(
            asset=AssetKind.EV,
            energy_wh=energy_wh,
            max_power_w=max_power_w,
            earliest_start=start,
            deadline=deadline,
            min_power_w=home.ev_min_power_w,
        )

    def capabilities(self, now: datetime | None = None) -> Capabilities:
        now = self._clock() if now is None else now
        envelope = self.envelope(now)
        profile = self.home.profile
        heat_pump = (
            HeatPumpCapability(flexible_power_w=profile.heat_pump_rated_w * 0.8)
            if profile.heat_pump_rated_w
            else None
        )
        return Capabilities(
            phases=profile.phases,
            fuse_current_a=profile.fuse_current_a,
            tariff_class=f"{profile.phases}x{profile.fuse_current_a:g}A",
            pv_peak_w=profile.pv_peak_w or None,
            heat_pump=heat_pump,
            envelopes=() if envelope is None else (envelope,),
        )

    def baseline(self, now: datetime) -> BaselineForecast:
        """The next day's quarter hours of what the community cannot move (no car).

        Each quarter hour's mean over the profile time it spans (a quarter hour at speed
        1, longer when the demo runs faster)."""
        start = _quarter_floor(now)
        offsets = [QUARTER_HOUR * (k + 0.5) / BASELINE_SAMPLES for k in range(BASELINE_SAMPLES)]
        return BaselineForecast(
            start=start,
            power_w=tuple(
                round(self._mean_expected_w(start + QUARTER_HOUR * i, offsets), 1)
                for i in range(BASELINE_STEPS)
            ),
        )

    def _mean_expected_w(self, quarter: datetime, offsets: list[timedelta]) -> float:
        moments = [self.profile_moment(quarter + offset) for offset in offsets]
        return sum(self.home.expected_grid_w(moment) for moment in moments) / len(moments)

    def _on_connect(self, client: mqtt.Client, *args: object) -> None:
        reason = args[2]
        if getattr(reason, "is_failure", True):
            _LOGGER.warning("%s: the broker refused us: %s", self.account.household, reason)
            return
        client.subscribe([(self._topic(Channel.LIMITS), QOS), (self._topic(Channel.COMMAND), QOS)])
        self._publish(Presence(online=True), retain=True)
        self._call_soon(self._link_up)

    def _link_up(self) -> None:
        """On the event loop, which owns the home: capabilities and baseline, then ticks."""
        now = self._clock()
        self._send_capabilities(now)
        self._send_baseline(now)
        self.connected = True

    def _on_disconnect(self, *_args: object) -> None:
        self._call_soon(self._set_connected, False)

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = "<not UTF-8>"
        self._call_soon(self.handle, topic, bytes(msg.payload))

    def _call_soon(self, callback: Callable[..., None], *args: object) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed while stopping
                self._loop.call_soon_threadsafe(callback, *args)

    def handle(self, topic: str, payload: bytes) -> None:
        """One delivery: validate, give it to the guard, acknowledge."""
        try:
            message = decode_for_topic(topic, payload)
            where = Topic.parse(topic)
            if (where.community, where.household) != (
                self.account.community,
                self.account.household,
            ):
                raise ProtocolError(ErrorCode.WRONG_HOUSEHOLD, "not this household's topic")
        except ProtocolError as err:
            self._reject(topic, payload, err.reason)
            return
        now = self._clock()
        status = AckStatus.APPLIED
        match message.body:
            case LimitUpdate(limit=limit):
                if limit.is_expired(now):
                    status = AckStatus.EXPIRED
                else:
                    # A limit replaces every earlier limit, also an emergency-level one
                    # from the allocation; only an emergency command waits for its release.
                    replaced: tuple[LimitSource, ...] = REPLACED_BY_A_LIMIT
                    if self._emergency_id is None:
                        replaced = (*replaced, LimitSource.EMERGENCY)
                    for source in replaced:
                        self.home.guard.clear_external_limit(source)
                    self.home.guard.set_external_limit(limit)
            case EmergencyCommand() as command:
                if now >= command.expires_at:
                    status = AckStatus.EXPIRED
                else:
                    self._emergency_id = message.message_id
                    self.home.guard.set_external_limit(command.as_limit(now))
            case ReleaseCommand(releases=releases):
                if releases in (None, self._emergency_id):
                    self._emergency_id = None
                    self.home.guard.clear_external_limit(LimitSource.EMERGENCY)
            case _:
                self._reject(topic, payload, f"a household does not accept {message.type_name}")
                return
        self._acknowledge(Ack(ref_id=message.message_id, status=status))

    def _reject(self, topic: str, payload: bytes, reason: str) -> None:
        self.rejected += 1
        _LOGGER.warning("%s rejected a message on %s: %s", self.account.household, topic, reason)
        message_id = _loose_message_id(payload)
        if message_id is not None:
            self._acknowledge(
                Ack(ref_id=message_id, status=AckStatus.REJECTED, reason=reason[:200])
            )

    def _acknowledge(self, ack: Ack) -> None:
        self.acks_sent.append(ack)
        self._publish(ack)


def _loose_message_id(payload: bytes) -> str | None:
    try:
        document = json.loads(payload)
        Ack(ref_id=document["id"], status=AckStatus.REJECTED)
    except ValueError, KeyError, TypeError, RecursionError:
        return None
    return cast("str", document["id"])
