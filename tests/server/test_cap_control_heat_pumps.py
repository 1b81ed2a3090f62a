"""The live allocation takes heat-pump power (issue 14): the server's side of the engine's rule.

Members offering thermal stores keep their pump's power in their minimum; a frame takes
it only once the flexible loads are at theirs, hybrids first, never at the edge or
paused; an emergency takes it all; the fairness count survives a restart; a member
from before the extension is allocated as before.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from community_server.cap_control import PUMP_REFUSED, CapControl, fixed_cap
from community_server.metrics import Metrics
from community_server.prometheus import ServerCollector, exposition, server_registry
from netbewust_core.allocation.heat_pumps import PumpFairness
from netbewust_core.allocation.model import AllocationConfig
from netbewust_core.protocol.messages import (
    BaselineForecast,
    Capabilities,
    HeatPumpFlexibility,
    Message,
    Telemetry,
)

from .conftest import NOW
from .test_cap_control import FakeServer, Switchable, _dashboard, _emergency, _in_force

if TYPE_CHECKING:
    from community_server.store import Store
    from netbewust_core.allocation.model import Allocation

STEPS = 96
BASE_W = 500.0
PUMP_W = 2500.0
# Members' target (budget less the 3 % margin) of 9,500 W: 3,000 W of pump power needed.
FRAME_W = 9_500.0 / 0.97


def store_of(*, hybrid: bool = False) -> HeatPumpFlexibility:
    """A 2.5 kW pump's home losing 4 kW; a hybrid's boiler gives 3 kW (held to 400 W)."""
    return HeatPumpFlexibility(
        start=NOW,
        stored_heat_kwh=5.0,
        stored_heat_min_kwh=(0.0,) * STEPS,
        stored_heat_max_kwh=(10.0,) * STEPS,
        time_constant_h=50.0,
        heat_loss_kw=(4.0,) * STEPS,
        cop=(2.5,) * STEPS,
        min_power_w=0.0,
        max_power_w=PUMP_W,
        modulating=False,
        hybrid_heat_w=3000.0 if hybrid else None,
        gas_eur_per_kwh_heat=0.12 if hybrid else None,
    )


class Street:
    """Members behind one transformer, reporting through the fake server."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.server = FakeServer()
        store.create_transformer("trafo-1", "wijk-1", "Trafo 1", 40_000.0)

    def join(self, name: str, stores: tuple[HeatPumpFlexibility, ...] = ()) -> str:
        code = self.store.issue_join_code("wijk-1", NOW, timedelta(days=1), "trafo-1").code
        self.store.redeem_join_code(code, NOW, name)
        caps = Capabilities(phases=3, fuse_current_a=25.0, thermal_heat_pumps=stores)
        self.send(name, caps, NOW)
        base_w = BASE_W + (PUMP_W if stores else 0.0)
        self.server.latest_baseline[name] = BaselineForecast(start=NOW, power_w=(base_w,) * STEPS)
        return name

    def send(self, name: str, body: Capabilities | Telemetry, at: datetime) -> None:
        self.store.save_received(
            [Message(community="wijk-1", household=name, sent_at=at, body=body)], at
        )

    def report(
        self,
        name: str,
        watts: float,
        at: datetime,
        *,
        margin: float | None = None,
        paused_until: datetime | None = None,
    ) -> None:
        telemetry = Telemetry(
            measured_at=at,
            interval_s=10,
            power_w=(watts / 3,) * 3,
            participating=True,
            comfort_margin_min=margin,
            paused_until=paused_until,
        )
        self.server.latest_telemetry[name] = telemetry
        if margin is not None or paused_until is not None:
            self.send(name, telemetry, at)

    def control(self, caps: object = None, **config: object) -> CapControl:
        return CapControl(
            self.server,  # type: ignore[arg-type]
            self.store,
            "trafo-1",
            caps or fixed_cap(FRAME_W),  # type: ignore[arg-type]
            config=AllocationConfig(**config),  # type: ignore[arg-type]
        )


@pytest.fixture
def street(server_store: Store) -> Street:
    return Street(server_store)


def taken(allocation: Allocation) -> dict[str, float]:
    return {share.household_id: share.pump_curtailment_w for share in allocation.shares}


def evening(street: Street, at: datetime = NOW) -> None:
    """A car home from before the extension, and four pump homes drawing their pumps."""
    street.report("car", BASE_W + 11_000.0, at)
    street.report("hybrid", BASE_W + PUMP_W, at, margin=120.0)
    street.report("warm", BASE_W + PUMP_W, at, margin=300.0)
    street.report("edge", BASE_W + PUMP_W, at, margin=20.0)
    street.report("paused", BASE_W + PUMP_W, at, margin=300.0, paused_until=at + timedelta(hours=2))


