"""Daily aggregates of each transformer's members, and their load forecast from the
daily mean outdoor temperature (issue 14; the engine's `collective.temperature_forecast`).

After each local day (Europe/Amsterdam) the members' stored telemetry becomes one row per
transformer (`daily_load`): members reporting at least half the day, how many have a heat
pump (thermal stores offered, or a heat-pump capability), their energy (each member's
mean power over the day, so a gap does not count as zero) and the evening peak (the
highest quarter hour of the summed load between 17:00 and 21:00). Those rows are kept
`history_days` (three years by default), apart from the raw telemetry's retention, so
the relation can be learned over more than one winter.

The outdoor temperature comes from a configured weather source: a CSV of `date,mean_c`
lines (observations and forecasts) in a local file (`WeatherFile`, kept up to date by
another tool) or at a URL (`WeatherUrl`, fetched hourly). Where there is none, or it has
no value for a day, the households' reports stand in (telemetry's `outdoor_temperature_c`,
sent by members with a heat pump): the median over the server's households of each one's
mean over the day, from at least `MIN_OUTDOOR_REPORTERS` households whose reports cover
half the day (a median, so one sensor in the sun does not move it); today's forecast
then takes the last 24 hours'. A day without either is stored and learned from once the
weather source has it. `forecast(transformer, day)` is what the collective plan calls.
"""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

import aiohttp

from netbewust_core.collective.temperature_forecast import (
    DailyLoad,
    DayForecast,
    TemperatureForecastError,
    fit_temperature_model,
    forecast_day,
)
from netbewust_core.protocol.messages import QUARTER_HOUR
from netbewust_core.units import MAX_OUTDOOR_C, MIN_OUTDOOR_C

if TYPE_CHECKING:
    from pathlib import Path

    from .server import CommunityServer
    from .store import Household, Store

_LOGGER = logging.getLogger(__name__)
FORECAST_ZONE: Final = ZoneInfo("Europe/Amsterdam")
EVENING_HOURS: Final = range(17, 21)  # local hours of the evening peak
MIN_COVERAGE = 0.5  # a member counts on a day it reported at least half of
MIN_OUTDOOR_REPORTERS = 3  # households whose reported temperatures make a day's mean
MAX_PUMPS_A_MEMBER = 4  # the protocol's thermal stores per household
CLOSE_PERIOD_S = 3600.0
MAX_WEATHER_LINES = 100_000
MAX_WEATHER_BYTES = 1 << 20


def parse_weather(text: str) -> tuple[dict[date, float], int]:
    """Daily means from `YYYY-MM-DD,mean_c` lines, and how many lines were skipped: one
    that does not parse, a temperature outside [-40, 50] C, any past the 100,000th. A
    header (`date,...`), blank lines and `#` comments are not counted."""
    means: dict[date, float] = {}
    rejected = 0
    for number, line in enumerate(text.splitlines()):
        if not line.strip() or line.startswith("#") or line.lower().startswith("date"):
            continue
        if number >= MAX_WEATHER_LINES:
            rejected += 1
            continue
        try:
            day_text, value_text = line.split(",")
            day, value = date.fromisoformat(day_text.strip()), float(value_text)
        except ValueError:
            rejected += 1
            continue
        if not (math.isfinite(value) and MIN_OUTDOOR_C <= value <= MAX_OUTDOOR_C):
            rejected += 1
            continue
        means[day] = value
    return means, rejected


