"""The guard end to end on hand-checked cases (1 A = 230 W; limit = fuse - margin)."""

from __future__ import annotations

import pytest

from netbewust_core.guard.engine import Guard
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.model import (
    BatterySetpoint,
    BatterySpec,
    ChargerSetpoint,
    ChargerSpec,
    ChargerState,
    Circuit,
    Connection,
    DeviceState,
    GuardConfig,
    GuardState,
    HeatPumpSetpoint,
    HeatPumpSpec,
    Limitation,
    LimitReason,
    LoadSetpoint,
    LoadSpec,
    PeakMode,
    PvSetpoint,
    PvSpec,
)

from .builders import at, charging, drawing, reading

ONE_PHASE = Connection(phases=1, fuse_current_a=25.0, safety_margin_a=1.0)
THREE_PHASE = Connection(phases=3, fuse_current_a=25.0)
EV = ChargerSpec(device_id="ev", name="EV", priority=1)


def guard(*devices: object, connection: Connection = ONE_PHASE, **kwargs: object) -> Guard:
    return Guard(GuardConfig(connection=connection, devices=devices, **kwargs))  # type: ignore[arg-type]


def test_charger_keeps_its_current_when_it_fits() -> None:
    g = guard(EV)
    decision = g.on_meter(reading(0, 18.0), {"ev": charging("ev", 16)})
    assert decision.setpoints["ev"] == ChargerSetpoint(16.0, 1)
    assert decision.state is GuardState.NORMAL
    assert decision.changed == {"ev"}
    assert decision.phase_limit_a == (24.0,)
    assert decision.headroom_a == pytest.approx((6.0,))


def test_overload_is_resolved_in_the_same_update() -> None:
    g = guard(EV)
    g.on_meter(reading(0, 18.0), {"ev": charging("ev", 16)})
    # A 4 kW kettle: base 2 A + 17.4 A leaves 4.6 A, below the 6 A minimum: pause.
    decision = g.on_meter(reading(1, 18.0 + 4000 / 230), {"ev": charging("ev", 16)})
    assert decision.setpoints["ev"] == ChargerSetpoint(0.0, 1)
    assert decision.changed == {"ev"}
    assert decision.state is GuardState.LIMITING
    assert Limitation(LimitReason.FUSE, "ev", 1) in decision.limitations
    assert not decision.unresolved_overload


def test_charger_is_reduced_in_whole_amperes_before_pausing() -> None:
    g = guard(EV)
    decision = g.on_meter(reading(0, 10.5 + 16), {"ev": charging("ev", 16)})
    assert decision.setpoints["ev"] == ChargerSetpoint(13.0, 1)  # floor(24 - 10.5)


def test_one_phase_car_on_l1_is_untouched_by_an_l3_overload() -> None:
    car = ChargerSpec(device_id="ev", name="EV", priority=1, phases=(1,))
    boiler = LoadSpec(
        device_id="boiler", name="Boiler", priority=5, phases=(3,), rated_power_w=2000
    )
    g = guard(car, boiler, connection=THREE_PHASE)
    states = {"ev": charging("ev", 16), "boiler": drawing("boiler", 2000)}
    first = g.on_meter(reading(0, 19.0, 3.0, 12.0), states)
    assert first.setpoints == {"ev": ChargerSetpoint(16.0, 1), "boiler": LoadSetpoint(on=True)}
    # L3 goes to 28.7 A with the boiler on: the boiler goes off, the car keeps 16 A.
    second = g.on_meter(reading(1, 19.0, 3.0, 20.0 + 2000 / 230), states)
    assert second.setpoints["ev"] == ChargerSetpoint(16.0, 1)
    assert second.setpoints["boiler"] == LoadSetpoint(on=False)
    assert second.changed == {"boiler"}
    assert not second.unresolved_overload
    # Inflexible load alone over the fuse on L3: nothing on L1 is touched, it is reported.
    third = g.on_meter(reading(8, 19.0, 3.0, 30.0), {"ev": charging("ev", 16)})
    assert third.setpoints["ev"] == ChargerSetpoint(16.0, 1)
    assert third.setpoints["boiler"] == LoadSetpoint(on=False)
    assert third.unresolved_overload
    assert Limitation(LimitReason.INFLEXIBLE_OVERLOAD, None, 3, "5.0 A over") in third.limitations


