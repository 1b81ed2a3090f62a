"""Shared fixtures.

The Home Assistant test plugin ships a `custom_components` package of its own; importing
ours here, before any `hass` fixture runs, makes Home Assistant find this integration.
"""

from __future__ import annotations

import custom_components.netbewust  # noqa: F401
