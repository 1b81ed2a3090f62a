"""Generate the 150-connection feeder example (issue 17): `feeder_150.toml` and its CSVs.

A synthetic Dutch LV feeder under a 250 kVA transformer for the spring week across the
change to summer time (23-30 March 2026): 142 households, 6 small businesses (3x50A to
3x80A, up to about 30 kW), a charger-only garage and a neighbourhood battery with no
base load of their own; heat pumps from 0.45 to 28 kW (hybrids and all-electric,
modulating), chargers of 3.7, 11 and 22 kW with about four sessions a week (evenings at
home, from about 08:30 at the businesses), PV on roofs of 2-46 kWp. Everything is drawn
from one seed, so running this script again writes the same files:

    .venv/bin/python examples/neighbourhoods/feeder_150/generate.py

Profiles are 15-minute columns named after the connections (`base_load.csv.gz`, W),
PV per kW peak by roof orientation (`pv.csv.gz`), the EV sessions one per row
(`sessions.csv`), the non-members' load (`non_member.csv`, street lighting and a few
homes outside the cooperative) and hourly day-ahead prices (`day_ahead.csv`). The
shapes are plausible, not measured: replace the CSVs with a DSO's or a cooperative's own
data, keeping the column names, to simulate a real feeder.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

HERE = Path(__file__).parent
SEED = 150
ZONE = ZoneInfo("Europe/Amsterdam")
START = datetime(2026, 3, 23, 12, tzinfo=ZONE)  # local noon; summer time from 29 March
DAYS = 7
STEPS = DAYS * 96 + 96  # a day beyond the period: room for a later start
DAILY_MEAN_C = (6.0, 4.0, 3.0, 5.0, 7.0, 8.0, 9.0)
# Household day shape (relative, per local hour from 00:00): night, morning, evening peak.
HOUSE_SHAPE = (
    0.45, 0.40, 0.38, 0.37, 0.38, 0.45, 0.70, 0.95, 0.85, 0.75, 0.70, 0.72,
    0.80, 0.75, 0.70, 0.72, 0.85, 1.35, 1.70, 1.55, 1.30, 1.05, 0.80, 0.60,
)  # fmt: skip
# Small business (shop, workshop): open 08:00-18:00, some standby at night.
SHOP_SHAPE = (
    0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.35, 0.60, 1.00, 1.20, 1.25, 1.30,
    1.30, 1.30, 1.25, 1.20, 1.15, 1.00, 0.60, 0.35, 0.30, 0.25, 0.25, 0.25,
)  # fmt: skip
# Day-ahead EUR/MWh per local hour in spring: solar dip at midday, evening peak.
DAY_AHEAD = (
    85, 80, 78, 77, 80, 92, 115, 135, 110, 80, 55, 40,
    35, 38, 50, 70, 100, 140, 165, 150, 125, 110, 98, 90,
)  # fmt: skip
# (name, connection, base peak kW, heat pump, charger kW, PV kWp, PV roof)
BUSINESSES = (
    ("bakery", "3x50A", 14.0, None, 11.0, 17.0, "south"),
    ("supermarket", "3x80A", 30.0, (24_000, "full", "modulating"), 22.0, 46.0, "south"),
    ("garage-workshop", "3x63A", 18.0, (18_000, "full", "modulating"), 22.0, 25.0, "east"),
    ("office", "3x63A", 16.0, (20_000, "full", "modulating"), 22.0, 30.0, "west"),
    ("school", "3x80A", 22.0, (28_000, "full", "modulating"), None, 40.0, "south"),
    ("cafe", "3x50A", 12.0, None, None, 8.0, "west"),
)
ROOFS = ("south", "east", "west")


def local_times() -> list[datetime]:
    start_utc = START.astimezone(UTC)
    return [(start_utc + timedelta(minutes=15 * k)).astimezone(ZONE) for k in range(STEPS)]


def shape_at(shape: tuple[float, ...], moments: list[datetime]) -> np.ndarray:
    hours = np.array([m.hour + m.minute / 60 for m in moments])
    values: np.ndarray = np.interp(hours, np.arange(25), (*shape, shape[0]))
    return values


def pv_per_kwp(moments: list[datetime], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """W per kW peak for each roof: a spring sun in solar time, each day's clouds."""
    utc_hours = np.array([m.astimezone(UTC).hour + m.minute / 60 for m in moments])
    solar = utc_hours + 5.2 / 15  # 5.2 degrees east
    day = np.array([(m.date() - START.date()).days for m in moments])
    clearness = rng.uniform(0.25, 1.0, DAYS + 2)[day]
    flicker = rng.uniform(0.7, 1.0, len(moments))
    columns = {}
    for roof, noon in (("south", 12.0), ("east", 10.5), ("west", 13.5)):
        sun = np.clip(np.cos(np.pi * (solar - noon) / 13.0), 0.0, None) ** 1.6
        columns[roof] = np.round(760 * sun * clearness * flicker)
    return columns


