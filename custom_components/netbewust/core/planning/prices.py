"""Price data: intervals to a quarter-hour series, and the all-in tariff rules.

Day-ahead prices arrive as intervals of 15 or 60 minutes (Nord Pool through the
`adapters/nordpool.py` feed, or a price entity in Home Assistant) and every source answers
with a `DayAheadPrices`. They become one price per quarter hour, in EUR/kWh, on the UTC grid.
The series stops at the first missing quarter hour, so a missing day shortens the
horizon instead of inventing prices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from ..timegrid import QUARTER, as_utc, is_quarter_aligned

if TYPE_CHECKING:
    from collections.abc import Iterable


class PriceError(ValueError):
    """Price data that does not validate."""


@dataclass(frozen=True, slots=True)
class PricePoint:
    """A price in force from `start` (inclusive) to `end` (exclusive), EUR/kWh."""

    start: datetime
    end: datetime
    price_eur_per_kwh: float

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "start", as_utc(self.start))
            object.__setattr__(self, "end", as_utc(self.end))
        except ValueError as err:
            raise PriceError(str(err)) from err
        if not math.isfinite(self.price_eur_per_kwh):
            raise PriceError(f"price at {self.start.isoformat()} is not a number")
        length = self.end - self.start
        if length <= timedelta(0) or length % QUARTER or not is_quarter_aligned(self.start):
            raise PriceError(
                f"price interval {self.start.isoformat()}..{self.end.isoformat()} "
                "is not a whole number of aligned quarter hours"
            )


@dataclass(frozen=True, slots=True)
class PriceSeries:
    """One price per quarter hour from `start` (UTC), without gaps."""

    start: datetime
    values: tuple[float, ...]

    @property
    def end(self) -> datetime:
        return self.start + len(self.values) * QUARTER

    def window(self, start: datetime, n_steps: int) -> tuple[float, ...] | None:
        """The prices of `n_steps` quarter hours from `start`; None when not all known."""
        offset = (as_utc(start) - self.start) / QUARTER
        if offset != int(offset) or offset < 0 or offset + n_steps > len(self.values):
            return None
        first = int(offset)
        return self.values[first : first + n_steps]


def quarter_hour_series(points: Iterable[PricePoint], start: datetime | None = None) -> PriceSeries:
    """Expand hourly (or longer) intervals to quarter hours; stop at the first gap.

    `start` defaults to the earliest point. Overlapping points must agree, otherwise
    the data is ambiguous and rejected.
    """
    by_quarter: dict[datetime, float] = {}
    for point in points:
        moment = point.start
        while moment < point.end:
            known = by_quarter.get(moment)
            if known is not None and known != point.price_eur_per_kwh:
                raise PriceError(f"two different prices for {moment.isoformat()}")
            by_quarter[moment] = point.price_eur_per_kwh
            moment += QUARTER
    if not by_quarter:
        raise PriceError("no prices")
    first = min(by_quarter) if start is None else as_utc(start)
    values = []
    moment = first
    while moment in by_quarter:
        values.append(by_quarter[moment])
        moment += QUARTER
    return PriceSeries(first, tuple(values))


class ExportRule(StrEnum):
    SPOT = "spot"
    SPOT_MINUS_FEE = "spot_minus_fee"
    FIXED = "fixed"


@dataclass(frozen=True, slots=True, kw_only=True)
class TariffRules:
    """All-in import = (spot + energy tax + supplier markup) x (1 + VAT).

    Export follows `export_rule`: the spot price, the spot price less a fee, or a fixed
    price (no VAT on export: households are not VAT-registered for it).
    """

    energy_tax_eur_per_kwh: float = 0.0
    supplier_markup_eur_per_kwh: float = 0.0
    vat_pct: float = 0.0
    export_rule: ExportRule = ExportRule.SPOT
    export_fee_eur_per_kwh: float = 0.0
    export_fixed_eur_per_kwh: float = 0.0

    def __post_init__(self) -> None:
        values = (
            self.energy_tax_eur_per_kwh,
            self.supplier_markup_eur_per_kwh,
            self.vat_pct,
            self.export_fee_eur_per_kwh,
            self.export_fixed_eur_per_kwh,
        )
        if not all(math.isfinite(value) for value in values):
            raise PriceError("tariff values must be numbers")
        if not 0 <= self.vat_pct <= 100:
            raise PriceError(f"VAT must be within 0..100 %, got {self.vat_pct}")

    def import_price(self, spot_eur_per_kwh: float) -> float:
        taxed = spot_eur_per_kwh + self.energy_tax_eur_per_kwh + self.supplier_markup_eur_per_kwh
        return taxed * (1 + self.vat_pct / 100)

    def export_price(self, spot_eur_per_kwh: float) -> float:
        match self.export_rule:
            case ExportRule.SPOT:
                return spot_eur_per_kwh
            case ExportRule.SPOT_MINUS_FEE:
                return spot_eur_per_kwh - self.export_fee_eur_per_kwh
            case ExportRule.FIXED:
                return self.export_fixed_eur_per_kwh

    def all_in(self, spot: tuple[float, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Import and export prices for a series of spot prices."""
        return (
            tuple(self.import_price(price) for price in spot),
            tuple(self.export_price(price) for price in spot),
        )


class FetchStatus(StrEnum):
    """Whether a delivery day's prices could be had (the values a price feed reports)."""

    PUBLISHED = "published"
    NOT_YET_PUBLISHED = "not_yet_published"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DayAheadPrices:
    """One delivery day's prices from any source; `points` (EUR/kWh, UTC) only when published."""

    status: FetchStatus
    delivery_day: date
    area: str
    points: tuple[PricePoint, ...] = ()
    final: bool = False
    detail: str = ""


class PriceFeedDay(Protocol):
    """What a price feed adapter (e.g. `adapters/nordpool.py`) returns for a day: plain rows."""

    @property
    def status(self) -> str: ...
    @property
    def delivery_day(self) -> date: ...
    @property
    def area(self) -> str: ...
    @property
    def rows(self) -> tuple[tuple[datetime, datetime, float], ...]: ...
    @property
    def final(self) -> bool: ...
    @property
    def detail(self) -> str: ...


class PriceFeed(Protocol):
    """A source of day-ahead prices as plain rows (the Nord Pool adapter)."""

    async def fetch_day(self, delivery_day: date) -> PriceFeedDay: ...


def day_ahead_prices(day: PriceFeedDay) -> DayAheadPrices:
    """A feed's day as the engine's type; rows that do not validate make the day FAILED."""
    try:
        status = FetchStatus(day.status)
        points = tuple(PricePoint(start, end, price) for start, end, price in day.rows)
    except (ValueError, TypeError) as err:
        return DayAheadPrices(FetchStatus.FAILED, day.delivery_day, day.area, detail=str(err))
    if status is FetchStatus.PUBLISHED and not points:
        status = FetchStatus.NOT_YET_PUBLISHED
    return DayAheadPrices(status, day.delivery_day, day.area, points, day.final, day.detail)


class FeedPrices:
    """Day-ahead prices from a feed adapter, validated into the engine's types."""

    def __init__(self, feed: PriceFeed) -> None:
        self.feed = feed

    async def fetch_day(self, delivery_day: date) -> DayAheadPrices:
        """The feed's answer for one delivery day; never raises for bad data."""
        return day_ahead_prices(await self.feed.fetch_day(delivery_day))
