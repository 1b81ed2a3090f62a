"""The DSO inputs, wired into the running server: audit store, HTTP API, OpenADR VEN.

`DsoRuntime` owns the `DsoStore` (the server's database file, its own tables), adds the
DSO routes to the HTTP application before it starts, runs the VEN (when configured)
and answers the one question allocation asks: which cap is in force for a transformer
now (`cap_for`). Every new, changed or cancelled signal wakes the listeners at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from .dso.audit import DsoStore
from .dso.http_routes import DsoHttpApi, register_dso_routes
from .dso.in_force import Fallback, cap_in_force
from .dso.notifications import register_notification_route
from .dso.ven import VenClient

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from pathlib import Path

    from aiohttp import web

    from .dso.in_force import CapInForce
    from .dso.signals import CapSignal
    from .dso.ven import LinkStatus
    from .dso_settings import DsoSettings
    from .server import CommunityServer
    from .store import Store

_LOGGER = logging.getLogger(__name__)


class DsoRuntime:
    def __init__(
        self,
        settings: DsoSettings,
        server: CommunityServer,
        store: Store,
        dso_store: DsoStore,
    ) -> None:
        self.settings = settings
        self.dso_store = dso_store
        self._server = server
        self._store = store
        self._listeners: list[Callable[[CapSignal], None]] = []
        self.ven: VenClient | None = None
        if settings.ven is not None:
            self.ven = VenClient(
                settings.ven,
                dso_store,
                server.now,
                usage=self.members_usage_w,
                on_signal=self._signalled,
            )

    @classmethod
    def open(
        cls, settings: DsoSettings, server: CommunityServer, store: Store, database: Path
    ) -> DsoRuntime:
        """With a `DsoStore` of its own on the server's database file; `stop()` closes it."""
        return cls(settings, server, store, DsoStore.open(database))

    def on_signal(self, listener: Callable[[CapSignal], None]) -> None:
        """Call `listener` (on the event loop) for every new or cancelled DSO signal."""
        self._listeners.append(listener)

    def _signalled(self, signal: CapSignal) -> None:
        _LOGGER.info(
            "DSO signal %s (%s) for %s", signal.signal_id, signal.mode, signal.transformer_id
        )
        for listener in self._listeners:
            listener(signal)

    def register(self, app: web.Application) -> None:
        """Add the DSO HTTP API (and the VTN's notification route) before the app starts."""
        api = DsoHttpApi(
            self.dso_store,
            self.settings.accounts,
            lambda transformer: self._store.transformer(transformer) is not None,
            self._server.now,
            link_lost=self.link_lost,
            fallback_for=self.fallback,
            on_signal=self._signalled,
            rejected=self._server.metrics.dso_frames_rejected,
        )
        register_dso_routes(app, api)
        if self.ven is not None:
            register_notification_route(app, self.ven)

    async def start(self) -> None:
        if self.ven is not None:
            await self.ven.start()

    async def stop(self) -> None:
        if self.ven is not None:
            await self.ven.stop()
        self.dso_store.close()

    def link_lost(self) -> bool:
        return self.ven is not None and self.ven.link_lost()

    @property
    def link_status(self) -> LinkStatus | None:
        return None if self.ven is None else self.ven.status

    def fallback(self, transformer_id: str) -> Fallback:
        """The VTN's safe-mode cap (when a VEN runs) and the configured default and estimate."""
        safe_mode = None if self.ven is None else self.ven.fallback(transformer_id)
        return Fallback(
            safe_mode_import_w=None if safe_mode is None else safe_mode.safe_mode_import_w,
            default_import_w=self.settings.default_import_w,
            non_member_estimate_w=self.settings.non_member_estimate_w.get(transformer_id),
        )

    async def cap_for(self, transformer_id: str, now: datetime) -> CapInForce:
        signals = await asyncio.to_thread(self.dso_store.signals_for, transformer_id, now)
        return cap_in_force(
            transformer_id,
            signals,
            now,
            link_lost=self.link_lost(),
            fallback=self.fallback(transformer_id),
        )

    def members_usage_w(self, transformer_id: str, start: datetime, end: datetime) -> float | None:
        """Mean W of the members behind a transformer over [start, end), from stored telemetry.

        Each household's reports are averaged over the interval, then summed; None when
        no member reported in it. Runs on the VEN's worker thread (the store is locked).
        """
        total, reported = 0.0, False
        for household in self._store.households():
            if household.transformer_id != transformer_id:
                continue
            rows = [
                row.telemetry.total_power_w
                for row in self._store.telemetry(household.household_id, start)
                if row.telemetry.measured_at < end
            ]
            if rows:
                total += sum(rows) / len(rows)
                reported = True
        return total if reported else None
