"""Fits R, C and the gains of the 1R1C model from a home's history.

Samples are equally spaced (NaN marks a gap). The discretised model
T[k+1] - T[k] = th1 (T_out[k] - T[k]) + th2 Q[k] + th0, with th1 = 1 - a,
th2 = (1 - a) R and th0 = (1 - a) R G, is linear in (th1, th2, th0), so least squares
on every pair of consecutive valid samples gives them; Q is the heat-pump heat
(electric power x COP at that step's outdoor temperature). The COP is taken as given:
with the pump as the only heat figure, a COP scale and R are not separately identifiable.
When the fit is not physical or its one-step RMS error is above `max_rms_k`, the
building-type defaults are returned with the reason: a bad fit never reaches a plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .building import ThermalParameters

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .building import CopModel

    FloatArray = NDArray[np.float64]

MAX_RMS_K = 0.5
MIN_PAIRS = 96  # a day of quarter hours


@dataclass(frozen=True, slots=True)
class FitResult:
    """The parameters to plan with and how well the history supported them (diagnostics)."""

    parameters: ThermalParameters
    fitted: bool  # False: the defaults, see `reason`
    rms_k: float | None  # one-step RMS error of the fitted model (None: no fit possible)
    pairs_used: int
    reason: str = ""


def fit_parameters(
    *,
    indoor_c: FloatArray,
    outdoor_c: FloatArray,
    electric_w: FloatArray,
    step_hours: float,
    cop: CopModel,
    defaults: ThermalParameters,
    max_rms_k: float = MAX_RMS_K,
) -> FitResult:
    """Least-squares R, C and gains; the defaults when the history does not support them."""
    indoor = np.asarray(indoor_c, dtype=float)
    outdoor = np.asarray(outdoor_c, dtype=float)
    power_kw = np.asarray(electric_w, dtype=float) / 1000.0
    if not (len(indoor) == len(outdoor) == len(power_kw)):
        raise ValueError("indoor, outdoor and power histories must be equally long")
    heat_kw = power_kw * np.array([cop.cop(t) if math.isfinite(t) else np.nan for t in outdoor])
    valid = np.isfinite(indoor) & np.isfinite(outdoor) & np.isfinite(heat_kw)
    pairs = np.flatnonzero(valid[:-1] & valid[1:])
    if len(pairs) < MIN_PAIRS:
        return FitResult(defaults, False, None, len(pairs), f"only {len(pairs)} sample pairs")
    delta = indoor[pairs + 1] - indoor[pairs]
    design = np.column_stack([outdoor[pairs] - indoor[pairs], heat_kw[pairs], np.ones(len(pairs))])
    theta, *_ = np.linalg.lstsq(design, delta, rcond=None)
    rms = float(np.sqrt(np.mean((design @ theta - delta) ** 2)))
    th1, th2, th0 = (float(v) for v in theta)
    if not (0 < th1 < 1 and th2 > 0):
        return FitResult(defaults, False, rms, len(pairs), "the fit is not physical")
    if rms > max_rms_k:
        return FitResult(defaults, False, rms, len(pairs), f"one-step error {rms:.2f} K")
    resistance = th2 / th1
    time_constant_h = -step_hours / math.log(1 - th1)
    params = ThermalParameters(
        resistance_k_per_kw=resistance,
        capacitance_kwh_per_k=time_constant_h / resistance,
        internal_gain_kw=th0 / th2,
    )
    return FitResult(params, True, rms, len(pairs))
