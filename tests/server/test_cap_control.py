"""The live allocation loop: limits when the members near the cap, renewals, release."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from community_server.cap_control import CapControl, fixed_cap
from netbewust_core.protocol.messages import (
    BaselineForecast,
    Capabilities,
    LimitUpdate,
    Message,
    Telemetry,
)

from .conftest import NOW

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

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
