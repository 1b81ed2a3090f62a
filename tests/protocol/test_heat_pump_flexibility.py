"""Heat-pump flexibility in protocol v1 (issue 14): the thermal store, the comfort
margin, the steering pause, and the server's `features` that lets a household send them."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from community_server.simulation.home import SimulatedHome
from community_server.simulation.member import MemberAccount, SimulatedMember
from community_server.simulation.profiles import HouseholdProfile
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.model import Connection
from netbewust_core.planning.problem import HeatPumpControl, PlanThermalHeatPump
from netbewust_core.protocol.messages import (
    MAX_SERIES_INTERVALS,
    TELEMETRY_INTERVAL_S,
    AckStatus,
    Body,
    Capabilities,
    Channel,
    EmergencyCommand,
    EmergencyLevel,
    EmergencyReason,
    ErrorCode,
    Features,
    LimitUpdate,
    Message,
    ProtocolError,
    ServerFeature,
    Telemetry,
    Topic,
    decode,
    encode,
)
from netbewust_core.protocol.session import (
    OPEN_PAUSE_REPORTED,
    HouseholdAssets,
    HouseholdSession,
    SteeringPause,
    ThermalPump,
    comfort_margin_min,
    heat_pump_flexibility,
)
from netbewust_core.thermal import ComfortBand, CopModel, GasBoiler, ThermalParameters
from netbewust_core.thermal.thermostat import simulate_indoor
from netbewust_core.units import MAX_COMFORT_MARGIN_MIN

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
COMMUNITY = "wijk-1"
HOUSEHOLD = "huis-1"
RECEIPTS = str(Topic(COMMUNITY, HOUSEHOLD, Channel.RECEIPTS))
STEPS = 8
MODEL = ThermalParameters(resistance_k_per_kw=8.0, capacitance_kwh_per_k=10.0, internal_gain_kw=0.3)


def row(**changes: object) -> PlanThermalHeatPump:
    fields: dict[str, object] = {
        "device_id": "hp",
        "thermal": MODEL,
        "cop": CopModel(),
        "max_power_w": 2500.0,
        "outdoor_temperature_c": tuple(2.0 - 0.5 * k for k in range(STEPS)),
        "comfort": ComfortBand(
            (20.0,) * STEPS, (19.5,) * 4 + (15.5,) * 4, (21.0,) * 4 + (20.0,) * 4
        ),
        "indoor_temperature_c": 20.2,
        "control": HeatPumpControl.ON_OFF,
        "max_windows_per_day": 3,
    }
    fields.update(changes)
    return PlanThermalHeatPump(**fields)  # type: ignore[arg-type]


def pump(indoor_now_c: float | None = 20.2, **changes: object) -> ThermalPump:
    return ThermalPump(START, row(**changes), indoor_now_c)


def test_the_store_is_the_engines_model_in_energy_terms() -> None:
    flex = heat_pump_flexibility(pump())
    reference_c = 15.5  # the band's lowest bottom
    assert flex.stored_heat_kwh == pytest.approx(10.0 * (20.2 - reference_c))
    assert flex.stored_heat_min_kwh[:4] == (40.0,) * 4  # 10 kWh/K x 4 K
    assert flex.stored_heat_min_kwh[4:] == (0.0,) * 4
    assert flex.stored_heat_max_kwh[0] == pytest.approx(55.0)
    assert flex.time_constant_h == 80.0
    assert (flex.modulating, flex.max_starts_per_day) == (False, 3)
    assert (flex.hybrid_heat_w, flex.gas_eur_per_kwh_heat) == (None, None)
    # The store's step, run on the wire's numbers, gives the temperatures the engine's
    # model gives for the same heat (within the wire's rounding).
    heat_kw = np.array([2.5, 0.0, 1.0, 0.0, 3.0, 2.0, 0.0, 0.5])
    indoor = simulate_indoor(MODEL, 0.25, 20.2, np.array(row().outdoor_temperature_c), heat_kw)
    a = math.exp(-0.25 / flex.time_constant_h)
    stored = flex.stored_heat_kwh
    for k in range(STEPS):
        stored = a * stored + (1 - a) * flex.time_constant_h * (heat_kw[k] - flex.heat_loss_kw[k])
        assert reference_c + stored / 10.0 == pytest.approx(indoor[k], abs=1e-3)


def test_cop_per_step_and_a_modulating_hybrid() -> None:
    boiler = GasBoiler(max_heat_w=12_000.0, gas_price_eur_per_m3=1.30)
    flex = heat_pump_flexibility(
        pump(control=HeatPumpControl.MODULATING, boiler=boiler, min_power_w=600.0)
    )
    cop = CopModel()
    assert flex.cop == tuple(round(cop.cop(t), 3) for t in row().outdoor_temperature_c)
    assert flex.cop[0] > flex.cop[-1]  # colder outside, lower COP
    assert (flex.modulating, flex.max_starts_per_day, flex.min_power_w) == (True, None, 600.0)
    assert flex.hybrid_heat_w == 12_000.0
    assert flex.gas_eur_per_kwh_heat == pytest.approx(1.30 / (9.77 * 0.9), abs=1e-4)


def test_the_comfort_margin_is_the_models_cooling_time() -> None:
    # Constant outdoor 0 degC, no gains: T(t) = T0 exp(-t / tau) reaches 19.5 after
    # tau ln(20.2 / 19.5) hours; a night band (15.5) further on is never reached first.
    still = pump(
        thermal=replace(MODEL, internal_gain_kw=0.0),
        outdoor_temperature_c=(0.0,) * STEPS,
        comfort=ComfortBand((20.0,) * STEPS, (19.5,) * STEPS, (21.0,) * STEPS),
    )
    expected = 80.0 * math.log(20.2 / 19.5) * 60
    margin = comfort_margin_min(still, START)
    assert margin is not None
    assert expected <= margin <= expected + 1
    # Later in the horizon the home has less time only if it is colder.
    assert comfort_margin_min(replace(still, indoor_now_c=19.6), START) == pytest.approx(
        80.0 * math.log(19.6 / 19.5) * 60, abs=1
    )


def test_the_comfort_margin_is_zero_below_the_band_capped_and_unknown_without_a_reading() -> None:
    assert comfort_margin_min(pump(19.0), START) == 0.0
    # The night band's bottom (15.5) from the fifth quarter hour: a warm home lasts long.
    warm = pump(25.0, outdoor_temperature_c=(18.0,) * STEPS)
    assert comfort_margin_min(warm, START + timedelta(hours=1)) == MAX_COMFORT_MARGIN_MIN
    assert comfort_margin_min(pump(None), START) is None
    assert comfort_margin_min(pump(), START + timedelta(hours=2)) is None  # past the plan
    assert comfort_margin_min(pump(), START - timedelta(minutes=1)) is None


def _assets(**changes: object) -> HouseholdAssets:
    fields: dict[str, object] = {
        "connection": Connection(phases=1, fuse_current_a=25.0),
        "thermal_pumps": (pump(),),
    }
    fields.update(changes)
    return HouseholdAssets(**fields)  # type: ignore[arg-type]


def _features(household: HouseholdSession, *names: str) -> None:
    message = Message(
        community=COMMUNITY,
        household=HOUSEHOLD,
        sent_at=START,
        body=Features(features=names),
    )
    delivery = household.receive(RECEIPTS, encode(message), START)
    assert (delivery.ack, delivery.reply, delivery.invalid) == (None, None, None)  # never answered


def _report(household: HouseholdSession, now: datetime, assets: HouseholdAssets) -> list[Message]:
    sent: list[Message] = []
    for second in range(TELEMETRY_INTERVAL_S):
        sent += household.tick(now + timedelta(seconds=second), (500.0,), lambda: assets).messages
    return sent


def _bodies[T](messages: list[Message], kind: type[T]) -> list[T]:
    return [m.body for m in messages if isinstance(m.body, kind)]


def test_nothing_thermal_goes_to_a_server_that_did_not_announce_it() -> None:
    household = HouseholdSession(COMMUNITY, HOUSEHOLD)
    assets = _assets(pause=SteeringPause(START + timedelta(hours=3)))
    sent = [*household.connected(START, assets).messages, *_report(household, START, assets)]
    (capabilities,) = _bodies(sent, Capabilities)
    (telemetry,) = _bodies(sent, Telemetry)
    assert capabilities.thermal_heat_pumps == ()
    assert (telemetry.comfort_margin_min, telemetry.paused_until) == (None, None)
    # Byte for byte what a household sent before the fields existed.
    for message in sent:
        encoded = encode(message)
        for name in (b"thermal_heat_pumps", b"comfort_margin_min", b"paused_until"):
            assert name not in encoded
    # A server naming only features this household does not know changes nothing.
    _features(household, "later_feature")
    assert household.server_features == frozenset()


def test_a_server_that_reads_them_gets_the_store_margin_and_pause_until_a_reconnect() -> None:
    household = HouseholdSession(COMMUNITY, HOUSEHOLD)
    assets = _assets()
    household.connected(START, assets)
    _features(household, "heat_pump_flexibility", "later_feature")
    assert household.server_features == {ServerFeature.HEAT_PUMP_FLEXIBILITY}
    sent = _report(household, START, assets)
    (capabilities,) = _bodies(sent, Capabilities)  # changed: sent at once
    assert capabilities.thermal_heat_pumps == (heat_pump_flexibility(pump()),)
    (telemetry,) = _bodies(sent, Telemetry)
    assert telemetry.comfort_margin_min == comfort_margin_min(pump(), START + timedelta(seconds=9))
    assert telemetry.comfort_margin_min is not None
    assert telemetry.comfort_margin_min > 0
    assert telemetry.paused_until is None
    for message in sent:  # what it sends decodes as sent
        assert decode(encode(message)) == message
    # A reconnect may be to an older server: plain v1 until it says more.
    reconnect = household.connected(START + timedelta(minutes=1), assets).messages
    (plain,) = _bodies(list(reconnect), Capabilities)
    assert plain.thermal_heat_pumps == ()


def test_the_outdoor_temperature_goes_only_to_a_server_that_reads_it() -> None:
    household = HouseholdSession(COMMUNITY, HOUSEHOLD)
    assets = _assets(outdoor_c=-3.46)
    household.connected(START, assets)
    sent = _report(household, START, assets)
    (plain,) = _bodies(sent, Telemetry)
    assert plain.outdoor_temperature_c is None
    assert all(b"outdoor_temperature_c" not in encode(message) for message in sent)
    _features(household, "heat_pump_flexibility")
    (telemetry,) = _bodies(_report(household, START + timedelta(seconds=10), assets), Telemetry)
    assert telemetry.outdoor_temperature_c == -3.5
    assert household.outdoor_rejected == 0


@pytest.mark.parametrize("reading", [math.nan, math.inf, -40.1, 50.1, 21.0e3])
def test_an_implausible_outdoor_reading_is_left_out_and_counted(reading: float) -> None:
    household = HouseholdSession(COMMUNITY, HOUSEHOLD)
    assets = _assets(outdoor_c=reading)
    household.connected(START, assets)
    _features(household, "heat_pump_flexibility")
    sent = _report(household, START, assets)
    (telemetry,) = _bodies(sent, Telemetry)  # the power report still goes
    assert telemetry.outdoor_temperature_c is None
    assert telemetry.comfort_margin_min is not None
    assert household.outdoor_rejected == 1


def test_a_pause_takes_the_store_back_and_is_reported_until_it_ends() -> None:
    household = HouseholdSession(COMMUNITY, HOUSEHOLD)
    household.connected(START, _assets())
    _features(household, "heat_pump_flexibility")
    _report(household, START, _assets())
    until = START + timedelta(hours=3)
    sent = _report(household, START + timedelta(seconds=10), _assets(pause=SteeringPause(until)))
    (capabilities,) = _bodies(sent, Capabilities)
    assert capabilities.thermal_heat_pumps == ()  # the server must not plan a paused pump
    assert [t.paused_until for t in _bodies(sent, Telemetry)] == [until]
    # Without an end: a day ahead of each report, renewed while it lasts.
    later = START + timedelta(seconds=20)
    sent = _report(household, later, _assets(pause=SteeringPause()))
    assert [t.paused_until for t in _bodies(sent, Telemetry)] == [
        later + timedelta(seconds=9) + OPEN_PAUSE_REPORTED
    ]
    # A pause that has ended is none: the store is offered again.
    after = until + timedelta(seconds=1)
    sent = _report(household, after, _assets(pause=SteeringPause(until)))
    assert [t.paused_until for t in _bodies(sent, Telemetry)] == [None]
    assert _bodies(sent, Capabilities)[0].thermal_heat_pumps != ()


def test_a_store_out_of_range_leaves_the_capabilities_without_it() -> None:
    household = HouseholdSession(COMMUNITY, HOUSEHOLD)
    household.connected(START, _assets())
    _features(household, "heat_pump_flexibility")
    negative_gas = GasBoiler(max_heat_w=10_000.0, gas_price_eur_per_m3=-1.0)
    outgoing = [
        household.tick(
            START + timedelta(seconds=s),
            (1.0,),
            lambda: _assets(thermal_pumps=(pump(boiler=negative_gas),)),
        )
        for s in range(TELEMETRY_INTERVAL_S)
    ]
    problems = [p for o in outgoing for p in o.problems]
    assert any(
        "heat-pump flexibility not sent" in p and "gas_eur_per_kwh_heat" in p for p in problems
    )
    # The connection's facts still go out, as at the connect: nothing new to send.
    assert _bodies([m for o in outgoing for m in o.messages], Capabilities) == []
    assert household.capabilities_sent is not None
    assert household.capabilities_sent.thermal_heat_pumps == ()


def _capabilities_document() -> dict[str, object]:
    message = Message(
        community=COMMUNITY,
        household=HOUSEHOLD,
        sent_at=START,
        body=Capabilities(
            phases=1, fuse_current_a=25.0, thermal_heat_pumps=(heat_pump_flexibility(pump()),)
        ),
    )
    document: dict[str, object] = json.loads(encode(message))
    return document


@pytest.mark.parametrize(
    ("changes", "code", "words"),
    [
        ({"cop": [3.0, 0.5] + [3.0] * 6}, ErrorCode.OUT_OF_RANGE, "thermal_heat_pumps[0].cop[1]"),
        ({"cop": [3.0] * 3}, ErrorCode.OUT_OF_RANGE, "equally long"),
        ({"cop": []}, ErrorCode.OUT_OF_RANGE, "cop"),
        ({"start": "2026-11-22T12:05:00Z"}, ErrorCode.OUT_OF_RANGE, "quarter hour"),
        ({"start": "2026-11-22T12:00:00+01:00"}, ErrorCode.NOT_UTC, "start"),
        ({"stored_heat_min_kwh": [60.0] * STEPS}, ErrorCode.OUT_OF_RANGE, "must not exceed"),
        ({"stored_heat_kwh": 5000.0}, ErrorCode.OUT_OF_RANGE, "stored_heat_kwh"),
        ({"min_power_w": 3000.0}, ErrorCode.OUT_OF_RANGE, "min_power_w"),
        ({"hybrid_heat_w": 8000.0}, ErrorCode.OUT_OF_RANGE, "needs both"),
        ({"gas_eur_per_kwh_heat": -0.1, "hybrid_heat_w": 1.0}, ErrorCode.OUT_OF_RANGE, "gas"),
        ({"time_constant_h": 0}, ErrorCode.OUT_OF_RANGE, "time_constant_h"),
        ({"heat_loss_kw": [1e9] + [1.0] * 7}, ErrorCode.OUT_OF_RANGE, "heat_loss_kw"),
        ({"modulating": 1}, ErrorCode.WRONG_TYPE, "modulating"),
        ({"max_starts_per_day": 2.0}, ErrorCode.WRONG_TYPE, "max_starts_per_day"),
        ({"temperature_c": 20.5}, ErrorCode.EXTRA_FIELD, "temperature_c"),
        ({"cop": None}, ErrorCode.WRONG_TYPE, "cop"),
    ],
)
def test_a_store_that_does_not_validate_is_rejected_with_its_path(
    changes: dict[str, object], code: ErrorCode, words: str
) -> None:
    document = _capabilities_document()
    body = document["body"]
    assert isinstance(body, dict)
    body["thermal_heat_pumps"][0].update(changes)
    with pytest.raises(ProtocolError) as caught:
        decode(json.dumps(document))
    assert caught.value.code == code
    assert words in caught.value.reason


def test_a_store_lacking_a_field_is_missing_it_and_an_absent_block_is_none() -> None:
    document = _capabilities_document()
    body = document["body"]
    assert isinstance(body, dict)
    del body["thermal_heat_pumps"][0]["modulating"]
    with pytest.raises(ProtocolError) as caught:
        decode(json.dumps(document))
    assert caught.value.code == ErrorCode.MISSING_FIELD
    del body["thermal_heat_pumps"]
    decoded = decode(json.dumps(document)).body
    assert isinstance(decoded, Capabilities)
    assert decoded.thermal_heat_pumps == ()


def test_a_features_message_is_bounded_and_on_the_receipts_channel() -> None:
    message = Message(
        community=COMMUNITY, household=HOUSEHOLD, sent_at=START, body=Features(features=())
    )
    assert message.channel is Channel.RECEIPTS
    with pytest.raises(ProtocolError) as caught:
        Features(features=("Not A Name",))
    assert caught.value.code == ErrorCode.OUT_OF_RANGE
    with pytest.raises(ProtocolError) as caught:
        Features(features=("x",) * 33)
    assert caught.value.code == ErrorCode.OUT_OF_RANGE


def test_a_steering_pause_lifts_no_community_cap_nor_emergency_and_is_reported() -> None:
    """The simulated member pauses its heat pumps' steering: the limit and a critical
    emergency hold as before (the guard switches flexible devices off), and its telemetry
    says until when, once the server has announced it reads that."""
    now = START
    account = MemberAccount(COMMUNITY, HOUSEHOLD, HOUSEHOLD, "x", "127.0.0.1", 1)
    profile = HouseholdProfile(
        phases=1, fuse_current_a=25.0, annual_kwh=3000.0, noise=0.0, pv_peak_w=0.0,
        ev_session=None, ev_max_current_a=16.0, heat_pump_rated_w=2000.0,
    )  # fmt: skip
    member = SimulatedMember(account, SimulatedHome(profile, seed=1), clock=lambda: now)
    member.tick(now)

    def deliver(body: Body, message_id: str) -> None:
        message = Message(
            community=COMMUNITY, household=HOUSEHOLD, sent_at=now, body=body, message_id=message_id
        )
        member.handle(str(message.topic), encode(message))

    deliver(Features(features=("heat_pump_flexibility",)), "f1")
    limit = ExternalLimit(
        source=LimitSource.COMMUNITY,
        issued_at=now,
        expires_at=now + timedelta(minutes=15),
        intervals=(LimitInterval(start=now, end=now + timedelta(hours=1), max_import_w=2300.0),),
    )
    deliver(LimitUpdate(limit=limit), "l1")
    until = now + timedelta(hours=2)
    member.pause_steering(SteeringPause(until))
    deliver(
        EmergencyCommand(
            level=EmergencyLevel.CRITICAL,
            reason=EmergencyReason.TRANSFORMER_OVERLOAD,
            starts_at=now,
            expires_at=now + timedelta(minutes=10),
            max_import_w=1150.0,
        ),
        "e1",
    )
    assert [(a.ref_id, a.status) for a in member.acks_sent] == [
        ("l1", AckStatus.APPLIED),
        ("e1", AckStatus.APPLIED),
    ]
    for _ in range(TELEMETRY_INTERVAL_S):
        now += timedelta(seconds=1)
        member.tick(now)
    in_force = member.session.in_force(now)
    assert in_force.limit == limit
    assert in_force.switch_off
    decision = member.home.last_decision
    assert decision is not None
    assert decision.state.value == "safe_mode"
    reports = [m.body for m in member.session.unconfirmed if isinstance(m.body, Telemetry)]
    assert reports[-1].paused_until == until
    # Its profile's outdoor temperature goes with it, for the server's load forecast.
    assert reports[-1].outdoor_temperature_c is not None
    assert -2.0 <= reports[-1].outdoor_temperature_c <= 6.0


def test_a_longer_plan_is_offered_up_to_what_a_message_carries() -> None:
    long = 2 * 96 + 12
    flex = heat_pump_flexibility(
        pump(
            outdoor_temperature_c=(3.0,) * long,
            comfort=ComfortBand((20.0,) * long, (19.5,) * long, (21.0,) * long),
        )
    )
    assert flex.steps == MAX_SERIES_INTERVALS
    assert len(flex.stored_heat_max_kwh) == len(flex.heat_loss_kw) == MAX_SERIES_INTERVALS
