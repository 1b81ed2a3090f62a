"""The hosting-capacity search assumes no monotonicity (issue 17): it runs a coarse grid,
then every count in the bracket, and says when a count fits above one that failed.

The simulation is replaced by a table of which counts fit, so the search alone is
under test (tests/neighbourhood/test_hosting_and_cli.py runs it on real cases)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

from community_server.neighbourhood import hosting
from community_server.neighbourhood.hosting import Asset, capacity_table, hosting_capacity
from community_server.neighbourhood.strategies import Strategy

if TYPE_CHECKING:
    from collections.abc import Callable

    import pytest


def _search(
    monkeypatch: pytest.MonkeyPatch, most: int, fits: Callable[[int], bool]
) -> hosting.Capacity:
    """hosting_capacity with `most` candidates where count n fits iff fits(n)."""
    monkeypatch.setattr(hosting, "candidates", lambda scenario, asset: list(range(most)))
    monkeypatch.setattr(hosting, "with_assets", lambda scenario, asset, count: count)
    monkeypatch.setattr(
        hosting,
        "run_strategy",
        lambda count, strategy: SimpleNamespace(peak_w=float(count), ev_sessions_short=0),
    )
    monkeypatch.setattr(hosting, "fits", lambda count, result: fits(count))
    return hosting_capacity(None, Asset.EV, Strategy.COMMUNITY)  # type: ignore[arg-type]


def test_monotone_case_finds_the_edge_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    capacity = _search(monkeypatch, 160, lambda n: n <= 67)
    assert capacity.hosted == 67
    assert capacity.monotone
    counts = [t.count for t in capacity.trials]
    # The whole grid (steps of 20), then every count from 61 to 79.
    assert {0, 20, 40, 60, 80, 100, 120, 140, 160} <= set(counts)
    assert set(range(61, 80)) <= set(counts)
    assert len(counts) == 9 + 19


def test_a_count_fitting_above_a_failure_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # The feeder of the issue: over the cap at 67, under it again at 114.
    capacity = _search(monkeypatch, 160, lambda n: n < 67 or 100 <= n <= 120)
    assert capacity.hosted == 66
    assert not capacity.monotone
    assert capacity.fits_above == (100, 120)  # the grid's counts that fit again
    table = capacity_table(Asset.EV, [capacity], 160)
    assert "community:   66" in table
    assert "not monotone: 100, 120 also fit" in table
    assert "search: every count of a 8-step grid" in table


def test_everything_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    capacity = _search(monkeypatch, 5, lambda n: True)
    assert capacity.hosted == 5
    assert [t.count for t in capacity.trials] == [0, 1, 2, 3, 4, 5]
    assert capacity.monotone