def test_three_phase_charger_switches_to_one_phase_instead_of_pausing() -> None:
    charger = ChargerSpec(
        device_id="ev", name="EV", priority=1, phases=(1, 2, 3), can_switch_phases=True
    )
    g = guard(charger, connection=THREE_PHASE)
    first = g.on_meter(reading(0, 18.0, 18.0, 18.0), {"ev": charging("ev", 16, phases=3)})
    assert first.setpoints["ev"] == ChargerSetpoint(16.0, 3)
    # L3 inflexible load rises to 21 A: 4 A left there, L1 still has 23 A.
    second = g.on_meter(reading(1, 18.0, 18.0, 37.0), {"ev": charging("ev", 16, phases=3)})
    assert second.setpoints["ev"] == ChargerSetpoint(16.0, 1)
    assert Limitation(LimitReason.FUSE, "ev", 3) not in second.limitations


def test_three_phase_charger_without_switching_pauses() -> None:
    charger = ChargerSpec(device_id="ev", name="EV", priority=1, phases=(1, 2, 3))
    g = guard(charger, connection=THREE_PHASE)
    decision = g.on_meter(reading(0, 18.0, 18.0, 37.0), {"ev": charging("ev", 16, phases=3)})
    assert decision.setpoints["ev"] == ChargerSetpoint(0.0, 3)
    assert Limitation(LimitReason.FUSE, "ev", 3) in decision.limitations


def test_nested_circuits_two_levels_deep() -> None:
    circuits = (
        Circuit("sub", 20.0),
        Circuit("garage", 18.0, parent_id="sub"),
        Circuit("bay", 10.0, parent_id="garage"),
    )
    in_bay = ChargerSpec(device_id="a", name="A", priority=0, circuit_id="bay")
    in_garage = ChargerSpec(device_id="b", name="B", priority=1, circuit_id="garage")
    in_sub = ChargerSpec(device_id="c", name="C", priority=2, circuit_id="sub")
    big = Connection(phases=1, fuse_current_a=63.0)
    g = guard(in_bay, in_garage, in_sub, connection=big, circuits=circuits)
    idle = {i: charging(i, 0) for i in "abc"}
    decision = g.on_meter(reading(0, 2.0), idle)
    # Starting cars are expected to draw 1 A above their setpoint, in every circuit.
    assert decision.setpoints["a"] == ChargerSetpoint(9.0, 1)  # bay 10 - 1
    assert decision.setpoints["b"] == ChargerSetpoint(7.0, 1)  # garage 18 - 10 - 1
    assert decision.setpoints["c"] == ChargerSetpoint(0.0, 1)  # sub 20 - 18 = 2 < 6
    assert Limitation(LimitReason.CIRCUIT, "c", 1) in decision.limitations


def test_battery_discharges_to_cover_a_higher_priority_shortfall() -> None:
    battery = BatterySpec(
        device_id="bat", name="Battery", priority=2, max_charge_w=2300, max_discharge_w=2300
    )
    g = guard(EV, battery)
    states = {"ev": charging("ev", 16), "bat": drawing("bat", 0.0, soc_pct=50)}
    decision = g.on_meter(reading(0, 12.0 + 16), states)
    # Without the battery the car could have 12 A; the battery covers the other 4 A.
    assert decision.setpoints["ev"] == ChargerSetpoint(16.0, 1)
    assert decision.setpoints["bat"] == BatterySetpoint(-920.0)


def test_empty_battery_does_not_cover_anything() -> None:
    battery = BatterySpec(
        device_id="bat", name="Battery", priority=2, max_charge_w=2300, max_discharge_w=2300
    )
    g = guard(EV, battery)
    states = {"ev": charging("ev", 16), "bat": drawing("bat", 0.0, soc_pct=10)}
    decision = g.on_meter(reading(0, 12.0 + 16), states)
    assert decision.setpoints["ev"] == ChargerSetpoint(12.0, 1)
    assert decision.setpoints["bat"] == BatterySetpoint(None)


