"""Which limits are in force: fuse, household peak, external limits, export caps."""

from __future__ import annotations

import pytest

from netbewust_core.guard.limit_resolution import resolve_limits
from netbewust_core.guard.measurement import Measurement
from netbewust_core.guard.peak import PeakTracker
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.model import Connection, LimitReason, PeakMode

from .builders import at

THREE = Connection(phases=3, fuse_current_a=25.0, safety_margin_a=2.0)
PER_PHASE = Measurement(current_a=(0.0, 0.0, 0.0), voltage_v=(230.0,) * 3, per_phase=True)
TOTAL_ONLY = Measurement(current_a=(0.0,), voltage_v=(230.0,), per_phase=False)


def limit(source: LimitSource, **caps: object) -> ExternalLimit:
    return ExternalLimit(
        source=source,
        issued_at=at(0),
        expires_at=at(100),
        intervals=(LimitInterval(at(10), at(50), **caps),),  # type: ignore[arg-type]
    )


def test_fuse_less_margin_when_nothing_else_applies() -> None:
    resolved = resolve_limits(
        connection=THREE,
        measurement=PER_PHASE,
        external=(),
        peak_cap_w=None,
        export_price_eur_per_kwh=None,
        now=at(0),
    )
    assert resolved.phase_limit_a == (23.0, 23.0, 23.0)
    assert resolved.phase_source == (LimitSource.FUSE,) * 3
    assert resolved.import_cap is None
    assert resolved.export_cap_w is None


def test_tightest_external_cap_wins_only_inside_its_interval() -> None:
    dso = limit(
        LimitSource.DSO, max_import_w=5000.0, max_import_w_per_phase=(9999.0, 2300.0, 9999.0)
    )
    community = limit(LimitSource.COMMUNITY, max_import_w=4000.0)
    inside = resolve_limits(
        connection=THREE,
        measurement=PER_PHASE,
        external=(dso, community),
        peak_cap_w=6000.0,
        export_price_eur_per_kwh=None,
        now=at(20),
    )
    assert inside.phase_limit_a == (23.0, 10.0, 23.0)
    assert inside.phase_source == (LimitSource.FUSE, LimitSource.DSO, LimitSource.FUSE)
    assert inside.import_cap is not None
    assert inside.import_cap.power_w == 4000.0
    assert inside.import_cap.source is LimitSource.COMMUNITY
    for outside in (at(5), at(50), at(200)):
        resolved = resolve_limits(
            connection=THREE,
            measurement=PER_PHASE,
            external=(dso, community),
            peak_cap_w=6000.0,
            export_price_eur_per_kwh=None,
            now=outside,
        )
        assert resolved.phase_limit_a == (23.0, 23.0, 23.0)
        assert resolved.import_cap is not None
        assert resolved.import_cap.source is LimitSource.HOUSEHOLD_PEAK


def test_never_applied_past_expiry_even_inside_an_interval() -> None:
    short = ExternalLimit(
        source=LimitSource.DSO,
        issued_at=at(0),
        expires_at=at(30),
        intervals=(LimitInterval(at(0), at(3600), max_import_w=100.0),),
    )
    resolved = resolve_limits(
        connection=THREE,
        measurement=PER_PHASE,
        external=(short,),
        peak_cap_w=None,
        export_price_eur_per_kwh=None,
        now=at(30),
    )
    assert resolved.import_cap is None


def test_per_phase_caps_on_a_total_only_meter_add_up() -> None:
    dso = limit(LimitSource.DSO, max_import_w_per_phase=(2300.0,))
    resolved = resolve_limits(
        connection=THREE,
        measurement=TOTAL_ONLY,
        external=(dso,),
        peak_cap_w=None,
        export_price_eur_per_kwh=None,
        now=at(20),
    )
    assert resolved.phase_limit_a == (30.0,)  # 3 x 10 A below 3 x 23 A
    assert resolved.phase_source == (LimitSource.DSO,)


def test_export_caps_and_negative_price() -> None:
    dso = limit(LimitSource.DSO, max_export_w=2000.0, max_export_w_per_phase=(690.0,))
    resolved = resolve_limits(
        connection=THREE,
        measurement=PER_PHASE,
        external=(dso,),
        peak_cap_w=None,
        export_price_eur_per_kwh=0.01,
        now=at(20),
    )
    assert resolved.export_cap_w == 2000.0
    assert resolved.export_reason is LimitReason.EXPORT_LIMIT
    assert resolved.export_phase_cap_a == (3.0, 3.0, 3.0)
    negative = resolve_limits(
        connection=THREE,
        measurement=PER_PHASE,
        external=(dso,),
        peak_cap_w=None,
        export_price_eur_per_kwh=-0.01,
        now=at(20),
    )
    assert negative.export_cap_w == 0.0
    assert negative.export_reason is LimitReason.NEGATIVE_EXPORT_PRICE


def test_instantaneous_peak_is_a_plain_cap() -> None:
    tracker = PeakTracker(Connection(phases=1, fuse_current_a=25.0, peak_limit_w=3000.0))
    tracker.update(at(0), 10_000.0, None)
    assert tracker.cap_w(at(0)) == 3000.0
    assert PeakTracker(Connection(phases=1, fuse_current_a=25.0)).cap_w(at(0)) is None


def test_quarter_hour_peak_spreads_the_remaining_energy() -> None:
    connection = Connection(
        phases=1, fuse_current_a=25.0, peak_limit_w=2000.0, peak_mode=PeakMode.QUARTER_HOUR
    )
    tracker = PeakTracker(connection)
    for second in range(301):  # 4 kW for 300 s = 1.2 MJ of the quarter's 1.8 MJ
        tracker.update(at(second), 4000.0, None)
    assert tracker.cap_w(at(300)) == pytest.approx((1_800_000 - 1_200_000) / 600)
    # Export does not earn import allowance; gaps longer than 30 s are not integrated.
    tracker.update(at(400), -5000.0, None)
    assert tracker.cap_w(at(400)) == pytest.approx((1_800_000 - 1_200_000 - 120_000) / 500)


def test_meter_running_average_is_authoritative() -> None:
    connection = Connection(
        phases=1, fuse_current_a=25.0, peak_limit_w=2000.0, peak_mode=PeakMode.QUARTER_HOUR
    )
    tracker = PeakTracker(connection)
    tracker.update(at(450), 0.0, 4000.0)  # half the quarter at 4 kW average: budget spent
    assert tracker.cap_w(at(450)) == 0.0
    tracker.update(at(900), 0.0, None)  # next quarter
    assert tracker.cap_w(at(900)) == pytest.approx(2000.0)
