"""The dynamic virtual limit: a load forecast engages the allocation early, feedback holds it."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from community_server.cap_control import CapControl
from community_server.dso.in_force import CapInForce, NonMemberLoadSource
from community_server.dso.signals import CapMode, SignalSource
from netbewust_core.protocol.messages import QUARTER_HOUR, BaselineForecast

from .conftest import NOW
from .test_cap_control import FakeServer, _members

if TYPE_CHECKING:
    from datetime import datetime

    from community_server.cap_control import CapProvider
    from community_server.store import Store

CAP_W = 10_000.0
BASE_W = 1500.0
PEAK_BASE_W = 2350.0  # four of these: the base load alone nears the cap


def _caps(
    mode: CapMode, *, forecast_w: float | None = None, non_member_w: float = 0.0
) -> CapProvider:
    async def provide(transformer_id: str, now: datetime) -> CapInForce:
        return CapInForce(
            transformer_id=transformer_id,
            at=now,
            import_w=CAP_W,
            export_w=None,
            mode=mode,
            source=SignalSource.HTTP,
            signal_ids=("dso-1",),
            until=now + timedelta(hours=1),
            non_member_load_w=non_member_w,
            non_member_load_source=NonMemberLoadSource.DSO_MEASUREMENT,
            load_forecast_w=forecast_w,
        )

    return provide


def _baselines(server: FakeServer, names: list[str], peak_w: float) -> None:
    """Base load now, a peak from the next quarter hour on."""
    for name in names:
        server.latest_baseline[name] = BaselineForecast(
            start=NOW, power_w=(BASE_W, peak_w, peak_w, BASE_W)
        )


async def test_without_a_forecast_a_dynamic_limit_waits_like_a_frame(
    server_store: Store,
) -> None:
    names = _members(server_store, 4)
    server = FakeServer()
    control = CapControl(server, server_store, "trafo-1", _caps(CapMode.DYNAMIC))  # type: ignore[arg-type]
    for name in names:
        server.report(name, BASE_W, NOW)
    allocation = await control.step(NOW)
    assert str(allocation.phase) == "idle"
    assert server.sent == []
    assert control.status is not None
    assert (control.status.forecast_members_w, control.status.forecast_source) == (None, None)


async def test_the_dso_forecast_engages_before_the_load_rises(server_store: Store) -> None:
    names = _members(server_store, 4)
    server = FakeServer()
    frame = CapControl(server, server_store, "trafo-1", _caps(CapMode.FRAME))  # type: ignore[arg-type]
    caps = _caps(CapMode.DYNAMIC, forecast_w=15_000.0, non_member_w=1_000.0)
    dynamic = CapControl(server, server_store, "trafo-1", caps)  # type: ignore[arg-type]
    for name in names:
        server.report(name, BASE_W, NOW)  # 6 kW measured: far below the 10 kW cap
    assert str((await frame.step(NOW)).phase) == "idle"
    assert server.sent == []
    assert str((await dynamic.step(NOW)).phase) == "engaged"
    assert set(dict(server.sent)) == set(names)
    assert dynamic.status is not None
    assert dynamic.status.forecast_members_w == 14_000.0
    assert dynamic.status.forecast_source == "dso"


async def test_baselines_engage_ahead_of_their_peak_and_feedback_holds_the_cap(
    server_store: Store,
) -> None:
    names = _members(server_store, 4)
    server = FakeServer()
    _baselines(server, names, peak_w=PEAK_BASE_W)
    control = CapControl(server, server_store, "trafo-1", _caps(CapMode.DYNAMIC))  # type: ignore[arg-type]
    for name in names:
        server.report(name, BASE_W, NOW)
    allocation = await control.step(NOW)
    # A quarter hour before the baselines' 9.4 kW peak, with 6 kW measured, limits are out.
    assert str(allocation.phase) == "engaged"
    assert control.status is not None
    assert control.status.forecast_members_w == 4 * PEAK_BASE_W
    assert control.status.forecast_source == "baselines"

    # From the peak on each home wants its base load and 1.65 kW of flexible load (16 kW
    # in all) and takes what its limit allows.
    limits = dict(server.sent)
    measured = []
    now = NOW
    while now < NOW + 2 * QUARTER_HOUR:
        now += timedelta(seconds=10)
        limits |= dict(server.sent)
        server.sent.clear()
        wanted_w = 4_000.0 if now >= NOW + QUARTER_HOUR else BASE_W
        total = 0.0
        for name in names:
            granted = limits[name].interval_at(now)
            load_w = (
                wanted_w
                if granted is None or granted.max_import_w is None
                else min(wanted_w, granted.max_import_w)
            )
            server.report(name, load_w, now)
            total += load_w
        measured.append(total)
        await control.step(now)
    assert max(measured) <= CAP_W, measured
    assert max(measured) >= 0.9 * CAP_W  # the cap is used, not starved


async def test_a_forecast_below_the_non_member_load_counts_as_no_member_load(
    server_store: Store,
) -> None:
    names = _members(server_store, 2)
    server = FakeServer()
    caps = _caps(CapMode.DYNAMIC, forecast_w=2_000.0, non_member_w=5_000.0)
    control = CapControl(server, server_store, "trafo-1", caps)  # type: ignore[arg-type]
    for name in names:
        server.report(name, BASE_W, NOW)
    await control.step(NOW)
    assert control.status is not None
    assert control.status.forecast_members_w == 0.0
