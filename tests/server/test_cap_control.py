"""The live allocation loop: limits when the members near the cap, renewals, release."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from community_server.cap_control import (
    GUARANTEED_MIN_W,
    CapControl,
    RoundFailed,
    fixed_cap,
    is_fresh,
    why_excluded,
)
from community_server.dashboard import Dashboard
from community_server.dso.in_force import CapInForce, NonMemberLoadSource
from community_server.dso.signals import CapMode, SignalSource
from netbewust_core.allocation.model import MAX_HOUSEHOLD_POWER_W
from netbewust_core.limits import LimitSource
from netbewust_core.protocol.messages import (
    BaselineForecast,
    Capabilities,
    LimitUpdate,
    Message,
    Telemetry,
    encode,
)

from .conftest import NOW

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from community_server.cap_control import CapProvider
    from community_server.store import Store
    from netbewust_core.limits import ExternalLimit


@dataclass
class FakeServer:
    """The parts of CommunityServer the loop uses; sends are recorded, not published."""

    latest_telemetry: dict[str, Telemetry] = field(default_factory=dict)
    latest_baseline: dict[str, BaselineForecast] = field(default_factory=dict)
    sent: list[tuple[str, ExternalLimit]] = field(default_factory=list)
    bursts: list[int] = field(default_factory=list)
    fail: bool = False
    is_connected: bool = True

    async def run_in_db(self, call: Callable[..., Any], *args: Any) -> Any:
        return call(*args)

    async def send_limits(self, limits: dict[str, ExternalLimit]) -> list[Message]:
        if self.fail:
            raise OSError("broker gone")
        self.bursts.append(len(limits))
        self.sent.extend(limits.items())
        return [
            Message(community="wijk-1", household=hid, sent_at=NOW, body=LimitUpdate(limit=limit))
            for hid, limit in limits.items()
        ]

    def report(self, household: str, watts: float, at: datetime) -> None:
        self.latest_telemetry[household] = Telemetry(
            measured_at=at, interval_s=10, power_w=(watts / 3,) * 3, participating=True
        )


def _members(store: Store, count: int) -> list[str]:
    store.create_transformer("trafo-1", "wijk-1", "Trafo 1", 10_000.0)
    names = []
    for number in range(count):
        code = store.issue_join_code("wijk-1", NOW, timedelta(days=1), "trafo-1").code
        name = store.redeem_join_code(code, NOW, f"huis-{number}").household_id
        caps = Capabilities(phases=3, fuse_current_a=25.0)
        store.save_received(
            [Message(community="wijk-1", household=name, sent_at=NOW, body=caps)], NOW
        )
        names.append(name)
    return names


async def test_limits_hold_the_members_below_the_cap_and_are_released(
    server_store: Store,
) -> None:
    names = _members(server_store, 3)
    server = FakeServer()
    control = CapControl(server, server_store, "trafo-1", fixed_cap(10_000.0))  # type: ignore[arg-type]
    for name in names:
        server.report(name, 5000.0, NOW)
    allocation = await control.step(NOW)
    limited = dict(server.sent)
    assert set(limited) == set(names)
    in_force = [limit.interval_at(NOW) for limit in limited.values()]
    assert sum(i.max_import_w or 0 for i in in_force if i is not None) <= 10_000.0
    assert control.status is not None
    assert control.status.phase == str(allocation.phase) == "engaged"

    server.sent.clear()
    later = NOW + timedelta(seconds=10)
    for name in names:
        server.report(name, 3300.0, later)
    await control.step(later)
    assert len(server.sent) <= len(names)  # only limits that moved by over 1 %

    quiet = later
    for _round in range(80):  # loads far below the cap for over ten minutes
        quiet += timedelta(seconds=10)
        for name in names:
            server.report(name, 500.0, quiet)
        await control.step(quiet)
    cleared = [limit for _name, limit in server.sent if not limit.intervals]
    assert {name for name, limit in server.sent if not limit.intervals} == set(names)
    assert all(limit.interval_at(quiet) is None for limit in cleared)
    assert control.status.phase == "idle"


async def test_silent_and_foreign_households_are_left_out(server_store: Store) -> None:
    names = _members(server_store, 2)
    server_store.create_transformer("trafo-2", "wijk-1", "Trafo 2", 10_000.0)
    code = server_store.issue_join_code("wijk-1", NOW, timedelta(days=1), "trafo-2").code
    elsewhere = server_store.redeem_join_code(code, NOW, "huis-elders").household_id
    server = FakeServer()
    control = CapControl(server, server_store, "trafo-1", fixed_cap(10_000.0))  # type: ignore[arg-type]
    server.report(names[0], 12_000.0, NOW)
    server.report(names[1], 12_000.0, NOW - timedelta(minutes=5))  # stale: not reporting
    server.report(elsewhere, 12_000.0, NOW)  # behind another transformer
    await control.step(NOW)
    assert {name for name, _limit in server.sent} == {names[0]}


def _capabilities(store: Store, household: str, capabilities: Capabilities) -> None:
    store.save_received(
        [Message(community="wijk-1", household=household, sent_at=NOW, body=capabilities)], NOW
    )


def _emergency(cap_w: float, non_member_w: float | None = None) -> CapProvider:
    """A DSO emergency in force from NOW for an hour, with the DSO's non-member figure."""

    async def provide(transformer_id: str, now: datetime) -> CapInForce:
        return CapInForce(
            transformer_id=transformer_id,
            at=now,
            import_w=cap_w,
            export_w=None,
            mode=CapMode.EMERGENCY,
            source=SignalSource.OPENADR,
            signal_ids=("oadr-ev",),
            until=NOW + timedelta(hours=1),
            non_member_load_w=non_member_w,
            non_member_load_source=NonMemberLoadSource.UNKNOWN
            if non_member_w is None
            else NonMemberLoadSource.DSO_MEASUREMENT,
        )

    return provide