def join_evening_street(street: Street) -> None:
    street.join("car")  # plain v1: no thermal store, no margin
    street.join("hybrid", (store_of(hybrid=True),))
    for name in ("warm", "edge", "paused"):
        street.join(name, (store_of(),))


async def test_a_frame_takes_pump_power_only_after_the_car_hybrids_first(street: Street) -> None:
    join_evening_street(street)
    evening(street)
    control = street.control()
    allocation = await control.step(NOW)
    # The car first gives all it can (to its base load); then 3 kW of pump power: the
    # hybrid's 2,100 W down to its 400 W cap, then 900 W of the warmest all-electric.
    assert taken(allocation) == pytest.approx(
        {"car": 0.0, "hybrid": 2100.0, "warm": 900.0, "edge": 0.0, "paused": 0.0}
    )
    sent = {name: _in_force(limit, NOW) for name, limit in street.server.sent}
    assert sent == pytest.approx(
        {"car": BASE_W, "hybrid": 900.0, "warm": 2100.0, "edge": 3000.0, "paused": 3000.0}
    )
    assert sum(w or 0.0 for w in sent.values()) <= FRAME_W
    assert control.status is not None
    assert control.status.pumps_curtailed == 2


async def test_fairness_is_stored_and_survives_a_restart(street: Street) -> None:
    names = [street.join(f"pump-{n}", (store_of(),)) for n in range(3)]

    def frame(at: datetime) -> None:
        for name in names:  # one margin band: the fairness count decides
            street.report(name, BASE_W + PUMP_W, at, margin=200.0)

    # The members' target leaves room for two pumps of three.
    caps = fixed_cap((3 * BASE_W + 2 * PUMP_W) / 0.97)
    frame(NOW)
    first = await street.control(caps).step(NOW)
    chosen = [name for name, watts in taken(first).items() if watts > 0]
    assert chosen == ["pump-0"]
    stored = street.store.pump_fairness(names)
    assert stored.times_curtailed == {"pump-0": 1}
    assert stored.curtailed_since == {"pump-0": NOW}

    # A restarted server reads the fairness; the cap is far away now: pump-0 runs again.
    released = NOW + timedelta(minutes=5)
    frame(released)
    await street.control(fixed_cap(1e6)).step(released)
    assert street.store.pump_fairness(names).released_at == {"pump-0": released}
    assert street.store.pump_fairness(names).curtailed_now == frozenset()

    later = NOW + timedelta(hours=1)
    frame(later)
    restarted = street.control(caps)
    second = await restarted.step(later)
    assert [name for name, watts in taken(second).items() if watts > 0] == ["pump-1"]
    assert street.store.pump_fairness(names).times_curtailed == {"pump-0": 1, "pump-1": 1}


async def test_an_emergency_takes_all_pump_power_in_its_first_round(street: Street) -> None:
    join_evening_street(street)
    evening(street)
    control = street.control(_emergency(5_000.0))
    allocation = await control.step(NOW)
    # Paused and at the edge too: an emergency comes first.
    assert taken(allocation) == pytest.approx(
        {"car": 0.0, "hybrid": PUMP_W, "warm": PUMP_W, "edge": PUMP_W, "paused": PUMP_W}
    )
    sent = {name: _in_force(limit, NOW) for name, limit in street.server.sent}
    assert sent == pytest.approx(dict.fromkeys(sent, BASE_W))
    assert len(sent) == 5


async def test_pumps_return_staggered_under_the_cap_after_an_emergency(street: Street) -> None:
    names = [street.join(f"pump-{n}", (store_of(),)) for n in range(10)]
    frame_w = (10 * BASE_W + 10 * PUMP_W) / 0.97 * 0.9  # a frame that goes on after it
    caps = Switchable(frame_w)
    caps.provider = _emergency(5_000.0)
    control = street.control(caps)
    moment = NOW
    for name in names:
        street.report(name, BASE_W + PUMP_W, moment, margin=200.0 + 10 * names.index(name))
    await control.step(moment)
    caps.provider = fixed_cap(frame_w)
    returned: list[int] = []
    for _round in range(12):
        moment += timedelta(seconds=10)
        curtailed = control.pump_fairness.curtailed_now if control.pump_fairness else set()
        for name in names:  # a held pump draws its base load, a running one its pump too
            held = name in curtailed
            margin = 200.0 + 10 * names.index(name)
            street.report(name, BASE_W + (0.0 if held else PUMP_W), moment, margin=margin)
        allocation = await control.step(moment)
        limits = [
            _in_force(limit, moment) or 0.0
            for name, limit in street.server.sent
            if name in names and limit.issued_at == moment
        ]
        expected_w = sum(BASE_W + PUMP_W - share.pump_curtailment_w for share in allocation.shares)
        assert expected_w <= frame_w  # the members' expected load stays under the cap
        assert all(w <= BASE_W + PUMP_W for w in limits)
        returned.append(sum(1 for share in allocation.shares if share.pump_curtailment_w == 0))
    # A few pumps a round, never all at once.
    steps = [after - before for before, after in zip([0, *returned], returned, strict=False)]
    assert max(steps) <= AllocationConfig().pump_recovery_homes
    assert returned[-1] >= 7  # the frame's room: 9 of 10 fit under 90 % of the demand


