"""`netbewust-server serve`, assembled: server, DSO inputs, live allocation, HTTP.

Start order: the MQTT server, the DSO runtime (audit store and VEN), one `CapControl`
per transformer taking its cap from the DSO, then the HTTP API with the dashboard and
the DSO routes. Every DSO signal wakes the allocation of its transformer at once.
Transformers created while serving get their allocation within `WATCH_TRANSFORMERS_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from netbewust_adapters.nordpool import NordPoolFeed
from netbewust_core.planning.prices import FeedPrices

from .cap_control import CapControl
from .collective_runtime import CollectiveRuntime
from .dashboard import Dashboard
from .discovery import Advertiser
from .dso_runtime import DsoRuntime
from .http_api import HttpApi, start_site
from .load_history import LoadHistory, WeatherFile, WeatherUrl
from .server import CommunityServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from datetime import datetime

    from .allocation_settings import AllocationSettings
    from .collective_runtime import PriceSource
    from .config import ServerConfig
    from .dso.signals import CapSignal
    from .store import Store

_LOGGER = logging.getLogger(__name__)
WATCH_TRANSFORMERS_S = 60.0


@dataclass
class Serving:
    """Everything that runs; tests and benchmarks read it."""

    server: CommunityServer
    dso: DsoRuntime
    controls: list[CapControl] = field(default_factory=list)
    collective: CollectiveRuntime | None = None
    load_history: LoadHistory | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def control(self, transformer_id: str) -> CapControl | None:
        return next((c for c in self.controls if c.transformer_id == transformer_id), None)

    def woken(self, signal: CapSignal) -> None:
        self.server.metrics.dso_signals[str(signal.mode), str(signal.source)] += 1
        control = self.control(signal.transformer_id)
        if control is not None:
            control.wake()
        if self.collective is not None:
            self.collective.wake()  # a new frame re-plans the day

    async def add_transformers(self, store: Store, settings: AllocationSettings) -> None:
        for transformer in await self.server.run_in_db(store.transformers):
            if self.control(transformer.transformer_id) is None:
                control = CapControl(
                    self.server,
                    store,
                    transformer.transformer_id,
                    self.dso.cap_for,
                    settings=settings,
                )
                self.controls.append(control)
                self._tasks.append(
                    asyncio.create_task(
                        control.run(), name=f"allocation-{transformer.transformer_id}"
                    )
                )

    async def watch_transformers(self, store: Store, settings: AllocationSettings) -> None:
        while True:
            await asyncio.sleep(WATCH_TRANSFORMERS_S)
            try:
                await self.add_transformers(store, settings)
            except Exception:
                _LOGGER.exception("could not look for new transformers")

    async def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


@contextlib.asynccontextmanager
async def serving(
    config: ServerConfig,
    store: Store,
    *,
    clock: Callable[[], datetime] | None = None,
    prices: PriceSource | None = None,
) -> AsyncIterator[Serving]:
    """Run everything until the block ends; stops in reverse order.

    `prices` replaces Nord Pool for the collective plan (tests, offline demos).
    """
    async with contextlib.AsyncExitStack() as running:
        server = (
            CommunityServer(config, store)
            if clock is None
            else CommunityServer(config, store, clock=clock)
        )
        await server.start()
        running.push_async_callback(server.stop)
        dso = DsoRuntime.open(config.dso, server, store, config.database.path)
        running.push_async_callback(dso.stop)
        state = Serving(server, dso)
        dso.on_signal(state.woken)
        running.push_async_callback(state.cancel)
        await state.add_transformers(store, config.allocation)
        state._tasks.append(asyncio.create_task(state.watch_transformers(store, config.allocation)))
        # Before the collective plan, which may read its forecast (`LoadHistory.forecast`).
        forecast = config.forecast
        weather: WeatherFile | WeatherUrl | None = None
        if forecast.weather_file:
            weather = WeatherFile(Path(forecast.weather_file))
        elif forecast.weather_url:
            weather = WeatherUrl(forecast.weather_url)
        state.load_history = LoadHistory(server, store, weather, history_days=forecast.history_days)
        # Days within telemetry retention can still be aggregated after a restart.
        lookback = math.ceil(config.database.telemetry_retention_days)
        state._tasks.append(
            asyncio.create_task(state.load_history.run(lookback), name="load history")
        )
        if config.collective.enabled:
            if prices is None:
                session = aiohttp.ClientSession()
                running.push_async_callback(session.close)
                prices = FeedPrices(NordPoolFeed(session, config.collective.area))
            state.collective = CollectiveRuntime(
                server,
                store,
                state.controls,
                caps=dso.cap_for,
                prices=prices,
                config=config.collective,
                rule=config.allocation.rule,
            )
            state._tasks.append(asyncio.create_task(state.collective.run(), name="collective"))
        await dso.start()
        if config.http.enabled:
            public = config.dashboard.public_min_households if config.dashboard.public else None
            dashboard = Dashboard(
                server,
                store,
                state.controls,
                dso,
                state.collective,
                public_min_households=public,
                load_forecasts=state.load_history,
            )
            api = HttpApi(server, store, config)
            http = await start_site(api, config, dashboard, more_routes=(dso.register,))
            running.push_async_callback(http.cleanup)
            if config.zeroconf.enabled:
                advertiser = Advertiser(config, store.server_id)
                await advertiser.start()
                running.push_async_callback(advertiser.stop)
        _LOGGER.info(
            "DSO: %d account(s), VEN %s; allocating for %d transformer(s), rule %s",
            len(config.dso.accounts),
            "on" if dso.ven is not None else "off",
            len(state.controls),
            config.allocation.rule,
        )
        yield state