class Switchable:
    """A cap provider the test switches between a fixed frame and an emergency."""

    def __init__(self, frame_w: float) -> None:
        self.provider = fixed_cap(frame_w)

    async def __call__(self, transformer_id: str, now: datetime) -> CapInForce:
        return await self.provider(transformer_id, now)


async def _dashboard(server: FakeServer, store: Store, control: CapControl) -> dict[str, Any]:
    """The operators' dashboard document for this one transformer."""
    dashboard = Dashboard(server, store, [control])  # type: ignore[arg-type]
    return await dashboard.snapshot(NOW)


def _in_force(limit: ExternalLimit, now: datetime) -> float | None:
    interval = limit.interval_at(now)
    return None if interval is None else interval.max_import_w


def _corrupt_capabilities(database: Path, household: str) -> None:
    """Capabilities stored under older rules that today's protocol refuses (9999 A)."""
    stored = encode(
        Message(
            community="wijk-1",
            household=household,
            sent_at=NOW,
            body=Capabilities(phases=3, fuse_current_a=25.0),
        )
    ).replace(b'"fuse_current_a":25.0', b'"fuse_current_a":9999.0')
    connection = sqlite3.connect(database)
    with connection:
        connection.execute(
            "UPDATE households SET capabilities = ? WHERE household_id = ?",
            (stored.decode(), household),
        )
    connection.close()


async def test_a_member_whose_data_cannot_be_used_is_left_out_and_still_gets_the_emergency(
    server_store: Store, tmp_path: Path
) -> None:
    names = _members(server_store, 3)
    odd, *normal = names
    _corrupt_capabilities(tmp_path / "server.db", odd)
    server = FakeServer()
    caps = Switchable(10_000.0)
    control = CapControl(server, server_store, "trafo-1", caps)  # type: ignore[arg-type]
    for name in names:
        server.report(name, 6000.0, NOW)
    await control.step(NOW)
    assert {name for name, _limit in server.sent} == set(normal)
    assert control.status is not None
    assert control.status.phase == "engaged"
    [exclusion] = control.status.excluded
    assert (exclusion.household_id, exclusion.reason) == (odd, "excluded")
    assert "fuse_current_a" in exclusion.detail
    assert control.exclusions == {"excluded": 1}
    [shown] = (await _dashboard(server, server_store, control))["transformers"]
    assert shown["allocation"] == "engaged"
    assert [e["household"] for e in shown["cap"]["excluded"]] == [odd]
    # Its 6 kW still loads the transformer: the others share what is left of 10 kW.
    granted = [_in_force(limit, NOW) or 0.0 for _name, limit in server.sent]
    assert sum(granted) <= 10_000.0 - 6000.0

    server.sent.clear()
    caps.provider = _emergency(3000.0)
    later = NOW + timedelta(seconds=10)
    for name in names:
        server.report(name, 6000.0, later)
    await control.step(later)
    sent = dict(server.sent)
    assert set(sent) == set(names)  # the emergency reaches every member
    assert all(limit.source is LimitSource.EMERGENCY for limit in sent.values())
    assert _in_force(sent[odd], later) == GUARANTEED_MIN_W  # no baseline: the default floor
    assert control.status.phase == "emergency"
    assert control.status.limited == 3
    assert control.exclusions == {"excluded": 2}

    server.sent.clear()
    caps.provider = fixed_cap(10_000.0)
    end = later + timedelta(seconds=10)
    for name in names:
        server.report(name, 1000.0, end)
    await control.step(end)
    # The emergency is over: its limit for the member left out is cleared.
    assert [limit.intervals for name, limit in server.sent if name == odd] == [()]


