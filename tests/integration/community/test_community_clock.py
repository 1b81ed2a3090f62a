"""A household whose clock is off the community server's sees why: a repair issue.

Home Assistant's community runtime on its guarded connection, with the MQTT link replaced
by a recorder: the server's notice (the household's clock is ahead, its reports are
refused) and a limit stamped ahead of the household's clock (it is behind) each raise
their repair issue, shown in the diagnostics too, and each clears when the session no
longer finds the clock off. End to end, a real server whose clock is off the
household's, over mosquitto, raises them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

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
from custom_components.netbewust.diagnostics import async_get_config_entry_diagnostics
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.protocol.messages import (
    Ack,
    AckStatus,
    Body,
    LimitUpdate,
    Message,
    Notice,
    NoticeCode,
    decode,
    encode,
)
from tests.clock import clock_now
from tests.integration.conftest import MAIN_DATA, set_meter
from tests.server.household_client import wait_until

from .conftest import Community, _run_community, join
from .recording_link import RecordingLink

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.config_entries import ConfigEntry
    from homeassistant.core import HomeAssistant

    from community_server.store import Store
    from custom_components.netbewust.community.runtime import CommunityRuntime
    from tests.server.conftest import Broker

COMMUNITY = "wijk-1"
HOUSEHOLD = "huis-1"
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
async def membership(
    hass: HomeAssistant,
    enable_custom_integrations: None,
    freezer: FrozenDateTimeFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[MockConfigEntry]:
    monkeypatch.setattr(community_runtime, "CommunityLink", RecordingLink)
    freezer.move_to(T0)
    connection = MockConfigEntry(domain=DOMAIN, title="Home", data=MAIN_DATA)
    connection.add_to_hass(hass)
    set_meter(hass, 1000)
    assert await hass.config_entries.async_setup(connection.entry_id)
    settings = MqttSettings(
        host="127.0.0.1", port=1, tls=False, client_id=HOUSEHOLD, username=HOUSEHOLD,
        password="x", ca_pem=None,
    )  # fmt: skip
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=COMMUNITY,
        unique_id=f"{COMMUNITY}/{HOUSEHOLD}",
        data={
            **membership_data(Membership(community=COMMUNITY, household=HOUSEHOLD, mqtt=settings)),
            CONF_ENTRY_KIND: ENTRY_KIND_COMMUNITY,
            CONF_SERVER_URL: "http://127.0.0.1:1",
            CONF_CONNECTION_ENTRY: connection.entry_id,
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    yield entry
    if entry.state.recoverable:
        await hass.config_entries.async_unload(entry.entry_id)


def _runtime(entry: MockConfigEntry) -> CommunityRuntime:
    runtime: CommunityRuntime = entry.runtime_data
    return runtime


async def _deliver(
    hass: HomeAssistant, entry: MockConfigEntry, body: Body, sent_at: datetime
) -> None:
    message = Message(community=COMMUNITY, household=HOUSEHOLD, sent_at=sent_at, body=body)
    _runtime(entry).async_handle_message(str(message.topic), encode(message))
    await hass.async_block_till_done()


async def _move(hass: HomeAssistant, freezer: FrozenDateTimeFactory, moment: datetime) -> None:
    freezer.move_to(moment)
    async_fire_time_changed(hass, moment)
    await hass.async_block_till_done()


def _issue(hass: HomeAssistant, kind: str, entry: ConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"{kind}_{entry.entry_id}")


def _limit(issued_at: datetime) -> LimitUpdate:
    return LimitUpdate(
        limit=ExternalLimit(
            source=LimitSource.COMMUNITY,
            issued_at=issued_at,
            expires_at=issued_at + timedelta(minutes=15),
            intervals=(
                LimitInterval(
                    start=issued_at, end=issued_at + timedelta(hours=1), max_import_w=2300.0
                ),
            ),
        )
    )


def _last_ack(entry: MockConfigEntry) -> Ack:
    link: RecordingLink = _runtime(entry).link  # type: ignore[assignment]
    body = decode(next(p for t, p in reversed(link.published) if t.endswith("/ack"))).body
    assert isinstance(body, Ack)
    return body


async def test_a_clock_ahead_raises_a_repair_issue_until_the_notices_stop(
    hass: HomeAssistant, membership: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    assert _issue(hass, "clock_ahead", membership) is None
    # The server's clock read 7 minutes less when it refused our report.
    server_time = T0 - timedelta(minutes=7)
    notice = Notice(ref_id="t1", code=NoticeCode.FUTURE_TIMESTAMP, server_time=server_time)
    await _deliver(hass, membership, notice, server_time)
    raised = _issue(hass, "clock_ahead", membership)
    assert raised is not None
    assert raised.severity is ir.IssueSeverity.ERROR
    assert raised.translation_placeholders == {"title": COMMUNITY, "minutes": "7"}
    assert _issue(hass, "clock_behind", membership) is None
    diagnostics = await async_get_config_entry_diagnostics(hass, membership)
    shown = diagnostics["runtime"]
    assert (shown["clock_skew_s"], shown["clock_beyond_tolerance"]) == (420.0, True)
    assert shown["repair_issues"] == ["clock_ahead"]

    # Still refused: the server repeats its notice; the issue stays.
    await _move(hass, freezer, T0 + timedelta(minutes=5))
    later = T0 + timedelta(minutes=5) - timedelta(minutes=7)
    await _deliver(hass, membership, notice, later)
    await _move(hass, freezer, T0 + timedelta(minutes=14, seconds=59))
    assert _issue(hass, "clock_ahead", membership) is not None
    # The clock was put right: no notice for ten minutes, and the issue is gone.
    await _move(hass, freezer, T0 + timedelta(minutes=15, seconds=1))
    assert _issue(hass, "clock_ahead", membership) is None
    diagnostics = await async_get_config_entry_diagnostics(hass, membership)
    assert (diagnostics["runtime"]["clock_skew_s"], diagnostics["runtime"]["repair_issues"]) == (
        None,
        [],
    )


async def test_a_clock_behind_raises_a_repair_issue_until_a_server_message_is_accepted(
    hass: HomeAssistant, membership: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    ahead = T0 + timedelta(minutes=8)
    await _deliver(hass, membership, _limit(ahead), ahead)
    assert _last_ack(membership).status is AckStatus.REJECTED
    raised = _issue(hass, "clock_behind", membership)
    assert raised is not None
    assert raised.translation_placeholders == {"title": COMMUNITY, "minutes": "8"}
    assert _issue(hass, "clock_ahead", membership) is None
    await _move(hass, freezer, T0 + timedelta(hours=1))  # time alone does not clear it
    assert _issue(hass, "clock_behind", membership) is not None

    now = T0 + timedelta(hours=1)
    await _deliver(hass, membership, _limit(now), now)
    assert _last_ack(membership).status is AckStatus.APPLIED
    assert _issue(hass, "clock_behind", membership) is None


async def test_unloading_the_membership_clears_its_clock_issue(
    hass: HomeAssistant, membership: MockConfigEntry
) -> None:
    ahead = T0 + timedelta(minutes=8)
    await _deliver(hass, membership, _limit(ahead), ahead)
    assert _issue(hass, "clock_behind", membership) is not None
    assert await hass.config_entries.async_unload(membership.entry_id)
    assert _issue(hass, "clock_behind", membership) is None


# --- end to end ---------------------------------------------------------------------------


@dataclass
class ServerClock:
    """The community server's clock: the test clock moved by `offset`."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return clock_now() + self.offset


