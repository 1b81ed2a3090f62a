"""`netbewust-server simulate` and `netbewust-server hosting-capacity`."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .hosting import Asset, candidates, capacity_table, hosting_capacity, write_capacity
from .report import summary_table, write_outputs
from .scenario import build_scenario
from .spec import NeighbourhoodError, load_neighbourhood
from .strategies import Strategy, run_strategies

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


@contextlib.contextmanager
def _solver_chatter_hidden() -> Iterator[None]:
    """HiGHS's MIP solver writes a stray debug line straight to the process's stdout
    (ERGO-Code/HiGHS#2783); keep it out of the table. Python output is flushed first
    and logging goes to stderr, which stays."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


STRATEGY_NAMES = [strategy.value for strategy in Strategy]


def _strategies(text: str) -> list[Strategy]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in STRATEGY_NAMES]
    if unknown or not names:
        raise NeighbourhoodError(
            f"--strategies: unknown {', '.join(unknown) or '(none given)'}; "
            f"choose from {','.join(STRATEGY_NAMES)}"
        )
    return [Strategy(name) for name in names]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    simulate = commands.add_parser(
        "simulate", help="a neighbourhood file under each strategy: table, JSON and plots"
    )
    simulate.add_argument("file", type=Path, help="neighbourhood file (TOML)")
    simulate.add_argument("--strategies", default=",".join(STRATEGY_NAMES))
    simulate.add_argument("--out", type=Path, default=Path("simulation-out"))
    simulate.add_argument("--seed", type=int, help="default: the file's seed")
    hosting = commands.add_parser(
        "hosting-capacity", help="how many 11 kW chargers or heat pumps fit, per strategy"
    )
    hosting.add_argument("file", type=Path, help="neighbourhood file (TOML)")
    hosting.add_argument("--asset", choices=[a.value for a in Asset], default=Asset.EV.value)
    hosting.add_argument("--strategies", default=",".join(STRATEGY_NAMES))
    hosting.add_argument("--out", type=Path, default=Path("simulation-out"))
    hosting.add_argument("--seed", type=int, help="default: the file's seed")
    hosting.add_argument("--days", type=int, help="simulate fewer days than the file says")


def run_command(args: argparse.Namespace) -> int:
    """Run `simulate` or `hosting-capacity`; bad input is reported, not raised."""
    try:
        strategies = _strategies(args.strategies)
        spec = load_neighbourhood(args.file)
        if args.command == "simulate":
            scenario = build_scenario(spec, args.seed)
            with _solver_chatter_hidden():
                results = run_strategies(scenario, strategies)
            print(summary_table(scenario, results))
            for path in write_outputs(scenario, results, args.out):
                print(f"wrote {path}")
            return EXIT_OK
        if args.days is not None:
            if not 1 <= args.days <= spec.days:
                raise NeighbourhoodError(f"--days: must be within [1, {spec.days}]")
            temperatures = spec.daily_mean_c[: args.days]
            spec = dataclasses.replace(spec, days=args.days, daily_mean_c=temperatures)
        scenario = build_scenario(spec, args.seed)
        asset = Asset(args.asset)
        with _solver_chatter_hidden():
            capacities = [hosting_capacity(scenario, asset, strategy) for strategy in strategies]
        print(capacity_table(asset, capacities, len(candidates(scenario, asset))))
        for path in write_capacity(scenario, asset, capacities, args.out):
            print(f"wrote {path}")
    except NeighbourhoodError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        logging.getLogger(__name__).error("Cannot write the results: %s", err)
        return EXIT_FAILURE
    return EXIT_OK
