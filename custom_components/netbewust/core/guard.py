"""The local grid guard: per-device setpoints that keep the connection within its limits.

Interface fixed here; the behaviour is specified in issue 2 and docs/guard.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from .limits import ExternalLimit, LimitSource
from .model import DeviceState, GuardConfig, GuardDecision, MeterReading, Setpoint


class Guard:
    """Event-driven: call `on_meter` for every meter update and `on_tick` about every second."""

    def __init__(self, config: GuardConfig) -> None:
        self.config = config

    def on_meter(self, reading: MeterReading, devices: Mapping[str, DeviceState]) -> GuardDecision:
        """Decide every device's setpoint for this reading."""
        raise NotImplementedError

    def on_tick(self, now: datetime) -> GuardDecision | None:
        """Check for stale meter data; returns a decision only when the state changes."""
        raise NotImplementedError

    def set_external_limit(self, limit: ExternalLimit) -> None:
        """Replace the limit held for `limit.source`; it can only lower what is allowed."""
        raise NotImplementedError

    def clear_external_limit(self, source: LimitSource) -> None:
        raise NotImplementedError

    def set_plan(self, requests: Mapping[str, Setpoint]) -> None:
        """Desired setpoints from the planner; the guard only ever lowers them."""
        raise NotImplementedError

    def set_charge_now(self, device_id: str, enabled: bool) -> None:
        raise NotImplementedError

    def set_emergency(self, active: bool) -> None:
        """An external emergency input: every flexible device to its safe state."""
        raise NotImplementedError

    def set_optimisation_paused(self, paused: bool) -> None:
        """Ignore the planner's requests; limits and the fuse protection stay in force."""
        raise NotImplementedError

    def set_export_price(self, price_eur_per_kwh: float | None) -> None:
        """A negative export price makes the guard limit PV and battery export."""
        raise NotImplementedError
