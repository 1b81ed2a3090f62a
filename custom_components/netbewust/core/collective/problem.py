"""The collective day-ahead planner's typed inputs.

Same conventions as the household planner (`planning.py`): a horizon of equal steps from a
UTC start, power in W as the step's average (positive = import), energy in Wh, devices
refer to steps by index (`start_step` inclusive, `end_step` exclusive). The fields mirror
the membership protocol (`protocol.BaselineForecast`, `FlexEnvelope`, `BatteryCapability`,
`HeatPumpFlexibility`)
so an adapter from those messages only converts timestamps to step indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import numpy as np

from ..planning.problem import PlanBattery  # noqa: TC001 - a field type, resolved at runtime by users


class CollectiveError(ValueError):
    """A collective planning problem that does not validate."""


class SharingRule(StrEnum):
    """How the community shares the cost of meeting the transformer cap.

    The same setting as the live allocation: EQUAL_SHARE splits it evenly,
    PRO_RATA_FLEXIBLE in proportion to each household's flexible energy, MERIT_ORDER
    leaves each household the cost of its own change (the optimiser already uses the
    cheapest flexibility first).
    """

    EQUAL_SHARE = "equal_share"
    PRO_RATA_FLEXIBLE = "pro_rata_flexible"
    MERIT_ORDER = "merit_order"


@dataclass(frozen=True, slots=True, kw_only=True)
class ShiftableEnergy:
    """`energy_wh` to draw within steps [start_step, end_step) at up to `max_power_w`.

    The protocol's `FlexEnvelope` (an EV session, a shiftable heat-pump run, a dishwasher)
    with its window as step indices. Energy is what the grid delivers. `min_power_w`:
    the device draws nothing or at least this (a charger's 6 A, an on/off heat pump's
    rated power); the LP ignores it, the limits respect it.
    """

    name: str
    energy_wh: float
    max_power_w: float
    start_step: int
    end_step: int
    min_power_w: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.start_step < self.end_step:
            raise CollectiveError(f"{self.name}: window [{self.start_step}, {self.end_step})")
        if not (self.energy_wh >= 0 and self.max_power_w >= 0):
            raise CollectiveError(f"{self.name}: energy and power must be finite and >= 0")
        if not (np.isfinite(self.energy_wh) and np.isfinite(self.max_power_w)):
            raise CollectiveError(f"{self.name}: energy and power must be finite")
        if not 0 <= self.min_power_w <= self.max_power_w:
            raise CollectiveError(f"{self.name}: min_power_w must be within [0, max_power_w]")


@dataclass(frozen=True, slots=True, kw_only=True)
class ThermalStore:
    """A heat pump's home as a leaky thermal store: the protocol's `HeatPumpFlexibility`
    with its series as steps of the horizon (one value per step).

    Stored heat E (kWh above the home's private reference) follows, per step of h hours,
    E' = a E + (1 - a) tau (cop P + B - loss), a = exp(-h / tau), with P the pump's
    electric power and B a hybrid's boiler heat (kW, up to `hybrid_heat_w`, priced at
    `gas_eur_per_kwh_heat`). The plan keeps E (at each step's end) within the band
    [`stored_heat_min_kwh`, `stored_heat_max_kwh`]. The LP plans P continuously in
    [0, `max_power_w`]; `min_power_w` and start limits stay with the household's planner.
    """

    name: str
    stored_heat_kwh: float
    stored_heat_min_kwh: tuple[float, ...]
    stored_heat_max_kwh: tuple[float, ...]
    time_constant_h: float
    heat_loss_kw: tuple[float, ...]
    cop: tuple[float, ...]
    max_power_w: float
    min_power_w: float = 0.0
    hybrid_heat_w: float | None = None
    gas_eur_per_kwh_heat: float | None = None

    def __post_init__(self) -> None:
        n = len(self.cop)
        series = (self.stored_heat_min_kwh, self.stored_heat_max_kwh, self.heat_loss_kw, self.cop)
        if n == 0 or any(len(values) != n for values in series):
            raise CollectiveError(f"{self.name}: the store's series must be equally long")
        arrays = [np.asarray(values, dtype=float) for values in series]
        scalars = (self.stored_heat_kwh, self.time_constant_h, self.max_power_w, self.min_power_w)
        if not all(np.isfinite(a).all() for a in arrays) or not np.isfinite(scalars).all():
            raise CollectiveError(f"{self.name}: a missing or infinite value")
        if (arrays[0] > arrays[1]).any():
            raise CollectiveError(f"{self.name}: stored_heat_min_kwh above stored_heat_max_kwh")
        if not (self.time_constant_h > 0 and (arrays[3] >= 1).all()):
            raise CollectiveError(f"{self.name}: need a positive time constant and COP >= 1")
        if not 0 <= self.min_power_w <= self.max_power_w:
            raise CollectiveError(f"{self.name}: need 0 <= min_power_w <= max_power_w")
        heat, gas = self.hybrid_heat_w, self.gas_eur_per_kwh_heat
        if (heat is None) != (gas is None):
            raise CollectiveError(f"{self.name}: a hybrid needs its heat and its gas price")
        if heat is not None and gas is not None and not (0 <= heat < np.inf and np.isfinite(gas)):
            raise CollectiveError(f"{self.name}: hybrid heat must be finite and >= 0")

    @property
    def steps(self) -> int:
        return len(self.cop)


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectiveHousehold:
    """One member: baseline (inflexible net grid power), flexibility and connection limits.

    `baseline_w` already contains PV and every load the community cannot move. The
    connection limits are what the fuse (less margin) allows, in W over all phases.
    `limit_headroom_w`: added to its import limits (within its connection) for the error
    of its baseline forecast: without it, base load a little above the forecast takes
    the car's share and a car planned at its 6 A minimum pauses. Whoever sets it should
    plan against a cap with a margin that pays for the households above forecast at once.
    """

    household_id: str
    baseline_w: tuple[float, ...]
    import_limit_w: float
    export_limit_w: float
    envelopes: tuple[ShiftableEnergy, ...] = ()
    batteries: tuple[PlanBattery, ...] = ()
    limit_headroom_w: float = 0.0
    thermal_stores: tuple[ThermalStore, ...] = ()

    def __post_init__(self) -> None:
        hid = self.household_id
        if not hid:
            raise CollectiveError("a household needs an id")
        if not (0 < self.import_limit_w < np.inf and 0 <= self.export_limit_w < np.inf):
            raise CollectiveError(f"{hid}: connection limits must be finite, import > 0")
        if not 0 <= self.limit_headroom_w < np.inf:
            raise CollectiveError(f"{hid}: limit_headroom_w must be finite and >= 0")
        baseline = np.asarray(self.baseline_w, dtype=float)
        if baseline.ndim != 1 or not np.isfinite(baseline).all():
            raise CollectiveError(f"{hid}: baseline contains a missing or infinite value")
        if (baseline > self.import_limit_w).any() or (baseline < -self.export_limit_w).any():
            raise CollectiveError(f"{hid}: baseline exceeds the connection limits")

    @property
    def flexible_energy_wh(self) -> float:
        """Energy the household can move: envelopes plus one full battery cycle plus each
        heat pump's widest band (as electricity at its best COP)."""
        envelopes = sum(envelope.energy_wh for envelope in self.envelopes)
        batteries = sum(
            battery.capacity_wh * (battery.soc_max_pct - battery.soc_min_pct) / 100
            for battery in self.batteries
        )
        stores = sum(
            1000
            * max(np.subtract(store.stored_heat_max_kwh, store.stored_heat_min_kwh))
            / max(store.cop)
            for store in self.thermal_stores
        )
        return envelopes + batteries + float(stores)


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectiveProblem:
    """The community's day: prices, transformer caps, non-member load and members.

    The transformer carries members and non-members: members together may use
    `cap - non_member_load` for import and `export cap + non_member_load` for export.
    Import prices must be at least the export prices in every step (otherwise buying to
    sell back would pay, which a household cannot do on one meter).
    """

    start: datetime
    import_price_eur_per_kwh: tuple[float, ...]
    export_price_eur_per_kwh: tuple[float, ...]
    transformer_import_cap_w: tuple[float, ...]
    transformer_export_cap_w: tuple[float, ...]
    non_member_load_w: tuple[float, ...]
    households: tuple[CollectiveHousehold, ...]
    sharing_rule: SharingRule = SharingRule.EQUAL_SHARE
    step_minutes: int = 15
    # Households solved together in one LP; larger is closer to optimal but slower.
    chunk_size: int = 25
    issued_at: datetime | None = None  # default: `start`
    limit_validity: timedelta = field(default_factory=lambda: timedelta(hours=36))

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() != timedelta(0):
            raise CollectiveError(f"start must be a UTC timestamp, got {self.start!r}")
        if self.step_minutes not in (5, 15, 30, 60):
            raise CollectiveError(f"step_minutes must be 5, 15, 30 or 60, not {self.step_minutes}")
        if self.chunk_size < 1:
            raise CollectiveError("chunk_size must be at least 1")
        if self.limit_validity <= timedelta(0):
            raise CollectiveError("limit_validity must be positive")
        n = len(self.import_price_eur_per_kwh)
        if n == 0:
            raise CollectiveError("the horizon is empty")
        series = {
            "import_price_eur_per_kwh": self.import_price_eur_per_kwh,
            "export_price_eur_per_kwh": self.export_price_eur_per_kwh,
            "transformer_import_cap_w": self.transformer_import_cap_w,
            "transformer_export_cap_w": self.transformer_export_cap_w,
            "non_member_load_w": self.non_member_load_w,
        }
        for name, values in series.items():
            array = np.asarray(values, dtype=float)
            if array.shape != (n,):
                raise CollectiveError(f"{name} has {array.size} values for {n} steps")
            if not np.isfinite(array).all():
                raise CollectiveError(f"{name} contains a missing or infinite value")
        if min(self.transformer_import_cap_w) < 0 or min(self.transformer_export_cap_w) < 0:
            raise CollectiveError("transformer caps must be >= 0")
        prices = np.asarray(self.import_price_eur_per_kwh) - self.export_price_eur_per_kwh
        if (prices < 0).any():
            raise CollectiveError(
                f"export price above import price at step {int(np.argmax(prices < 0))}"
            )
        if not self.households:
            raise CollectiveError("a community needs at least one household")
        self._check_households(n)
        if self.issued_at is not None and (
            self.issued_at.tzinfo is None or self.issued_at.utcoffset() != timedelta(0)
        ):
            raise CollectiveError("issued_at must be a UTC timestamp")

    def _check_households(self, n: int) -> None:
        seen: set[str] = set()
        for household in self.households:
            hid = household.household_id
            if hid in seen:
                raise CollectiveError(f"household id {hid!r} is used twice")
            seen.add(hid)
            if len(household.baseline_w) != n:
                raise CollectiveError(f"{hid}: baseline has {len(household.baseline_w)} values")
            for envelope in household.envelopes:
                if envelope.end_step > n:
                    raise CollectiveError(f"{hid}: {envelope.name} ends after the horizon")
            for store in household.thermal_stores:
                if store.steps != n:
                    raise CollectiveError(f"{hid}: {store.name} has {store.steps} steps, not {n}")

    @property
    def n_steps(self) -> int:
        return len(self.import_price_eur_per_kwh)

    @property
    def step_hours(self) -> float:
        return self.step_minutes / 60.0

    @property
    def end(self) -> datetime:
        return self.start + self.n_steps * timedelta(minutes=self.step_minutes)
