"""The tests' clock starts at NOW whatever the machine's says, and the lint keeps tests on it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.clock import NOW, FixedClock, clock_now, running_clock

if TYPE_CHECKING:
    from freezegun.api import FrozenDateTimeFactory

REPO = Path(__file__).parents[1]
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or "ruff"
READS_THE_WALL_CLOCK = """\
from datetime import UTC, datetime

from homeassistant.util import dt as dt_util

A = datetime.now(UTC)
B = datetime.utcnow()
C = dt_util.now()
D = dt_util.utcnow()
"""


def test_the_running_clock_starts_at_now_and_runs() -> None:
    with running_clock():
        start = clock_now()
        assert NOW <= start < NOW + timedelta(seconds=5)
        time.sleep(0.05)
        assert clock_now() >= start + timedelta(seconds=0.05)


def test_without_a_test_clock_there_is_no_now() -> None:
    with pytest.raises(RuntimeError, match="no test clock"):
        clock_now()


def test_the_freezer_stands_where_the_test_clock_stands(freezer: FrozenDateTimeFactory) -> None:
    stopped = clock_now()
    assert NOW <= stopped < NOW + timedelta(seconds=5)
    time.sleep(0.05)
    assert clock_now() == stopped
    freezer.tick(timedelta(minutes=15))
    assert clock_now() == stopped + timedelta(minutes=15)


def test_a_fixed_clock_moves_only_when_told() -> None:
    clock = FixedClock()
    assert clock() == NOW
    assert clock.advance(timedelta(seconds=10)) == clock() == NOW + timedelta(seconds=10)


def _banned(path: str) -> list[str]:
    """The TID251 findings for READS_THE_WALL_CLOCK as if it were the file at `path`."""
    command = [RUFF, "check", "--select", "TID251", "--output-format", "concise", "--no-cache"]
    result = subprocess.run(
        [*command, "--stdin-filename", path, "-"],
        input=READS_THE_WALL_CLOCK,
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    return [line for line in result.stdout.splitlines() if "TID251" in line]


def test_tests_may_not_read_the_wall_clock_but_production_code_may() -> None:
    findings = _banned("tests/server/test_example.py")
    for name in (
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "homeassistant.util.dt.now",
        "homeassistant.util.dt.utcnow",
    ):
        assert sum(f"`{name}` is banned" in line for line in findings) == 1, findings
    assert _banned("tests/clock.py") == []  # the one module that reads the tests' clock
    assert _banned("community_server/server.py") == []
    assert _banned("custom_components/netbewust/guard/runtime.py") == []