def write_csv(path: Path, header: list[str], moments: list[datetime], rows: np.ndarray) -> None:
    lines = [",".join(["timestamp", *header])]
    for moment, row in zip(moments, rows, strict=True):
        lines.append(",".join([moment.isoformat(), *(f"{v:.0f}" for v in row)]))
    text = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode(), mtime=0))  # same bytes every run
    else:
        path.write_text(text, encoding="utf-8")


def weekly_sessions(
    rng: np.random.Generator,
    *,
    arrival_h: float,
    stay_h: tuple[float, float],
    energy_kwh: tuple[float, float],
    per_week: float,
) -> list[tuple[datetime, datetime, float]]:
    """About `per_week` sessions a week, seeded arrival (local) and stay."""
    sessions = []
    first = START.date() if arrival_h >= 12 else START.date() + timedelta(days=1)
    for day in range(DAYS):
        if rng.random() >= per_week / 7:
            continue
        hours = float(np.clip(rng.normal(arrival_h, 0.75), 0.0, 23.75))
        date = first + timedelta(days=day)
        midnight = datetime(date.year, date.month, date.day, tzinfo=ZONE)
        arrival = midnight + timedelta(minutes=round(hours * 4) * 15)
        departure = arrival + timedelta(minutes=round(rng.uniform(*stay_h) * 4) * 15)
        sessions.append((arrival, departure, round(float(rng.uniform(*energy_kwh)), 1)))
    return sessions


