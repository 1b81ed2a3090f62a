"""CSV inputs: 15-minute profile columns, day-ahead prices and outdoor temperatures,
checked row by row.

Profiles: a header `timestamp,<name>,<name>...`, then one row per 15 minutes with an
ISO 8601 timestamp carrying its UTC offset and values in W. Prices: a header
`timestamp,price_eur_per_mwh`, rows hourly or per 15 minutes (a value holds until the
next row), as the ENTSO-E transparency platform publishes Dutch day-ahead prices.
Temperatures: `timestamp,temperature_c`, hourly or per 15 minutes (held likewise), as
KNMI's hourly station data give them.
Both must cover the simulated period.
"""

from __future__ import annotations

import csv
import itertools
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from netbewust_core.timegrid import QUARTER as QUARTER_HOUR

from .spec import NeighbourhoodError

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray


def _rows(path: Path) -> tuple[list[str], list[tuple[datetime, list[float]]]]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            lines = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as err:
        raise NeighbourhoodError(f"{path}: cannot read: {err}") from err
    if len(lines) < 2 or len(lines[0]) < 2 or lines[0][0].strip() != "timestamp":
        raise NeighbourhoodError(f"{path}: needs a header 'timestamp,...' and data rows")
    header = [name.strip() for name in lines[0]]
    rows: list[tuple[datetime, list[float]]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        if len(line) != len(header):
            raise NeighbourhoodError(
                f"{path}:{number}: {len(line)} fields, header has {len(header)}"
            )
        try:
            moment = datetime.fromisoformat(line[0].strip())
            values = [float(value) for value in line[1:]]
        except ValueError as err:
            raise NeighbourhoodError(f"{path}:{number}: {err}") from None
        if moment.tzinfo is None:
            raise NeighbourhoodError(f"{path}:{number}: timestamp needs a UTC offset")
        if not all(math.isfinite(value) for value in values):
            raise NeighbourhoodError(f"{path}:{number}: values must be finite")
        if rows and moment <= rows[-1][0]:
            raise NeighbourhoodError(f"{path}:{number}: timestamps must increase")
        rows.append((moment.astimezone(UTC), values))
    return header, rows


def _hold(
    path: Path, rows: list[tuple[datetime, list[float]]], start: datetime, n_steps: int
) -> NDArray[np.float64]:
    """Values per step (columns x steps): each row holds until the next one."""
    moments = [start + k * QUARTER_HOUR for k in range(n_steps)]
    # The last row holds as long as the rows before it did (an hour for hourly prices).
    span = rows[-1][0] - rows[-2][0] if len(rows) > 1 else QUARTER_HOUR
    first, end = rows[0][0], rows[-1][0] + span
    if first > moments[0] or end < moments[-1] + QUARTER_HOUR:
        raise NeighbourhoodError(
            f"{path}: covers {first.isoformat()}..{end.isoformat()}, the period needs "
            f"{moments[0].isoformat()}..{(moments[-1] + QUARTER_HOUR).isoformat()}"
        )
    stamps = np.array([row[0].timestamp() for row in rows])
    index = np.searchsorted(stamps, [m.timestamp() for m in moments], side="right") - 1
    values = np.array([row[1] for row in rows], dtype=float)
    return values[index].T


def read_columns(path: Path, start: datetime, n_steps: int) -> NDArray[np.float64]:
    """15-minute profile columns (W), shape columns x steps."""
    _, rows = _rows(path)
    gaps = {b[0] - a[0] for a, b in itertools.pairwise(rows)}
    if gaps - {QUARTER_HOUR}:
        raise NeighbourhoodError(f"{path}: rows must be 15 minutes apart")
    return _hold(path, rows, start, n_steps)


def read_prices(path: Path, start: datetime, n_steps: int) -> NDArray[np.float64]:
    """Day-ahead prices in EUR/kWh per step."""
    header, rows = _rows(path)
    if header[1:] != ["price_eur_per_mwh"]:
        raise NeighbourhoodError(f"{path}: header must be 'timestamp,price_eur_per_mwh'")
    prices: NDArray[np.float64] = _hold(path, rows, start, n_steps)[0] / 1000
    return prices


def read_temperatures(path: Path, start: datetime, n_steps: int) -> NDArray[np.float64]:
    """Outdoor temperature (degC) per step from hourly or 15-minute rows."""
    header, rows = _rows(path)
    if header[1:] != ["temperature_c"]:
        raise NeighbourhoodError(f"{path}: header must be 'timestamp,temperature_c'")
    values: NDArray[np.float64] = _hold(path, rows, start, n_steps)[0]
    if not ((values >= -40) & (values <= 45)).all():
        raise NeighbourhoodError(f"{path}: temperatures must lie within -40..45 C")
    return values