def test_a_battery_just_above_its_minimum_counts_only_part_of_its_discharge() -> None:
    """One point above its minimum, a battery has minutes of discharge left at most: it
    counts a fifth of its discharge (the count fades over the last 5 points), not all."""
    battery = BatterySpec(
        device_id="bat", name="Battery", priority=2, max_charge_w=4600, max_discharge_w=4600
    )
    states = {"ev": charging("ev", 16), "bat": drawing("bat", 0.0, soc_pct=11)}
    decision = guard(EV, battery).on_meter(reading(0, 12.0 + 16), states)
    # 12 A of room without the battery, plus a fifth of its 20 A.
    assert decision.setpoints["ev"] == ChargerSetpoint(16.0, 1)
    assert decision.setpoints["bat"] == BatterySetpoint(-920.0)
    states = {"ev": charging("ev", 16), "bat": drawing("bat", 0.0, soc_pct=11)}
    tight = guard(EV, battery).on_meter(reading(0, 18.0 + 16), states)
    # 6 A of room plus 4 A: the car gets 10 A, not the 16 A a full discharge would allow.
    assert tight.setpoints["ev"] == ChargerSetpoint(10.0, 1)
    assert tight.setpoints["bat"] == BatterySetpoint(-920.0)
    states = {"ev": charging("ev", 16), "bat": drawing("bat", 0.0, soc_pct=15)}
    full = guard(EV, battery).on_meter(reading(0, 18.0 + 16), states)
    assert full.setpoints["ev"] == ChargerSetpoint(16.0, 1)  # 5 points up: all of it


def test_inflexible_overload_puts_devices_on_that_phase_at_minimum() -> None:
    load = LoadSpec(device_id="load", name="Load", priority=3, rated_power_w=1000)
    g = guard(EV, load)
    decision = g.on_meter(reading(0, 30.0), {"ev": charging("ev", 0)})
    assert decision.setpoints == {"ev": ChargerSetpoint(0.0, 1), "load": LoadSetpoint(on=False)}
    assert decision.unresolved_overload
    assert decision.state is GuardState.LIMITING


def test_increases_are_rate_limited_but_decreases_are_not() -> None:
    g = guard(EV)
    g.on_meter(reading(0, 20.0), {"ev": charging("ev", 10)})  # base 10 -> 14 A
    assert g.on_meter(reading(1, 8.0 + 14), {"ev": charging("ev", 14)}).setpoints[
        "ev"
    ] == ChargerSetpoint(14.0, 1)
    # Room grows at once, the charger may only follow 10 s after its last change.
    held = g.on_meter(reading(5, 2.0 + 14), {"ev": charging("ev", 14)})
    assert held.setpoints["ev"] == ChargerSetpoint(14.0, 1)
    assert g.on_tick(at(10.5)) is not None
    assert g.on_meter(reading(11, 2.0 + 14), {"ev": charging("ev", 14)}).setpoints[
        "ev"
    ] == ChargerSetpoint(16.0, 1)
    # A decrease one second later is immediate.
    down = g.on_meter(reading(12, 15.0 + 16), {"ev": charging("ev", 16)})
    assert down.setpoints["ev"] == ChargerSetpoint(9.0, 1)


def test_paused_charger_resumes_only_with_room_for_minimum_plus_hysteresis() -> None:
    g = guard(EV)
    g.on_meter(reading(0, 20.0), {"ev": charging("ev", 0)})  # 4 A room: paused
    # A starting car is expected to draw 1 A above its setpoint, and resuming needs the
    # minimum plus 1 A hysteresis: 7.5 A of room is not enough, 8 A is.
    assert g.on_meter(reading(20, 16.5), {"ev": charging("ev", 0)}).setpoints[
        "ev"
    ] == ChargerSetpoint(0.0, 1)
    assert g.on_meter(reading(21, 16.0), {"ev": charging("ev", 0)}).setpoints[
        "ev"
    ] == ChargerSetpoint(7.0, 1)


def test_learned_overshoot_is_compensated() -> None:
    g = guard(EV)
    base = 10.0  # room 14 A; the car draws 1 A above its setpoint
    g.on_meter(reading(0, base + 14), {"ev": charging("ev", 14)})
    setpoint = 14.0
    for second in range(1, 40):
        decision = g.on_meter(
            reading(second, base + setpoint + 1), {"ev": charging("ev", setpoint + 1)}
        )
        current = decision.setpoints["ev"]
        assert isinstance(current, ChargerSetpoint)
        setpoint = current.current_a
    assert setpoint == 13.0
    assert decision.phase_current_a[0] <= 24.0