class WeatherFile:
    """Daily mean outdoor temperatures from a local CSV (`parse_weather`), re-read when it
    changes; skipped lines are counted (`rejected`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rejected = 0
        self._seen: tuple[int, int] | None = None
        self._means: dict[date, float] = {}

    def mean_c(self, day: date) -> float | None:
        self._reload()
        return self._means.get(day)

    async def refresh(self) -> None:
        """Nothing to fetch: the file is read when it changes."""

    def _reload(self) -> None:
        try:
            stat = self.path.stat()
        except OSError:
            return  # keep what was read: a file being replaced is briefly gone
        seen = (stat.st_mtime_ns, stat.st_size)
        if seen == self._seen:
            return
        self._seen = seen
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            _LOGGER.warning("weather file %s unreadable: %s", self.path, err)
            return
        self._means, rejected = parse_weather(text)
        if rejected:
            _LOGGER.warning("weather file %s: %d lines skipped", self.path, rejected)
        self.rejected += rejected


class WeatherUrl:
    """The same CSV fetched over HTTP(S) at every refresh (hourly). A failed fetch, an
    answer other than 200 or one over `MAX_WEATHER_BYTES` keeps what was read before and
    is counted (`failures`)."""

    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.rejected = 0
        self.failures = 0
        self._means: dict[date, float] = {}

    def mean_c(self, day: date) -> float | None:
        return self._means.get(day)

    async def refresh(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(self.url) as response,
            ):
                body = bytearray()
                async for chunk in response.content.iter_chunked(1 << 16):
                    body += chunk
                    if len(body) > MAX_WEATHER_BYTES:
                        break  # no further: the answer is refused anyway
                if response.status != 200 or len(body) > MAX_WEATHER_BYTES:
                    raise ValueError(f"HTTP {response.status}, {len(body)} bytes")
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            self.failures += 1
            _LOGGER.warning("weather from %s not read: %s", self.url, err)
            return
        self._means, rejected = parse_weather(body.decode("utf-8", errors="replace"))
        self.rejected += rejected
        if rejected:
            _LOGGER.warning("weather from %s: %d lines skipped", self.url, rejected)


@dataclass(frozen=True, slots=True)
class TransformerForecast:
    """One transformer's members on one day, as the temperature relation expects them."""

    transformer_id: str
    day: date
    mean_outdoor_c: float
    members: int
    heat_pumps: int
    forecast: DayForecast

    def document(self) -> dict[str, Any]:
        model = self.forecast.model
        return {
            "day": self.day.isoformat(),
            "mean_outdoor_c": self.mean_outdoor_c,
            "members": self.members,
            "heat_pumps": self.heat_pumps,
            "energy_kwh": round(self.forecast.energy_kwh, 1),
            "evening_peak_w": round(self.forecast.evening_peak_w),
            "model": {
                "source": str(model.source),
                "days": model.days,
                "balance_c": model.balance_c,
                "base_kwh": round(model.base_kwh, 3),
                "kwh_per_degree_day": round(model.kwh_per_degree_day, 3),
                "base_peak_w": round(model.base_peak_w, 1),
                "peak_w_per_degree": round(model.peak_w_per_degree, 1),
            },
        }


def local_day_bounds(day: date, zone: ZoneInfo = FORECAST_ZONE) -> tuple[datetime, datetime]:
    """[start, end) of a local day in UTC (23 or 25 hours on a DST change)."""
    start = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    return start, end


def pumps_of(household: Household) -> int:
    """A member's heat pumps: its thermal stores, or one for a heat-pump capability."""
    capabilities = household.capabilities
    if capabilities is None:
        return 0
    stores = len(capabilities.thermal_heat_pumps)
    return stores or int(capabilities.heat_pump is not None)


def aggregate_day(
    day: date,
    rows: list[tuple[str, datetime, float]],
    pumps: dict[str, int],
    mean_outdoor_c: float | None,
    zone: ZoneInfo = FORECAST_ZONE,
) -> DailyLoad:
    """One day's row from the members' quarter-hour loads (`Store.quarter_hour_load`).

    A member counts when it reported at least `MIN_COVERAGE` of the day's quarter hours;
    its energy is its mean power over the day. A day of net export counts as none (the
    relation is about the load). Raises TemperatureForecastError on values out of range.
    """
    start, end = local_day_bounds(day, zone)
    quarters = int((end - start) / QUARTER_HOUR)
    by_member: dict[str, list[float]] = {}
    evening: dict[datetime, float] = {}
    for household, quarter, watts in rows:
        if not (start <= quarter < end and math.isfinite(watts)):
            continue
        by_member.setdefault(household, []).append(watts)
    counted = {h for h, loads in by_member.items() if len(loads) >= MIN_COVERAGE * quarters}
    for household, quarter, watts in rows:
        local_hour = quarter.astimezone(zone).hour
        if household in counted and start <= quarter < end and local_hour in EVENING_HOURS:
            evening[quarter] = evening.get(quarter, 0.0) + (watts if math.isfinite(watts) else 0.0)
    hours = (end - start).total_seconds() / 3600
    energy_kwh = sum(sum(by_member[h]) / len(by_member[h]) * hours / 1000 for h in counted)
    return DailyLoad(
        day=day,
        members=len(counted),
        heat_pumps=min(sum(pumps.get(h, 0) for h in counted), MAX_PUMPS_A_MEMBER * len(counted)),
        energy_kwh=max(0.0, energy_kwh),
        evening_peak_w=max(0.0, max(evening.values(), default=0.0)),
        mean_outdoor_c=mean_outdoor_c,
    )