async def test_a_3x100_a_member_never_stops_the_others(server_store: Store) -> None:
    names = _members(server_store, 3)
    big, *normal = names
    # Protocol v1 accepts fuses up to 250 A; the allocator's own range decides whether
    # it is allocated or left out, and the others are allocated either way.
    left_out = MAX_HOUSEHOLD_POWER_W < 3 * 100.0 * 230.0
    _capabilities(server_store, big, Capabilities(phases=3, fuse_current_a=100.0))
    server = FakeServer()
    caps = Switchable(10_000.0)
    control = CapControl(server, server_store, "trafo-1", caps)  # type: ignore[arg-type]
    for name in names:
        server.report(name, 6000.0, NOW)
    await control.step(NOW)
    assert set(normal) <= {name for name, _limit in server.sent}
    assert control.status is not None
    assert [e.household_id for e in control.status.excluded] == ([big] if left_out else [])

    caps.provider = _emergency(3000.0)
    server.sent.clear()
    later = NOW + timedelta(seconds=10)
    await control.step(later)
    sent = dict(server.sent)
    assert set(sent) == set(names)
    assert all(limit.source is LimitSource.EMERGENCY for limit in sent.values())


async def test_a_failed_round_shows_as_failed_and_an_emergency_still_reaches_everyone(
    server_store: Store,
) -> None:
    names = _members(server_store, 3)
    server = FakeServer()
    # A non-member figure no allocator accepts (stored before the DSO input was bounded).
    caps = _emergency(3000.0, non_member_w=2e9)
    control = CapControl(server, server_store, "trafo-1", caps)  # type: ignore[arg-type]
    for name in names:
        server.report(name, 5000.0, NOW)
    with pytest.raises(RoundFailed, match="non-member"):
        await control.step(NOW)
    sent = dict(server.sent)
    assert set(sent) == set(names)  # the emergency reached every member all the same
    assert all(limit.source is LimitSource.EMERGENCY for limit in sent.values())
    assert all(_in_force(limit, NOW) == GUARANTEED_MIN_W for limit in sent.values())
    assert control.status is not None
    assert (control.status.phase, control.status.mode) == ("failed", "emergency")
    assert control.status.error is not None
    assert "non-member" in control.status.error
    assert control.status.failed_rounds == 1
    [shown] = (await _dashboard(server, server_store, control))["transformers"]
    assert shown["allocation"] == "failed"  # never the last phase that worked
    assert "non-member" in shown["cap"]["error"]

    server.sent.clear()
    with pytest.raises(RoundFailed):
        await control.step(NOW + timedelta(seconds=10))
    assert server.sent == []  # still in force: not sent again
    soon = NOW + timedelta(seconds=50)
    with pytest.raises(RoundFailed):
        await control.step(soon)
    assert {name for name, _limit in server.sent} == set(names)  # renewed before expiry
    assert control.status.failed_rounds == 3


async def test_telemetry_stamped_in_2099_is_never_fresh(server_store: Store) -> None:
    [name] = _members(server_store, 1)
    server = FakeServer()
    control = CapControl(server, server_store, "trafo-1", fixed_cap(1000.0))  # type: ignore[arg-type]
    server.report(name, 50_000.0, datetime(2099, 1, 1, tzinfo=UTC))
    assert not is_fresh(server.latest_telemetry[name], NOW)
    await control.step(NOW)
    assert server.sent == []  # not reporting: nothing to allocate


async def test_an_emergency_holds_while_the_cap_cannot_be_read_until_it_ends(
    server_store: Store,
) -> None:
    names = _members(server_store, 2)
    server = FakeServer()
    caps = Switchable(10_000.0)
    caps.provider = _emergency(3000.0)  # until NOW + 1 h
    control = CapControl(server, server_store, "trafo-1", caps)  # type: ignore[arg-type]
    for name in names:
        server.report(name, 5000.0, NOW)
    await control.step(NOW)
    assert {name for name, _limit in server.sent} == set(names)

    async def unreadable(transformer_id: str, now: datetime) -> CapInForce:
        raise sqlite3.OperationalError("database is locked")

    caps.provider = unreadable
    server.sent.clear()
    # Past the allocator's limits' expiry (a minute, spread by up to three more).
    soon = NOW + timedelta(minutes=4)
    with pytest.raises(RoundFailed, match="locked"):
        await control.step(soon)
    renewed = dict(server.sent)
    assert set(renewed) == set(names)  # renewed from the last emergency read
    assert all(limit.source is LimitSource.EMERGENCY for limit in renewed.values())
    assert control.status is not None
    assert (control.status.phase, control.status.mode) == ("failed", "emergency")

    server.sent.clear()
    after = NOW + timedelta(hours=1, minutes=1)  # the emergency has ended
    with pytest.raises(RoundFailed):
        await control.step(after)
    assert server.sent == []
    assert control.status.mode is None


def test_an_exclusion_says_whether_it_is_bad_data_or_a_bug() -> None:
    assert why_excluded(ValueError("fuse_current_a out of range")) == "fuse_current_a out of range"
    assert why_excluded(KeyError("phases")) == "KeyError: 'phases'"
    assert len(why_excluded(ValueError("x" * 1000))) == 300
