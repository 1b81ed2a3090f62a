"""The engine must import without Home Assistant: the server and simulator depend on it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ENGINE_DIR = Path(__file__).parents[2] / "custom_components" / "netbewust" / "core"


def test_engine_imports_with_home_assistant_and_io_libraries_unavailable() -> None:
    modules = sorted(
        ".".join(path.relative_to(ENGINE_DIR).with_suffix("").parts)
        for path in ENGINE_DIR.rglob("*.py")
        if path.name != "__init__.py"
    )
    assert "guard.engine" in modules
    script = (
        "import sys\n"
        "for blocked in ('homeassistant', 'aiohttp', 'paho', 'pynordpool', 'pymodbus'):\n"
        "    sys.modules[blocked] = None  # any import of it now raises ImportError\n"
        "import importlib\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module('netbewust_core.' + name)\n"
        "assert not any(m.startswith('homeassistant') for m in sys.modules if sys.modules[m])\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=ENGINE_DIR.parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_engine_sources_never_import_home_assistant() -> None:
    for source in ENGINE_DIR.rglob("*.py"):
        text = source.read_text()
        assert "import homeassistant" not in text, source
        assert "from homeassistant" not in text, source


def test_adapters_import_nothing_of_the_engine_or_home_assistant() -> None:
    """The server imports them as `netbewust_adapters`, where `..core` does not exist."""
    for source in (ENGINE_DIR.parent / "adapters").rglob("*.py"):
        text = source.read_text()
        assert "homeassistant" not in text, source
        assert "from .." not in text, source
        assert "netbewust_core" not in text, source
