"""Shared fixtures.

The Home Assistant test plugin ships a `custom_components` package of its own; importing
ours here, before any `hass` fixture runs, makes Home Assistant find this integration.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

import custom_components.netbewust  # noqa: F401

if TYPE_CHECKING:
    from collections.abc import Generator

# Tests that need a system program (mosquitto, chromium) skip on a developer's machine
# without it; CI installs them, so there such a skip means a broken setup and fails.
_MISSING_PROGRAM = "is not installed"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if os.environ.get("CI") and report.skipped and _MISSING_PROGRAM in str(report.longrepr):
        report.outcome = "failed"
    return report
