"""Both household hosts answer the community alike: Home Assistant and the simulated member.

Each scenario is one sequence of deliveries, pauses and waits, the same bytes for both
hosts: Home Assistant's community runtime, set up in Home Assistant's test harness with
its guarded connection (the MQTT link replaced by a recorder), and the simulated member
with its home and guard. After every step each host's guard decides on a fresh meter
reading; the test asserts that both sent the same acknowledgements and that their guards
hold the same community caps, and that these are the protocol's expected ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from community_server.simulation.home import SimulatedHome
from community_server.simulation.member import MemberAccount, SimulatedMember
from community_server.simulation.profiles import HouseholdProfile
from custom_components.netbewust.community import runtime as community_runtime
from custom_components.netbewust.community.const import (
    CONF_CONNECTION_ENTRY,
    CONF_ENTRY_KIND,
    CONF_SERVER_URL,
    ENTRY_KIND_COMMUNITY,
)
from custom_components.netbewust.community.join import Membership, MqttSettings
from custom_components.netbewust.community.setup import membership_data
from custom_components.netbewust.const import DOMAIN
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.protocol.messages import (
    Ack,
    Body,
    Channel,
    EmergencyCommand,
    EmergencyLevel,
    EmergencyReason,
    Features,
    LimitUpdate,
    Message,
    Notice,
    NoticeCode,
    Receipt,
    ReleaseCommand,
    Topic,
    decode,
    encode,
)
from tests.integration.community.recording_link import RecordingLink
from tests.integration.conftest import MAIN_DATA, set_meter

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.core import HomeAssistant

    from custom_components.netbewust.community.runtime import CommunityRuntime
    from custom_components.netbewust.guard.runtime import NetbewustRuntime

COMMUNITY = "wijk-1"
HOUSEHOLD = "huis-1"
T0 = datetime(2026, 1, 14, 18, 30, tzinfo=UTC)
STEP = timedelta(seconds=1)
# One phase, 25 A, nothing but base load: the connection of Home Assistant's test entry.
PROFILE = HouseholdProfile(
    phases=1,
    fuse_current_a=25.0,
    annual_kwh=3000.0,
    noise=0.0,
    pv_peak_w=0.0,
    ev_session=None,
    ev_max_current_a=16.0,
    heat_pump_rated_w=0.0,
)

type AckSeen = tuple[str, str, str | None]  # ref_id, status, reason
type Caps = tuple[bool, str, float | None]  # safe mode, limit source, binding cap in A


# --- the sequences ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deliver:
    message: Message

    @property
    def topic(self) -> str:
        return str(self.message.topic)

    @property
    def payload(self) -> bytes:
        return encode(self.message)


@dataclass(frozen=True, slots=True)
class Raw:
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Pause:
    participating: bool


@dataclass(frozen=True, slots=True)
class Wait:
    duration: timedelta


type Step = Deliver | Raw | Pause | Wait


def _message(message_id: str, body: Body, sent_at: datetime = T0) -> Deliver:
    return Deliver(
        Message(
            community=COMMUNITY,
            household=HOUSEHOLD,
            sent_at=sent_at,
            body=body,
            message_id=message_id,
        )
    )


def limit(
    message_id: str,
    max_import_w: float,
    *,
    issued: timedelta = timedelta(0),
    expires: timedelta = timedelta(minutes=15),
    source: LimitSource = LimitSource.COMMUNITY,
) -> Deliver:
    start = T0 - timedelta(minutes=1)
    return _message(
        message_id,
        LimitUpdate(
            limit=ExternalLimit(
                source=source,
                issued_at=T0 + issued,
                expires_at=T0 + expires,
                intervals=(
                    LimitInterval(
                        start=start, end=T0 + timedelta(hours=1), max_import_w=max_import_w
                    ),
                ),
            )
        ),
    )


def emergency(message_id: str, level: EmergencyLevel, max_import_w: float = 1150.0) -> Deliver:
    return _message(
        message_id,
        EmergencyCommand(
            level=level,
            reason=EmergencyReason.TRANSFORMER_OVERLOAD,
            starts_at=T0 - timedelta(minutes=1),
            expires_at=T0 + timedelta(minutes=10),
            max_import_w=max_import_w,
        ),
    )


def release(message_id: str, releases: str | None = None) -> Deliver:
    return _message(message_id, ReleaseCommand(releases=releases))


FUSE: Caps = (False, "fuse", None)
A10: Caps = (False, "community", 10.0)  # 2300 W on one phase at 230 V
APPLIED = "applied"
REJECTED = "rejected"
EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Scenario:
    """Steps, each with the ack it draws (None: none) and the caps the guard holds after."""

    steps: tuple[tuple[Step, AckSeen | None, Caps], ...]


SCENARIOS: dict[str, Scenario] = {
    "an older limit after a newer one is rejected": Scenario(
        (
            (limit("new", 2300.0), ("new", APPLIED, None), A10),
            (
                limit("old", 1150.0, issued=-timedelta(minutes=1)),
                ("old", REJECTED, "older than the limit in force"),
                A10,
            ),
            (
                limit("newer", 3450.0, issued=STEP),
                ("newer", APPLIED, None),
                (False, "community", 15.0),
            ),
        )
    ),
    "an expired limit is not applied": Scenario(
        (
            (
                limit("late", 2300.0, issued=-timedelta(minutes=2), expires=-STEP),
                ("late", EXPIRED, None),
                FUSE,
            ),
            (limit("fresh", 2300.0), ("fresh", APPLIED, None), A10),
        )
    ),
    "an advisory emergency caps nothing": Scenario(
        (
            (emergency("e1", EmergencyLevel.ADVISORY), ("e1", APPLIED, None), FUSE),
            (release("r1", "e1"), ("r1", APPLIED, None), FUSE),
        )
    ),
    "a curtailing emergency caps until released": Scenario(
        (
            (limit("l1", 2300.0), ("l1", APPLIED, None), A10),
            (
                emergency("e1", EmergencyLevel.CURTAIL),
                ("e1", APPLIED, None),
                (False, "emergency", 5.0),
            ),
            (release("r1", "other"), ("r1", APPLIED, None), (False, "emergency", 5.0)),
            (release("r2", "e1"), ("r2", APPLIED, None), A10),
        )
    ),
    "a critical emergency switches flexible devices off until released": Scenario(
        (
            (limit("l1", 2300.0), ("l1", APPLIED, None), A10),
            (
                emergency("e1", EmergencyLevel.CRITICAL),
                ("e1", APPLIED, None),
                (True, "emergency", None),
            ),
            (release("r1"), ("r1", APPLIED, None), A10),
            # QoS 1 may deliver the command again: answered alike, not applied again.
            (emergency("e1", EmergencyLevel.CRITICAL), ("e1", APPLIED, None), A10),
        )
    ),
    "an emergency limit from the allocation and a command share the emergency slot": Scenario(
        (
            (
                limit("l1", 2300.0, source=LimitSource.EMERGENCY),
                ("l1", APPLIED, None),
                (False, "emergency", 10.0),
            ),
            (
                emergency("e1", EmergencyLevel.CURTAIL),
                ("e1", APPLIED, None),
                (False, "emergency", 5.0),
            ),
            (release("r1"), ("r1", APPLIED, None), (False, "emergency", 10.0)),
            (limit("l2", 2300.0, issued=STEP), ("l2", APPLIED, None), A10),
        )
    ),
    "paused, the household holds no community cap and refuses commands": Scenario(
        (
            (limit("l1", 2300.0), ("l1", APPLIED, None), A10),
            (Pause(participating=False), None, FUSE),
            (
                limit("l2", 3450.0, issued=STEP),
                ("l2", REJECTED, "participation paused"),
                FUSE,
            ),
            (
                emergency("e1", EmergencyLevel.CRITICAL),
                ("e1", REJECTED, "participation paused"),
                FUSE,
            ),
            (Pause(participating=True), None, (False, "community", 15.0)),
            # The retained copy after a reconnect: decided again, so now applied.
            (limit("l2", 3450.0, issued=STEP), ("l2", APPLIED, None), (False, "community", 15.0)),
        )
    ),
    "the server's features are news: no answer, and limits and commands as before": Scenario(
        (
            (_message("f1", Features(features=("heat_pump_flexibility", "later"))), None, FUSE),
            (limit("l1", 2300.0), ("l1", APPLIED, None), A10),
            (
                emergency("e1", EmergencyLevel.CRITICAL),
                ("e1", APPLIED, None),
                (True, "emergency", None),
            ),
            (_message("f2", Features(features=())), None, (True, "emergency", None)),
            (release("r1"), ("r1", APPLIED, None), A10),
        )
    ),
    "server gone: the limit lapses at its expiry and the household runs local-only": Scenario(
        (
            (limit("l1", 2300.0, expires=timedelta(minutes=1)), ("l1", APPLIED, None), A10),
            (Wait(timedelta(seconds=30)), None, A10),
            (Wait(timedelta(seconds=31)), None, FUSE),
            (
                emergency("e1", EmergencyLevel.CURTAIL),
                ("e1", APPLIED, None),
                (False, "emergency", 5.0),
            ),
            (Wait(timedelta(minutes=10)), None, FUSE),
        )
    ),
    "garbled, foreign and future messages are refused": Scenario(
        (
            (Raw(str(Topic(COMMUNITY, HOUSEHOLD, Channel.LIMITS)), b"{broken"), None, FUSE),
            (
                Raw(
                    str(Topic(COMMUNITY, "huis-2", Channel.LIMITS)),
                    encode(
                        Message(
                            community=COMMUNITY,
                            household="huis-2",
                            sent_at=T0,
                            body=limit("x", 1150.0).message.body,
                            message_id="foreign",
                        )
                    ),
                ),
                ("foreign", REJECTED, "not this household's topic"),
                FUSE,
            ),
            (
                _message("ahead", limit("x", 1150.0).message.body, T0 + timedelta(hours=1)),
                ("ahead", REJECTED, "sent in the future: is the household's clock right?"),
                FUSE,
            ),
            (
                limit("reused", 2300.0),
                ("reused", APPLIED, None),
                A10,
            ),
            # A receipt for reports is not a command: no ack, nothing for the guard.
            (_message("rc", Receipt(ids=("unknown",))), None, A10),
            # Nor is the server's notice that it refused a report: news, no ack.
            (
                _message(
                    "nt",
                    Notice(ref_id="r1", code=NoticeCode.FUTURE_TIMESTAMP, server_time=T0),
                ),
                None,
                A10,
            ),
            (
                limit("reused", 1150.0, issued=STEP),
                ("reused", REJECTED, "a message id used before for another message"),
                A10,
            ),
        )
    ),
}


# --- the hosts --------------------------------------------------------------------------


def _caps(decision: Any) -> Caps:
    """Safe mode, what binds, and the binding cap unless that is the fuse (the hosts'
    fuse margins differ; the community's caps are what this test compares)."""
    safe = decision.state.value == "safe_mode"
    source = decision.limit_source.value
    binding = None if safe or source == "fuse" else round(decision.phase_limit_a[0], 1)
    return safe, source, binding


def _ack(payload: bytes) -> AckSeen:
    body = decode(payload).body
    assert isinstance(body, Ack)
    return body.ref_id, body.status.value, body.reason


class HomeAssistantHost:
    def __init__(self, hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
        self.hass = hass
        self.freezer = freezer
        self.now = T0
        self.runtime: CommunityRuntime | None = None
        self.guard: NetbewustRuntime | None = None
        self.entry: MockConfigEntry | None = None

    async def start(self) -> None:
        self.freezer.move_to(T0)
        hass = self.hass
        connection = MockConfigEntry(domain=DOMAIN, title="Home", data=MAIN_DATA)
        connection.add_to_hass(hass)
        set_meter(hass, 1000)
        assert await hass.config_entries.async_setup(connection.entry_id)
        await hass.async_block_till_done()
        settings = MqttSettings(
            host="127.0.0.1", port=1, tls=False, client_id=HOUSEHOLD, username=HOUSEHOLD,
            password="x", ca_pem=None,
        )  # fmt: skip
        membership = Membership(community=COMMUNITY, household=HOUSEHOLD, mqtt=settings)
        self.entry = MockConfigEntry(
            domain=DOMAIN,
            title=COMMUNITY,
            unique_id=f"{COMMUNITY}/{HOUSEHOLD}",
            data={
                **membership_data(membership),
                CONF_ENTRY_KIND: ENTRY_KIND_COMMUNITY,
                CONF_SERVER_URL: "http://127.0.0.1:1",
                CONF_CONNECTION_ENTRY: connection.entry_id,
            },
        )
        self.entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(self.entry.entry_id)
        await hass.async_block_till_done()
        self.runtime = self.entry.runtime_data
        self.guard = connection.runtime_data

    @property
    def link(self) -> RecordingLink:
        assert self.runtime is not None
        link: RecordingLink = self.runtime.link  # type: ignore[assignment]
        return link

    async def step(self, step: Step) -> tuple[list[AckSeen], Caps]:
        assert self.runtime is not None
        assert self.entry is not None
        self.link.published.clear()
        match step:
            case Deliver() | Raw():
                self.runtime.async_handle_message(step.topic, step.payload)
            case Pause(participating=participating):
                switch = next(
                    entity.entity_id
                    for entity in er.async_entries_for_config_entry(
                        er.async_get(self.hass), self.entry.entry_id
                    )
                    if entity.domain == "switch"
                )
                service = "turn_on" if participating else "turn_off"
                await self.hass.services.async_call(
                    "switch", service, {"entity_id": switch}, blocking=True
                )
            case Wait(duration=duration):
                self._move(self.now + duration)
        await self.hass.async_block_till_done()
        acks = [_ack(payload) for topic, payload in self.link.published if topic.endswith("/ack")]
        return acks, await self.caps()

    def _move(self, moment: datetime) -> None:
        self.now = moment
        self.freezer.move_to(moment)
        async_fire_time_changed(self.hass, moment)

    async def caps(self) -> Caps:
        """A fresh meter reading a second later, and the guard's decision on it."""
        assert self.guard is not None
        self._move(self.now + STEP)
        set_meter(self.hass, 1000)
        await self.hass.async_block_till_done()
        assert self.guard.last_decision is not None
        assert self.guard.last_decision.timestamp == self.now
        return _caps(self.guard.last_decision)

    async def stop(self) -> None:
        assert self.entry is not None
        assert await self.hass.config_entries.async_unload(self.entry.entry_id)


class SimulatedHost:
    def __init__(self) -> None:
        self.now = T0
        account = MemberAccount(COMMUNITY, HOUSEHOLD, HOUSEHOLD, "x", "127.0.0.1", 1)
        self.member = SimulatedMember(
            account, SimulatedHome(PROFILE, seed=1), clock=lambda: self.now
        )
        self.member.tick(self.now)

    def step(self, step: Step) -> tuple[list[AckSeen], Caps]:
        seen = len(self.member.acks_sent)
        match step:
            case Deliver() | Raw():
                self.member.handle(step.topic, step.payload)
            case Pause(participating=participating):
                self.member.set_participating(participating)
            case Wait(duration=duration):
                self.now += duration
                self.member.tick(self.now)
        acks = [(ack.ref_id, ack.status.value, ack.reason) for ack in self.member.acks_sent[seen:]]
        return acks, self.caps()

    def caps(self) -> Caps:
        self.now += STEP
        self.member.tick(self.now)
        decision = self.member.home.last_decision
        assert decision is not None
        assert decision.timestamp == self.now
        return _caps(decision)


@pytest.fixture
async def home_assistant(
    hass: HomeAssistant,
    enable_custom_integrations: None,
    freezer: FrozenDateTimeFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[HomeAssistantHost]:
    monkeypatch.setattr(community_runtime, "CommunityLink", RecordingLink)
    host = HomeAssistantHost(hass, freezer)
    await host.start()
    yield host
    await host.stop()


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_both_hosts_answer_and_obey_alike(
    name: str, home_assistant: HomeAssistantHost
) -> None:
    simulated = SimulatedHost()
    assert await home_assistant.caps() == simulated.caps() == FUSE
    for index, (step, expected_ack, expected_caps) in enumerate(SCENARIOS[name].steps):
        in_home_assistant = await home_assistant.step(step)
        in_simulation = simulated.step(step)
        expected = ([expected_ack] if expected_ack else [], expected_caps)
        assert in_home_assistant == in_simulation, f"step {index}: {step}"
        assert in_simulation == expected, f"step {index}: {step}"