def test_car_that_does_not_resume_gets_a_retry() -> None:
    spec = ChargerSpec(device_id="ev", name="EV", priority=1, resume_retry_s=60)
    g = guard(spec)
    g.on_meter(reading(0, 20.0), {"ev": charging("ev", 0)})  # paused
    resumed = g.on_meter(reading(20, 2.0), {"ev": charging("ev", 0)})
    assert resumed.setpoints["ev"] == ChargerSetpoint(16.0, 1)
    asleep = DeviceState("ev", power_w=0.0, charger_state=None)
    assert g.on_meter(reading(50, 2.0), {"ev": asleep}).setpoints["ev"].current_a == 16.0  # type: ignore[union-attr]
    retry = g.on_meter(reading(81, 2.0), {"ev": asleep})
    assert retry.setpoints["ev"] == ChargerSetpoint(0.0, 1)
    again = g.on_meter(reading(92, 2.0), {"ev": asleep})
    assert again.setpoints["ev"] == ChargerSetpoint(16.0, 1)


def test_stale_meter_enters_safe_mode_and_recovers() -> None:
    battery = BatterySpec(
        device_id="bat", name="Battery", priority=2, max_charge_w=2000, max_discharge_w=2000
    )
    plain_battery = BatterySpec(
        device_id="bat2",
        name="Plain",
        priority=3,
        max_charge_w=2000,
        max_discharge_w=2000,
        has_autonomous_mode=False,
    )
    heat_pump = HeatPumpSpec(device_id="hp", name="HP", priority=0, rated_power_w=2000)
    pv = PvSpec(device_id="pv", name="PV", priority=9, rated_power_w=4000)
    load = LoadSpec(device_id="load", name="Load", priority=8, rated_power_w=500)
    g = guard(EV, battery, plain_battery, heat_pump, pv, load)
    idle_heat_pump = {"hp": drawing("hp", 300)}
    normal = g.on_meter(reading(0, 4.0), idle_heat_pump)
    assert normal.state is GuardState.NORMAL
    assert g.on_tick(at(9)) is None
    safe = g.on_tick(at(10.5))
    assert safe is not None
    assert safe.state is GuardState.SAFE_MODE
    assert safe.limitations == (Limitation(LimitReason.STALE_METER),)
    assert safe.setpoints == {
        "hp": HeatPumpSetpoint(on=True, power_limit_w=450.0),
        "ev": ChargerSetpoint(6.0, 1),  # its safe current: by default its minimum
        "bat": BatterySetpoint(0.0),  # idle, with or without an autonomous mode
        "bat2": BatterySetpoint(0.0),
        "load": LoadSetpoint(on=False),
        "pv": PvSetpoint(None),
    }
    assert g.on_tick(at(11)) is None  # no news while it stays safe
    back = g.on_meter(reading(12, 4.0), idle_heat_pump)
    assert back.state is GuardState.NORMAL
    assert back.setpoints["ev"] == ChargerSetpoint(6.0, 1)  # increases wait 10 s
    later = g.on_meter(reading(21, 4.0), idle_heat_pump)
    assert later.setpoints["ev"] == ChargerSetpoint(16.0, 1)
    assert later.setpoints["load"] == LoadSetpoint(on=True)


def test_a_starting_guard_keeps_devices_as_they_are_until_the_first_reading() -> None:
    g = guard(EV)
    first = g.on_tick(at(0))
    assert first is not None
    assert first.state is GuardState.STARTING
    assert first.setpoints == {}  # nothing is written: a running car keeps charging
    assert g.on_tick(at(9)) is None
    decided = g.on_meter(reading(9.5, 18.0), {"ev": charging("ev", 16)})
    assert decided.setpoints["ev"] == ChargerSetpoint(16.0, 1)
    assert decided.changed == {"ev"}


