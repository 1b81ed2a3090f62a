"""Day-ahead spot prices inside Home Assistant: Nord Pool directly, or a price entity.

Both sources answer one question, "the spot prices of this CET delivery day", with the
engine's `DayAheadPrices`, and never raise for missing or bad data. `PriceBook` keeps
what arrived and says when to ask again: tomorrow's prices from 13:00 CET, failures
with doubling back-off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.util import dt as dt_util
from pynordpool import AREAS

from ..adapters.nordpool import NordPoolFeed
from ..core.planning.prices import (
    DayAheadPrices,
    FeedPrices,
    FetchStatus,
    PriceError,
    PricePoint,
    PriceSeries,
    quarter_hour_series,
)
from ..core.timegrid import local_day_bounds

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from homeassistant.core import HomeAssistant

# Nord Pool delivery days and publication times are Central European.
CET = ZoneInfo("Europe/Amsterdam")
PUBLISH_TIME_CET = time(13, 0)
FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(minutes=30)
NORDPOOL_DOMAIN = "nordpool"
# Attribute lists that price integrations use for today's and tomorrow's prices.
PRICE_LIST_ATTRIBUTES = ("raw_today", "raw_tomorrow", "prices_today", "prices_tomorrow", "prices")


class PriceSource(Protocol):
    async def async_fetch_day(self, delivery_day: date) -> DayAheadPrices:
        """Spot prices (EUR/kWh) of one CET delivery day."""


class NordPoolSource:
    """Nord Pool's API through Home Assistant's shared aiohttp session."""

    def __init__(self, hass: HomeAssistant, area: str) -> None:
        self._prices = FeedPrices(NordPoolFeed(async_get_clientsession(hass), area))

    async def async_fetch_day(self, delivery_day: date) -> DayAheadPrices:
        return await self._prices.fetch_day(delivery_day)


class EntityPriceSource:
    """Prices from an existing entity: HA's Nord Pool integration (through its
    `get_prices_for_date` action) or any sensor listing prices in its attributes."""

    def __init__(self, hass: HomeAssistant, entity_id: str) -> None:
        self._hass = hass
        self.entity_id = entity_id

    async def async_fetch_day(self, delivery_day: date) -> DayAheadPrices:
        state = self._hass.states.get(self.entity_id)
        if state is None or state.state == STATE_UNAVAILABLE:
            return _failed(delivery_day, f"{self.entity_id} is unavailable")
        try:
            if (target := nordpool_target(self._hass, self.entity_id)) is not None:
                points = await self._nordpool_action(target, delivery_day)
            else:
                unit = state.attributes.get("unit_of_measurement")
                points = points_from_attributes(state.attributes, unit)
        except PriceError as err:
            return _failed(delivery_day, f"{self.entity_id}: {err}")
        start, end = local_day_bounds(delivery_day, CET)
        in_day = tuple(p for p in points if start <= p.start < end)
        if not in_day:
            return DayAheadPrices(
                FetchStatus.NOT_YET_PUBLISHED, delivery_day, self.entity_id, detail="no prices"
            )
        return DayAheadPrices(FetchStatus.PUBLISHED, delivery_day, self.entity_id, in_day)

    async def _nordpool_action(
        self, target: NordPoolTarget, delivery_day: date
    ) -> tuple[PricePoint, ...]:
        try:
            response = await self._hass.services.async_call(
                NORDPOOL_DOMAIN,
                "get_prices_for_date",
                {
                    "config_entry": target.entry_id,
                    "date": delivery_day.isoformat(),
                    "areas": [target.area],
                    "currency": "EUR",
                },
                blocking=True,
                return_response=True,
            )
        except (HomeAssistantError, ValueError) as err:
            raise PriceError(f"Nord Pool action failed: {err}") from err
        entries = (response or {}).get(target.area)
        if not isinstance(entries, list):
            raise PriceError(f"no {target.area} prices in the Nord Pool answer {response!r}")
        # The action answers per MWh (its sensors divide by 1000 for per kWh).
        return tuple(_points(entries, scale=1 / 1000)) if entries else ()


@dataclass(frozen=True, slots=True)
class NordPoolTarget:
    """Where HA's Nord Pool integration keeps an entity's prices."""

    entry_id: str
    area: str


def nordpool_target(hass: HomeAssistant, entity_id: str) -> NordPoolTarget | None:
    """The Nord Pool config entry and area of an entity of HA's Nord Pool integration.

    One config entry may hold several areas; its entities' unique ids start with the
    area ("NL-current_price"), and only that area's prices are wanted.
    """
    registered = er.async_get(hass).async_get(entity_id)
    if registered is None or not registered.config_entry_id:
        return None
    config_entry = hass.config_entries.async_get_entry(registered.config_entry_id)
    if config_entry is None or config_entry.domain != NORDPOOL_DOMAIN:
        return None
    area = registered.unique_id.split("-", 1)[0]
    if area not in AREAS:
        return None
    return NordPoolTarget(config_entry.entry_id, area)


def _failed(delivery_day: date, detail: str) -> DayAheadPrices:
    return DayAheadPrices(FetchStatus.FAILED, delivery_day, "", detail=detail)


def unit_scale(unit: object) -> float:
    """Factor to EUR/kWh from a price entity's unit (EUR/MWh, ct/kWh or EUR/kWh)."""
    text = str(unit or "").lower().replace(" ", "")
    if text.endswith("/mwh"):
        return 1 / 1000
    if text.startswith(("ct/", "c/", "cent")):
        return 1 / 100
    return 1.0


