"""Daily load aggregates and the temperature forecast on the server (issue 14)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from community_server.config import ConfigError, ForecastConfig, load_config
from community_server.dashboard import Dashboard
from community_server.load_history import (
    FORECAST_ZONE,
    MAX_WEATHER_BYTES,
    LoadHistory,
    WeatherFile,
    WeatherUrl,
    aggregate_day,
    local_day_bounds,
)
from community_server.metrics import Metrics
from community_server.prometheus import ServerCollector, exposition, server_registry
from netbewust_core.collective.temperature_forecast import (
    DEFAULT_MODEL,
    MIN_DAYS,
    DailyLoad,
    ModelSource,
)
from netbewust_core.protocol.messages import Capabilities, HeatPumpCapability, Message, Telemetry

from .conftest import NOW
from .test_cap_control import FakeServer

if TYPE_CHECKING:
    from pathlib import Path

    from community_server.store import Store

FIRST_DAY = date(2026, 10, 1)


def test_a_day_is_the_members_mean_power_and_the_evening_peak() -> None:
    day = date(2026, 1, 14)  # winter: local 17:00-21:00 is 16:00-20:00 UTC
    start, _end = local_day_bounds(day)
    quarters = [start + timedelta(minutes=15 * n) for n in range(96)]
    rows = [("a", q, 1000.0) for q in quarters]  # 24 kWh
    rows += [("b", q, 3000.0 if 16 <= q.hour < 20 else 500.0) for q in quarters[::2]]  # half
    rows += [("c", q, 9000.0) for q in quarters[:20]]  # a fifth of the day: not counted
    load = aggregate_day(day, rows, {"a": 1, "b": 0, "c": 1}, mean_outdoor_c=-2.0)
    assert load.members == 2
    assert load.heat_pumps == 1
    # b's mean over the quarters it reported, over the whole day.
    b_mean_w = (8 * 3000.0 + 40 * 500.0) / 48
    assert load.energy_kwh == pytest.approx(24.0 + b_mean_w * 24 / 1000)
    assert load.evening_peak_w == 4000.0
    assert load.mean_outdoor_c == -2.0


def test_a_dst_day_has_its_own_length() -> None:
    day = date(2026, 3, 29)  # 23 hours in Amsterdam
    start, end = local_day_bounds(day)
    assert end - start == timedelta(hours=23)
    rows = [("a", start + timedelta(minutes=15 * n), 1000.0) for n in range(92)]
    assert aggregate_day(day, rows, {}, None).energy_kwh == pytest.approx(23.0)


def test_the_weather_file_skips_and_counts_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "weather.csv"
    path.write_text(
        "date,mean_c\n2026-01-14,-2.5\n2026-01-15,nan\n2026-01-16,99\nrubbish\n"
        "2026-13-01,4\n2026-01-17, 3.0\n"
    )
    weather = WeatherFile(path)
    assert weather.mean_c(date(2026, 1, 14)) == -2.5
    assert weather.mean_c(date(2026, 1, 17)) == 3.0
    assert weather.mean_c(date(2026, 1, 15)) is None
    assert weather.rejected == 4
    path.write_text("2026-01-14,1.0\n")  # replaced: read again
    assert weather.mean_c(date(2026, 1, 14)) == 1.0
    path.unlink()  # gone for a moment: what was read holds
    assert weather.mean_c(date(2026, 1, 14)) == 1.0


def test_daily_loads_are_stored_and_pruned(server_store: Store) -> None:
    server_store.create_transformer("trafo-1", "wijk-1", "Trafo 1", 40_000.0)
    for offset in range(3):
        server_store.save_daily_load(
            "trafo-1",
            DailyLoad(
                day=FIRST_DAY + timedelta(days=offset),
                members=2,
                heat_pumps=1,
                energy_kwh=30.0,
                evening_peak_w=4000.0,
                mean_outdoor_c=None if offset else 5.0,
            ),
        )
    stored = server_store.daily_loads("trafo-1")
    assert [load.day for load in stored] == [FIRST_DAY + timedelta(days=n) for n in range(3)]
    assert stored[0].mean_outdoor_c == 5.0
    assert server_store.prune_daily_loads(FIRST_DAY + timedelta(days=2)) == 2
    assert len(server_store.daily_loads("trafo-1")) == 1


@dataclass
class MeteredServer(FakeServer):
    metrics: Metrics = field(default_factory=Metrics)


class Street:
    """Three members reporting every quarter hour: their load follows the temperature."""

    def __init__(self, store: Store, tmp_path: Path) -> None:
        self.store = store
        self.server = MeteredServer()
        self.weather_path = tmp_path / "weather.csv"
        store.create_transformer("trafo-1", "wijk-1", "Trafo 1", 40_000.0)
        self.members = []
        for number in range(3):
            code = store.issue_join_code("wijk-1", NOW, timedelta(days=1), "trafo-1").code
            name = store.redeem_join_code(code, NOW, f"huis-{number}").household_id
            pump = HeatPumpCapability(flexible_power_w=2000.0) if number < 2 else None
            self.send(name, Capabilities(phases=3, fuse_current_a=25.0, heat_pump=pump), NOW)
            self.members.append(name)

    def send(self, name: str, body: Capabilities | Telemetry, at: datetime) -> None:
        self.store.save_received(
            [Message(community="wijk-1", household=name, sent_at=at, body=body)], at
        )

    def live(
        self,
        day: date,
        outdoor_c: float,
        watts: float | None = None,
        *,
        reported: tuple[float | None, ...] = (None, None, None),
        hours: float = 24.0,
        weather: bool = True,
    ) -> None:
        """A day of quarter-hourly reports; each pump draws 60 W a degree below 16 C.
        `reported`: each member's outdoor temperature in its reports over the first
        `hours`; `weather`: the day's line in the weather file."""
        start, end = local_day_bounds(day)
        moment = start + timedelta(minutes=15)
        messages = []
        while moment <= end:
            for number, name in enumerate(self.members):
                pump_w = 60.0 * max(0.0, 16.0 - outdoor_c) if number < 2 else 0.0
                power = watts if watts is not None else 400.0 + pump_w
                body = Telemetry(
                    measured_at=moment,
                    interval_s=900,
                    power_w=(power / 3,) * 3,
                    participating=True,
                    outdoor_temperature_c=(
                        reported[number] if moment <= start + timedelta(hours=hours) else None
                    ),
                )
                messages.append(
                    Message(community="wijk-1", household=name, sent_at=moment, body=body)
                )
            moment += timedelta(minutes=15)
        self.store.save_received(messages, end)
        if weather:
            with self.weather_path.open("a") as file:
                file.write(f"{day.isoformat()},{outdoor_c}\n")

    def history(self, *, weather: bool = True) -> LoadHistory:
        return LoadHistory(
            self.server,  # type: ignore[arg-type]
            self.store,
            WeatherFile(self.weather_path) if weather else None,
            history_days=1096,
        )


