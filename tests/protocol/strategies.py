"""Hypothesis strategies that build valid protocol v1 messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.protocol.messages import (
    MAX_CONNECTION_POWER_W,
    MAX_PHASE_POWER_W,
    Ack,
    AckStatus,
    AssetKind,
    BaselineForecast,
    BatteryCapability,
    Body,
    Capabilities,
    EmergencyCommand,
    EmergencyLevel,
    EmergencyReason,
    FlexEnvelope,
    HeatPumpCapability,
    LimitUpdate,
    Message,
    Notice,
    NoticeCode,
    Presence,
    ReleaseCommand,
    Telemetry,
)
from netbewust_core.units import MAX_OUTDOOR_C, MIN_OUTDOOR_C

ids = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)
message_ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
moments = st.datetimes(
    min_value=datetime(2021, 1, 1), max_value=datetime(2098, 1, 1), timezones=st.just(UTC)
)
quarter_hours = st.integers(min_value=0, max_value=2_500_000).map(
    lambda n: datetime(2021, 1, 1, tzinfo=UTC) + timedelta(minutes=15) * n
)
powers = st.floats(min_value=0, max_value=MAX_CONNECTION_POWER_W)
phase_powers = st.floats(min_value=-MAX_PHASE_POWER_W, max_value=MAX_PHASE_POWER_W)
texts = st.text(min_size=1, max_size=200)


@st.composite
def envelopes(draw: st.DrawFn) -> FlexEnvelope:
    start = draw(moments)
    hours = draw(st.integers(min_value=1, max_value=48))
    max_power_w = draw(st.floats(min_value=1, max_value=20_000))
    return FlexEnvelope(
        asset=draw(st.sampled_from(AssetKind)),
        energy_wh=draw(st.floats(min_value=0, max_value=max_power_w * hours)),
        max_power_w=max_power_w,
        earliest_start=start,
        deadline=start + timedelta(hours=hours),
        min_power_w=draw(st.none() | st.floats(min_value=0, max_value=max_power_w)),
    )


capabilities = st.builds(
    Capabilities,
    phases=st.sampled_from([1, 3]),
    fuse_current_a=st.floats(min_value=1, max_value=250),
    ean=st.one_of(st.none(), st.just("871687123456789011")),
    tariff_class=st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9 ._-]{1,32}", fullmatch=True)),
    pv_peak_w=st.one_of(st.none(), powers),
    battery=st.one_of(
        st.none(),
        st.builds(
            BatteryCapability,
            energy_wh=st.floats(min_value=0, max_value=100_000),
            max_charge_w=powers,
            max_discharge_w=powers,
        ),
    ),
    heat_pump=st.one_of(st.none(), st.builds(HeatPumpCapability, flexible_power_w=powers)),
    envelopes=st.lists(envelopes(), max_size=4).map(tuple),
)
telemetry = st.builds(
    Telemetry,
    measured_at=moments,
    interval_s=st.integers(min_value=1, max_value=900),
    power_w=st.one_of(st.tuples(phase_powers), st.tuples(phase_powers, phase_powers, phase_powers)),
    participating=st.booleans(),
    battery_soc_pct=st.none() | st.floats(min_value=0, max_value=100),
    outdoor_temperature_c=st.none() | st.floats(min_value=MIN_OUTDOOR_C, max_value=MAX_OUTDOOR_C),
)
baselines = st.builds(
    BaselineForecast,
    start=quarter_hours,
    power_w=st.lists(
        st.floats(min_value=-MAX_CONNECTION_POWER_W, max_value=MAX_CONNECTION_POWER_W),
        min_size=1,
        max_size=200,
    ).map(tuple),
)
acks = st.builds(
    Ack, ref_id=message_ids, status=st.sampled_from(AckStatus), reason=st.none() | texts
)
optional_powers = st.none() | powers
phase_caps = st.floats(min_value=0, max_value=MAX_PHASE_POWER_W)
optional_phases = st.none() | st.tuples(phase_caps) | st.tuples(phase_caps, phase_caps, phase_caps)


@st.composite
def limit_updates(draw: st.DrawFn) -> LimitUpdate:
    start = draw(quarter_hours)
    count = draw(st.integers(min_value=0, max_value=8))
    intervals = tuple(
        LimitInterval(
            start=start + timedelta(minutes=15) * i,
            end=start + timedelta(minutes=15) * (i + 1),
            max_import_w=draw(optional_powers),
            max_export_w=draw(optional_powers),
            max_import_w_per_phase=draw(optional_phases),
            max_export_w_per_phase=draw(optional_phases),
        )
        for i in range(count)
    )
    limit = ExternalLimit(
        source=draw(st.sampled_from([LimitSource.COMMUNITY, LimitSource.DSO])),
        issued_at=start,
        expires_at=start + timedelta(minutes=draw(st.integers(min_value=1, max_value=2880))),
        intervals=intervals,
    )
    return LimitUpdate(limit=limit)


@st.composite
def emergencies(draw: st.DrawFn) -> EmergencyCommand:
    start = draw(moments)
    level = draw(st.sampled_from(EmergencyLevel))
    max_import_w = draw(powers if level >= EmergencyLevel.CURTAIL else optional_powers)
    return EmergencyCommand(
        level=level,
        reason=draw(st.sampled_from(EmergencyReason)),
        starts_at=start,
        expires_at=start + timedelta(seconds=draw(st.integers(min_value=1, max_value=86_400))),
        max_import_w=max_import_w,
        max_export_w=draw(optional_powers),
        detail=draw(st.none() | texts),
    )


bodies: st.SearchStrategy[Body] = st.one_of(
    capabilities,
    telemetry,
    baselines,
    acks,
    st.builds(Presence, online=st.booleans()),
    limit_updates(),
    emergencies(),
    st.builds(ReleaseCommand, releases=st.none() | message_ids),
    st.builds(Notice, ref_id=message_ids, code=st.sampled_from(NoticeCode), server_time=moments),
)
messages = st.builds(
    Message, community=ids, household=ids, body=bodies, sent_at=moments, message_id=message_ids
)
