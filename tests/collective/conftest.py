"""Small collective problems whose optimum can be checked by hand."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from netbewust_core.collective.problem import (
    CollectiveHousehold,
    CollectiveProblem,
    ShiftableEnergy,
)

START = datetime(2026, 1, 15, tzinfo=UTC)
FUSE_W = 17_250.0


def home(
    household_id: str,
    baseline_w: list[float],
    *,
    envelopes: tuple[ShiftableEnergy, ...] = (),
    **kwargs: Any,
) -> CollectiveHousehold:
    return CollectiveHousehold(
        household_id=household_id,
        baseline_w=tuple(baseline_w),
        import_limit_w=kwargs.pop("import_limit_w", FUSE_W),
        export_limit_w=kwargs.pop("export_limit_w", FUSE_W),
        envelopes=envelopes,
        **kwargs,
    )


def ev(energy_wh: float, start: int, end: int, max_power_w: float = 4000.0) -> ShiftableEnergy:
    return ShiftableEnergy(
        name="ev", energy_wh=energy_wh, max_power_w=max_power_w, start_step=start, end_step=end
    )


def community(
    households: list[CollectiveHousehold],
    import_price: list[float],
    *,
    cap_w: float | list[float],
    export_price: list[float] | None = None,
    export_cap_w: float | list[float] | None = None,
    non_member_w: list[float] | None = None,
    **kwargs: Any,
) -> CollectiveProblem:
    n = len(import_price)

    def series(value: float | list[float]) -> tuple[float, ...]:
        return tuple(value) if isinstance(value, list) else (value,) * n

    return CollectiveProblem(
        start=START,
        import_price_eur_per_kwh=tuple(import_price),
        export_price_eur_per_kwh=tuple(export_price or [0.0] * n),
        transformer_import_cap_w=series(cap_w),
        transformer_export_cap_w=series(cap_w if export_cap_w is None else export_cap_w),
        non_member_load_w=tuple(non_member_w or [0.0] * n),
        households=tuple(households),
        **kwargs,
    )


def _bench_generator() -> Any:
    path = Path(__file__).parents[2] / "bench" / "collective_scaling.py"
    spec = importlib.util.spec_from_file_location("collective_scaling", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.synthetic_problem


synthetic_problem = _bench_generator()
