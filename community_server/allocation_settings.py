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
`NETBEWUST_ALLOCATION_TARIFF_COST_EUR_PER_KWH` (`class=cost,class=cost`). Validated by
pydantic (`settings_validation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, BeforeValidator, Field, TypeAdapter

from netbewust_core.collective.problem import SharingRule

from .settings_validation import STRICT, pairs, validate_section

if TYPE_CHECKING:
    from collections.abc import Mapping

ENV_PREFIX = "NETBEWUST_ALLOCATION_"
# Far above any retail price: a larger value is a typo (cents instead of euros).
MAX_COST_EUR_PER_KWH = 100.0


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


def _rule_text(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


Cost = Annotated[float, Field(ge=0.0, le=MAX_COST_EUR_PER_KWH)]


class _AllocationSection(BaseModel):
    model_config = STRICT

    rule: Annotated[SharingRule, Field(strict=False), BeforeValidator(_rule_text)] = (
        SharingRule.EQUAL_SHARE
    )
    default_cost_eur_per_kwh: Cost = 0.0
    tariff_cost_eur_per_kwh: dict[str, Cost] = {}


_SECTION = TypeAdapter(_AllocationSection)
_TYPES = {name: info.rebuild_annotation() for name, info in _AllocationSection.model_fields.items()}


def parse_allocation(table: object, environ: Mapping[str, str]) -> AllocationSettings:
    """The section from the TOML table overlaid by NETBEWUST_ALLOCATION_* variables."""
    if not isinstance(table, dict):
        raise AllocationConfigError("[allocation] must be a table")
    text: dict[str, str] = {
        variable.removeprefix(ENV_PREFIX).lower(): value
        for variable, value in environ.items()
        if variable.startswith(ENV_PREFIX)
    }
    overrides: dict[str, str | Mapping[str, str]] = dict(text)
    if "tariff_cost_eur_per_kwh" in text:  # class=cost,class=cost
        where = "allocation.tariff_cost_eur_per_kwh"
        costs = text["tariff_cost_eur_per_kwh"]
        overrides["tariff_cost_eur_per_kwh"] = pairs(
            costs, where, "class=cost", AllocationConfigError
        )
    section = validate_section(
        _SECTION, _TYPES, table, overrides, where="allocation", error=AllocationConfigError
    )
    return AllocationSettings(
        rule=section.rule,
        default_cost_eur_per_kwh=section.default_cost_eur_per_kwh,
        tariff_cost_eur_per_kwh=section.tariff_cost_eur_per_kwh,
    )
