"""CSV inputs: 15-minute profile columns, day-ahead prices and outdoor temperatures,
checked row by row.

Profiles: a header `timestamp,<name>,<name>...`, then one row per 15 minutes with an
ISO 8601 timestamp carrying its UTC offset and values in W. Prices: a header
`timestamp,price_eur_per_mwh`, rows hourly or per 15 minutes (a value holds until the
next row), as the ENTSO-E transparency platform publishes Dutch day-ahead prices.
Temperatures: `timestamp,temperature_c`, hourly or per 15 minutes (held likewise), as
KNMI's hourly station data give them.
Non-member load: `timestamp,non_member_w`, held likewise. EV sessions:
`connection,arrival,departure,energy_kwh` (optionally `,charger_kw`: the car's own
power), one row per session. Every file may be
gzip-compressed (a name ending in `.gz`). The series must cover the simulated period;
an error names the file, the line and, for a bad value, the column.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from netbewust_core.timegrid import QUARTER as QUARTER_HOUR
from netbewust_core.units import MAX_OUTDOOR_C, MIN_OUTDOOR_C

from .spec import EV_CHARGER_KW, NeighbourhoodError

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray


def _lines(path: Path) -> list[list[str]]:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
                return list(csv.reader(handle))
        with path.open(encoding="utf-8", newline="") as handle:
            return list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise NeighbourhoodError(f"{path}: cannot read: {err}") from err


def _number(path: Path, number: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise NeighbourhoodError(
            f"{path}:{number}: column {column!r}: not a number: {text.strip()!r}"
        ) from None
    if not math.isfinite(value):
        raise NeighbourhoodError(f"{path}:{number}: column {column!r}: values must be finite")
    return value


def _rows(path: Path) -> tuple[list[str], list[tuple[datetime, list[float], int]]]:
    lines = _lines(path)
    if len(lines) < 2 or len(lines[0]) < 2 or lines[0][0].strip() != "timestamp":
        raise NeighbourhoodError(f"{path}: needs a header 'timestamp,...' and data rows")
    header = [name.strip() for name in lines[0]]
    if len(set(header)) != len(header):
        raise NeighbourhoodError(f"{path}:1: column names must differ")
    rows: list[tuple[datetime, list[float], int]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        if len(line) != len(header):
            raise NeighbourhoodError(
                f"{path}:{number}: {len(line)} fields, header has {len(header)}"
            )
        moment = _moment(path, number, "timestamp", line[0])
        values = [
            _number(path, number, name, text)
            for name, text in zip(header[1:], line[1:], strict=True)
        ]
        if rows and moment <= rows[-1][0]:
            raise NeighbourhoodError(f"{path}:{number}: timestamps must increase")
        rows.append((moment.astimezone(UTC), values, number))
    return header, rows


def _moment(path: Path, number: int, column: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise NeighbourhoodError(
            f"{path}:{number}: column {column!r}: not an ISO 8601 time: {text.strip()!r}"
        ) from None
    if moment.tzinfo is None:
        raise NeighbourhoodError(f"{path}:{number}: column {column!r}: needs a UTC offset")
    return moment


def _hold(
    path: Path, rows: list[tuple[datetime, list[float], int]], start: datetime, n_steps: int
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


def _held_lines(
    rows: list[tuple[datetime, list[float], int]], start: datetime, n_steps: int
) -> NDArray[np.int64]:
    """The file line each step's value comes from (after `_hold` checked the cover)."""
    stamps = np.array([row[0].timestamp() for row in rows])
    moments = [(start + k * QUARTER_HOUR).timestamp() for k in range(n_steps)]
    lines = np.array([row[2] for row in rows], dtype=np.int64)
    held: NDArray[np.int64] = lines[np.searchsorted(stamps, moments, side="right") - 1]
    return held


@dataclass(frozen=True, slots=True)
class Columns:
    """A profile file's columns by name, each held on the period's steps."""

    path: Path
    names: tuple[str, ...]
    values: NDArray[np.float64]  # columns x steps
    lines: NDArray[np.int64]  # per step, the file line its values come from

    def named(self, name: str, connection: str) -> NDArray[np.float64]:
        if name not in self.names:
            raise NeighbourhoodError(
                f"{self.path}:1: no column {name!r} for connection {connection!r} "
                f"(columns: {', '.join(self.names[:8])}{'...' if len(self.names) > 8 else ''})"
            )
        column: NDArray[np.float64] = self.values[self.names.index(name)]
        return column