def test_a_meter_silent_since_the_start_goes_safe_after_its_own_timeout() -> None:
    g = guard(EV)
    assert g.on_tick(at(0)) is not None
    assert g.on_tick(at(10)) is None  # still within the meter's 10 s
    safe = g.on_tick(at(10.5))
    assert safe is not None
    assert safe.state is GuardState.SAFE_MODE
    assert safe.limitations == (Limitation(LimitReason.STALE_METER),)
    assert safe.setpoints["ev"] == ChargerSetpoint(6.0, 1)


def test_emergency_puts_everything_in_its_safe_state_until_cleared() -> None:
    g = guard(EV)
    g.on_meter(reading(0, 2.0), {})
    g.set_emergency(True)
    decision = g.on_tick(at(0.5))
    assert decision is not None
    assert decision.state is GuardState.SAFE_MODE
    assert decision.limit_source is LimitSource.EMERGENCY
    assert decision.setpoints["ev"] == ChargerSetpoint(0.0, 1)
    assert g.on_meter(reading(1, 2.0), {}).state is GuardState.SAFE_MODE
    g.set_emergency(False)
    assert g.on_meter(reading(12, 2.0), {}).state is GuardState.NORMAL


def test_negative_export_price_limits_battery_then_pv() -> None:
    battery = BatterySpec(
        device_id="bat", name="Battery", priority=2, max_charge_w=2000, max_discharge_w=2000
    )
    pv = PvSpec(device_id="pv", name="PV", priority=3, rated_power_w=5000)
    g = guard(battery, pv)
    states = {"bat": drawing("bat", -1000, soc_pct=60), "pv": drawing("pv", -4000)}
    net_a = 1.0 - 1000 / 230 - 4000 / 230
    assert g.on_meter(reading(0, net_a), states).setpoints["pv"] == PvSetpoint(None)
    g.set_export_price(-0.05)
    decision = g.on_meter(reading(1, net_a), states)
    assert decision.setpoints["bat"] == BatterySetpoint(0.0)
    assert decision.setpoints["pv"] == PvSetpoint(230.0)  # only what the house uses
    assert Limitation(LimitReason.NEGATIVE_EXPORT_PRICE, "pv") in decision.limitations


def test_export_cap_turns_off_a_switch_only_pv() -> None:
    pv = PvSpec(device_id="pv", name="PV", priority=3, rated_power_w=3000, can_limit_power=False)
    g = guard(pv)
    cap = ExternalLimit(
        source=LimitSource.DSO,
        issued_at=at(0),
        expires_at=at(600),
        intervals=(LimitInterval(at(0), at(600), max_export_w=1000.0),),
    )
    g.set_external_limit(cap)
    decision = g.on_meter(reading(1, 1.0 - 3000 / 230), {"pv": drawing("pv", -3000)})
    assert decision.setpoints["pv"] == PvSetpoint(0.0)
    assert Limitation(LimitReason.EXPORT_LIMIT, "pv") in decision.limitations


def test_external_limit_applies_inside_its_interval_and_never_past_expiry() -> None:
    g = guard(EV)
    limit = ExternalLimit(
        source=LimitSource.DSO,
        issued_at=at(0),
        expires_at=at(60),
        intervals=(LimitInterval(at(5), at(3600), max_import_w=3000.0),),
    )
    g.set_external_limit(limit)
    before = g.on_meter(reading(1, 2.0 + 16), {"ev": charging("ev", 16)})
    assert before.setpoints["ev"] == ChargerSetpoint(16.0, 1)
    assert before.limit_source is LimitSource.FUSE
    inside = g.on_meter(reading(10, 2.0 + 16), {"ev": charging("ev", 16)})
    assert inside.setpoints["ev"] == ChargerSetpoint(11.0, 1)  # (3000 - 460) / 230 = 11.04
    assert inside.limit_source is LimitSource.DSO
    assert Limitation(LimitReason.DSO, "ev") in inside.limitations
    expired = g.on_meter(reading(61, 2.0 + 11), {"ev": charging("ev", 11)})
    assert expired.setpoints["ev"] == ChargerSetpoint(16.0, 1)
    assert expired.limit_source is LimitSource.FUSE
    g.set_external_limit(limit)
    g.clear_external_limit(LimitSource.DSO)
    assert g.on_meter(reading(62, 18.0), {}).limit_source is LimitSource.FUSE


