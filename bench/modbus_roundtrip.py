"""Benchmark: Modbus round trips and the guard's end-to-end reaction over Modbus.

Usage: python bench/modbus_roundtrip.py [--cycles N] [--steps N]

1. Read-and-write cycles against the simulated Alfen charger on loopback: one full
   profile read (2 requests) plus one max-current write, timed end to end (p50/p99).
2. End to end, in real time: meter updates every METER_PERIOD_S go through
   Guard.on_meter, the setpoints are written over Modbus, and the simulated charger
   follows after its own lag. A load step lands at a random moment between meter
   updates; we time (a) from the meter update that first sees the overload and (b) from
   the load step itself, to the moment the charger's current falls to the guard's
   setpoint. Target: (a) <= lag + margin, (b) <= lag + one meter period.
The last line is one JSON object with all figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from custom_components.netbewust.core.model import ChargerSetpoint  # noqa: E402
from custom_components.netbewust.modbus import (  # noqa: E402
    ModbusDevice,
    ModbusTransport,
    TransportSettings,
    load_profiles,
)
from tests.modbus.plant import CHARGER_ID, start_household  # noqa: E402
from tests.modbus.sim_chargers import AlfenSim  # noqa: E402
from tests.modbus.simulator import RegisterBank, SimServer  # noqa: E402

CHARGER_LAG_S = 0.3  # the simulated charger's own reaction time
METER_PERIOD_S = 1.0  # a DSMR 5 meter's update period


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


async def roundtrip_cycles(cycles: int) -> list[float]:
    profiles = load_profiles()
    bank = RegisterBank()
    sim = AlfenSim(bank, lag_s=0.0)
    server = SimServer(bank)
    server.on_tick(sim.step)
    await server.start()
    settings = TransportSettings(host="127.0.0.1", port=server.port, timeout_s=1.0)
    device = ModbusDevice(ModbusTransport(settings), 1, profiles["alfen_ng9xx"], "charger")
    await device.read()  # connect and resolve once, outside the timing
    durations: list[float] = []
    try:
        for index in range(cycles):
            started = time.perf_counter()
            await device.read()
            await device.apply(ChargerSetpoint(current_a=10.0 + index % 2, phases=3))
            durations.append(time.perf_counter() - started)
    finally:
        await device.transport.close()
        await server.close()
    return durations


async def end_to_end(steps: int, seed: int = 7) -> list[dict[str, float]]:
    rng = random.Random(seed)
    home = await start_household(load_profiles(), lag_s=CHARGER_LAG_S)
    car = home.alfen.cars[1]
    results: list[dict[str, float]] = []
    charger_setpoint_a = [16.0]

    async def meter_tick() -> float:
        updated_at = time.monotonic()
        decision = await home.on_meter(METER_PERIOD_S)
        setpoint = decision.setpoints[CHARGER_ID]
        if isinstance(setpoint, ChargerSetpoint):
            charger_setpoint_a[0] = setpoint.current_a
        await asyncio.sleep(max(0.0, METER_PERIOD_S - (time.monotonic() - updated_at)))
        return updated_at

    async def load_step(delay_s: float) -> float:
        await asyncio.sleep(delay_s)
        home.base_load_a = 20.0
        return time.monotonic()

    try:
        for _ in range(steps):
            home.base_load_a = 5.0
            for _ in range(14):  # settle back to 16 A (loosening is rate limited)
                await meter_tick()
            # The step lands somewhere between two meter updates; updates keep their pace.
            car.changes.clear()
            injector = asyncio.create_task(load_step(rng.uniform(0.05, METER_PERIOD_S * 0.95)))
            updates = [await meter_tick() for _ in range(4)]
            step_at = await injector
            first_update = next(at for at in updates if at >= step_at)
            target = charger_setpoint_a[0]
            fell = next((at for at, current in car.changes if current <= target + 1e-6), None)
            if fell is None:
                raise RuntimeError("the charger never followed the guard's setpoint")
            results.append(
                {
                    "from_meter_update_s": fell - first_update,
                    "from_load_step_s": fell - step_at,
                    "setpoint_a": target,
                }
            )
    finally:
        await home.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    durations = asyncio.run(roundtrip_cycles(args.cycles))
    p50_ms = percentile(durations, 0.5) * 1000
    p99_ms = percentile(durations, 0.99) * 1000
    print(f"Read-and-write cycles against the simulated Alfen charger ({args.cycles} cycles)")
    print(f"  {'p50':>6} {p50_ms:8.2f} ms")
    print(f"  {'p99':>6} {p99_ms:8.2f} ms")
    print(f"  {'max':>6} {max(durations) * 1000:8.2f} ms")

    steps = asyncio.run(end_to_end(args.steps))
    from_update = [step["from_meter_update_s"] for step in steps]
    from_step = [step["from_load_step_s"] for step in steps]
    budget_update = CHARGER_LAG_S + 0.1
    budget_step = CHARGER_LAG_S + METER_PERIOD_S
    print()
    print(
        f"End to end (charger lag {CHARGER_LAG_S:g} s, meter period {METER_PERIOD_S:g} s, "
        f"{len(steps)} load steps)"
    )
    print(f"  {'step':>4} {'from update':>12} {'from step':>10} {'setpoint':>9}")
    for index, step in enumerate(steps, 1):
        print(
            f"  {index:>4} {step['from_meter_update_s']:>10.3f} s"
            f" {step['from_load_step_s']:>8.3f} s {step['setpoint_a']:>7.1f} A"
        )
    worst_update, worst_step = max(from_update), max(from_step)
    print(f"  worst from meter update {worst_update:.3f} s (target <= {budget_update:.1f} s)")
    print(f"  worst from load step    {worst_step:.3f} s (target <= {budget_step:.1f} s)")
    summary: dict[str, Any] = {
        "bench": "modbus_roundtrip",
        "cycles": args.cycles,
        "cycle_p50_ms": round(p50_ms, 3),
        "cycle_p99_ms": round(p99_ms, 3),
        "charger_lag_s": CHARGER_LAG_S,
        "meter_period_s": METER_PERIOD_S,
        "e2e_from_meter_update_median_s": round(statistics.median(from_update), 3),
        "e2e_from_meter_update_max_s": round(worst_update, 3),
        "e2e_from_load_step_max_s": round(worst_step, 3),
        "e2e_target_from_load_step_s": budget_step,
        "e2e_within_target": worst_step <= budget_step and worst_update <= budget_update,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
