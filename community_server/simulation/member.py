"""A simulated household member: a `SimulatedHome` speaking protocol v1 over MQTT.

The household side of the protocol is the engine's `HouseholdSession`, the one Home
Assistant runs: which limits and commands are accepted, what each emergency level
does, the acknowledgements, capabilities with EV envelopes, telemetry means and the
baseline. This adapter feeds it the home's readings and profile, publishes what it
returns and hands the guard the caps in force, so the demo and the simulator show the
household Home Assistant runs. Presence (retained, with a last will), capabilities and
a baseline on connect, telemetry every 10 s; reports the server has not confirmed by a
receipt are sent again.

The car, while plugged in, is offered as an EV envelope: the energy still wanted, the
charger's power, from this quarter hour to the departure. The baseline is what the
community cannot move: the base load and heat pump less PV, as forecast, without the car.

Profile time may run `speed` times faster than real time; the protocol speaks real
time. So the departure is where the profile clock reaches it in real time, and the
envelope's energy is divided by `speed` (the car charges `speed` times faster in real
time); at speed 1 both are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from netbewust_adapters.mqtt import stop_network_thread
from netbewust_core.protocol.messages import QUARTER_HOUR, Ack, Capabilities, Message, encode
from netbewust_core.protocol.session import (
    BASELINE_STEPS,
    COMMUNITY_SLOTS,
    HouseholdAssets,
    HouseholdSession,
    Outgoing,
    PluggedCar,
    SteeringPause,
    build_capabilities,
    day_ahead_baseline,
)
from netbewust_core.timegrid import floor_to_quarter_hour

from .profiles import outdoor_temperature_c

if TYPE_CHECKING:
    from collections.abc import Callable

    from .home import SimulatedHome

_LOGGER = logging.getLogger(__name__)
QOS = 1
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
        self.session = HouseholdSession(account.community, account.household)
        self.connected = False
        self.acks_sent: list[Ack] = []
        self.telemetry_sent = 0
        self._offered = False
        self._steering_pause: SteeringPause | None = None
        v5 = account.protocol == "5"
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            # The broker binds each account to its household id as the client id.
            client_id=account.household,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else False,
        )
        self._client.username_pw_set(account.username, account.password)
        will = self.session.presence(False, clock())
        self._client.will_set(str(will.topic), encode(will), QOS, True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    @property
    def rejected(self) -> int:
        return self.session.rejected

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
        await asyncio.to_thread(stop_network_thread, self._client)
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

    def pause_steering(self, pause: SteeringPause | None) -> None:
        """The household pauses the steering of its heat pumps (None: resumes); reported
        in telemetry to a server that reads it, and it lifts no community cap."""
        self._steering_pause = pause

    def set_participating(self, participating: bool) -> None:
        """Pause or resume: paused, the community's caps leave the guard (the fuse stays)."""
        if self.session.set_participating(participating):
            self._sync_guard(self._clock())

    def tick(self, now: datetime) -> None:
        """One second: the caps in force now, a meter reading for the guard, the reports."""
        self._sync_guard(now)
        self.home.step(now, self.profile_moment(now), self.speed)
        self._send(self.session.tick(now, self.home.last_power_w, lambda: self.assets(now)))
        if self.connected:  # reports the server did not confirm (a broker lost them)
            self._send(self.session.resend(now))
        if self.connected and self.session.baseline_due(now):
            self._send_baseline(now)

    # --- the session's inputs from the home ---------------------------------------------

    def assets(self, now: datetime) -> HouseholdAssets:
        """The home as the session describes it: connection, devices, the car if plugged in,
        and with a heat pump the outdoor temperature its demand follows."""
        home = self.home
        profile = home.profile
        moment = self.profile_moment(now)
        outdoor = None if home.heat_pump is None else outdoor_temperature_c(moment)
        return HouseholdAssets(
            connection=home.connection,
            pv_peak_w=profile.pv_peak_w or None,
            heat_pumps=() if home.heat_pump is None else (home.heat_pump.spec,),
            cars=self._cars(now),
            tariff_class=f"{profile.phases}x{profile.fuse_current_a:g}A",
            pause=self._steering_pause,
            outdoor_c=outdoor,
        )

    def _cars(self, now: datetime) -> tuple[PluggedCar, ...]:
        home = self.home
        if home.charger is None or home.ev_needed_wh <= 0:
            return ()
        departure = self.real_moment(home.ev_departure(self.profile_moment(now)))
        return (PluggedCar(home.charger.spec, home.ev_needed_wh / self.speed, departure),)

    def capabilities(self, now: datetime | None = None) -> Capabilities:
        return build_capabilities(
            self.assets(self._clock() if now is None else now), now or self._clock()
        )

    def _send_baseline(self, now: datetime) -> None:
        """The next day's quarter hours of what the community cannot move (no car).

        Each quarter hour's mean over the profile time it spans (a quarter hour at speed
        1, longer when the demo runs faster)."""
        start = floor_to_quarter_hour(now)
        offsets = [QUARTER_HOUR * (k + 0.5) / BASELINE_SAMPLES for k in range(BASELINE_SAMPLES)]
        expected = [
            self._mean_expected_w(start + QUARTER_HOUR * i, offsets) for i in range(BASELINE_STEPS)
        ]
        baseline, source = day_ahead_baseline(now, expected)
        message = self.session.baseline(now, baseline, source)
        if message is not None:
            self._publish(message)

    def _mean_expected_w(self, quarter: datetime, offsets: list[timedelta]) -> float:
        moments = [self.profile_moment(quarter + offset) for offset in offsets]
        return sum(self.home.expected_grid_w(moment) for moment in moments) / len(moments)

    # --- the guard ----------------------------------------------------------------------

    def _sync_guard(self, now: datetime) -> None:
        """The guard holds exactly the caps the session has in force now."""
        in_force = self.session.in_force(now)
        for lapsed in in_force.lapsed:
            _LOGGER.info("%s: the community %s expired", self.account.household, lapsed)
        guard = self.home.guard
        for source in COMMUNITY_SLOTS:
            limit = in_force.guard_limits.get(source)
            if limit is None:
                guard.clear_external_limit(source)
            else:
                guard.set_external_limit(limit)
        guard.set_emergency(in_force.switch_off)

    # --- MQTT ---------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, *args: object) -> None:
        reason = args[2]
        if getattr(reason, "is_failure", True):
            _LOGGER.warning("%s: the broker refused us: %s", self.account.household, reason)
            return
        client.subscribe([(topic, QOS) for topic in self.session.subscriptions])
        self._call_soon(self._link_up)

    def _link_up(self) -> None:
        """On the event loop, which owns the home: presence, capabilities, baseline."""
        now = self._clock()
        self.connected = True
        self._send(self.session.connected(now, self.assets(now)))
        if self.session.baseline_due(now):
            self._send_baseline(now)

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
        """One delivery: the session decides, the guard follows, acknowledge."""
        now = self._clock()
        delivery = self.session.receive(topic, payload, now)
        if delivery.invalid is not None:
            _LOGGER.warning(
                "%s rejected a message on %s: %s", self.account.household, topic, delivery.invalid
            )
        else:
            self._sync_guard(now)
        if delivery.ack is not None and delivery.reply is not None:
            self.acks_sent.append(delivery.ack)
            self._publish(delivery.reply)

    def _send(self, outgoing: Outgoing) -> None:
        for problem in outgoing.problems:
            _LOGGER.warning("%s: %s", self.account.household, problem)
        if not self.connected:
            return  # the session keeps them until the server confirms, and resends them
        for message in outgoing.messages:
            self._publish(message)
            self.telemetry_sent += message.type_name == "telemetry"
            self._log_offer(message)

    def _log_offer(self, message: Message) -> None:
        if not isinstance(message.body, Capabilities):
            return
        envelopes = message.body.envelopes
        if bool(envelopes) != self._offered:
            self._offered = bool(envelopes)
            _LOGGER.info(
                "%s: %s",
                self.account.household,
                f"car plugged in, offers {envelopes[0].energy_wh / 1000:.1f} kWh "
                f"by {envelopes[0].deadline:%H:%M} UTC"
                if envelopes
                else "no car to offer (left or full)",
            )

    def _publish(self, message: Message) -> None:
        retain = message.type_name == "presence"
        self._client.publish(str(message.topic), encode(message), qos=QOS, retain=retain)