def test_per_phase_external_cap_binds_only_its_phase() -> None:
    car = ChargerSpec(device_id="ev", name="EV", priority=1, phases=(2,))
    g = guard(car, connection=THREE_PHASE)
    g.set_external_limit(
        ExternalLimit(
            source=LimitSource.COMMUNITY,
            issued_at=at(0),
            expires_at=at(600),
            intervals=(
                LimitInterval(at(0), at(600), max_import_w_per_phase=(5750.0, 2300.0, 5750.0)),
            ),
        )
    )
    decision = g.on_meter(reading(1, 1.0, 1.0, 1.0), {"ev": charging("ev", 0)})
    # 10 A cap on L2, less 1 A base, less 1 A the starting car is expected to overshoot.
    assert decision.setpoints["ev"] == ChargerSetpoint(8.0, 1)
    assert decision.phase_limit_a == pytest.approx((25.0, 10.0, 25.0))
    assert decision.limit_source is LimitSource.COMMUNITY


def test_charge_now_raises_to_max_within_limits() -> None:
    g = guard(EV)
    g.set_plan({"ev": ChargerSetpoint(8.0, 1)})
    assert g.on_meter(reading(0, 2.0), {}).setpoints["ev"] == ChargerSetpoint(8.0, 1)
    g.set_charge_now("ev", True)
    assert g.on_meter(reading(11, 2.0 + 8), {}).setpoints["ev"] == ChargerSetpoint(16.0, 1)
    tight = g.on_meter(reading(12, 12.0 + 16), {"ev": charging("ev", 16)})
    assert tight.setpoints["ev"] == ChargerSetpoint(12.0, 1)  # still within the fuse
    g.set_charge_now("ev", False)
    assert g.on_meter(reading(30, 2.0 + 12), {}).setpoints["ev"] == ChargerSetpoint(8.0, 1)


def test_optimisation_paused_ignores_the_plan_but_not_the_fuse() -> None:
    g = guard(EV)
    g.set_plan({"ev": ChargerSetpoint(8.0, 1)})
    g.set_optimisation_paused(True)
    assert g.on_meter(reading(0, 2.0), {}).setpoints["ev"] == ChargerSetpoint(16.0, 1)
    # Just started and without its own sensor: 1 A of overshoot is still expected.
    assert g.on_meter(reading(1, 14.0 + 16), {}).setpoints["ev"] == ChargerSetpoint(9.0, 1)
    g.set_optimisation_paused(False)
    assert g.on_meter(reading(2, 2.0 + 9), {}).setpoints["ev"] == ChargerSetpoint(8.0, 1)


def test_quarter_hour_peak_caps_the_rest_of_the_quarter() -> None:
    connection = Connection(
        phases=1, fuse_current_a=25.0, peak_limit_w=2500.0, peak_mode=PeakMode.QUARTER_HOUR
    )
    g = guard(EV, connection=connection, stale_after_s=60.0)
    # 5 kW for 7.5 minutes uses the whole quarter's 2.5 kW average.
    for step in range(0, 451, 30):
        decision = g.on_meter(reading(step, 5000 / 230), {"ev": charging("ev", 0)})
    assert decision.setpoints["ev"] == ChargerSetpoint(0.0, 1)
    assert decision.limit_source is LimitSource.HOUSEHOLD_PEAK
    # The next quarter starts with a clean slate.
    fresh = g.on_meter(reading(901, 2.0), {"ev": charging("ev", 0)})
    assert fresh.setpoints["ev"] == ChargerSetpoint(7.0, 1)  # (2500 - 460) W / 230 V - 1 A


def test_safe_mode_still_respects_an_export_limit() -> None:
    pv = PvSpec(device_id="pv", name="PV", priority=3, rated_power_w=5000)
    relay_pv = PvSpec(
        device_id="relay", name="Relay PV", priority=4, rated_power_w=800, can_limit_power=False
    )
    g = guard(pv, relay_pv)
    g.on_meter(reading(0, -10.0), {"pv": drawing("pv", -2300)})
    g.set_export_price(-0.02)
    safe = g.on_tick(at(11))
    assert safe is not None
    assert safe.state is GuardState.SAFE_MODE
    assert safe.setpoints == {"pv": PvSetpoint(0.0), "relay": PvSetpoint(0.0)}
    g.set_export_price(0.05)
    unrestricted = g.on_tick(at(12))
    assert unrestricted is not None
    assert unrestricted.setpoints == {"pv": PvSetpoint(None), "relay": PvSetpoint(None)}


