"""Guard latency while the planner solves a 672-step plan: thread versus process.

An asyncio loop (as Home Assistant's) feeds the engine's guard a meter reading every
1 ms and records, per reading, the time from when it was due to when the guard's
decision was made (loop delay plus the decision itself). Meanwhile the 672-step shared
scenario is solved back to back: not at all (idle), in a thread of the loop's executor
(as before issue 4's fix), or in a one-worker spawn process pool (as `solver_process`).

Run from the repo root: `.venv/bin/python bench/guard_latency_during_solve.py [seconds]`.
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.planner_vs_reference import DEFAULT_SCENARIOS, problem_from_scenario  # noqa: E402
from netbewust_core.guard.engine import Guard  # noqa: E402
from netbewust_core.model import (  # noqa: E402
    ChargerSpec,
    ChargerState,
    Connection,
    DeviceState,
    GuardConfig,
    MeterReading,
    PhaseReading,
)
from netbewust_core.planning.planner import plan  # noqa: E402

PERIOD_S = 0.001
VOLTS = 230.0


async def feed_guard(stop: asyncio.Event) -> list[float]:
    """Latencies (ms) of one decision per due reading until `stop`."""
    guard = Guard(
        GuardConfig(
            connection=Connection(phases=1, fuse_current_a=25.0),
            devices=(ChargerSpec(device_id="ev", name="EV", priority=1),),
        )
    )
    t0 = datetime(2026, 1, 5, 12, tzinfo=UTC)
    car = DeviceState("ev", power_w=16 * VOLTS, charger_state=ChargerState.C, active_phases=1)
    latencies: list[float] = []
    due = time.perf_counter()
    n = 0
    while not stop.is_set():
        due += PERIOD_S
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        amps = 18.0 + (n % 20)  # crosses the fuse now and then: real decisions
        reading = MeterReading(
            timestamp=t0 + timedelta(milliseconds=n),
            phases=(PhaseReading(power_w=amps * VOLTS, voltage_v=VOLTS, current_a=amps),),
        )
        guard.on_meter(reading, {"ev": car})
        latencies.append((time.perf_counter() - due) * 1000)
        due = max(due, time.perf_counter() - PERIOD_S)  # no catch-up burst after a stall
        n += 1
    return latencies


async def measure(executor: Executor | None, problem: Any, seconds: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    if isinstance(executor, ProcessPoolExecutor):
        await loop.run_in_executor(executor, plan, problem)  # start-up is not measured
    stop = asyncio.Event()
    feeder = asyncio.create_task(feed_guard(stop))
    solves: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        if executor is None:
            await asyncio.sleep(0.5)
        else:
            await loop.run_in_executor(executor, plan, problem)
            solves.append((time.perf_counter() - start) * 1000)
    stop.set()
    latencies = sorted(await feeder)
    return {
        "decisions": len(latencies),
        "p50_ms": round(latencies[len(latencies) // 2], 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)], 3),
        "max_ms": round(latencies[-1], 3),
        "solves": len(solves),
        "solve_median_ms": round(statistics.median(solves), 1) if solves else None,
    }


async def main_async(seconds: float) -> dict[str, Any]:
    scenario = json.loads(DEFAULT_SCENARIOS[1].read_text())
    problem = problem_from_scenario(scenario)
    results = {"idle": await measure(None, problem, seconds)}
    with ThreadPoolExecutor(max_workers=1) as threads:
        results["thread"] = await measure(threads, problem, seconds)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as processes:
        results["process"] = await measure(processes, problem, seconds)
    return results


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    results = asyncio.run(main_async(seconds))
    for mode, figures in results.items():
        print(
            f"{mode:8s} p50 {figures['p50_ms']:.3f} ms  p99 {figures['p99_ms']:.3f} ms  "
            f"max {figures['max_ms']:.3f} ms  ({figures['decisions']} decisions, "
            f"{figures['solves']} solves, median {figures['solve_median_ms']} ms)"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