def read_columns(path: Path, start: datetime, n_steps: int) -> Columns:
    """15-minute profile columns (W), shape columns x steps."""
    header, rows = _rows(path)
    gaps = {b[0] - a[0] for a, b in itertools.pairwise(rows)}
    if gaps - {QUARTER_HOUR}:
        raise NeighbourhoodError(f"{path}: rows must be 15 minutes apart")
    values = _hold(path, rows, start, n_steps)
    return Columns(path, tuple(header[1:]), values, _held_lines(rows, start, n_steps))


def non_negative(columns: Columns, name: str, series: NDArray[np.float64]) -> None:
    """A measured consumption (a pump's electricity) is never below 0: names the line."""
    negative = np.flatnonzero(series < 0)
    if negative.size:
        step = int(negative[0])
        raise NeighbourhoodError(
            f"{columns.path}:{columns.lines[step]}: column {name!r}: must be at least 0 W, "
            f"got {series[step]:g}"
        )


def read_non_member(path: Path, start: datetime, n_steps: int) -> NDArray[np.float64]:
    """The non-members' load (W) per step, from hourly or 15-minute rows."""
    return _one_column(path, "non_member_w", start, n_steps, (-1e7, 1e7, "W"))


SESSION_HEADER = ["connection", "arrival", "departure", "energy_kwh"]
SESSION_POWER = "charger_kw"  # an optional fifth column: this car's charging power


@dataclass(frozen=True, slots=True)
class SessionRow:
    line: int
    connection: str
    arrival: datetime  # UTC
    departure: datetime
    energy_kwh: float
    charger_kw: float | None = None  # None: the connection's charger


def read_sessions(path: Path) -> list[SessionRow]:
    """EV sessions, one a row; a connection's sessions must not overlap."""
    lines = _lines(path)
    header = [name.strip() for name in lines[0]] if lines else []
    if header not in (SESSION_HEADER, [*SESSION_HEADER, SESSION_POWER]):
        raise NeighbourhoodError(
            f"{path}:1: header must be '{','.join(SESSION_HEADER)}' (then '{SESSION_POWER}')"
        )
    sessions: list[SessionRow] = []
    last: dict[str, SessionRow] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        if len(line) != len(header):
            raise NeighbourhoodError(
                f"{path}:{number}: {len(line)} fields, header has {len(header)}"
            )
        connection = line[0].strip()
        arrival = _moment(path, number, "arrival", line[1]).astimezone(UTC)
        departure = _moment(path, number, "departure", line[2]).astimezone(UTC)
        energy = _number(path, number, "energy_kwh", line[3])
        if departure <= arrival:
            raise NeighbourhoodError(
                f"{path}:{number}: column 'departure': must be after the arrival"
            )
        if not 0 <= energy <= 200:
            raise NeighbourhoodError(f"{path}:{number}: column 'energy_kwh': must be 0..200")
        before = last.get(connection)
        if before is not None and arrival < before.departure:
            raise NeighbourhoodError(
                f"{path}:{number}: column 'arrival': overlaps the session of line "
                f"{before.line} for {connection!r}"
            )
        power = None
        if len(line) > len(SESSION_HEADER) and line[4].strip():
            power = _number(path, number, SESSION_POWER, line[4])
            low, high = EV_CHARGER_KW
            if not low <= power <= high:
                raise NeighbourhoodError(
                    f"{path}:{number}: column {SESSION_POWER!r}: must be {low}..{high:g}"
                )
        row = SessionRow(number, connection, arrival, departure, energy, power)
        sessions.append(row)
        last[connection] = row
    return sessions


def read_prices(path: Path, start: datetime, n_steps: int) -> NDArray[np.float64]:
    """Day-ahead prices in EUR/kWh per step."""
    return _one_column(path, "price_eur_per_mwh", start, n_steps, None) / 1000


def read_temperatures(path: Path, start: datetime, n_steps: int) -> NDArray[np.float64]:
    """Outdoor temperature (degC) per step from hourly or 15-minute rows."""
    bounds = (MIN_OUTDOOR_C, MAX_OUTDOOR_C, "C")
    return _one_column(path, "temperature_c", start, n_steps, bounds)


def _one_column(
    path: Path,
    name: str,
    start: datetime,
    n_steps: int,
    bounds: tuple[float, float, str] | None,
) -> NDArray[np.float64]:
    """A file of `timestamp,<name>` rows, hourly or 15-minute, per step; within `bounds`
    (low, high, unit) when given."""
    header, rows = _rows(path)
    if header[1:] != [name]:
        raise NeighbourhoodError(f"{path}: header must be 'timestamp,{name}'")
    values: NDArray[np.float64] = _hold(path, rows, start, n_steps)[0]
    if bounds is not None:
        low, high, unit = bounds
        if not ((values >= low) & (values <= high)).all():
            raise NeighbourhoodError(f"{path}: {name} must lie within {low:g}..{high:g} {unit}")
    return values
