"""Nord Pool day-ahead prices through the `pynordpool` library, with no Home Assistant.

Inside Home Assistant the caller passes HA's shared aiohttp session; the community
server passes its own. `fetch_day` never raises for network or data trouble: it
returns a typed result saying the prices are published, not yet published (tomorrow's
prices appear around 13:00 CET) or could not be fetched. Retrying with back-off is the
caller's loop; this adapter makes one attempt (pynordpool retries connection errors).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import TYPE_CHECKING

from aiohttp import ClientError
from pynordpool import (
    AREAS,
    Currency,
    NordPoolClient,
    NordPoolEmptyResponseError,
    NordPoolError,
)

from .planning.prices import PriceError, PricePoint

if TYPE_CHECKING:
    from aiohttp import ClientSession
    from pynordpool import DeliveryPeriodData

_LOGGER = logging.getLogger(__name__)

DEFAULT_AREA = "NL"


class FetchStatus(StrEnum):
    PUBLISHED = "published"
    NOT_YET_PUBLISHED = "not_yet_published"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DayAheadPrices:
    """The outcome of one fetch; `points` (EUR/kWh, UTC) only when published."""

    status: FetchStatus
    delivery_day: date
    area: str
    points: tuple[PricePoint, ...] = ()
    final: bool = False
    detail: str = ""


class NordPoolPrices:
    """Day-ahead spot prices for one bidding area, in EUR."""

    def __init__(self, session: ClientSession, area: str = DEFAULT_AREA) -> None:
        if area not in AREAS:
            raise ValueError(f"unknown Nord Pool area {area!r}")
        self.area = area
        self._client = NordPoolClient(session)

    async def fetch_day(self, delivery_day: date) -> DayAheadPrices:
        """Prices for one delivery day (a CET day, as Nord Pool publishes them)."""
        try:
            data = await self._client.async_get_delivery_period(
                datetime.combine(delivery_day, time(0), tzinfo=UTC), Currency.EUR, [self.area]
            )
        except NordPoolEmptyResponseError:
            return self._result(FetchStatus.NOT_YET_PUBLISHED, delivery_day, "no data yet")
        except (NordPoolError, ClientError, TimeoutError) as err:
            _LOGGER.debug("Nord Pool fetch for %s failed: %r", delivery_day, err)
            return self._result(FetchStatus.FAILED, delivery_day, f"request failed: {err!r}")
        except (KeyError, TypeError, ValueError) as err:  # a response of an unknown shape
            return self._result(FetchStatus.FAILED, delivery_day, f"unexpected response: {err!r}")
        try:
            points = parse_delivery_period(data, self.area)
        except PriceError as err:
            return self._result(FetchStatus.FAILED, delivery_day, str(err))
        if not points:
            return self._result(FetchStatus.NOT_YET_PUBLISHED, delivery_day, "no entries yet")
        return DayAheadPrices(
            FetchStatus.PUBLISHED, delivery_day, self.area, points, final=data.prices_final
        )

    def _result(self, status: FetchStatus, delivery_day: date, detail: str) -> DayAheadPrices:
        return DayAheadPrices(status, delivery_day, self.area, detail=detail)


def parse_delivery_period(data: DeliveryPeriodData, area: str) -> tuple[PricePoint, ...]:
    """Price points in EUR/kWh (Nord Pool quotes EUR/MWh) for `area`."""
    if data.currency != Currency.EUR:
        raise PriceError(f"expected prices in EUR, got {data.currency}")
    points = []
    for entry in data.entries:
        value = entry.entry.get(area)
        if value is None:
            raise PriceError(f"no price for area {area} at {entry.start.isoformat()}")
        try:
            price_eur_per_mwh = float(value)
        except (TypeError, ValueError) as err:
            raise PriceError(f"bad price {value!r} at {entry.start.isoformat()}") from err
        points.append(PricePoint(entry.start, entry.end, price_eur_per_mwh / 1000))
    return tuple(points)