def test_pv_cap_is_raised_again_when_the_house_uses_more() -> None:
    pv = PvSpec(device_id="pv", name="PV", priority=3, rated_power_w=5000)
    g = guard(pv)
    g.set_export_price(-0.02)
    capped = g.on_meter(reading(0, 1.0 - 4000 / 230), {"pv": drawing("pv", -4000)})
    assert capped.setpoints["pv"] == PvSetpoint(230.0)
    # The house now uses 10 A while the PV delivers its 230 W cap: it may deliver 2300 W.
    busier = g.on_meter(reading(11, 10.0 - 1.0), {"pv": drawing("pv", -230)})
    assert busier.setpoints["pv"] == PvSetpoint(2300.0)


def test_one_phase_car_on_a_three_phase_charger_ignores_other_phases() -> None:
    charger = ChargerSpec(device_id="ev", name="EV", priority=1, phases=(1, 2, 3))
    g = guard(charger, connection=THREE_PHASE)
    first = g.on_meter(reading(0, 18.0, 2.0, 2.0), {"ev": charging("ev", 16, phases=1)})
    assert first.setpoints["ev"] == ChargerSetpoint(16.0, 3)
    # Once settled, the car evidently takes only L1 of the three phases offered: an L3
    # overload is not its business.
    g.on_meter(reading(6, 18.0, 2.0, 2.0), {"ev": charging("ev", 16, phases=1)})
    second = g.on_meter(reading(7, 18.0, 2.0, 30.0), {"ev": charging("ev", 16, phases=1)})
    assert second.setpoints["ev"] == ChargerSetpoint(16.0, 3)
    assert second.unresolved_overload
    # Unplugged: the next car may use all three phases again.
    unplugged = DeviceState("ev", power_w=0.0, charger_state=ChargerState.A)
    third = g.on_meter(reading(8, 2.0, 2.0, 30.0), {"ev": unplugged})
    assert third.setpoints["ev"] == ChargerSetpoint(0.0, 3)


def test_planned_battery_charge_is_limited_by_the_fuse() -> None:
    battery = BatterySpec(
        device_id="bat", name="Battery", priority=2, max_charge_w=3000, max_discharge_w=3000
    )
    g = guard(battery)
    g.set_plan({"bat": BatterySetpoint(3000.0)})
    decision = g.on_meter(reading(0, 15.0), {"bat": drawing("bat", 0.0, soc_pct=40)})
    assert decision.setpoints["bat"] == BatterySetpoint(2070.0)  # (24 - 15) A x 230 V
    assert Limitation(LimitReason.FUSE, "bat", 1) in decision.limitations


def test_instantaneous_household_peak_caps_the_total_over_all_phases() -> None:
    connection = Connection(phases=3, fuse_current_a=25.0, peak_limit_w=6900.0)
    charger = ChargerSpec(device_id="ev", name="EV", priority=1, phases=(1, 2, 3))
    g = guard(charger, connection=connection)
    # 2 A on each phase (1380 W): 5520 W left, 8 A on each of three phases, less 1 A.
    decision = g.on_meter(reading(0, 2.0, 2.0, 2.0), {"ev": charging("ev", 0, phases=3)})
    assert decision.setpoints["ev"] == ChargerSetpoint(7.0, 3)
    assert decision.limit_source is LimitSource.HOUSEHOLD_PEAK
    assert Limitation(LimitReason.HOUSEHOLD_PEAK, "ev") in decision.limitations
    # Per phase the fuse is tighter than what the total leaves one phase (6900 - 920 W).
    assert decision.phase_limit_a == pytest.approx((25.0, 25.0, 25.0))