@pytest.fixture
def street(server_store: Store, tmp_path: Path) -> Street:
    return Street(server_store, tmp_path)


def temperature(offset: int) -> float:
    return 20.0 - (offset * 7 % 26)  # 20 C down to -5 C, in no order


async def test_the_forecast_uses_the_defaults_then_learns_from_the_stored_days(
    street: Street,
) -> None:
    for offset in range(3):
        street.live(FIRST_DAY + timedelta(days=offset), temperature(offset))
    history = street.history()
    today = FIRST_DAY + timedelta(days=3)
    now = datetime.combine(today, datetime.min.time(), tzinfo=FORECAST_ZONE) + timedelta(hours=12)
    assert await history.close_days(now.astimezone(UTC), lookback_days=30) == 3
    early = await history.forecast("trafo-1", today, mean_outdoor_c=-3.0)
    assert early is not None
    assert early.forecast.model == DEFAULT_MODEL
    assert (early.members, early.heat_pumps) == (3, 2)

    for offset in range(3, MIN_DAYS + 6):
        street.live(FIRST_DAY + timedelta(days=offset), temperature(offset))
    today = FIRST_DAY + timedelta(days=MIN_DAYS + 6)
    now = datetime.combine(today, datetime.min.time(), tzinfo=FORECAST_ZONE) + timedelta(hours=12)
    assert await history.close_days(now.astimezone(UTC), lookback_days=30) == MIN_DAYS + 3
    learned = await history.forecast("trafo-1", today, mean_outdoor_c=-3.0)
    assert learned is not None
    model = learned.forecast.model
    assert model.source is ModelSource.FITTED
    assert model.days == MIN_DAYS + 6
    # 3 x 400 W all day, and 60 W a degree per pump below 16 C: 1.44 kWh a degree day.
    assert model.base_kwh == pytest.approx(9.6, rel=0.02)
    assert model.kwh_per_degree_day == pytest.approx(1.44, rel=0.05)
    assert model.balance_c == pytest.approx(16.0, abs=0.5)
    assert learned.forecast.energy_kwh == pytest.approx(3 * 9.6 + 2 * 1.44 * 19, rel=0.03)
    # Without a temperature (none given, none in the file) there is no forecast.
    assert await history.forecast("trafo-1", today + timedelta(days=30)) is None


