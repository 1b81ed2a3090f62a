"""The Nord Pool feed and the engine's price validation, against response shapes recorded
from the data portal API."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pynordpool
import pytest
from aiohttp import ClientConnectionError, ClientSession

from netbewust_adapters.nordpool import NordPoolFeed
from netbewust_core.planning.prices import FeedPrices, FetchStatus, quarter_hour_series

if TYPE_CHECKING:
    from collections.abc import Iterator

DAY = date(2026, 3, 29)  # spring forward: 23 hours in Amsterdam
DAY_START = datetime(2026, 3, 28, 23, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def recorded_body(minutes: int, count: int, area: str = "NL", **changes: Any) -> dict[str, Any]:
    """The DayAheadPrices response shape: EUR/MWh per area and delivery period."""
    step = timedelta(minutes=minutes)
    entries = [
        {
            "deliveryStart": _iso(DAY_START + i * step),
            "deliveryEnd": _iso(DAY_START + (i + 1) * step),
            "entryPerArea": {area: 80.0 + i},
        }
        for i in range(count)
    ]
    body: dict[str, Any] = {
        "deliveryDateCET": DAY.isoformat(),
        "version": 3,
        "updatedAt": "2026-03-28T11:47:53.8232104Z",
        "deliveryAreas": [area],
        "market": "DayAhead",
        "multiAreaEntries": entries,
        "blockPriceAggregates": [
            {
                "blockName": "Off-peak 1",
                "deliveryStart": _iso(DAY_START),
                "deliveryEnd": _iso(DAY_START + timedelta(hours=7)),
                "averagePricePerArea": {area: {"average": 81.0, "min": 80.0, "max": 86.0}},
            }
        ],
        "currency": "EUR",
        "exchangeRate": 1,
        "areaStates": [{"state": "Final", "areas": [area]}],
        "areaAverages": [{"areaCode": area, "price": 90.0}],
    }
    return body | changes


class FakeResponse:
    def __init__(self, status: int, body: object) -> None:
        self.status = status
        self._body = body

    async def json(self) -> object:
        if isinstance(self._body, str):
            raise ValueError("not json")
        return self._body

    async def text(self) -> str:
        return str(self._body)

    async def __aenter__(self) -> FakeResponse:
        return self

    async def __aexit__(self, *args: object) -> None:
        return None


class FakeSession:
    """Replays responses (or raises errors) in order, recording the query parameters."""

    def __init__(self, *responses: FakeResponse | Exception) -> None:
        self._responses: Iterator[FakeResponse | Exception] = iter(responses)
        self.params: list[dict[str, str]] = []

    def get(self, url: str, params: dict[str, str], timeout: object) -> FakeResponse:
        self.params.append(params)
        response = next(self._responses)
        if isinstance(response, Exception):
            raise response
        return response


def _adapter(*responses: FakeResponse | Exception) -> tuple[FeedPrices, FakeSession]:
    session = FakeSession(*responses)
    return FeedPrices(NordPoolFeed(cast("ClientSession", session))), session


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """pynordpool waits 7 s between retries; the tests need not."""

    async def no_sleep(_seconds: float) -> None:
        return None

    monkeypatch.setattr(pynordpool, "asyncio", SimpleNamespace(sleep=no_sleep))


async def test_quarter_hour_prices_of_a_23_hour_day() -> None:
    adapter, session = _adapter(FakeResponse(200, recorded_body(15, 92)))
    result = await adapter.fetch_day(DAY)
    assert result.status is FetchStatus.PUBLISHED
    assert result.final
    assert session.params[0]["deliveryArea"] == "NL"
    assert session.params[0]["date"] == "2026-03-29"
    assert len(result.points) == 92
    assert result.points[0].price_eur_per_kwh == pytest.approx(0.080)  # 80 EUR/MWh
    assert result.points[0].start == DAY_START
    assert quarter_hour_series(result.points).end == datetime(2026, 3, 29, 22, tzinfo=UTC)


async def test_hourly_prices_expand_to_quarter_hours() -> None:
    adapter, _ = _adapter(FakeResponse(200, recorded_body(60, 23)))
    result = await adapter.fetch_day(DAY)
    series = quarter_hour_series(result.points)
    assert len(series.values) == 92
    assert series.values[4:8] == pytest.approx((0.081,) * 4)


async def test_tomorrow_not_yet_published_is_a_result_not_an_exception() -> None:
    adapter, _ = _adapter(FakeResponse(204, ""))
    result = await adapter.fetch_day(DAY)
    assert result.status is FetchStatus.NOT_YET_PUBLISHED
    assert result.points == ()


async def test_empty_entry_list_counts_as_not_yet_published() -> None:
    adapter, _ = _adapter(FakeResponse(200, recorded_body(15, 0)))
    assert (await adapter.fetch_day(DAY)).status is FetchStatus.NOT_YET_PUBLISHED


async def test_server_errors_after_retries_give_a_failed_result() -> None:
    adapter, _ = _adapter(*(FakeResponse(500, "boom") for _ in range(4)))
    result = await adapter.fetch_day(DAY)
    assert result.status is FetchStatus.FAILED
    assert "request failed" in result.detail


async def test_network_errors_give_a_failed_result() -> None:
    adapter, _ = _adapter(ClientConnectionError("no route"))
    result = await adapter.fetch_day(DAY)
    assert result.status is FetchStatus.FAILED


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (recorded_body(15, 4, area="BE"), "no price for area NL"),
        (recorded_body(15, 4, currency="SEK"), "expected prices in EUR"),
        ({"multiAreaEntries": [{"deliveryStart": "x"}]}, "unexpected response"),
        (
            recorded_body(
                15,
                1,
                multiAreaEntries=[
                    {
                        "deliveryStart": "2026-03-28T23:05:00Z",
                        "deliveryEnd": "2026-03-28T23:20:00Z",
                        "entryPerArea": {"NL": 1.0},
                    }
                ],
            ),
            "aligned",
        ),
    ],
)
async def test_malformed_responses_give_a_failed_result(body: dict[str, Any], detail: str) -> None:
    adapter, _ = _adapter(FakeResponse(200, body))
    result = await adapter.fetch_day(DAY)
    assert result.status is FetchStatus.FAILED
    assert detail in result.detail


def test_unknown_area_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Nord Pool area"):
        NordPoolFeed(cast("ClientSession", FakeSession()), area="XX")