def test_per_phase_export_cap_limits_pv_on_that_phase() -> None:
    pv = PvSpec(device_id="pv", name="PV", priority=3, phases=(2,), rated_power_w=4600)
    g = guard(pv, connection=THREE_PHASE)
    g.set_external_limit(
        ExternalLimit(
            source=LimitSource.DSO,
            issued_at=at(0),
            expires_at=at(600),
            intervals=(LimitInterval(at(0), at(600), max_export_w_per_phase=(2300.0,)),),
        )
    )
    # L2 exports 18 A (4140 W of PV less 0.5 A of load): 8 A more than its 10 A cap.
    decision = g.on_meter(reading(1, 1.0, 0.5 - 18.0, 1.0), {"pv": drawing("pv", -4140)})
    assert decision.setpoints["pv"] == PvSetpoint(2415.0)  # (10 + 0.5) A x 230 V


BATTERY_2300 = BatterySpec(
    device_id="bat", name="Battery", priority=2, max_charge_w=2300, max_discharge_w=2300
)


def _battery_run(
    g: Guard,
    setpoint: BatterySetpoint | None,
    base_a: float,
    seconds: range,
    *,
    measured: bool = False,
) -> list[float | None]:
    """A battery that follows its setpoint (its own mode: 0 W), with or without a sensor."""
    powers = []
    for t in seconds:
        power_w = (setpoint.power_w or 0.0) if setpoint is not None else 0.0
        state = DeviceState("bat", power_w=power_w if measured else None, soc_pct=50)
        decision = g.on_meter(reading(t, base_a + power_w / 230), {"bat": state})
        setpoint = decision.setpoints.get("bat", setpoint)  # type: ignore[assignment]
        powers.append(None if setpoint is None else setpoint.power_w)
    return powers


@pytest.mark.parametrize("measured", [False, True])
def test_a_battery_keeps_a_discharge_the_connection_still_needs(measured: bool) -> None:
    """Forced, its draw is what the guard told it, not what it would do on its own: released
    to its own mode while the load still needs it, it put the overload back every time the
    10-s hold expired (found by the real-Home-Assistant test)."""
    g = guard(BATTERY_2300)
    # 29 A of load on a 24 A limit: 5 A (1,150 W) from the battery, for as long as it lasts.
    assert set(_battery_run(g, None, 29.0, range(60), measured=measured)) == {-1150.0}
    # The load falls to 10 A: nothing needs the battery, it goes back to its own mode.
    after = _battery_run(g, BatterySetpoint(-1150.0), 10.0, range(60, 80), measured=measured)
    assert after[-1] is None


def test_a_guard_started_on_a_discharging_battery_keeps_it_discharging() -> None:
    """A reload: the meter shows 20 A only because the battery discharges 2,070 W, as the
    old guard told it; the new one adopts that instead of counting it as base load."""
    g = guard(BATTERY_2300)
    g.adopt({"bat": BatterySetpoint(-2070.0)}, at(0))
    decision = g.on_meter(reading(1, 29.0 - 9.0), {"bat": DeviceState("bat", soc_pct=50)})
    assert decision.setpoints["bat"] == BatterySetpoint(-1150.0)  # 29 A of load, 24 A limit
    # Without adopting it, the 2,070 W hid in the base load and the battery was released.
    fresh = guard(BATTERY_2300)
    decision = fresh.on_meter(reading(1, 29.0 - 9.0), {"bat": DeviceState("bat", soc_pct=50)})
    assert decision.setpoints["bat"] == BatterySetpoint(None)


def test_adopt_takes_only_a_setpoint_of_the_device_s_kind_before_its_first_decision() -> None:
    g = guard(EV, BATTERY_2300)
    g.adopt(
        {
            "bat": ChargerSetpoint(16.0, 1),
            "ev": ChargerSetpoint(16.0, 1),
            "nope": BatterySetpoint(0),
        },
        at(0),
    )
    states = {"ev": DeviceState("ev", charger_state=ChargerState.C), "bat": DeviceState("bat")}
    # The car's 16 A counts as its draw (no power sensor): 4 A of base load plus 16 A fits.
    decision = g.on_meter(reading(1, 20.0), states)
    assert decision.setpoints["ev"] == ChargerSetpoint(16.0, 1)
    assert decision.setpoints["bat"] == BatterySetpoint(None)  # the charger setpoint was no use
    g.adopt({"ev": ChargerSetpoint(6.0, 1)}, at(2))  # after its first decision: ignored
    assert g.on_meter(reading(3, 20.0), states).setpoints["ev"] == ChargerSetpoint(16.0, 1)