def main(out: Path = HERE) -> None:
    """Write the example into `out` (this folder by default)."""
    rng = np.random.default_rng(SEED)
    moments = local_times()
    house = shape_at(HOUSE_SHAPE, moments)
    shop = shape_at(SHOP_SHAPE, moments)
    profiles: dict[str, np.ndarray] = {}
    groups: list[str] = []
    session_rows: list[str] = []

    def add_sessions(name: str, rows: list[tuple[datetime, datetime, float]]) -> None:
        """In time order; a session arriving before the previous one left is dropped."""
        left = None
        for arrival, departure, energy in sorted(rows):
            if left is None or arrival >= left:
                session_rows.append(
                    f"{name},{arrival.isoformat()},{departure.isoformat()},{energy}"
                )
                left = departure

    for name, connection, peak_kw, pump, charger, pv_kwp, roof in BUSINESSES:
        noise = rng.normal(1.0, 0.08, STEPS).clip(0.6, 1.4)
        profiles[name] = peak_kw * 1000 / 1.3 * shop * noise
        lines = [f'name = "{name}"', f'connection = "{connection}"', "noise = 0.1"]
        lines += ['base_load_csv = "base_load.csv.gz"', 'pv_csv = "pv.csv.gz"']
        lines += [f'pv_column = "{roof}"', f"pv_peak_w = {pv_kwp * 1000:.0f}"]
        if pump is not None:
            electric, kind, control = pump
            lines.append(
                f'heat_pump = {{ kind = "{kind}", electric_w = {electric}, control = "{control}", '
                f"min_electric_w = {electric // 4}, heat_loss_w_per_k = {electric // 10}, "
                "capacitance_kwh_per_k = 60 }"
            )
        if charger is not None:
            lines.append(f'ev = {{ charger_kw = {charger}, sessions_csv = "sessions.csv" }}')
            rows = []  # two cars on the charger: from about 08:30, and after lunch
            for arrival_h in (8.5, 13.0):
                rows += weekly_sessions(
                    rng, arrival_h=arrival_h, stay_h=(3.0, 4.0), energy_kwh=(8, 25), per_week=4
                )
            add_sessions(name, rows)
        groups.append("\n".join(lines))

    # The charger-only garage (22 kW, no base load) and the neighbourhood battery.
    profiles["garage"] = np.zeros(STEPS)
    groups.append(
        "\n".join(
            [
                'name = "garage"',
                'connection = "3x40A"',
                "noise = 0.0",
                'base_load_csv = "base_load.csv.gz"',
                'ev = { charger_kw = 22, sessions_csv = "sessions.csv" }',
            ]
        )
    )
    add_sessions(
        "garage",
        weekly_sessions(rng, arrival_h=19.0, stay_h=(10, 13), energy_kwh=(20, 50), per_week=5),
    )
    profiles["battery"] = np.zeros(STEPS)
    groups.append(
        "\n".join(
            [
                'name = "battery"',
                'connection = "3x80A"',
                "noise = 0.0",
                'base_load_csv = "base_load.csv.gz"',
                "battery = { capacity_kwh = 200, power_kw = 50 }",
            ]
        )
    )

    for number in range(1, 143):
        name = f"house-{number:03d}"
        annual_kwh = rng.uniform(1800, 5000)
        noise = rng.lognormal(0.0, 0.25, STEPS).clip(0.3, 3.0)
        profiles[name] = house * annual_kwh / 8760 * 1000 / 0.76 * noise
        draw = rng.random()
        pump = ev = pv = battery = None
        connection = "1x25A"
        if draw < 0.12:
            # Modulating only: an on/off pump's plan takes a binary per quarter hour, up
            # to 30 s a week per home (docs/simulator.md), beyond this example's budget.
            pump = (int(rng.choice([1500, 2500, 3500, 4500])), "full", "modulating")
            connection = "3x25A"
        elif draw < 0.22:
            pump = (450, "hybrid", "modulating")
            connection = "1x35A"
        if rng.random() < 0.30:
            ev = float(rng.choice([3.7, 11.0, 11.0, 22.0]))
            connection = "1x35A" if ev == 3.7 and connection == "1x25A" else connection
            connection = "3x25A" if ev == 11.0 else connection
            connection = "3x40A" if ev == 22.0 else connection
        if rng.random() < 0.55:
            pv = (round(float(rng.uniform(2.0, 6.5)), 1), ROOFS[int(rng.integers(3))])
        if pv is not None and rng.random() < 0.12:
            battery = (float(rng.choice([5.0, 10.0])), float(rng.choice([2.5, 5.0])))
        lines = [f'name = "{name}"', f'connection = "{connection}"', "noise = 0.2"]
        lines.append('base_load_csv = "base_load.csv.gz"')
        if pv is not None:
            lines += ['pv_csv = "pv.csv.gz"', f'pv_column = "{pv[1]}"']
            lines.append(f"pv_peak_w = {pv[0] * 1000:.0f}")
        if pump is not None:
            electric, kind, control = pump
            loss = f"[{electric // 14}, {electric // 10}]" if kind == "full" else "[250, 450]"
            lines.append(
                f'heat_pump = {{ kind = "{kind}", electric_w = {electric}, control = "{control}", '
                f"heat_loss_w_per_k = {loss} }}"
            )
        if ev is not None:
            lines.append(f'ev = {{ charger_kw = {ev}, sessions_csv = "sessions.csv" }}')
            add_sessions(
                name,
                weekly_sessions(
                    rng, arrival_h=18.0, stay_h=(11, 14), energy_kwh=(6, 30), per_week=4
                ),
            )
        if battery is not None:
            lines.append(f"battery = {{ capacity_kwh = {battery[0]}, power_kw = {battery[1]} }}")
        groups.append("\n".join(lines))

    names = list(profiles)
    write_csv(out / "base_load.csv.gz", names, moments, np.vstack([profiles[n] for n in names]).T)
    roofs = pv_per_kwp(moments, rng)
    write_csv(out / "pv.csv.gz", list(roofs), moments, np.vstack(list(roofs.values())).T)
    hourly = moments[::4]
    prices = np.array([DAY_AHEAD[m.hour] for m in hourly]) * rng.normal(1.0, 0.08, len(hourly))
    write_csv(out / "day_ahead.csv", ["price_eur_per_mwh"], hourly, prices[:, None])
    lighting = np.array([1500.0 if m.hour >= 19 or m.hour < 7 else 0.0 for m in hourly])
    others = 8 * 2200 / 8760 * 1000 * np.array([HOUSE_SHAPE[m.hour] for m in hourly]) / 0.76
    write_csv(out / "non_member.csv", ["non_member_w"], hourly, (lighting + others)[:, None])
    (out / "sessions.csv").write_text(
        "connection,arrival,departure,energy_kwh\n" + "\n".join(session_rows) + "\n",
        encoding="utf-8",
    )
    header = f'''# Generated by generate.py (seed {SEED}); do not edit, run it again instead.
# A 150-connection LV feeder: households, small businesses up to 3x80A, heat pumps of
# 0.45-28 kW, 3.7-22 kW chargers with about four sessions a week, PV and storage; the
# week across the change to summer time. See docs/simulator.md.
name = "Feeder, 150 connections"
seed = {SEED}

[period]
start = "{START.date().isoformat()}"
days = {DAYS}
daily_mean_temperature_c = {list(DAILY_MEAN_C)}
timezone = "Europe/Amsterdam"

[transformer]
capacity_kva = 250
power_factor = 0.95
non_member_csv = "non_member.csv"

[prices]
csv = "day_ahead.csv"
supplier_markup_eur_per_kwh = 0.02
energy_tax_eur_per_kwh = 0.1016
vat_factor = 1.21
import_markup_eur_per_kwh = 0.0
export_markup_eur_per_kwh = 0.02
gas_eur_per_kwh = 0.14
'''
    body = "\n".join(f"\n[[households]]\n{group}" for group in groups)
    (out / "feeder_150.toml").write_text(header + body + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
