"""Rounding shares of a shared cap to what devices can really draw.

An LP (or a proportional split) hands out continuous power, but a charger pauses below
its 6 A minimum and an on/off heat pump draws its rated power or nothing. A share
strictly between zero and the device's minimum is therefore lost energy: the household
cannot use it and nobody else gets it. `round_to_minimums` takes such shares back (and
the part of larger shares above their own minimum where needed) and gives whole
minimums to the devices owed the most, never handing out more than the original total
plus the spare room.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]

# W: a share this close to the minimum already is the minimum (solver noise).
MINIMUM_TOLERANCE_W = 1.0


def round_to_minimums(
    share_w: FloatArray,
    minimum_w: FloatArray,
    owed: FloatArray,
    spare_w: float = 0.0,
) -> FloatArray:
    """Each share either 0 or at least its minimum; the total stays within the input's.

    `owed` orders who is rounded up first (largest first: e.g. the energy a device is
    behind its plan). `spare_w` is room under the cap beyond the shares' sum.
    """
    share = np.asarray(share_w, dtype=float)
    minimum = np.asarray(minimum_w, dtype=float)
    if share.shape != minimum.shape or share.shape != np.shape(owed):
        raise ValueError("share, minimum and owed need the same shape")
    if not (np.isfinite(share).all() and np.isfinite(minimum).all()):
        raise ValueError("shares and minimums must be finite")
    if (share < 0).any() or (minimum < 0).any() or not spare_w >= 0:
        raise ValueError("shares, minimums and spare room must be >= 0")
    short = (share > 0) & (share < minimum - MINIMUM_TOLERANCE_W)
    rounded = np.where(short, 0.0, share)
    room = float(share[short].sum()) + float(spare_w)
    # Shares above their minimum may give up the part above it to complete another's.
    donors = (minimum > 0) & ~short
    for index in np.flatnonzero(short)[np.argsort(-np.asarray(owed)[short], kind="stable")]:
        excess = np.where(donors, np.clip(rounded - minimum, 0.0, None), 0.0)
        missing = float(minimum[index]) - room
        if missing > float(excess.sum()):
            continue
        if missing > 0:
            rounded -= excess * (missing / float(excess.sum()))
            room += missing
        rounded[index] = minimum[index]
        room -= float(minimum[index])
    return rounded