@pytest.fixture
async def skewed(
    community_broker: Broker, community_store: Store, tmp_path: Path
) -> AsyncIterator[tuple[Community, ServerClock]]:
    clock = ServerClock()
    async for running in _run_community(
        community_broker, community_store, tmp_path, None, clock=clock
    ):
        yield running, clock


async def test_a_real_server_behind_the_household_sends_the_notice_that_raises_the_issue(
    hass: HomeAssistant,
    connection: MockConfigEntry,
    skewed: tuple[Community, ServerClock],
) -> None:
    community, server_clock = skewed
    entry = await join(hass, community, connection)
    server_clock.offset = -timedelta(minutes=7)  # our reports are 7 minutes ahead of it
    await wait_until(lambda: _issue(hass, "clock_ahead", entry) is not None, timeout_s=30)
    raised = _issue(hass, "clock_ahead", entry)
    assert raised is not None
    assert raised.translation_placeholders == {"title": entry.title, "minutes": "7"}
    assert community.server.metrics.notices[NoticeCode.FUTURE_TIMESTAMP, "sent"] == 1
    assert _issue(hass, "clock_behind", entry) is None
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert _issue(hass, "clock_ahead", entry) is None


async def test_a_real_server_ahead_of_the_household_raises_the_issue_until_it_is_not(
    hass: HomeAssistant,
    connection: MockConfigEntry,
    skewed: tuple[Community, ServerClock],
) -> None:
    community, server_clock = skewed
    entry = await join(hass, community, connection)
    # The server's receipts for our reports are stamped 8 minutes ahead of our clock.
    server_clock.offset = timedelta(minutes=8)
    await wait_until(lambda: _issue(hass, "clock_behind", entry) is not None, timeout_s=30)
    raised = _issue(hass, "clock_behind", entry)
    assert raised is not None
    assert raised.translation_placeholders == {"title": entry.title, "minutes": "8"}
    server_clock.offset = timedelta(0)  # the clocks agree again: the next receipt is in time
    await wait_until(lambda: _issue(hass, "clock_behind", entry) is None, timeout_s=30)
    assert not community.server.metrics.notices
    assert await hass.config_entries.async_unload(entry.entry_id)
