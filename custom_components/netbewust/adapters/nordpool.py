"""Nord Pool day-ahead prices through the `pynordpool` library, with no Home Assistant.

Inside Home Assistant the caller passes HA's shared aiohttp session; the community
server passes its own. `fetch_day` never raises for network or data trouble: it returns
a `NordPoolDay` saying the prices are published, not yet published (tomorrow's prices
appear around 13:00 CET) or could not be fetched, with the prices as plain rows. The
engine's `day_ahead_prices` validates the rows into its price types. Retrying with
back-off is the caller's loop; this adapter makes one attempt (pynordpool retries
connection errors).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Literal

from aiohttp import ClientError
from pynordpool import (
    AREAS,
    Currency,
    NordPoolClient,
    NordPoolEmptyResponseError,
    NordPoolError,
)

if TYPE_CHECKING:
    from aiohttp import ClientSession
    from pynordpool import DeliveryPeriodData

_LOGGER = logging.getLogger(__name__)

DEFAULT_AREA = "NL"

type FeedStatus = Literal["published", "not_yet_published", "failed"]
# (start, end, EUR/kWh): one price interval as Nord Pool publishes it.
type PriceRow = tuple[datetime, datetime, float]


@dataclass(frozen=True, slots=True)
class NordPoolDay:
    """The outcome of one fetch; `rows` only when published."""

    status: FeedStatus
    delivery_day: date
    area: str
    rows: tuple[PriceRow, ...] = ()
    final: bool = False
    detail: str = ""


class NordPoolFeed:
    """Day-ahead spot prices for one bidding area, in EUR."""

    def __init__(self, session: ClientSession, area: str = DEFAULT_AREA) -> None:
        if area not in AREAS:
            raise ValueError(f"unknown Nord Pool area {area!r}")
        self.area = area
        self._client = NordPoolClient(session)

    async def fetch_day(self, delivery_day: date) -> NordPoolDay:
        """Prices for one delivery day (a CET day, as Nord Pool publishes them)."""
        try:
            data = await self._client.async_get_delivery_period(
                datetime.combine(delivery_day, time(0), tzinfo=UTC), Currency.EUR, [self.area]
            )
        except NordPoolEmptyResponseError:
            return self._result("not_yet_published", delivery_day, "no data yet")
        except (NordPoolError, ClientError, TimeoutError) as err:
            _LOGGER.debug("Nord Pool fetch for %s failed: %r", delivery_day, err)
            return self._result("failed", delivery_day, f"request failed: {err!r}")
        except (KeyError, TypeError, ValueError) as err:  # a response of an unknown shape
            return self._result("failed", delivery_day, f"unexpected response: {err!r}")
        try:
            rows = parse_delivery_period(data, self.area)
        except ValueError as err:
            return self._result("failed", delivery_day, str(err))
        if not rows:
            return self._result("not_yet_published", delivery_day, "no entries yet")
        return NordPoolDay("published", delivery_day, self.area, rows, final=data.prices_final)

    def _result(self, status: FeedStatus, delivery_day: date, detail: str) -> NordPoolDay:
        return NordPoolDay(status, delivery_day, self.area, detail=detail)


def parse_delivery_period(data: DeliveryPeriodData, area: str) -> tuple[PriceRow, ...]:
    """Price rows in EUR/kWh (Nord Pool quotes EUR/MWh) for `area`; ValueError if malformed."""
    if data.currency != Currency.EUR:
        raise ValueError(f"expected prices in EUR, got {data.currency}")
    rows: list[PriceRow] = []
    for entry in data.entries:
        value = entry.entry.get(area)
        if value is None:
            raise ValueError(f"no price for area {area} at {entry.start.isoformat()}")
        try:
            price_eur_per_mwh = float(value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"bad price {value!r} at {entry.start.isoformat()}") from err
        rows.append((entry.start, entry.end, price_eur_per_mwh / 1000))
    return tuple(rows)
