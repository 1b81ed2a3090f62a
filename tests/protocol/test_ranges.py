"""One set of ranges: every member the protocol accepts, the allocator and planner accept.

Random valid protocol v1 capabilities, telemetry and baselines (the extremes included:
3x250 A, 300 kW of PV or battery, 100 kW per phase), sent and decoded as messages, go
through the server's own adapters
(`CapControl._state`, `collective_runtime._household`) into the live allocator and the
collective planner; neither may raise, and every member gets a limit. Before the ranges
were shared, a 3x100 A member made every allocation round fail.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from community_server.cap_control import CapControl, fixed_cap
from community_server.collective_runtime import _household
from netbewust_core.allocation.allocator import LiveAllocator
from netbewust_core.allocation.model import (
    AllocationMode,
    CapSeries,
    HouseholdState,
    NonMemberLoad,
    SharingRule,
)
from netbewust_core.collective.planner import plan_collective
from netbewust_core.collective.problem import CollectiveProblem
from netbewust_core.limits import LimitInterval
from netbewust_core.protocol.messages import (
    BaselineForecast,
    Capabilities,
    Message,
    Telemetry,
    decode_for_topic,
    encode,
)
from netbewust_core.units import (
    MAX_FUSE_CURRENT_A,
    connection_power_w,
)

from .strategies import baselines, capabilities, telemetry

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
STEPS = 8


@st.composite
def members(draw: st.DrawFn) -> tuple[Capabilities, Telemetry, BaselineForecast]:
    caps = _received(draw(capabilities), Capabilities)
    report = _received(replace(draw(telemetry), measured_at=NOW), Telemetry)
    # A baseline that covers the plan's start, as the server requires of one it uses.
    forecast = _received(replace(draw(baselines), start=NOW), BaselineForecast)
    return caps, report, forecast


def _received[B](body: B, kind: type[B]) -> B:
    """`body` as the server has it: encoded by a household, decoded from its topic."""
    message = Message(community="wijk-1", household="huis-1", body=body, sent_at=NOW)  # type: ignore[arg-type]
    received = decode_for_topic(str(message.topic), encode(message)).body
    assert isinstance(received, kind)
    return received


def _member(household_id: str, caps: Capabilities) -> Any:
    """The server's record of a member, as far as the adapters read it."""
    return SimpleNamespace(household_id=household_id, capabilities=caps)


def _cap_control(
    reports: dict[str, Telemetry], forecasts: dict[str, BaselineForecast]
) -> CapControl:
    server: Any = SimpleNamespace(latest_telemetry=reports, latest_baseline=forecasts)
    return CapControl(server, store=None, transformer_id="t1", caps=fixed_cap(1e6))  # type: ignore[arg-type]


@given(
    st.lists(members(), min_size=1, max_size=5),
    st.floats(min_value=0, max_value=1e6),
    st.sampled_from(AllocationMode),
    st.sampled_from(SharingRule),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_valid_member_is_allocated(
    drawn: list[tuple[Capabilities, Telemetry, BaselineForecast]],
    cap_w: float,
    mode: AllocationMode,
    rule: SharingRule,
) -> None:
    ids = [f"huis-{index}" for index in range(len(drawn))]
    control = _cap_control(
        {hid: report for hid, (_, report, _) in zip(ids, drawn, strict=True)},
        {hid: forecast for hid, (_, _, forecast) in zip(ids, drawn, strict=True)},
    )
    states = []
    for hid, (caps, _, _) in zip(ids, drawn, strict=True):
        state = control._state(_member(hid, caps), NOW, everyone=True)
        assert isinstance(state, HouseholdState)
        states.append(state)
    cap = CapSeries((LimitInterval(start=NOW, end=NOW + timedelta(hours=1), max_import_w=cap_w),))
    allocation = LiveAllocator().allocate(
        cap, NonMemberLoad(estimate_w=0.0), states, rule=rule, mode=mode, now=NOW
    )
    assert {share.household_id for share in allocation.shares} == set(ids)


@given(st.lists(members(), min_size=1, max_size=4), st.floats(min_value=0, max_value=1e6))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_valid_member_is_planned(
    drawn: list[tuple[Capabilities, Telemetry, BaselineForecast]], cap_w: float
) -> None:
    households = []
    for index, (caps, report, forecast) in enumerate(drawn):
        household = _household(
            _member(f"huis-{index}", caps),
            forecast,
            report.battery_soc_pct,
            NOW,
            STEPS,
            headroom_fraction=0.1,
        )
        assert household is not None, "a valid member was left out of the plan"
        households.append(household)
    problem = CollectiveProblem(
        start=NOW,
        import_price_eur_per_kwh=(0.25,) * STEPS,
        export_price_eur_per_kwh=(0.05,) * STEPS,
        transformer_import_cap_w=(cap_w,) * STEPS,
        transformer_export_cap_w=(cap_w,) * STEPS,
        non_member_load_w=(0.0,) * STEPS,
        households=tuple(households),
    )
    result = plan_collective(problem)
    assert {outcome.household_id for outcome in result.households} == {
        household.household_id for household in households
    }


def test_the_largest_connection_fits_every_range() -> None:
    # 3 x 250 A: the protocol's largest connection is a valid allocator household.
    top = connection_power_w(3, MAX_FUSE_CURRENT_A)
    state = HouseholdState(
        household_id="huis-1",
        measured_w=-top,
        guaranteed_min_w=top,
        flexible_w=top,
        connection_limit_w=top,
    )
    assert state.floor_w == top
