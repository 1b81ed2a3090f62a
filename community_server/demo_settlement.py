"""The demo's settled day: the simulated homes fast-forwarded through the last few days, so
a newcomer sees the whole loop at once: limits, delivery against a baseline, credits.

Three days without limits give every home a baseline history (docs/settlement.md); on
yesterday evening the community limits every home to its share of the transformer cap, as
the cap control does at a peak. Each home's guard follows the limit. Its telemetry (a
report per quarter hour) and the limits go through the store's own ingest and sent paths,
which roll them up for settlement; the ledger then computes the open statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Final

from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.protocol.messages import LimitUpdate, Message, Telemetry, encode
from netbewust_core.settlement.quarters import period_of
from netbewust_core.timegrid import QUARTER, local_day_bounds

from .settlement_store import SETTLEMENT_ZONE

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from netbewust_core.settlement.rules import PeriodSettlement

    from .simulation.home import SimulatedHome
    from .store import Store

HISTORY_DAYS: Final = 3  # the baseline rule's minimum of qualifying days
STEP: Final = timedelta(minutes=5)  # profile time per reading: a few seconds for 50 homes
PEAK: Final = (time(17), time(21))  # local hours of the limited evening
STEPS_PER_QUARTER: Final = int(QUARTER / STEP)


@dataclass(frozen=True, slots=True)
class SettledDay:
    limited_day: date
    settlement: PeriodSettlement  # the open period holding the limited day, computed so far


def fast_forward(
    store: Store,
    community: str,
    homes: Sequence[tuple[str, SimulatedHome]],
    *,
    share_w: float,
    today: date,
    stopping: Callable[[], bool],
) -> SettledDay | None:
    """Simulate the days before `today` (local) and settle their period as it stands;
    None when `stopping()` says the demo stops meanwhile."""
    limited = today - timedelta(days=1)
    for household, home in homes:
        if stopping():
            return None
        for offset in range(HISTORY_DAYS, -1, -1):
            day = limited - timedelta(days=offset)
            start, end = local_day_bounds(day, SETTLEMENT_ZONE)
            limit = _evening_limit(day, share_w) if day == limited else None
            if limit is not None:
                sent = Message(
                    community=community,
                    household=household,
                    body=LimitUpdate(limit=limit),
                    sent_at=limit.issued_at,
                )
                store.record_sent(sent, encode(sent), limit.issued_at)
            reports = _day(community, household, home, start=start, end=end, limit=limit)
            store.save_received(reports, end)  # a day's outbox, arriving at its end
    period = period_of(local_day_bounds(limited, SETTLEMENT_ZONE)[0], SETTLEMENT_ZONE)
    return SettledDay(limited, store.settlement.preview(community, period.key))


def _evening_limit(day: date, share_w: float) -> ExternalLimit:
    start, end = (
        datetime.combine(day, hour, tzinfo=SETTLEMENT_ZONE).astimezone(UTC) for hour in PEAK
    )
    return ExternalLimit(
        source=LimitSource.COMMUNITY,
        issued_at=start,
        expires_at=end,
        intervals=(LimitInterval(start=start, end=end, max_import_w=share_w),),
    )


def _day(
    community: str,
    household: str,
    home: SimulatedHome,
    *,
    start: datetime,
    end: datetime,
    limit: ExternalLimit | None,
) -> list[Message]:
    """The home's quarter-hour reports over one day, its guard holding `limit` in force."""
    reports: list[Message] = []
    moment = start
    totals = [0.0] * home.profile.phases
    steps = 0
    while moment < end:
        if limit is not None and moment == limit.issued_at:
            home.guard.set_external_limit(limit)
        elif limit is not None and moment == limit.expires_at:
            home.guard.clear_external_limit(limit.source)
        home.step(moment, moment, STEP.total_seconds())
        totals = [total + power for total, power in zip(totals, home.last_power_w, strict=True)]
        steps += 1
        moment += STEP
        if steps == STEPS_PER_QUARTER:
            telemetry = Telemetry(
                measured_at=moment,
                interval_s=int(QUARTER.total_seconds()),
                power_w=tuple(round(total / steps, 1) for total in totals),
                participating=True,
            )
            reports.append(
                Message(
                    community=community,
                    household=household,
                    body=telemetry,
                    sent_at=moment,
                    message_id=f"demo-{household}-{moment.timestamp():.0f}",
                )
            )
            totals = [0.0] * home.profile.phases
            steps = 0
    return reports


def credit_table(settled: SettledDay) -> str:
    """The households that delivered, each with its credit, and the period's totals."""
    settlement = settled.settlement
    delivered = sorted(
        (s for s in settlement.statements if s.delivered_kwh > 0),
        key=lambda s: -s.credit_cents,
    )
    lines = [
        f"Settlement {settlement.period} (open, so far) after a simulated day: on"
        f" {settled.limited_day} from {PEAK[0]:%H:%M} to {PEAK[1]:%H:%M} every home was"
        " limited to its share of the cap",
        f"{'household':<12}{'delivered kWh':>14}{'flex EUR':>10}{'saving EUR':>12}"
        f"{'credit EUR':>12}",
    ]
    lines += [
        f"{s.household:<12}{s.delivered_kwh:>14.2f}{s.flex_cents / 100:>10.2f}"
        f"{s.saving_cents / 100:>12.2f}{s.credit_cents / 100:>12.2f}"
        for s in delivered
    ]
    total_kwh = sum(s.delivered_kwh for s in settlement.statements)
    lines.append(
        f"{'total':<12}{total_kwh:>14.2f}"
        f"{sum(s.flex_cents for s in settlement.statements) / 100:>10.2f}"
        f"{settlement.distributed_cents / 100:>12.2f}{settlement.credit_cents / 100:>12.2f}"
        f"  ({len(delivered)} of {len(settlement.statements)} homes delivered; the totals"
        " hold every home's share of the saving)"
    )
    return "\n".join(lines)