def points_from_attributes(attributes: Mapping[str, Any], unit: object) -> tuple[PricePoint, ...]:
    """Price points from the attribute lists price integrations publish.

    Entries carry a start (`start`/`time`), optionally an end, and a price
    (`value`/`price`); without an end an entry lasts until the next one starts.
    """
    points: list[PricePoint] = []
    found = False
    for name in PRICE_LIST_ATTRIBUTES:
        entries = attributes.get(name)
        if entries is None:
            continue
        if not isinstance(entries, list | tuple):
            raise PriceError(f"attribute {name} is not a list")
        found = True
        points.extend(_points(entries, scale=unit_scale(unit)))
    if not found:
        raise PriceError("no price list in the attributes")
    return tuple(points)


def _points(entries: Sequence[Any], scale: float) -> list[PricePoint]:
    parsed: list[tuple[datetime, datetime | None, float]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise PriceError(f"price entry {entry!r} is not a mapping")
        start = _moment(entry.get("start", entry.get("time")))
        end = _moment(entry["end"]) if entry.get("end") is not None else None
        price = entry.get("value", entry.get("price"))
        if isinstance(price, bool) or not isinstance(price, int | float):
            raise PriceError(f"price {price!r} at {start.isoformat()} is not a number")
        if not math.isfinite(price):
            raise PriceError(f"price at {start.isoformat()} is not a number")
        parsed.append((start, end, float(price) * scale))
    parsed.sort(key=lambda item: item[0])
    points = []
    for index, (start, given_end, price) in enumerate(parsed):
        end = given_end
        if end is None:
            if index + 1 < len(parsed):
                end = parsed[index + 1][0]
            elif index > 0:
                end = start + (start - parsed[index - 1][0])
            else:
                raise PriceError("a single price without an end")
        points.append(PricePoint(start, end, price))
    return points


def _moment(value: object) -> datetime:
    moment: object = value if isinstance(value, datetime) else dt_util.parse_datetime(str(value))
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise PriceError(f"bad or naive timestamp {value!r}")
    return moment


def cet_day(moment: datetime) -> date:
    return moment.astimezone(CET).date()


@dataclass(slots=True)
class PriceBook:
    """The spot prices known per CET day, and when to ask for the missing ones."""

    days: dict[date, tuple[PricePoint, ...]] = field(default_factory=dict)
    failures: dict[date, int] = field(default_factory=dict)
    last_detail: str = ""

    def wanted(self, now: datetime) -> list[date]:
        """Days to fetch now: today, and tomorrow once it may be published."""
        today = cet_day(now)
        days = [today]
        if now.astimezone(CET).time() >= PUBLISH_TIME_CET:
            days.append(today + timedelta(days=1))
        return [day for day in days if day not in self.days]

    def record(self, result: DayAheadPrices) -> bool:
        """Keep a published day; True when it is new."""
        day = result.delivery_day
        if result.status is FetchStatus.PUBLISHED:
            try:
                quarter_hour_series(result.points)
            except PriceError as err:  # e.g. two prices for one quarter hour
                result = _failed(day, f"{result.area}: {err}")
        if result.status is FetchStatus.PUBLISHED:
            self.failures.pop(day, None)
            new = self.days.get(day) != result.points
            self.days[day] = result.points
            return new
        self.failures[day] = self.failures.get(day, 0) + 1
        self.last_detail = f"{day.isoformat()}: {result.status.value} {result.detail}".strip()
        return False

    def next_attempt(self, now: datetime) -> datetime:
        """Back-off for missing days; otherwise the next publication time."""
        if missing := self.wanted(now):
            tries = max(self.failures.get(day, 1) for day in missing)
            delay: timedelta = min(FIRST_RETRY * (2 ** min(tries - 1, 10)), MAX_RETRY)
            return now + delay
        local = now.astimezone(CET)
        publication = datetime.combine(local.date(), PUBLISH_TIME_CET, tzinfo=CET)
        if publication <= local:
            publication = datetime.combine(
                local.date() + timedelta(days=1), PUBLISH_TIME_CET, tzinfo=CET
            )
        return publication

    def prune(self, now: datetime) -> None:
        today = cet_day(now)
        for day in [day for day in self.days if day < today]:
            del self.days[day]

    def series(self) -> PriceSeries | None:
        points = [point for day in sorted(self.days) for point in self.days[day]]
        if not points:
            return None
        return quarter_hour_series(points)