async def test_a_day_beyond_any_connection_is_refused_counted_and_the_rest_go_on(
    street: Street,
) -> None:
    street.live(FIRST_DAY, 5.0, watts=290_000.0)  # 290 kW all day from each member
    street.live(FIRST_DAY + timedelta(days=1), 5.0)
    history = street.history()
    now = datetime.combine(FIRST_DAY + timedelta(days=2), datetime.min.time(), tzinfo=UTC)
    now += timedelta(hours=12)
    assert await history.close_days(now, lookback_days=5) == 1
    assert street.server.metrics.daily_load_rejected == {"trafo-1": 1}
    text = exposition(
        server_registry(ServerCollector(street.server.metrics, lambda: True, (), ()))
    ).decode()
    assert 'netbewust_daily_load_rejected_total{transformer="trafo-1"} 1.0' in text
    assert [load.day for load in street.store.daily_loads("trafo-1")] == [
        FIRST_DAY + timedelta(days=1)
    ]


def _noon(day: date) -> datetime:
    return (
        datetime.combine(day, datetime.min.time(), tzinfo=FORECAST_ZONE) + timedelta(hours=12)
    ).astimezone(UTC)


async def test_without_a_weather_source_a_day_is_the_median_of_the_members_reports(
    street: Street,
) -> None:
    # One sensor in the sun does not move the median.
    street.live(FIRST_DAY, 4.0, reported=(3.0, 4.5, 31.0), weather=False)
    # Two reporting households are too few.
    street.live(FIRST_DAY + timedelta(days=1), 4.0, reported=(3.0, 4.5, None), weather=False)
    # Reports covering less than half the day do not count.
    street.live(
        FIRST_DAY + timedelta(days=2), 4.0, reported=(3.0, 4.5, 5.0), hours=11, weather=False
    )
    history = street.history(weather=False)
    assert await history.close_days(_noon(FIRST_DAY + timedelta(days=3)), lookback_days=5) == 3
    means = [load.mean_outdoor_c for load in street.store.daily_loads("trafo-1")]
    assert means == [4.5, None, None]


