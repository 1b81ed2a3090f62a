"""Loads this repository's blueprints into a test Home Assistant."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from homeassistant.setup import async_setup_component

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

BLUEPRINTS = Path(__file__).parents[2] / "blueprints" / "automation" / "netbewust"
AUTOMATION_DOMAIN = "automation"
AUTOMATION_ID = f"{AUTOMATION_DOMAIN}.under_test"

type UseBlueprint = Callable[[str, dict[str, Any]], Awaitable[None]]


@pytest.fixture
def use_blueprint(hass: HomeAssistant, tmp_path: Path) -> UseBlueprint:
    """Set up one automation from a blueprint file of this repository with `inputs`."""
    # Home Assistant reads blueprints from its config folder; use a private one.
    hass.config.config_dir = str(tmp_path)
    shutil.copytree(BLUEPRINTS, tmp_path / "blueprints" / "automation" / "netbewust")

    async def setup(blueprint: str, inputs: dict[str, Any]) -> None:
        config = {
            AUTOMATION_DOMAIN: {
                "id": "under_test",
                "alias": "Under test",
                "use_blueprint": {"path": f"netbewust/{blueprint}", "input": inputs},
            }
        }
        assert await async_setup_component(hass, AUTOMATION_DOMAIN, config)
        await hass.async_block_till_done()

    return setup