async def test_a_pause_in_2099_is_refused_counted_and_shown(street: Street) -> None:
    join_evening_street(street)
    evening(street)
    street.report(
        "warm", BASE_W + PUMP_W, NOW, margin=300.0, paused_until=datetime(2099, 1, 1, tzinfo=UTC)
    )
    control = street.control()
    allocation = await control.step(NOW)
    assert control.status is not None
    [refusal] = control.status.pump_refused
    assert (refusal.household_id, refusal.reason) == ("warm", PUMP_REFUSED)
    assert "2099" in refusal.detail
    # Not taken in the frame (at the edge, as unknown), the round went on for everyone.
    assert taken(allocation)["warm"] == 0.0
    assert {name for name, _limit in street.server.sent} == {
        "car",
        "hybrid",
        "warm",
        "edge",
        "paused",
    }
    document = await _dashboard(street.server, street.store, control)
    cap = document["transformers"][0]["cap"]
    assert cap["pump_refused"][0]["household"] == "warm"


async def test_the_dashboard_and_metrics_show_pauses_and_curtailments(street: Street) -> None:
    join_evening_street(street)
    evening(street)
    control = street.control()
    await control.step(NOW)
    document = await _dashboard(street.server, street.store, control)
    rows = {row["household"]: row["heat_pump"] for row in document["households"]}
    assert rows["car"] is None  # no heat pump: nothing shown
    assert rows["hybrid"]["curtailments"] == 1
    assert rows["hybrid"]["curtailed"] is True
    assert rows["paused"] == {
        "thermal_stores": 1,
        "comfort_margin_min": 300.0,
        "paused": True,
        "pauses": 1,
        "curtailments": 0,
        "curtailed": False,
        "off_min": 0.0,
    }
    assert document["transformers"][0]["cap"]["pumps_curtailed"] == 2

    metrics = Metrics()
    metrics.heat_pump_curtailments["trafo-1"] = control.pump_curtailments_begun
    metrics.heat_pumps_curtailed["trafo-1"] = 2
    text = exposition(server_registry(ServerCollector(metrics, lambda: True, (), ()))).decode()
    assert 'netbewust_heat_pump_curtailments_total{transformer="trafo-1"} 2.0' in text
    assert 'netbewust_heat_pumps_curtailed{transformer="trafo-1"} 2.0' in text


async def test_an_all_electric_pump_is_held_at_most_its_maximum_off_time(street: Street) -> None:
    street.join("pump", (store_of(),))
    caps = fixed_cap((BASE_W + 1000.0) / 0.97)
    control = street.control(caps, pump_max_off=timedelta(minutes=30))
    held: list[bool] = []
    moment = NOW
    for _minute in range(40):
        curtailed = control.pump_fairness and "pump" in control.pump_fairness.curtailed_now
        street.report("pump", BASE_W + (0.0 if curtailed else PUMP_W), moment, margin=600.0)
        allocation = await control.step(moment)
        held.append(taken(allocation)["pump"] > 0)
        moment += timedelta(minutes=1)
    assert held[:30] == [True] * 30
    assert held[30:] == [False] * 10  # then it runs (and rests its minimum run)
    assert street.store.pump_fairness(["pump"]) == PumpFairness(
        times_curtailed={"pump": 1}, released_at={"pump": NOW + timedelta(minutes=30)}
    )


async def test_a_failed_fairness_write_never_holds_up_the_limits_and_is_redone(
    street: Street, monkeypatch: pytest.MonkeyPatch
) -> None:
    join_evening_street(street)
    evening(street)
    control = street.control()
    save = street.store.save_pump_fairness

    def disk_full(*_args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(street.store, "save_pump_fairness", disk_full)
    await control.step(NOW)
    assert {name for name, _limit in street.server.sent} == {
        "car",
        "hybrid",
        "warm",
        "edge",
        "paused",
    }
    assert street.store.pump_fairness(["hybrid", "warm"]).times_curtailed == {}
    monkeypatch.setattr(street.store, "save_pump_fairness", save)
    later = NOW + timedelta(seconds=10)
    evening(street, later)
    await control.step(later)  # nothing changed this round: last round's is stored now
    assert street.store.pump_fairness(["hybrid", "warm"]).times_curtailed == {
        "hybrid": 1,
        "warm": 1,
    }
