"""The household session on its own: what it accepts, answers, holds and reports."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.model import (
    BatterySpec,
    ChargerSpec,
    Connection,
    HeatPumpControl,
    HeatPumpSpec,
)
from netbewust_core.protocol.messages import (
    TELEMETRY_INTERVAL_S,
    Ack,
    AckStatus,
    BaselineForecast,
    Body,
    Channel,
    EmergencyCommand,
    EmergencyLevel,
    EmergencyReason,
    LimitUpdate,
    Message,
    Notice,
    NoticeCode,
    Presence,
    Receipt,
    ReleaseCommand,
    Telemetry,
    Topic,
    encode,
)
from netbewust_core.protocol.session import (
    BASELINE_STEPS,
    MAX_UNCONFIRMED,
    REMEMBERED_IDS,
    RESEND_PER_CALL,
    SKEW_FORGET_AFTER,
    BaselineSource,
    HomeBattery,
    HouseholdAssets,
    HouseholdSession,
    PluggedCar,
    battery_soc_pct,
    build_capabilities,
    day_ahead_baseline,
    ev_envelope,
    loose_message_id,
)

NOW = datetime(2026, 3, 2, 18, 7, 30, tzinfo=UTC)
COMMUNITY = "wijk-1"
HOUSEHOLD = "huis-1"
LIMITS = str(Topic(COMMUNITY, HOUSEHOLD, Channel.LIMITS))
COMMAND = str(Topic(COMMUNITY, HOUSEHOLD, Channel.COMMAND))
CONNECTION = Connection(phases=3, fuse_current_a=25.0)


def session() -> HouseholdSession:
    return HouseholdSession(COMMUNITY, HOUSEHOLD)


def payload(
    body: Body, message_id: str, sent_at: datetime = NOW, household: str = HOUSEHOLD
) -> bytes:
    message = Message(
        community=COMMUNITY, household=household, sent_at=sent_at, body=body, message_id=message_id
    )
    return encode(message)


def limit(max_import_w: float, issued_at: datetime = NOW, expires_in: float = 600) -> LimitUpdate:
    return LimitUpdate(
        limit=ExternalLimit(
            source=LimitSource.COMMUNITY,
            issued_at=issued_at,
            expires_at=issued_at + timedelta(seconds=expires_in),
            intervals=(
                LimitInterval(
                    start=issued_at, end=issued_at + timedelta(hours=1), max_import_w=max_import_w
                ),
            ),
        )
    )


def emergency(level: EmergencyLevel, expires_in: float = 600) -> EmergencyCommand:
    return EmergencyCommand(
        level=level,
        reason=EmergencyReason.CONGESTION,
        starts_at=NOW - timedelta(seconds=10),
        expires_at=NOW + timedelta(seconds=expires_in),
        max_import_w=4000.0,
    )


def answer(
    household: HouseholdSession, topic: str, data: bytes
) -> tuple[AckStatus, str | None] | None:
    delivery = household.receive(topic, data, NOW)
    if delivery.ack is None:
        return None
    assert delivery.reply is not None
    assert delivery.reply.body == delivery.ack
    assert delivery.reply.topic == Topic(COMMUNITY, HOUSEHOLD, Channel.ACK)
    return delivery.ack.status, delivery.ack.reason


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "answered"),
    [
        (b"{broken", None),
        (b"\xff\xfe", None),
        (b"[]", None),
        (b'{"id": "abc"}', "abc"),  # no version: rejected by the id it has
        (b'{"v": 1, "id": "a b c"}', None),  # not a message id: nothing to name
        (b'{"v": 1, "id": 7}', None),
        (b"9" * 70_000, None),  # too large
    ],
)
def test_malformed_deliveries_are_rejected_by_id_when_they_have_one(
    data: bytes, answered: str | None
) -> None:
    household = session()
    delivery = household.receive(LIMITS, data, NOW)
    assert delivery.invalid is not None
    assert household.rejected == 1
    assert (delivery.ack.ref_id if delivery.ack else None) == answered
    if delivery.ack is not None:
        assert delivery.ack.status is AckStatus.REJECTED
    assert household.in_force(NOW).guard_limits == {}


@pytest.mark.parametrize(
    ("topic", "data", "reason"),
    [
        # Another household's limit on its own topic (this one never subscribes to it).
        (
            str(Topic(COMMUNITY, "huis-2", Channel.LIMITS)),
            payload(limit(1000.0), "m1", household="huis-2"),
            "not this household's topic",
        ),
        # Another community's household of the same name.
        (
            str(Topic("wijk-2", HOUSEHOLD, Channel.LIMITS)),
            encode(
                Message(
                    community="wijk-2",
                    household=HOUSEHOLD,
                    sent_at=NOW,
                    body=limit(1000.0),
                    message_id="m1",
                )
            ),
            "not this household's topic",
        ),
        # This household's limit on another household's topic.
        (str(Topic(COMMUNITY, "huis-2", Channel.LIMITS)), payload(limit(1000.0), "m1"), None),
        # A command on the limits topic.
        (LIMITS, payload(emergency(EmergencyLevel.CURTAIL), "m1"), None),
        # What households send, delivered to a household.
        (
            str(Topic(COMMUNITY, HOUSEHOLD, Channel.STATUS)),
            payload(Presence(online=True), "m1"),
            "a household does not accept presence",
        ),
        ("netbewust/v1/wijk-1", payload(limit(1000.0), "m1"), None),
    ],
)
def test_wrong_community_household_or_channel_is_rejected_and_nothing_held(
    topic: str, data: bytes, reason: str | None
) -> None:
    household = session()
    delivery = household.receive(topic, data, NOW)
    assert delivery.invalid is not None
    if reason is not None:
        assert delivery.invalid == reason
    assert delivery.ack is not None
    assert (delivery.ack.ref_id, delivery.ack.status) == ("m1", AckStatus.REJECTED)
    assert household.limit is None
    assert household.emergency is None


def test_a_redelivered_message_is_answered_alike_and_not_applied_again() -> None:
    household = session()
    critical = payload(emergency(EmergencyLevel.CRITICAL), "e1")
    assert answer(household, COMMAND, critical) == (AckStatus.APPLIED, None)
    assert household.in_force(NOW).switch_off
    assert answer(household, COMMAND, payload(ReleaseCommand(), "r1")) == (AckStatus.APPLIED, None)
    delivery = household.receive(COMMAND, critical, NOW)
    assert delivery.duplicate
    assert delivery.ack == Ack(ref_id="e1", status=AckStatus.APPLIED)
    assert not household.in_force(NOW).switch_off  # the release still stands


def test_a_redelivered_limit_is_decided_again_with_what_holds_now() -> None:
    household = session()
    retained = payload(limit(3000.0), "m1")
    household.set_participating(False)
    assert answer(household, LIMITS, retained) == (AckStatus.REJECTED, "participation paused")
    household.set_participating(True)
    again = household.receive(LIMITS, retained, NOW)  # the broker's retained copy, on reconnect
    assert again.duplicate
    assert again.ack == Ack(ref_id="m1", status=AckStatus.APPLIED)
    lapsed = household.receive(LIMITS, retained, NOW + timedelta(minutes=11))
    assert lapsed.ack == Ack(ref_id="m1", status=AckStatus.EXPIRED)
    assert household.in_force(NOW + timedelta(minutes=11)).guard_limits == {}


def test_a_reused_id_for_another_message_is_rejected() -> None:
    household = session()
    assert answer(household, LIMITS, payload(limit(3000.0), "m1")) == (AckStatus.APPLIED, None)
    later = payload(limit(1000.0, NOW + timedelta(seconds=1)), "m1")
    assert answer(household, LIMITS, later) == (
        AckStatus.REJECTED,
        "a message id used before for another message",
    )
    assert household.limit is not None
    assert household.limit.intervals[0].max_import_w == 3000.0
    assert household.rejected == 1


def test_remembered_ids_are_bounded() -> None:
    household = session()
    for number in range(REMEMBERED_IDS + 1):
        issued = NOW - timedelta(seconds=REMEMBERED_IDS - number)
        household.receive(LIMITS, payload(limit(3000.0, issued), f"m{number}"), NOW)
    # The first id is forgotten: its copy is decided again (and is older than the one held).
    again = household.receive(
        LIMITS, payload(limit(3000.0, NOW - timedelta(seconds=REMEMBERED_IDS)), "m0"), NOW
    )
    assert not again.duplicate
    assert again.ack is not None
    assert again.ack.reason == "older than the limit in force"


# --- limits: order, staleness, expiry -----------------------------------------------------


def test_limits_in_order_older_rejected_newer_and_equal_applied() -> None:
    household = session()
    assert answer(household, LIMITS, payload(limit(3000.0), "m1")) == (AckStatus.APPLIED, None)
    older = payload(limit(1000.0, NOW - timedelta(seconds=1)), "m2")
    assert answer(household, LIMITS, older) == (AckStatus.REJECTED, "older than the limit in force")
    same = payload(limit(2000.0), "m3")  # a renewal issued at the same moment replaces it
    assert answer(household, LIMITS, same) == (AckStatus.APPLIED, None)
    in_force = household.in_force(NOW)
    assert in_force.limit is not None
    assert in_force.guard_limits[LimitSource.COMMUNITY].intervals[0].max_import_w == 2000.0


def test_an_older_limit_is_taken_once_the_held_one_expired() -> None:
    household = session()
    household.receive(LIMITS, payload(limit(3000.0, expires_in=60), "m1"), NOW)
    later = NOW + timedelta(seconds=61)
    older = payload(limit(1000.0, NOW - timedelta(seconds=5), expires_in=600), "m2", later)
    assert household.receive(LIMITS, older, later).ack == Ack(ref_id="m2", status=AckStatus.APPLIED)


def test_an_expired_limit_or_command_is_acknowledged_as_expired_and_not_held() -> None:
    household = session()
    stale = payload(limit(1000.0, NOW - timedelta(minutes=10), expires_in=60), "m1")
    assert answer(household, LIMITS, stale) == (AckStatus.EXPIRED, None)
    assert answer(household, COMMAND, payload(emergency(EmergencyLevel.CRITICAL, -1), "e1")) == (
        AckStatus.EXPIRED,
        None,
    )
    in_force = household.in_force(NOW)
    assert (in_force.limit, in_force.emergency, in_force.switch_off) == (None, None, False)


def test_messages_from_the_future_are_refused() -> None:
    household = session()
    ahead = payload(limit(1000.0), "m1", sent_at=NOW + timedelta(minutes=6))
    assert answer(household, LIMITS, ahead) == (
        AckStatus.REJECTED,
        "sent in the future: is the household's clock right?",
    )
    issued_ahead = payload(limit(1000.0, NOW + timedelta(minutes=6)), "m2")
    assert answer(household, LIMITS, issued_ahead) == (
        AckStatus.REJECTED,
        "issued in the future: is the household's clock right?",
    )
    # Within the tolerance a clock a little ahead is fine.
    slightly = payload(limit(1000.0, NOW + timedelta(minutes=4)), "m3", NOW + timedelta(minutes=4))
    assert answer(household, LIMITS, slightly) == (AckStatus.APPLIED, None)


def test_nothing_is_in_force_past_its_expiry_and_the_lapse_is_reported_once() -> None:
    household = session()
    household.receive(LIMITS, payload(limit(3000.0, expires_in=60), "m1"), NOW)
    household.receive(COMMAND, payload(emergency(EmergencyLevel.CURTAIL, 30), "e1"), NOW)
    assert set(household.in_force(NOW).guard_limits) == {
        LimitSource.COMMUNITY,
        LimitSource.EMERGENCY,
    }
    at_30 = household.in_force(NOW + timedelta(seconds=30))
    assert (set(at_30.guard_limits), at_30.lapsed) == ({LimitSource.COMMUNITY}, ("emergency",))
    at_60 = household.in_force(NOW + timedelta(seconds=60))
    assert (at_60.guard_limits, at_60.lapsed) == ({}, ("limit",))
    assert household.in_force(NOW + timedelta(seconds=61)).lapsed == ()


# --- emergencies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "capped", "switch_off"),
    [
        (EmergencyLevel.ADVISORY, False, False),
        (EmergencyLevel.CURTAIL, True, False),
        (EmergencyLevel.CRITICAL, True, True),
    ],
)
def test_each_emergency_level_does_what_the_table_says(
    level: EmergencyLevel, capped: bool, switch_off: bool
) -> None:
    household = session()
    assert answer(household, COMMAND, payload(emergency(level), "e1")) == (AckStatus.APPLIED, None)
    in_force = household.in_force(NOW)
    assert in_force.emergency is not None
    assert (LimitSource.EMERGENCY in in_force.guard_limits, in_force.switch_off) == (
        capped,
        switch_off,
    )
    # A release of another emergency leaves it; one naming it ends it.
    household.receive(COMMAND, payload(ReleaseCommand(releases="other"), "r1"), NOW)
    assert household.emergency is not None
    household.receive(COMMAND, payload(ReleaseCommand(releases="e1"), "r2"), NOW)
    assert household.in_force(NOW).guard_limits == {}


def test_an_allocation_emergency_limit_and_a_command_both_hold() -> None:
    household = session()
    shared = ExternalLimit(
        source=LimitSource.EMERGENCY,
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=5),
        intervals=(
            LimitInterval(
                start=NOW,
                end=NOW + timedelta(minutes=2),
                max_import_w=6000.0,
                max_import_w_per_phase=(2000.0, 2000.0, 2000.0),
            ),
            LimitInterval(
                start=NOW + timedelta(minutes=2), end=NOW + timedelta(hours=1), max_import_w=3000.0
            ),
        ),
    )
    household.receive(LIMITS, payload(LimitUpdate(limit=shared), "m1"), NOW)
    household.receive(COMMAND, payload(emergency(EmergencyLevel.CURTAIL, 180), "e1"), NOW)
    held = household.in_force(NOW).guard_limits[LimitSource.EMERGENCY]

    def caps(minutes: float) -> tuple[float | None, tuple[float, ...] | None] | None:
        interval = held.interval_at(NOW + timedelta(minutes=minutes))
        return (
            None if interval is None else (interval.max_import_w, interval.max_import_w_per_phase)
        )

    assert caps(1) == (4000.0, (2000.0, 2000.0, 2000.0))  # the command's total is lower
    assert caps(2.5) == (3000.0, None)  # the allocation's is
    assert caps(4) == (3000.0, None)  # the command expired at 3 minutes
    assert caps(6) is None  # the allocation's limit expired at 5: nothing past expiry


def test_paused_the_limit_is_held_but_not_in_force_and_commands_are_refused() -> None:
    household = session()
    assert household.set_participating(False)
    assert not household.set_participating(False)
    assert answer(household, LIMITS, payload(limit(3000.0), "m1")) == (
        AckStatus.REJECTED,
        "participation paused",
    )
    assert answer(household, COMMAND, payload(emergency(EmergencyLevel.CRITICAL), "e1")) == (
        AckStatus.REJECTED,
        "participation paused",
    )
    assert household.in_force(NOW).guard_limits == {}
    household.set_participating(True)
    in_force = household.in_force(NOW)
    assert set(in_force.guard_limits) == {LimitSource.COMMUNITY}
    assert not in_force.switch_off  # the refused command was never held


def test_leaving_drops_everything() -> None:
    household = session()
    household.receive(LIMITS, payload(limit(3000.0), "m1"), NOW)
    household.receive(COMMAND, payload(emergency(EmergencyLevel.CRITICAL), "e1"), NOW)
    household.leave()
    in_force = household.in_force(NOW)
    assert (in_force.guard_limits, in_force.switch_off) == ({}, False)


# --- reports ------------------------------------------------------------------------------


def test_telemetry_is_the_mean_over_a_report_period() -> None:
    household = session()
    moments = [NOW + timedelta(seconds=s) for s in range(TELEMETRY_INTERVAL_S)]
    sent = []
    for second, moment in enumerate(moments):
        power: tuple[float, ...] | None = (
            (1000.0, 0.0, -200.0) if second < 5 else (2000.0, 100.0, -100.0)
        )
        if second == 3:
            power = None  # no usable reading this second: not counted
        sent.append(household.tick(moment, power, lambda: None))
    assert all(not out.messages for out in sent)  # nine samples so far
    out = household.tick(moments[-1] + timedelta(seconds=1), (2000.0, 100.0, -100.0), lambda: None)
    [message] = out.messages
    assert isinstance(message.body, Telemetry)
    # Four seconds at the first power, six at the second.
    assert message.body.power_w == (1600.0, 60.0, -140.0)
    assert message.body.interval_s == TELEMETRY_INTERVAL_S
    assert message.body.participating
    assert message.body.battery_soc_pct is None


def test_telemetry_skips_samples_of_another_width_and_reports_impossible_values() -> None:
    household = session()
    for second in range(TELEMETRY_INTERVAL_S - 1):
        household.tick(NOW + timedelta(seconds=second), (300.0,), lambda: None)
    out = household.tick(NOW + timedelta(seconds=10), (100.0, 200.0, 300.0), lambda: None)
    [message] = out.messages
    assert isinstance(message.body, Telemetry)
    assert message.body.power_w == (100.0, 200.0, 300.0)  # the meter switched to per phase
    for second in range(TELEMETRY_INTERVAL_S):
        out = household.tick(NOW + timedelta(seconds=11 + second), (1e9,), lambda: None)
    assert out.messages == ()
    assert out.problems
    assert out.problems[0].startswith("telemetry not sent")


def _assets(**changes: Any) -> HouseholdAssets:
    charger = ChargerSpec(
        device_id="ev", name="ev", priority=1, phases=(1, 2, 3), max_current_a=16.0
    )
    base = HouseholdAssets(
        connection=CONNECTION,
        pv_peak_w=5000.0,
        batteries=(
            HomeBattery(
                BatterySpec(
                    device_id="b1",
                    name="b1",
                    priority=2,
                    phases=(1,),
                    max_charge_w=2500.0,
                    max_discharge_w=2000.0,
                ),
                10_000.0,
                80.0,
            ),
            HomeBattery(
                BatterySpec(
                    device_id="b2",
                    name="b2",
                    priority=3,
                    phases=(2,),
                    max_charge_w=1500.0,
                    max_discharge_w=1500.0,
                ),
                30_000.0,
                40.0,
            ),
        ),
        heat_pumps=(
            HeatPumpSpec(
                device_id="hp",
                name="hp",
                priority=4,
                phases=(1,),
                rated_power_w=2000.0,
                control=HeatPumpControl.SG_READY,
            ),
        ),
        cars=(PluggedCar(charger, 20_000.0, datetime(2026, 3, 3, 6, 0, tzinfo=UTC)),),
        ean="871685900000000004",
        tariff_class="3x25A",
    )
    return replace(base, **changes)


def test_capabilities_are_built_from_engine_types() -> None:
    capabilities = build_capabilities(_assets(), NOW)
    assert (capabilities.phases, capabilities.fuse_current_a) == (3, 25.0)
    assert capabilities.battery is not None
    assert (capabilities.battery.energy_wh, capabilities.battery.max_charge_w) == (40_000.0, 4000.0)
    assert capabilities.heat_pump is not None
    assert capabilities.heat_pump.flexible_power_w == 2000.0  # SG-ready blocks it fully
    [car] = capabilities.envelopes
    assert car.earliest_start == datetime(2026, 3, 2, 18, 0, tzinfo=UTC)  # this quarter hour
    assert (car.energy_wh, car.max_power_w, car.min_power_w) == (20_000.0, 11_040.0, 4140.0)
    assert battery_soc_pct(_assets().batteries) == pytest.approx(50.0)


def test_envelopes_offer_only_what_fits_before_departure() -> None:
    charger = ChargerSpec(
        device_id="ev",
        name="ev",
        priority=1,
        phases=(1,),
        max_current_a=16.0,
        can_switch_phases=True,
    )
    soon = PluggedCar(charger, 20_000.0, datetime(2026, 3, 2, 19, 0, tzinfo=UTC))
    envelope = ev_envelope(soon, NOW)
    assert envelope is not None
    assert envelope.energy_wh == pytest.approx(16 * 230.0)  # one hour at 3680 W
    assert envelope.min_power_w == 6 * 230.0
    gone = PluggedCar(charger, 20_000.0, datetime(2026, 3, 2, 18, 0, tzinfo=UTC))
    assert ev_envelope(gone, NOW) is None
    full = PluggedCar(charger, 0.5, datetime(2026, 3, 3, 7, 0, tzinfo=UTC))
    assert ev_envelope(full, NOW) is None


def test_batteries_charge_is_unknown_when_any_part_is() -> None:
    batteries = _assets().batteries
    assert battery_soc_pct(()) is None
    unknown = (batteries[0], HomeBattery(batteries[1].spec, 30_000.0, None))
    assert battery_soc_pct(unknown) is None
    no_capacity = tuple(HomeBattery(b.spec, None, b.soc_pct) for b in batteries)
    assert battery_soc_pct(no_capacity) is None


def test_capabilities_go_on_connect_and_then_only_when_changed() -> None:
    household = session()
    assets = _assets()
    out = household.connected(NOW, assets)
    assert [message.type_name for message in out.messages] == ["presence", "capabilities"]
    assert out.messages[0].body == Presence(online=True)

    def report(moment: datetime, current: HouseholdAssets) -> list[str]:
        names: list[str] = []
        for second in range(TELEMETRY_INTERVAL_S):
            out = household.tick(moment + timedelta(seconds=second), (100.0,), lambda: current)
            names += [message.type_name for message in out.messages]
        return names

    assert report(NOW, assets) == ["telemetry"]
    assert report(NOW + timedelta(minutes=8), assets) == [
        "telemetry",
        "capabilities",
    ]  # new quarter
    assert report(NOW + timedelta(minutes=9), _assets(cars=())) == ["telemetry", "capabilities"]
    broken = _assets(ean="123")
    household.connected(NOW, None)
    out = household.tick(NOW + timedelta(minutes=10), (100.0,), lambda: broken)
    for second in range(1, TELEMETRY_INTERVAL_S):
        out = household.tick(NOW + timedelta(minutes=10, seconds=second), (100.0,), lambda: broken)
    assert [message.type_name for message in out.messages] == ["telemetry"]
    assert out.problems
    assert out.problems[0].startswith("capabilities not sent")


def test_the_baseline_comes_from_the_forecast_or_the_plan_and_is_resent_when_it_moved() -> None:
    household = session()
    baseline, source = day_ahead_baseline(NOW, [400.04] * 120, flat=True)
    assert (baseline.start, len(baseline.power_w), source) == (
        datetime(2026, 3, 2, 18, 0, tzinfo=UTC),
        BASELINE_STEPS,
        BaselineSource.FLAT_ESTIMATE,
    )
    assert set(baseline.power_w) == {400.0}
    assert household.baseline_due(NOW)
    assert not household.baseline_due(NOW + timedelta(minutes=5))  # same quarter hour
    assert household.baseline(NOW, baseline, source) is not None
    later = NOW + timedelta(minutes=15)
    same, _ = day_ahead_baseline(later, [450.0] * 96)
    assert household.baseline(later, same, BaselineSource.BASE_LOAD_PROFILE) is None
    moved, _ = day_ahead_baseline(later, [600.0] * 96)
    message = household.baseline(later, moved, BaselineSource.BASE_LOAD_PROFILE)
    assert message is not None
    assert isinstance(message.body, BaselineForecast)
    day_later = later + timedelta(hours=24)
    again, _ = day_ahead_baseline(day_later, [600.0] * 96)
    assert household.baseline(day_later, again, BaselineSource.BASE_LOAD_PROFILE) is not None
    household.connected(day_later, None)
    assert household.baseline_due(day_later)  # a connect checks it again at once


def test_loose_ids_name_only_valid_message_ids() -> None:
    assert loose_message_id(b'{"id": "abc-1"}') == "abc-1"
    assert loose_message_id(b'{"id": "../x"}') is None
    assert loose_message_id(b'{"id": null}') is None
    assert loose_message_id(b'["id"]') is None
    assert loose_message_id(b"[" * 100_000) is None


def test_time_alone_does_not_move_the_telemetry_window() -> None:
    """A second without a sample is not a sample: the window holds ten readings."""
    household = session()
    for second in range(30):
        out = household.tick(NOW + timedelta(seconds=second), None, lambda: None)
        assert out.messages == ()


def test_a_session_needs_valid_ids() -> None:
    with pytest.raises(ValueError, match="household id"):
        HouseholdSession(COMMUNITY, "Huis 1")


# --- reports kept until the server has them ------------------------------------------------

RECEIPTS = str(Topic(COMMUNITY, HOUSEHOLD, Channel.RECEIPTS))


def kept(household: HouseholdSession) -> int:
    return len(household.unconfirmed)


def _telemetry_reports(household: HouseholdSession, start: datetime, count: int) -> list[str]:
    """`count` telemetry reports, one per report period from `start`; their ids."""
    ids = []
    for report in range(count):
        for second in range(TELEMETRY_INTERVAL_S):
            moment = start + timedelta(seconds=report * TELEMETRY_INTERVAL_S + second)
            out = household.tick(moment, (100.0,), lambda: None)
        [message] = out.messages
        ids.append(message.message_id)
    return ids


def test_reports_are_kept_until_a_receipt_and_sent_again_with_the_same_ids() -> None:
    household = session()
    household.connected(NOW, None)  # presence alone: never kept
    first, second = _telemetry_reports(household, NOW, 2)
    assert kept(household) == 2
    # Until the server has shown it sends receipts, nothing is sent again.
    assert household.resend(NOW + timedelta(hours=1)).messages == ()
    delivery = household.receive(RECEIPTS, payload(Receipt(ids=(first,)), "rc1"), NOW)
    assert (delivery.ack, delivery.reply, delivery.invalid) == (None, None, None)  # not acked
    assert kept(household) == 1
    sent_at = NOW + timedelta(seconds=2 * TELEMETRY_INTERVAL_S - 1)
    assert household.resend(sent_at + timedelta(seconds=59)).messages == ()
    [again] = household.resend(sent_at + timedelta(seconds=60)).messages
    assert again.message_id == second
    assert household.resend(sent_at + timedelta(seconds=61)).messages == ()  # just sent
    household.receive(RECEIPTS, payload(Receipt(ids=(second, "unknown")), "rc2"), NOW)
    assert kept(household) == 0
    assert household.dropped == 0


def test_resending_is_bounded_per_call_and_the_buffer_drops_the_oldest_counted() -> None:
    household = session()
    household.receive(RECEIPTS, payload(Receipt(ids=("nothing-yet",)), "rc1"), NOW)
    ids = _telemetry_reports(household, NOW, MAX_UNCONFIRMED + 5)
    assert kept(household) == MAX_UNCONFIRMED
    assert household.dropped == 5
    later = NOW + timedelta(days=1)
    batch = household.resend(later).messages
    assert [message.message_id for message in batch] == ids[5 : 5 + RESEND_PER_CALL]
    following = household.resend(later).messages
    assert [message.message_id for message in following] == ids[25 : 25 + RESEND_PER_CALL]


def test_acks_are_kept_too_and_a_receipt_for_another_household_is_refused() -> None:
    household = session()
    household.receive(LIMITS, payload(limit(3000.0), "m1"), NOW)
    assert kept(household) == 1  # the ack
    foreign = household.receive(
        str(Topic(COMMUNITY, "huis-2", Channel.RECEIPTS)),
        payload(Receipt(ids=("x",)), "rc1", household="huis-2"),
        NOW,
    )
    assert foreign.invalid == "not this household's topic"
    assert not household.receipts_seen


# --- the clock ------------------------------------------------------------------------------


def notice(server_time: datetime, message_id: str = "n1") -> bytes:
    body = Notice(ref_id="t1", code=NoticeCode.FUTURE_TIMESTAMP, server_time=server_time)
    return payload(body, message_id, sent_at=server_time)


def test_a_notice_says_how_far_ahead_the_clock_is_until_none_came_for_a_while() -> None:
    household = session()
    assert household.clock_skew(NOW) is None
    # Our clock reads NOW; the server's read 7 minutes less when it refused our report.
    delivery = household.receive(RECEIPTS, notice(NOW - timedelta(minutes=7)), NOW)
    assert (delivery.ack, delivery.reply, delivery.invalid) == (None, None, None)  # not acked
    skew = household.clock_skew(NOW)
    assert skew is not None
    assert (skew.clock_skew_s, skew.beyond_tolerance, skew.from_notice) == (420.0, True, True)
    # The server's limits are accepted meanwhile: that says nothing of our reports.
    assert answer(household, LIMITS, payload(limit(1000.0), "m1", NOW - timedelta(minutes=7)))
    assert household.clock_skew(NOW + timedelta(minutes=1)) == skew
    # The server repeats itself every few minutes while the refusals go on.
    later = NOW + timedelta(minutes=5)
    household.receive(RECEIPTS, notice(later - timedelta(minutes=7), "n2"), later)
    assert household.clock_skew(later + SKEW_FORGET_AFTER - timedelta(seconds=1)) is not None
    assert household.clock_skew(later + SKEW_FORGET_AFTER) is None
    assert household.rejected == 0


def test_a_notice_of_a_small_gap_is_known_but_within_the_tolerance() -> None:
    household = session()
    # A report stamped ahead although the clocks agree (a measuring host's own bug).
    household.receive(RECEIPTS, notice(NOW - timedelta(seconds=2)), NOW)
    skew = household.clock_skew(NOW)
    assert skew is not None
    assert (skew.clock_skew_s, skew.beyond_tolerance) == (2.0, False)


def test_server_messages_stamped_ahead_say_the_clock_is_behind_until_one_is_accepted() -> None:
    household = session()
    ahead = NOW + timedelta(minutes=8)
    refused = answer(household, LIMITS, payload(limit(1000.0, ahead), "m1", ahead))
    assert refused == (AckStatus.REJECTED, "sent in the future: is the household's clock right?")
    skew = household.clock_skew(NOW)
    assert skew is not None
    assert (skew.clock_skew_s, skew.beyond_tolerance, skew.from_notice) == (-480.0, True, False)
    # A receipt is a server message too: stamped ahead, it says the same (and confirms).
    household.receive(
        RECEIPTS, payload(Receipt(ids=("x",)), "rc1", NOW + timedelta(minutes=9)), NOW
    )
    skew = household.clock_skew(NOW + timedelta(hours=1))  # no time limit: evidence stays
    assert skew is not None
    assert skew.clock_skew_s == -540.0
    assert household.receipts_seen
    # The clock was put right: the next server message is accepted, and the skew is gone.
    assert answer(household, LIMITS, payload(limit(1000.0), "m2")) == (AckStatus.APPLIED, None)
    assert household.clock_skew(NOW) is None


def test_an_unknown_type_on_the_receipts_channel_is_ignored_elsewhere_rejected() -> None:
    household = session()
    document = json.loads(payload(Receipt(ids=("x",)), "later-1"))
    document["type"] = "something_later"
    later = json.dumps(document).encode()
    delivery = household.receive(RECEIPTS, later, NOW)
    assert (delivery.ack, delivery.reply, delivery.invalid) == (None, None, None)
    assert household.rejected == 0
    delivery = household.receive(LIMITS, later, NOW)
    assert delivery.ack is not None
    assert delivery.ack.status is AckStatus.REJECTED
    assert household.rejected == 1
