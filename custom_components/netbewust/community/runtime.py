"""A community membership at runtime: limits in, acknowledgements and reports out.

Every received limit is validated by the protocol module and handed to the guard of
the linked connection, where it can only lower what the fuse allows. Every limit and
command is acknowledged. A limit lapses at its expiry unless renewed, so when the
server or broker is gone the household is back to local-only operation by then; on
reconnecting, the retained limit and the persistent session resynchronise it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util

from ..const import LOGGER
from ..core.limits import ExternalLimit, LimitInterval, LimitSource
from ..core.protocol.messages import (
    TELEMETRY_INTERVAL_S,
    Ack,
    AckStatus,
    BaselineForecast,
    Body,
    Capabilities,
    Channel,
    EmergencyCommand,
    EmergencyLevel,
    ErrorCode,
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
from ..core.timegrid import floor_to_quarter_hour
from ..guard.meter import read_meter
from ..guard.states import Rejections
from .baseline import BaselineBuilder, BaselineSource, differs
from .capabilities import battery_soc_pct, household_capabilities
from .const import CONF_EAN, CONF_TARIFF_CLASS
from .mqtt_client import CommunityLink, LinkCallbacks, Will, is_auth_refusal

if TYPE_CHECKING:
    from collections.abc import Callable

    from paho.mqtt.reasoncodes import ReasonCode

    from ..guard.runtime import NetbewustRuntime
    from .join import Membership

TICK = timedelta(seconds=1)
# Revoked credentials refuse every attempt; one refusal may be a broker still reloading.
AUTH_REFUSALS_BEFORE_REAUTH = 2
EMERGENCY_REASON_PREFIX = "community"
# The baseline is sent daily, and sooner when a quarter hour moved by more than this.
BASELINE_RESEND = timedelta(hours=24)
BASELINE_CHANGE_W = 100.0

type CommunityConfigEntry = ConfigEntry[CommunityRuntime]


class CommunityState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    OFFLINE = "offline"  # link down; the last limit is honoured until its expiry
    LOCAL_ONLY = "local_only"  # no community limit in force: server or broker gone
    PAUSED = "paused"  # the household paused participation
    AUTH_FAILED = "auth_failed"


class CommunityRuntime:
    """One membership: its MQTT link, the limits it holds and what the entities show."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        membership: Membership,
        connection_entry_id: str,
        clock: Callable[[], datetime] = dt_util.utcnow,
    ) -> None:
        self.hass = hass
        self.entry = entry
        self.membership = membership
        self.connection_entry_id = connection_entry_id
        self._clock = clock
        self.limit: ExternalLimit | None = None
        self.emergency: tuple[str, EmergencyCommand] | None = None
        self.participating = True
        self.link_up = False
        self.auth_failed = False
        self.ever_connected = False
        self.received = 0
        self.rejected = 0
        self.capabilities_sent: Capabilities | None = None
        self.baseline_sent: tuple[datetime, BaselineForecast, BaselineSource] | None = None
        self._baselines = BaselineBuilder(hass)
        self._baseline_quarter: datetime | None = None
        self._auth_refusals = 0
        self._applied: tuple[int, ExternalLimit | None, ExternalLimit | None] | None = None
        self._emergency_on: NetbewustRuntime | None = None
        self._samples: list[tuple[float, ...]] = []
        self._shown: tuple[CommunityState, LimitInterval | None, LimitInterval | None] | None = None
        self._listeners: list[CALLBACK_TYPE] = []
        self._unsubscribe: list[CALLBACK_TYPE] = []
        self.link = CommunityLink(
            hass.loop,
            membership.mqtt,
            [str(self._topic(Channel.LIMITS)), str(self._topic(Channel.COMMAND))],
            Will(str(self._topic(Channel.STATUS)), encode(self._message(Presence(online=False)))),
            LinkCallbacks(
                on_connected=self._on_connected,
                on_disconnected=self._on_disconnected,
                on_refused=self._on_refused,
                on_message=self.async_handle_message,
            ),
        )

    # --- lifecycle -------------------------------------------------------------------

    async def async_start(self) -> None:
        await self.hass.async_add_executor_job(self.link.start)
        self._unsubscribe.append(
            async_track_time_interval(self.hass, self._on_tick, TICK, name="netbewust community")
        )

    async def async_stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        goodbye = (str(self._topic(Channel.STATUS)), encode(self._message(Presence(online=False))))
        await self.hass.async_add_executor_job(self.link.stop, goodbye)
        self.limit = None
        self.emergency = None
        self._sync_guard()

    @callback
    def async_add_listener(self, listener: CALLBACK_TYPE) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @callback
    def _notify(self) -> None:
        self._shown = (self.state, self.interval_now(), self.interval_next())
        for listener in tuple(self._listeners):
            listener()

    # --- what the entities show ------------------------------------------------------

    @property
    def state(self) -> CommunityState:
        now = self._clock()
        if self.auth_failed:
            return CommunityState.AUTH_FAILED
        if not self.participating:
            return CommunityState.PAUSED
        in_force = self.limit is not None and not self.limit.is_expired(now)
        if self.link_up:
            return CommunityState.CONNECTED
        if in_force:
            return CommunityState.OFFLINE
        return CommunityState.LOCAL_ONLY if self.ever_connected else CommunityState.CONNECTING

    def interval_now(self) -> LimitInterval | None:
        limit = self._applying()
        return limit.interval_at(self._clock()) if limit else None

    def interval_next(self) -> LimitInterval | None:
        limit = self._applying()
        return limit.next_interval_after(self._clock()) if limit else None

    def _applying(self) -> ExternalLimit | None:
        return self.limit if self.participating else None

    @callback
    def async_set_participating(self, participating: bool) -> None:
        """Pausing drops the community's caps from the guard; the fuse guard stays."""
        if participating == self.participating:
            return
        self.participating = participating
        LOGGER.info(
            "%s: community participation %s",
            self.entry.title,
            "resumed" if participating else "paused",
        )
        self._sync_guard()
        self._notify()

    # --- MQTT link (on the event loop) -----------------------------------------------

    @callback
    def _on_connected(self) -> None:
        self.link_up = True
        self.ever_connected = True
        self._auth_refusals = 0
        LOGGER.info("%s: connected to the community broker", self.entry.title)
        self._publish(Presence(online=True), retain=True)
        self._send_capabilities(force=True)
        self._baseline_quarter = None  # check the baseline again now
        self._notify()

    @callback
    def _on_disconnected(self) -> None:
        self.link_up = False
        LOGGER.warning(
            "%s: lost the community broker; the community limit lapses at its expiry",
            self.entry.title,
        )
        self._notify()

    @callback
    def _on_refused(self, reason: ReasonCode) -> None:
        if not is_auth_refusal(reason):
            LOGGER.debug("%s: the community broker refused: %s", self.entry.title, reason)
            return
        self._auth_refusals += 1
        if self._auth_refusals < AUTH_REFUSALS_BEFORE_REAUTH or self.auth_failed:
            return
        LOGGER.warning("%s: the community refused the credentials", self.entry.title)
        self.auth_failed = True
        # Stop retrying with credentials that no longer work; reauth brings new ones.
        self.hass.async_create_task(self.async_stop(), "netbewust community stop")
        self.entry.async_start_reauth(self.hass)
        self._notify()

    @callback
    def async_handle_message(self, topic: str, payload: bytes) -> None:
        """One delivery from the broker: validate, apply, acknowledge."""
        self.received += 1
        try:
            message = decode_for_topic(topic, payload)
            where = Topic.parse(topic)
            if (where.community, where.household) != (
                self.membership.community,
                self.membership.household,
            ):
                raise ProtocolError(ErrorCode.WRONG_HOUSEHOLD, "not this household's topic")
        except ProtocolError as err:
            self._reject(topic, payload, err.reason)
            return
        match message.body:
            case LimitUpdate(limit=limit):
                self._ack(message, self._take_limit(limit))
            case EmergencyCommand() as command:
                self._ack(message, self._take_emergency(message.message_id, command))
            case ReleaseCommand(releases=releases):
                self._ack(message, self._take_release(releases))
            case _:
                self._reject(topic, payload, f"a household does not accept {message.type_name}")
                return
        self._notify()

    def _reject(self, topic: str, payload: bytes, reason: str) -> None:
        self.rejected += 1
        # The topic and reason only; a payload could be large or hostile.
        LOGGER.warning("Rejected a community message on %s: %s", topic[:200], reason[:300])
        message_id = _loose_message_id(payload)
        if message_id is not None:
            self._publish(Ack(ref_id=message_id, status=AckStatus.REJECTED, reason=reason[:200]))

    def _take_limit(self, limit: ExternalLimit) -> tuple[AckStatus, str | None]:
        now = self._clock()
        if limit.is_expired(now):
            return AckStatus.EXPIRED, None
        if self.limit is not None and limit.issued_at < self.limit.issued_at:
            return AckStatus.REJECTED, "older than the limit in force"
        self.limit = limit
        self._sync_guard()
        if not self.participating:
            return AckStatus.REJECTED, "participation paused"
        return AckStatus.APPLIED, None

    def _take_emergency(
        self, message_id: str, command: EmergencyCommand
    ) -> tuple[AckStatus, str | None]:
        if self._clock() >= command.expires_at:
            return AckStatus.EXPIRED, None
        if not self.participating:
            return AckStatus.REJECTED, "participation paused"
        self.emergency = (message_id, command)
        self._sync_guard()
        return AckStatus.APPLIED, None

    def _take_release(self, releases: str | None) -> tuple[AckStatus, str | None]:
        if self.emergency is not None and releases in (None, self.emergency[0]):
            self.emergency = None
            self._sync_guard()
        return AckStatus.APPLIED, None

    def _ack(self, message: Message, outcome: tuple[AckStatus, str | None]) -> None:
        status, reason = outcome
        self._publish(Ack(ref_id=message.message_id, status=status, reason=reason))

    # --- the guard -------------------------------------------------------------------

    def _connection(self) -> NetbewustRuntime | None:
        entry = self.hass.config_entries.async_get_entry(self.connection_entry_id)
        if entry is None or entry.state is not ConfigEntryState.LOADED:
            return None
        return cast("NetbewustRuntime", entry.runtime_data)

    @callback
    def _sync_guard(self) -> None:
        """Give the connection's guard exactly the caps in force now (idempotent).

        Also run every tick: a reloaded connection entry has a fresh guard.
        """
        runtime = self._connection()
        now = self._clock()
        if self.limit is not None and self.limit.is_expired(now):
            LOGGER.info("%s: the community limit expired; local-only", self.entry.title)
            self.limit = None
        if self.emergency is not None and now >= self.emergency[1].expires_at:
            LOGGER.info("%s: the community emergency expired", self.entry.title)
            self.emergency = None
        limit = self.limit if self.participating else None
        emergency = self.emergency[1] if self.emergency and self.participating else None
        emergency_limit = (
            emergency.as_limit(now)
            if emergency is not None and emergency.level >= EmergencyLevel.CURTAIL
            else None
        )
        if runtime is None:
            self._applied = None
            return
        wanted = (id(runtime), limit, emergency_limit)
        if wanted == self._applied:
            return
        previous = self._applied
        self._applied = wanted
        for source in (LimitSource.COMMUNITY, LimitSource.DSO):
            if limit is None or limit.source is not source:
                runtime.async_set_external_limit(source, None)
        if limit is not None:
            runtime.async_set_external_limit(limit.source, limit)
        if emergency_limit is not None or (previous and previous[2] is not None):
            runtime.async_set_external_limit(LimitSource.EMERGENCY, emergency_limit)
        self._sync_critical(runtime, emergency)

    def _sync_critical(self, runtime: NetbewustRuntime, emergency: EmergencyCommand | None) -> None:
        """CRITICAL: every flexible device off, through the guard's emergency input."""
        critical = emergency is not None and emergency.level is EmergencyLevel.CRITICAL
        ours = (runtime.emergency_reason or "").startswith(EMERGENCY_REASON_PREFIX)
        if critical and runtime.emergency_active and not ours:
            return  # the household's own emergency already switches everything off
        if critical and emergency is not None:
            runtime.async_set_emergency(
                True, f"{EMERGENCY_REASON_PREFIX}: {emergency.reason.value}"
            )
            self._emergency_on = runtime
        elif self._emergency_on is runtime and ours:
            # Only release what the community set, never the household's own emergency.
            runtime.async_set_emergency(False, "")
            self._emergency_on = None

    # --- reports ---------------------------------------------------------------------

    @callback
    def _on_tick(self, now: datetime) -> None:
        self._sync_guard()
        self._sample()
        if len(self._samples) >= TELEMETRY_INTERVAL_S:
            self._publish_telemetry()
            self._send_capabilities(force=False)
        quarter = floor_to_quarter_hour(now)
        if self.link_up and quarter != self._baseline_quarter:
            self._baseline_quarter = quarter
            self.entry.async_create_background_task(
                self.hass, self._async_send_baseline(), "netbewust community baseline"
            )
        # Time alone changes what is shown: a limit expires, the next interval begins.
        if (self.state, self.interval_now(), self.interval_next()) != self._shown:
            self._notify()

    def _sample(self) -> None:
        runtime = self._connection()
        if runtime is None:
            return
        reading = read_meter(
            self.hass.states.get, runtime.config.meter, self._clock(), Rejections()
        )
        per_phase = tuple(phase.power_w for phase in reading.phases)
        if per_phase and all(power is not None for power in per_phase):
            self._samples.append(cast("tuple[float, ...]", per_phase))
        elif reading.total_power_w is not None:
            self._samples.append((reading.total_power_w,))

    def _publish_telemetry(self) -> None:
        samples, self._samples = self._samples, []
        width = len(samples[-1])
        usable = [sample for sample in samples if len(sample) == width]
        mean = tuple(sum(column) / len(usable) for column in zip(*usable, strict=True))
        runtime = self._connection()
        try:
            body = Telemetry(
                measured_at=self._clock(),
                interval_s=TELEMETRY_INTERVAL_S,
                power_w=mean,
                participating=self.participating,
                battery_soc_pct=None
                if runtime is None
                else battery_soc_pct(runtime, self.hass.states.get),
            )
        except ProtocolError as err:
            LOGGER.debug("Telemetry not sent: %s", err)
            return
        self._publish(body)

    def _capabilities(self) -> Capabilities | None:
        runtime = self._connection()
        if runtime is None:
            return None
        try:
            return household_capabilities(
                runtime,
                self.hass.states.get,
                self._clock(),
                dt_util.get_default_time_zone(),
                ean=self.entry.data.get(CONF_EAN),
                tariff_class=self.entry.data.get(CONF_TARIFF_CLASS),
            )
        except ProtocolError as err:
            LOGGER.warning("%s: capabilities not sent: %s", self.entry.title, err)
            return None

    def _send_capabilities(self, *, force: bool) -> None:
        """On every connect, else only when they changed (a device added, a car plugged in)."""
        capabilities = self._capabilities()
        if capabilities is None or not self.link_up:
            return
        if force or capabilities != self.capabilities_sent:
            self._publish(capabilities)
            self.capabilities_sent = capabilities

    async def _async_send_baseline(self) -> None:
        """Checked every quarter hour; sent daily or when the expectation changed."""
        runtime = self._connection()
        if runtime is None:
            return
        now = self._clock()
        try:
            baseline, source = await self._baselines.async_build(runtime, now)
        except (ProtocolError, ValueError) as err:
            LOGGER.warning("%s: baseline not sent: %s", self.entry.title, err)
            return
        sent = self.baseline_sent
        if (
            sent is not None
            and now - sent[0] < BASELINE_RESEND
            and not differs(sent[1], baseline, BASELINE_CHANGE_W)
        ):
            return
        if source is BaselineSource.FLAT_ESTIMATE:
            LOGGER.info("%s: the baseline sent is a flat estimate", self.entry.title)
        self._publish(baseline)
        self.baseline_sent = (now, baseline, source)

    def _topic(self, channel: Channel) -> Topic:
        return Topic(self.membership.community, self.membership.household, channel)

    def _message(self, body: Body) -> Message:
        return Message(
            community=self.membership.community,
            household=self.membership.household,
            sent_at=self._clock(),
            body=body,
        )

    def _publish(self, body: Body, *, retain: bool = False) -> None:
        message = self._message(body)
        self.link.publish(str(message.topic), encode(message), retain=retain)

    def as_dict(self) -> dict[str, Any]:
        """For diagnostics: no credentials."""
        return {
            "state": self.state.value,
            "community": self.membership.community,
            "household": self.membership.household,
            "participating": self.participating,
            "limit_expires_at": self.limit.expires_at if self.limit else None,
            "received": self.received,
            "rejected": self.rejected,
            "baseline_source": self.baseline_sent[2].value if self.baseline_sent else None,
        }


def _loose_message_id(payload: bytes) -> str | None:
    """The id of a message that did not validate, to reject it by name if it has one."""
    try:
        document = json.loads(payload)
        Ack(ref_id=document["id"], status=AckStatus.REJECTED)
    except ValueError, KeyError, TypeError, RecursionError, ProtocolError:
        return None
    return cast("str", document["id"])
