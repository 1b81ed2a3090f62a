"""A community membership in Home Assistant: the MQTT link around the household session.

The household side of protocol v1 (which limits and commands are accepted, emergency
levels, acknowledgements, reports) is the engine's `HouseholdSession`; this adapter
feeds it deliveries, meter samples and the connection's devices, publishes what it
returns, and gives the linked connection's guard exactly the caps it says are in force,
where they can only lower what the fuse allows. A limit lapses at its expiry unless
renewed, so when the server or broker is gone, or the membership stops (a reload, a
setup Home Assistant retries), the household is back to local-only operation by then;
on reconnecting, the retained limit and the persistent session resynchronise it. A
clock the session finds off the server's beyond the tolerance is a repair issue until
the session no longer does.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeIs

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util

from ..const import LOGGER
from ..core.protocol.messages import Message, ProtocolError, encode
from ..core.protocol.session import (
    COMMUNITY_SLOTS,
    BaselineSource,
    HouseholdAssets,
    HouseholdSession,
    InForce,
    Outgoing,
)
from ..entity import Updates
from ..guard.issues import Issue, IssueTracker
from ..guard.meter import read_meter
from ..guard.runtime import NetbewustRuntime
from ..guard.states import Rejections
from .baseline import BaselineBuilder
from .capabilities import household_assets
from .const import CONF_EAN, CONF_TARIFF_CLASS, is_community_entry
from .mqtt_client import CommunityLink, LinkCallbacks, Will, is_auth_refusal

if TYPE_CHECKING:
    from collections.abc import Callable

    from paho.mqtt.reasoncodes import ReasonCode

    from ..core.limits import ExternalLimit, LimitInterval
    from ..core.protocol.messages import EmergencyCommand
    from ..guard.runtime import NetbewustConfigEntry
    from .join import Membership

TICK = timedelta(seconds=1)
# How long setup waits for the broker's first answer; paho gives up a silent connection
# attempt after 5 s and reports it, so this only bounds a broker that accepts and stalls.
FIRST_ANSWER_TIMEOUT_S = 15.0
# Revoked credentials refuse every attempt; one refusal may be a broker still reloading.
AUTH_REFUSALS_BEFORE_REAUTH = 2
EMERGENCY_REASON_PREFIX = "community"

type CommunityConfigEntry = ConfigEntry[CommunityRuntime]
# The domain's two kinds of entry: a guarded connection and a community membership.
type AnyNetbewustEntry = NetbewustConfigEntry | CommunityConfigEntry


def is_membership_entry(entry: AnyNetbewustEntry) -> TypeIs[CommunityConfigEntry]:
    """A membership entry; its runtime data is a CommunityRuntime once it is set up."""
    return is_community_entry(entry.data)


class CommunityState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    OFFLINE = "offline"  # link down; the last limit is honoured until its expiry
    LOCAL_ONLY = "local_only"  # no community limit in force: server or broker gone
    PAUSED = "paused"  # the household paused participation
    AUTH_FAILED = "auth_failed"


class CommunityRuntime:
    """One membership: its MQTT link, its session and what the entities show."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: CommunityConfigEntry,
        membership: Membership,
        connection_entry_id: str,
        clock: Callable[[], datetime] = dt_util.utcnow,
    ) -> None:
        self.hass = hass
        self.entry = entry
        self.membership = membership
        self.connection_entry_id = connection_entry_id
        self._clock = clock
        self.session = HouseholdSession(membership.community, membership.household)
        self.link_up = False
        self.auth_failed = False
        self.ever_connected = False
        self.baseline_source: BaselineSource | None = None
        self._baselines = BaselineBuilder(hass)
        self._auth_refusals = 0
        self._applied: tuple[int, InForce] | None = None
        self._emergency_on: NetbewustRuntime | None = None
        self._shown: tuple[CommunityState, LimitInterval | None, LimitInterval | None] | None = None
        self.updates = Updates()
        self.issues = IssueTracker(hass, entry.entry_id, entry.title)
        self._unsubscribe: list[CALLBACK_TYPE] = []
        self._stopped = False
        self.link = CommunityLink(
            hass.loop,
            membership.mqtt,
            self.session.subscriptions,
            Will(
                str(self.session.presence(False, clock()).topic),
                encode(self.session.presence(False, clock())),
            ),
            LinkCallbacks(
                on_connected=self._on_connected,
                on_disconnected=self._on_disconnected,
                on_refused=self._on_refused,
                on_message=self.async_handle_message,
                on_unreachable=self._on_unreachable,
            ),
        )
        # Resolved by the broker's first answer, or a failed first attempt (setup waits).
        self._first_answer: asyncio.Future[None] = hass.loop.create_future()

    # --- lifecycle -------------------------------------------------------------------

    async def async_connect(self) -> bool:
        """Start the link and wait for the broker: True once connected; False when it
        cannot be reached, does not answer in time or refuses the credentials (then
        `auth_failed`). The caller stops the runtime after False."""
        await self.hass.async_add_executor_job(self.link.start)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_ANSWER_TIMEOUT_S):
                await asyncio.shield(self._first_answer)
        return self.link_up

    @callback
    def async_start(self) -> None:
        """Run the session's clock once connected (and its entities are added)."""
        self._unsubscribe.append(
            async_track_time_interval(self.hass, self._on_tick, TICK, name="netbewust community")
        )

    async def async_stop(self) -> None:
        self._stopped = True  # deliveries paho handed over before it stopped are dropped
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        goodbye = self.session.presence(False, self._clock())
        await self.hass.async_add_executor_job(
            self.link.stop, (str(goodbye.topic), encode(goodbye))
        )
        self.session.leave()
        if (runtime := self._connection()) is not None:
            # The guard keeps the caps until their expiry, as when the broker is gone (a
            # removed membership lifts them, see setup.py); a switch-off has no expiry
            # there, so the community's ends with the membership.
            self._sync_switch_off(runtime, self.session.in_force(self._clock()))
        self._applied = None
        self.issues.clear_all()

    @callback
    def _notify(self) -> None:
        self._shown = (self.state, self.interval_now(), self.interval_next())
        self.updates.notify()

    # --- what the entities show ------------------------------------------------------

    @property
    def participating(self) -> bool:
        return self.session.participating

    @property
    def limit(self) -> ExternalLimit | None:
        return self.session.limit

    @property
    def emergency(self) -> EmergencyCommand | None:
        return self.session.emergency

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
        if not self.session.set_participating(participating):
            return
        LOGGER.info(
            "%s: community participation %s",
            self.entry.title,
            "resumed" if participating else "paused",
        )
        self._sync_guard()
        self._notify()

    # --- MQTT link (on the event loop) -----------------------------------------------

    @callback
    def _answered(self) -> None:
        if not self._first_answer.done():
            self._first_answer.set_result(None)

    @callback
    def _on_unreachable(self) -> None:
        # Before the first answer, setup reports it; later the link keeps retrying.
        self._answered()

    @callback
    def _on_connected(self) -> None:
        self._answered()
        self.link_up = True
        self.ever_connected = True
        self._auth_refusals = 0
        LOGGER.info("%s: connected to the community broker", self.entry.title)
        self._send(self.session.connected(self._clock(), self._assets()), retain_presence=True)
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
        if not self._first_answer.done():
            self._answered()  # setup stops the link and asks for new credentials
            return
        # Stop retrying with credentials that no longer work; reauth brings new ones.
        self.hass.async_create_task(self.async_stop(), "netbewust community stop")
        self.entry.async_start_reauth(self.hass)
        self._notify()

    @callback
    def async_handle_message(self, topic: str, payload: bytes) -> None:
        """One delivery from the broker: the session decides, the guard follows, ack."""
        if self._stopped:
            return
        delivery = self.session.receive(topic, payload, self._clock())
        if delivery.invalid is not None:
            # The topic and reason only; a payload could be large or hostile.
            LOGGER.warning(
                "Rejected a community message on %s: %s", topic[:200], delivery.invalid[:300]
            )
        if delivery.reply is not None:
            self._publish(delivery.reply)
        self._update_clock_issue()
        if delivery.invalid is None and delivery.ack is not None:
            self._sync_guard()
            self._notify()

    # --- the guard -------------------------------------------------------------------

    def _connection(self) -> NetbewustRuntime | None:
        entry = self.hass.config_entries.async_get_entry(self.connection_entry_id)
        if entry is None or entry.state is not ConfigEntryState.LOADED:
            return None
        runtime = entry.runtime_data
        return runtime if isinstance(runtime, NetbewustRuntime) else None

    @callback
    def _sync_guard(self) -> None:
        """Give the connection's guard exactly the caps in force now (idempotent).

        Also run every tick: a reloaded connection entry has a fresh guard.
        """
        in_force = self.session.in_force(self._clock())
        for lapsed in in_force.lapsed:
            LOGGER.info("%s: the community %s expired", self.entry.title, lapsed)
        runtime = self._connection()
        if runtime is None:
            self._applied = None
            return
        wanted = (id(runtime), in_force)
        if self._applied is not None and _same_caps(self._applied, wanted):
            return
        self._applied = wanted
        for source in COMMUNITY_SLOTS:
            runtime.async_set_external_limit(source, in_force.guard_limits.get(source))
        self._sync_switch_off(runtime, in_force)

    def _sync_switch_off(self, runtime: NetbewustRuntime, in_force: InForce) -> None:
        """CRITICAL: every flexible device off, through the guard's emergency input."""
        ours = (runtime.emergency_reason or "").startswith(EMERGENCY_REASON_PREFIX)
        if in_force.switch_off and runtime.emergency_active and not ours:
            return  # the household's own emergency already switches everything off
        if in_force.switch_off and in_force.emergency is not None:
            runtime.async_set_emergency(
                True, f"{EMERGENCY_REASON_PREFIX}: {in_force.emergency.reason.value}"
            )
            self._emergency_on = runtime
        elif self._emergency_on is runtime and ours:
            # Only release what the community set, never the household's own emergency.
            runtime.async_set_emergency(False, "")
            self._emergency_on = None

    # --- reports ---------------------------------------------------------------------

    @callback
    def _update_clock_issue(self) -> None:
        """The session's clock skew as a repair issue: which way the clock is off."""
        skew = self.session.clock_skew(self._clock())
        off_s = skew.clock_skew_s if skew is not None and skew.beyond_tolerance else 0.0
        minutes = {"minutes": str(round(abs(off_s) / 60))}
        self.issues.update(Issue.CLOCK_AHEAD, off_s > 0, minutes)
        self.issues.update(Issue.CLOCK_BEHIND, off_s < 0, minutes)

    @callback
    def _on_tick(self, now: datetime) -> None:
        self._sync_guard()
        self._update_clock_issue()
        self._send(self.session.tick(self._clock(), self._sample(), self._assets))
        if self.link_up:  # reports the server did not confirm (a broker lost them)
            self._send(self.session.resend(self._clock()))
        if self.link_up and self.session.baseline_due(now):
            self.entry.async_create_background_task(
                self.hass, self._async_send_baseline(), "netbewust community baseline"
            )
        # Time alone changes what is shown: a limit expires, the next interval begins.
        if (self.state, self.interval_now(), self.interval_next()) != self._shown:
            self._notify()

    def _sample(self) -> tuple[float, ...] | None:
        runtime = self._connection()
        if runtime is None:
            return None
        reading = read_meter(
            self.hass.states.get, runtime.config.meter, self._clock(), Rejections()
        )
        per_phase = tuple(phase.power_w for phase in reading.phases if phase.power_w is not None)
        if per_phase and len(per_phase) == len(reading.phases):
            return per_phase
        if reading.total_power_w is not None:
            return (reading.total_power_w,)
        return None

    def _assets(self) -> HouseholdAssets | None:
        runtime = self._connection()
        if runtime is None:
            return None
        return household_assets(
            runtime,
            self.hass.states.get,
            self._clock(),
            dt_util.get_default_time_zone(),
            ean=self.entry.data.get(CONF_EAN),
            tariff_class=self.entry.data.get(CONF_TARIFF_CLASS),
        )

    async def _async_send_baseline(self) -> None:
        """Built from the planner or the recorder; the session says whether to send it."""
        runtime = self._connection()
        if runtime is None:
            return
        now = self._clock()
        try:
            baseline, source = await self._baselines.async_build(runtime, now)
        except (ProtocolError, ValueError) as err:
            LOGGER.warning("%s: baseline not sent: %s", self.entry.title, err)
            return
        message = self.session.baseline(now, baseline, source)
        if message is None:
            return
        if source is BaselineSource.FLAT_ESTIMATE:
            LOGGER.info("%s: the baseline sent is a flat estimate", self.entry.title)
        self.baseline_source = source
        self._publish(message)

    def _send(self, outgoing: Outgoing, *, retain_presence: bool = False) -> None:
        for problem in outgoing.problems:
            LOGGER.warning("%s: %s", self.entry.title, problem)
        for message in outgoing.messages:
            self._publish(message, retain=retain_presence and message.type_name == "presence")

    def _publish(self, message: Message, *, retain: bool = False) -> None:
        self.link.publish(str(message.topic), encode(message), retain=retain)

    def as_dict(self) -> dict[str, Any]:
        """For diagnostics: no credentials."""
        limit = self.session.limit
        skew = self.session.clock_skew(self._clock())
        return {
            "state": self.state.value,
            "community": self.membership.community,
            "household": self.membership.household,
            "participating": self.participating,
            "limit_expires_at": limit.expires_at if limit else None,
            "emergency_level": self.emergency.level.name.lower() if self.emergency else None,
            "received": self.session.received,
            "rejected": self.session.rejected,
            "reports_unconfirmed": len(self.session.unconfirmed),
            "reports_dropped": self.session.dropped,
            "outdoor_rejected": self.session.outdoor_rejected,
            "baseline_source": self.baseline_source.value if self.baseline_source else None,
            # What the server said it reads beyond first v1 (heat-pump flexibility).
            "server_features": sorted(self.session.server_features),
            "clock_skew_s": skew.clock_skew_s if skew else None,
            "clock_beyond_tolerance": skew is not None and skew.beyond_tolerance,
            "repair_issues": sorted(self.issues.active),
        }

    @property
    def received(self) -> int:
        return self.session.received

    @property
    def rejected(self) -> int:
        return self.session.rejected


def _same_caps(before: tuple[int, InForce], after: tuple[int, InForce]) -> bool:
    """The same guard, limits and switch-off: nothing to tell the guard again."""
    return (before[0], dict(before[1].guard_limits), before[1].switch_off) == (
        after[0],
        dict(after[1].guard_limits),
        after[1].switch_off,
    )
