"""Keep one transformer's members below its capacity: the engine's live allocator, every 10 s.

The households' latest telemetry is the measured load; their capabilities give the
connection limit. What a household needs at least (`guaranteed_min_w`) is not reported
in protocol v1, so a fixed floor is assumed. Limits are sent only when they change or
are about to expire; a released household gets an empty limit that clears the old one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from netbewust_core.allocation import LiveAllocator
from netbewust_core.allocation_model import (
    AllocationConfig,
    AllocationMode,
    CapSeries,
    HouseholdState,
    NonMemberLoad,
)
from netbewust_core.collective_model import SharingRule
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.protocol import TELEMETRY_INTERVAL_S

if TYPE_CHECKING:
    from datetime import datetime

    from netbewust_core.allocation_model import Allocation

    from .server import CommunityServer
    from .store import Household, Store

_LOGGER = logging.getLogger(__name__)
GUARANTEED_MIN_W = 1500.0  # base load and heat-pump comfort; v1 does not report it
STALE_AFTER = timedelta(seconds=3 * TELEMETRY_INTERVAL_S)
CAP_HORIZON = timedelta(days=1)
RENEW_BEFORE = timedelta(seconds=25)


@dataclass(frozen=True, slots=True)
class CapStatus:
    """What the dashboard shows about the allocation."""

    cap_w: float
    phase: str
    members_budget_w: float | None
    limited: int


class CapControl:
    def __init__(
        self, server: CommunityServer, store: Store, transformer_id: str, cap_w: float
    ) -> None:
        self._server = server
        self._store = store
        self.transformer_id = transformer_id
        self.cap_w = cap_w
        self._allocator = LiveAllocator(AllocationConfig())
        self._sent: dict[str, ExternalLimit] = {}
        self.status: CapStatus | None = None

    async def run(self) -> None:
        while True:
            try:
                await self.step(self._server.now())
            except Exception:  # one bad round must not end the control loop
                _LOGGER.exception("allocation round failed")
            await asyncio.sleep(TELEMETRY_INTERVAL_S)

    async def step(self, now: datetime) -> Allocation:
        households = await self._server.run_in_db(self._store.households)
        members = [h for h in households if h.transformer_id == self.transformer_id]
        states = [state for h in members if (state := self._state(h, now)) is not None]
        cap = CapSeries(
            intervals=(LimitInterval(start=now, end=now + CAP_HORIZON, max_import_w=self.cap_w),),
            source=LimitSource.COMMUNITY,
        )
        allocation = self._allocator.allocate(
            cap,
            NonMemberLoad(estimate_w=0.0),
            states,
            rule=SharingRule.EQUAL_SHARE,
            mode=AllocationMode.CAPACITY_FRAME,
            now=now,
        )
        for household_id, limit in allocation.limits.items():
            previous = self._sent.get(household_id)
            if previous is None or _differs(previous, limit, now):
                await self._send(household_id, limit)
        for share in allocation.shares:
            if share.released and share.household_id in self._sent:
                cleared = ExternalLimit(
                    source=LimitSource.COMMUNITY,
                    issued_at=now,
                    expires_at=now + timedelta(minutes=1),
                )
                await self._send(share.household_id, cleared)
                del self._sent[share.household_id]
        self.status = CapStatus(
            cap_w=self.cap_w,
            phase=str(allocation.phase),
            members_budget_w=allocation.members_budget_w,
            limited=len(allocation.limits),
        )
        return allocation

    async def _send(self, household_id: str, limit: ExternalLimit) -> None:
        try:
            await self._server.send_limit(household_id, limit)
        except Exception:
            _LOGGER.exception("could not send %s its limit", household_id)
            return
        self._sent[household_id] = limit

    def _state(self, household: Household, now: datetime) -> HouseholdState | None:
        telemetry = self._server.latest_telemetry.get(household.household_id)
        if telemetry is None or now - telemetry.measured_at > STALE_AFTER:
            return None
        capabilities = household.capabilities
        phases, fuse_a = (
            (capabilities.phases, capabilities.fuse_current_a) if capabilities else (1, 25.0)
        )
        connection_w = phases * fuse_a * 230.0
        measured = telemetry.total_power_w
        return HouseholdState(
            household_id=household.household_id,
            measured_w=max(-connection_w, min(connection_w, measured)),
            guaranteed_min_w=min(GUARANTEED_MIN_W, connection_w),
            flexible_w=max(0.0, min(connection_w, measured) - GUARANTEED_MIN_W),
            connection_limit_w=connection_w,
        )


def _differs(previous: ExternalLimit, new: ExternalLimit, now: datetime) -> bool:
    """Send again when the cap moved by over 1 %, or the old one nears its expiry."""
    if previous.expires_at - now < RENEW_BEFORE:
        return True
    old, fresh = previous.interval_at(now), new.interval_at(now)
    if old is None or fresh is None:
        return old is not fresh
    if old.max_import_w is None or fresh.max_import_w is None:
        return old.max_import_w != fresh.max_import_w
    return abs(old.max_import_w - fresh.max_import_w) > 0.01 * max(old.max_import_w, 1.0)
