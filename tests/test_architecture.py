"""The layout's rules (docs/architecture.md), enforced: who may import whom, and module names.

Arrows point from a host to the engine, never back. Inside the engine, subpackages build on
each other in one direction. Home Assistant loads a top-level module of an integration named
like a platform as that platform, so only the platforms the integration really provides may
use such a name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from homeassistant.const import Platform
from homeassistant.loader import BASE_PRELOAD_PLATFORMS

from custom_components.netbewust import PLATFORMS

ROOT = Path(__file__).parents[1]
INTEGRATION = ROOT / "custom_components" / "netbewust"
ENGINE = INTEGRATION / "core"
ADAPTERS = INTEGRATION / "adapters"
MODBUS = INTEGRATION / "modbus"
SERVER = ROOT / "community_server"

# The engine's foundation modules, and which engine subpackages each subpackage may use.
FOUNDATION = {"model", "limits", "timegrid", "units"}
ENGINE_ARROWS: dict[str, set[str]] = {
    "guard": set(),
    "thermal": set(),
    "planning": {"guard", "thermal"},
    "collective": {"planning"},
    "allocation": {"planning", "collective"},
    "protocol": {"guard", "planning"},
    "settlement": set(),
}
# Libraries that do I/O or belong to one host; the engine is plain Python.
HOST_ONLY_LIBRARIES = {
    "aiohttp",
    "amqtt",
    "argon2",
    "homeassistant",
    "paho",
    "prometheus_client",
    "pymodbus",
    "pynordpool",
    "requests",
    "serial",
    "socket",
    "sqlite3",
    "zeroconf",
}
# Integration platforms Home Assistant knows besides the entity platforms.
OTHER_INTEGRATION_PLATFORMS = {
    "application_credentials",
    "device_action",
    "device_condition",
    "device_trigger",
    "reproduce_state",
    "significant_change",
}


def _imports(source: Path, package_parts: list[str]) -> list[tuple[str, int]]:
    """(absolute module, line) for every import; relative ones resolved against the package."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.module or "", node.lineno))
                continue
            base = package_parts[: len(package_parts) - (node.level - 1)]
            target = [*base, *(node.module.split(".") if node.module else [])]
            if node.module is None:
                found.extend((".".join([*target, a.name]), node.lineno) for a in node.names)
            else:
                found.append((".".join(target), node.lineno))
    return found


def _package_parts(source: Path) -> list[str]:
    return ["custom_components", *source.relative_to(INTEGRATION.parent).parent.parts]


def _python_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


ENGINE_PREFIX = "custom_components.netbewust.core"


def _engine_violations(source: Path) -> list[str]:
    rel = source.relative_to(ENGINE).parts
    own = rel[0] if len(rel) > 1 else None  # None: a foundation module or the package itself
    allowed = FOUNDATION | ({own} | ENGINE_ARROWS[own] if own else set())
    problems = []
    for module, line in _imports(source, _package_parts(source)):
        top = module.split(".")[0]
        where = f"{source.relative_to(ROOT)}:{line} imports {module}"
        if top in HOST_ONLY_LIBRARIES:
            problems.append(f"{where}: a host-only library")
        elif module.startswith("custom_components.netbewust."):
            if not module.startswith(ENGINE_PREFIX + "."):
                problems.append(f"{where}: outside the engine")
                continue
            target = module.removeprefix(ENGINE_PREFIX + ".").split(".")[0]
            if target not in allowed:
                problems.append(f"{where}: {own or 'foundation'} may not use {target}")
        elif top in {"community_server", "netbewust_core", "netbewust_adapters"}:
            problems.append(f"{where}: the engine imports itself relatively, never a host")
    return problems


def test_engine_subpackages_depend_in_one_direction_and_on_no_host() -> None:
    assert set(ENGINE_ARROWS) == {
        path.name for path in ENGINE.iterdir() if (path / "__init__.py").exists()
    }
    problems = [p for source in _python_files(ENGINE) for p in _engine_violations(source)]
    assert problems == []


def test_adapters_and_the_modbus_driver_never_import_home_assistant_or_hosts() -> None:
    glue = {MODBUS / "runtime.py", MODBUS / "entities.py"}
    problems = []
    for source in [*_python_files(ADAPTERS), *_python_files(MODBUS)]:
        if source in glue:
            continue
        for module, line in _imports(source, _package_parts(source)):
            top = module.split(".")[0]
            in_adapters = source.is_relative_to(ADAPTERS)
            own_package = "custom_components.netbewust.adapters" if in_adapters else ""
            if top in {"homeassistant", "community_server"} or (
                module.startswith("custom_components.netbewust.")
                and not module.startswith(own_package or ENGINE_PREFIX)
                and not module.startswith("custom_components.netbewust.modbus")
            ):
                problems.append(f"{source.relative_to(ROOT)}:{line} imports {module}")
    assert problems == []


def test_the_server_uses_the_engine_and_adapters_never_the_integration() -> None:
    problems = []
    for source in _python_files(SERVER):
        package = ["community_server", *source.relative_to(SERVER).parent.parts]
        for module, line in _imports(source, package):
            if module.split(".")[0] in {"homeassistant", "custom_components"}:
                problems.append(f"{source.relative_to(ROOT)}:{line} imports {module}")
    assert problems == []


def test_the_integration_never_imports_the_server_or_the_engine_by_its_second_name() -> None:
    problems = []
    for source in _python_files(INTEGRATION):
        for module, line in _imports(source, _package_parts(source)):
            if module.split(".")[0] in {"community_server", "netbewust_core", "netbewust_adapters"}:
                problems.append(f"{source.relative_to(ROOT)}:{line} imports {module}")
    assert problems == []


def test_only_real_platforms_are_named_like_platforms() -> None:
    provided = {platform.value for platform in PLATFORMS} | {"config_flow", "diagnostics"}
    reserved = (
        {platform.value for platform in Platform}
        | set(BASE_PRELOAD_PLATFORMS)
        | OTHER_INTEGRATION_PLATFORMS
    )
    names = {path.stem for path in INTEGRATION.glob("*.py")} | {
        path.name for path in INTEGRATION.iterdir() if (path / "__init__.py").exists()
    }
    assert sorted((names & reserved) - provided) == []


@pytest.mark.parametrize("folder", [ENGINE, INTEGRATION, SERVER])
def test_every_module_starts_by_saying_what_it_is_for(folder: Path) -> None:
    missing = [
        str(source.relative_to(ROOT))
        for source in _python_files(folder)
        if not (ast.get_docstring(ast.parse(source.read_text())) or "").strip()
    ]
    assert missing == []