class LoadHistory:
    """Keeps `daily_load` filled and forecasts from it; one per server."""

    def __init__(
        self,
        server: CommunityServer,
        store: Store,
        weather: WeatherFile | WeatherUrl | None,
        *,
        history_days: int,
        zone: ZoneInfo = FORECAST_ZONE,
    ) -> None:
        self._server = server
        self._store = store
        self.weather = weather
        self.history_days = history_days
        self.zone = zone
        self.latest: dict[str, TransformerForecast] = {}  # today's, for the dashboard

    def _mean_c(self, day: date) -> float | None:
        return None if self.weather is None else self.weather.mean_c(day)

    async def reported_mean_c(self, since: datetime, until: datetime) -> float | None:
        """The median of the households' mean reported outdoor temperature in the
        reports of (since, until], each covering `MIN_COVERAGE` of it; None from fewer
        than `MIN_OUTDOOR_REPORTERS`."""
        covered_s = MIN_COVERAGE * (until - since).total_seconds()
        means = await self._server.run_in_db(self._store.outdoor_means, since, until, covered_s)
        return statistics.median(means) if len(means) >= MIN_OUTDOOR_REPORTERS else None

    async def _day_mean_c(self, day: date) -> float | None:
        """A finished day's temperature: the weather source's, else the reports'."""
        mean = self._mean_c(day)
        if mean is None:
            mean = await self.reported_mean_c(*local_day_bounds(day, self.zone))
        return mean

    async def close_days(self, now: datetime, lookback_days: int) -> int:
        """Store every finished local day of the last `lookback_days` not stored yet;
        prune rows older than `history_days`. Returns the days stored."""
        today = now.astimezone(self.zone).date()
        run = self._server.run_in_db
        stored = 0
        means: dict[date, float | None] = {}  # one look-up a day, for all transformers
        households = await run(self._store.households)
        for transformer in await run(self._store.transformers):
            tid = transformer.transformer_id
            known = {load.day for load in await run(self._store.daily_loads, tid)}
            pumps = {h.household_id: pumps_of(h) for h in households if h.transformer_id == tid}
            for back in range(lookback_days, 0, -1):
                day = today - timedelta(days=back)
                if day in known:
                    continue
                start, end = local_day_bounds(day, self.zone)
                rows = await run(self._store.quarter_hour_load, tid, start, end)
                if not rows:
                    continue
                if day not in means:
                    means[day] = await self._day_mean_c(day)
                try:
                    load = aggregate_day(day, rows, pumps, means[day], self.zone)
                except TemperatureForecastError as err:
                    self._server.metrics.daily_load_rejected[tid] += 1
                    _LOGGER.warning("daily load of %s on %s refused: %s", tid, day, err)
                    continue
                await run(self._store.save_daily_load, tid, load)
                stored += 1
        await run(self._store.prune_daily_loads, today - timedelta(days=self.history_days))
        return stored

    async def forecast(
        self, transformer_id: str, day: date, mean_outdoor_c: float | None = None
    ) -> TransformerForecast | None:
        """The members' energy and evening peak on `day` (local), at `mean_outdoor_c` or
        the weather source's; None without a temperature. Members and pumps as they are
        now; the relation from the stored days (the defaults before there are enough)."""
        outdoor = self._mean_c(day) if mean_outdoor_c is None else mean_outdoor_c
        if outdoor is None:
            return None
        run = self._server.run_in_db
        history = [
            load
            if load.mean_outdoor_c is not None or (mean := self._mean_c(load.day)) is None
            else DailyLoad(
                day=load.day,
                members=load.members,
                heat_pumps=load.heat_pumps,
                energy_kwh=load.energy_kwh,
                evening_peak_w=load.evening_peak_w,
                mean_outdoor_c=mean,
            )
            for load in await run(self._store.daily_loads, transformer_id)
        ]
        members = [
            h for h in await run(self._store.households) if h.transformer_id == transformer_id
        ]
        pumps = min(sum(pumps_of(h) for h in members), MAX_PUMPS_A_MEMBER * len(members))
        expected = forecast_day(
            fit_temperature_model(history),
            members=len(members),
            heat_pumps=pumps,
            mean_outdoor_c=outdoor,
        )
        return TransformerForecast(transformer_id, day, outdoor, len(members), pumps, expected)

    async def refresh(self, now: datetime, lookback_days: int) -> None:
        """Fetch the weather, close finished days, then today's forecast per
        transformer (`latest`)."""
        if self.weather is not None:
            await self.weather.refresh()
        await self.close_days(now, lookback_days)
        today = now.astimezone(self.zone).date()
        reported = None
        if self._mean_c(today) is None:
            reported = await self.reported_mean_c(now - timedelta(days=1), now)
        latest: dict[str, TransformerForecast] = {}
        for transformer in await self._server.run_in_db(self._store.transformers):
            tid = transformer.transformer_id
            try:
                forecast = await self.forecast(tid, today, reported)
            except TemperatureForecastError as err:
                self._server.metrics.daily_load_rejected[tid] += 1
                _LOGGER.warning("load forecast of %s refused: %s", tid, err)
                continue
            if forecast is not None:
                latest[tid] = forecast
        self.latest = latest

    async def run(self, lookback_days: int) -> None:
        """Refresh every hour; a failed refresh is logged and tried again."""
        while True:
            try:
                await self.refresh(self._server.now(), lookback_days)
            except Exception:
                _LOGGER.exception("daily load history refresh failed")
            await asyncio.sleep(CLOSE_PERIOD_S)
