"""Shared fixtures.

The Home Assistant test plugin ships a `custom_components` package of its own; importing
ours here, before any `hass` fixture runs, makes Home Assistant find this integration.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from homeassistant.helpers import entity_registry as er

import custom_components.netbewust  # noqa: F401
from tests.clock import running_clock, stopped_clock
from tests.server.certificates import prime_cryptography

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator

    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.core import HomeAssistant

prime_cryptography()  # before any freezer: see its docstring

_INTEGRATION = Path(__file__).parents[1] / "custom_components" / "netbewust"

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


@pytest.fixture(autouse=True)
def wall_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    """Home Assistant tests run on a wall clock that starts at NOW, whatever the machine's says.

    It runs, as Home Assistant's own timers and the real servers some tests start need.
    """
    if not {"hass", "freezer"} & set(request.fixturenames):
        yield
        return
    with running_clock():
        yield


@pytest.fixture
def freezer(wall_clock: None) -> Iterator[FrozenDateTimeFactory]:
    """pytest-freezer's clock, stopped where the running test clock stands."""
    with stopped_clock() as frozen:
        yield frozen


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """After a Home Assistant test that passed: every entity the integration registered
    has a translation key with a name in strings.json and an icon in icons.json."""
    result = yield
    hass: HomeAssistant | None = getattr(item, "funcargs", {}).get("hass")
    if hass is not None:
        _assert_entities_have_names_and_icons(hass)
    return result


def _assert_entities_have_names_and_icons(hass: HomeAssistant) -> None:
    names = json.loads((_INTEGRATION / "strings.json").read_text(encoding="utf-8"))["entity"]
    icons = json.loads((_INTEGRATION / "icons.json").read_text(encoding="utf-8"))["entity"]
    missing = sorted(
        f"{entity.entity_id} ({entity.translation_key})"
        for entity in er.async_get(hass).entities.values()
        if entity.platform == "netbewust"
        and (
            entity.translation_key not in names.get(entity.domain, {})
            or entity.translation_key not in icons.get(entity.domain, {})
        )
    )
    assert missing == [], "entities without a name or an icon"
