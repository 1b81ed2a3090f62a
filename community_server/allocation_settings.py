"""The `[allocation]` configuration section: the sharing rule and the cost of flexibility.

TOML shape::

    [allocation]
    rule = "merit_order"                  # equal_share | pro_rata_flexible | merit_order
    default_cost_eur_per_kwh = 0.20       # a household whose tariff class is not listed
    [allocation.tariff_cost_eur_per_kwh]  # by the tariff class members report (protocol v1)
    dynamic = 0.05
    fixed = 0.25

The merit order curtails the cheapest flexibility first: a household's cost is its
tariff class's entry, else the default. Environment overrides: `NETBEWUST_ALLOCATION_RULE`,
`NETBEWUST_ALLOCATION_DEFAULT_COST_EUR_PER_KWH` and
`NETBEWUST_ALLOCATION_TARIFF_COST_EUR_PER_KWH` (`class=cost,class=cost`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from netbewust_core.collective.problem import SharingRule

if TYPE_CHECKING:
    from collections.abc import Mapping

ENV_PREFIX = "NETBEWUST_ALLOCATION_"
# Far above any retail price: a larger value is a typo (cents instead of euros).
MAX_COST_EUR_PER_KWH = 100.0
_KEYS = ("rule", "default_cost_eur_per_kwh", "tariff_cost_eur_per_kwh")


class AllocationConfigError(ValueError):
    """An `[allocation]` setting that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationSettings:
    rule: SharingRule = SharingRule.EQUAL_SHARE
    default_cost_eur_per_kwh: float = 0.0
    tariff_cost_eur_per_kwh: Mapping[str, float] = field(default_factory=dict)

    def cost_for(self, tariff_class: str | None) -> float:
        """What curtailing a household of this tariff class costs, for the merit order."""
        if tariff_class is None:
            return self.default_cost_eur_per_kwh
        return self.tariff_cost_eur_per_kwh.get(tariff_class, self.default_cost_eur_per_kwh)


def _cost(value: object, where: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise AllocationConfigError(f"{where}: {value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AllocationConfigError(f"{where}: {value!r} is not a number")
    cost = float(value)
    if not (math.isfinite(cost) and 0 <= cost <= MAX_COST_EUR_PER_KWH):
        raise AllocationConfigError(
            f"{where} must be within [0, {MAX_COST_EUR_PER_KWH}] EUR/kWh, got {value!r}"
        )
    return cost


def _rule(value: object) -> SharingRule:
    choices = ", ".join(rule.value for rule in SharingRule)
    if not isinstance(value, str) or value.strip().lower() not in set(SharingRule):
        raise AllocationConfigError(f"allocation.rule must be one of {choices}, got {value!r}")
    return SharingRule(value.strip().lower())


def _tariff_costs(value: object) -> dict[str, float]:
    if isinstance(value, str):  # from the environment: class=cost,class=cost
        pairs = [item.partition("=") for item in value.split(",") if item.strip()]
        if any(not sep or not name.strip() for name, sep, _ in pairs):
            raise AllocationConfigError(
                "allocation.tariff_cost_eur_per_kwh: expected class=cost,class=cost"
            )
        value = {name.strip(): cost.strip() for name, _, cost in pairs}
    if not isinstance(value, dict):
        raise AllocationConfigError("[allocation.tariff_cost_eur_per_kwh] must be a table")
    table = cast("dict[str, Any]", value)
    return {
        str(name): _cost(cost, f"allocation.tariff_cost_eur_per_kwh.{name}")
        for name, cost in table.items()
    }


def parse_allocation(table: object, environ: Mapping[str, str]) -> AllocationSettings:
    if not isinstance(table, dict):
        raise AllocationConfigError("[allocation] must be a table")
    raw = dict(cast("dict[str, Any]", table))
    for variable, value in environ.items():
        if variable.startswith(ENV_PREFIX):
            raw[variable.removeprefix(ENV_PREFIX).lower()] = value
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise AllocationConfigError(f"allocation: unknown setting {', '.join(unknown)}")
    return AllocationSettings(
        rule=_rule(raw.get("rule", SharingRule.EQUAL_SHARE.value)),
        default_cost_eur_per_kwh=_cost(
            raw.get("default_cost_eur_per_kwh", 0.0), "allocation.default_cost_eur_per_kwh"
        ),
        tariff_cost_eur_per_kwh=_tariff_costs(raw.get("tariff_cost_eur_per_kwh", {})),
    )