async def test_the_weather_source_comes_first_and_the_reports_fill_its_gaps(
    street: Street,
) -> None:
    street.live(FIRST_DAY, 4.0, reported=(3.0, 4.5, 5.0))
    street.live(FIRST_DAY + timedelta(days=1), 4.0, reported=(-2.0, -1.0, 0.0), weather=False)
    history = street.history()
    assert await history.close_days(_noon(FIRST_DAY + timedelta(days=2)), lookback_days=5) == 2
    means = [load.mean_outdoor_c for load in street.store.daily_loads("trafo-1")]
    assert means == [4.0, -1.0]


async def test_todays_forecast_without_a_weather_source_takes_the_last_days_reports(
    street: Street,
) -> None:
    street.live(FIRST_DAY, 4.0, reported=(1.0, 2.0, 2.5), weather=False)
    history = street.history(weather=False)
    # Noon the next day: the last 24 hours hold half of yesterday's reports.
    await history.refresh(_noon(FIRST_DAY + timedelta(days=1)), lookback_days=5)
    assert history.latest["trafo-1"].mean_outdoor_c == 2.0
    # Without reports in the last day there is no temperature, so no forecast.
    await history.refresh(_noon(FIRST_DAY + timedelta(days=3)), lookback_days=5)
    assert history.latest == {}


async def test_the_dashboard_shows_todays_forecast(street: Street) -> None:
    today = FIRST_DAY + timedelta(days=1)
    street.live(FIRST_DAY, 4.0)
    with street.weather_path.open("a") as weather:
        weather.write(f"{today.isoformat()},-1.5\n")
    history = street.history()
    now = datetime.combine(today, datetime.min.time(), tzinfo=FORECAST_ZONE) + timedelta(hours=9)
    await history.refresh(now.astimezone(UTC), lookback_days=5)
    dashboard = Dashboard(street.server, street.store, load_forecasts=history)  # type: ignore[arg-type]
    document = await dashboard.snapshot(now.astimezone(UTC))
    forecast = document["transformers"][0]["load_forecast"]
    assert forecast["day"] == today.isoformat()
    assert forecast["mean_outdoor_c"] == -1.5
    assert forecast["model"]["source"] == "default"
    assert forecast["energy_kwh"] == pytest.approx(3 * 8.0 + 2 * 1.5 * 19.5, abs=0.1)


def test_the_forecast_settings(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text('[forecast]\nweather_file = "/srv/weather.csv"\n')
    config = load_config(path, {"NETBEWUST_FORECAST_HISTORY_DAYS": "400"})
    assert config.forecast == ForecastConfig(weather_file="/srv/weather.csv", history_days=400)
    with pytest.raises(ConfigError, match="history_days"):
        ForecastConfig(history_days=3)


async def test_the_weather_url_is_fetched_and_a_failed_fetch_keeps_what_was_read(
    socket_enabled: None,
) -> None:
    answers: list[web.Response] = [
        web.Response(text="date,mean_c\n2026-01-14,-2.5\n2026-01-15,inf\n"),
        web.Response(status=503, text="down"),
        web.Response(body=b"2026-01-14,1.0\n" * (MAX_WEATHER_BYTES // 15 + 1)),
    ]

    async def weather(_request: web.Request) -> web.Response:
        return answers.pop(0)

    app = web.Application()
    app.router.add_get("/weather.csv", weather)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        source = WeatherUrl(str(server.make_url("/weather.csv")))
        await source.refresh()
        assert source.mean_c(date(2026, 1, 14)) == -2.5
        assert (source.rejected, source.failures) == (1, 0)
        await source.refresh()  # 503
        await source.refresh()  # over a megabyte
        assert source.failures == 2
        assert source.mean_c(date(2026, 1, 14)) == -2.5
    finally:
        await server.close()


def test_a_weather_url_must_be_http_and_not_beside_a_file() -> None:
    with pytest.raises(ConfigError, match="http"):
        ForecastConfig(weather_url="file:///etc/passwd")
    with pytest.raises(ConfigError, match="not both"):
        ForecastConfig(weather_file="/srv/w.csv", weather_url="https://example.org/w.csv")
