"""Packaging checks: manifest, requirements vs Home Assistant, hacs.json, brand, translations."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import struct
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import homeassistant
import pytest
from awesomeversion import AwesomeVersion
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.util.yaml import load_yaml_dict
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

ROOT = Path(__file__).parents[1]
INTEGRATION = ROOT / "custom_components" / "netbewust"
HA_COMPONENTS = Path(homeassistant.__file__).parent / "components"
CONSTRAINTS = Path(homeassistant.__file__).parent / "package_constraints.txt"
REQUIRED_MANIFEST_KEYS = {
    "domain",
    "name",
    "version",
    "documentation",
    "issue_tracker",
    "codeowners",
    "config_flow",
    "iot_class",
    "integration_type",
    "loggers",
    "requirements",
}
IOT_CLASSES = {
    "assumed_state",
    "calculated",
    "cloud_polling",
    "cloud_push",
    "local_polling",
    "local_push",
}
INTEGRATION_TYPES = {"device", "entity", "hardware", "helper", "hub", "service", "system"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def parse_constraints(lines: Iterable[str]) -> dict[str, list[Requirement]]:
    """Home Assistant's package constraints by canonical name; comments are skipped."""
    constraints: dict[str, list[Requirement]] = {}
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        requirement = Requirement(text)
        constraints.setdefault(canonicalize_name(requirement.name), []).append(requirement)
    return constraints


def requirement_conflicts(
    requirements: Iterable[str], constraints: dict[str, list[Requirement]]
) -> list[str]:
    """Why each requirement is unpinned or disagrees with a constraint; empty when all fit."""
    problems: list[str] = []
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as err:
            problems.append(f"{text!r} is not a valid requirement: {err}")
            continue
        pins = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        if len(pins) != 1 or len(requirement.specifier) != 1:
            problems.append(f"{text!r} is not pinned to one version with ==")
            continue
        for constraint in constraints.get(canonicalize_name(requirement.name), []):
            if constraint.marker is not None and not constraint.marker.evaluate():
                continue
            if not constraint.specifier.contains(pins[0], prereleases=True):
                problems.append(f"{text!r} conflicts with Home Assistant's {constraint}")
    return problems


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header; ValueError when the file is not a PNG."""
    header = path.read_bytes()[:24]
    if len(header) < 24 or header[:8] != PNG_SIGNATURE or header[12:16] != b"IHDR":
        raise ValueError(f"{path.name} is not a PNG file")
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Translation strings by dotted key path."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def runtime_imports(source: str) -> Iterator[str]:
    """Top-level names of absolute imports, lazy ones included, except TYPE_CHECKING ones."""
    tree = ast.parse(source)
    type_checking_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    for node in ast.walk(tree):
        if id(node) in type_checking_only:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def distribution_closure(names: Iterable[str]) -> set[str]:
    """The installed distributions `names` pull in, themselves included (canonical names)."""
    seen: set[str] = set()
    pending = [canonicalize_name(name) for name in names]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(canonicalize_name(requirement.name))
    return seen


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data: dict[str, Any] = _json(INTEGRATION / "manifest.json")
    return data


@pytest.fixture(scope="module")
def constraints() -> dict[str, list[Requirement]]:
    return parse_constraints(CONSTRAINTS.read_text(encoding="utf-8").splitlines())


def test_manifest_has_the_keys_and_values_home_assistant_expects(
    manifest: dict[str, Any],
) -> None:
    assert manifest.keys() >= REQUIRED_MANIFEST_KEYS
    assert manifest["domain"] == INTEGRATION.name
    assert AwesomeVersion(manifest["version"]).valid
    assert manifest["iot_class"] in IOT_CLASSES
    assert manifest["integration_type"] in INTEGRATION_TYPES
    assert manifest["config_flow"] is True
    assert manifest["codeowners"]
    assert all(owner.startswith("@") for owner in manifest["codeowners"])
    assert manifest["documentation"].startswith("https://")
    assert manifest["issue_tracker"].startswith("https://")
    assert f"custom_components.{INTEGRATION.name}" in manifest["loggers"]


def test_manifest_requirements_are_pinned_to_home_assistant_constraints(
    manifest: dict[str, Any], constraints: dict[str, list[Requirement]]
) -> None:
    assert requirement_conflicts(manifest["requirements"], constraints) == []


# Test-only pins allowed to differ from Home Assistant's constraints, each with its reason
# in pyproject.toml: the 1.0.x releases the real-HA test would need have no Python 3.14
# wheels. Nothing the integration or the server imports is on this list.
TEST_ONLY_DEVIATIONS = frozenset({"pymicro-vad", "pyspeex-noise"})


def test_pyproject_pins_agree_with_home_assistant_constraints(
    constraints: dict[str, list[Requirement]],
) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        pins.extend(pin for pin in extra if Requirement(pin).name not in TEST_ONLY_DEVIATIONS)
    assert requirement_conflicts(pins, constraints) == []
    test_pins = {Requirement(pin).name for pin in project["optional-dependencies"]["test"]}
    assert test_pins >= TEST_ONLY_DEVIATIONS  # a deviation no longer pinned leaves the list


def test_every_runtime_import_is_provided(manifest: dict[str, Any]) -> None:
    """A third-party import needs a manifest requirement, or comes with Home Assistant."""
    provided = distribution_closure(
        ["homeassistant", *(Requirement(text).name for text in manifest["requirements"])]
    )
    for domain in [*manifest.get("dependencies", []), *manifest.get("after_dependencies", [])]:
        component = _json(HA_COMPONENTS / domain / "manifest.json")
        provided |= distribution_closure(Requirement(t).name for t in component["requirements"])
    distributions = importlib.metadata.packages_distributions()
    missing: dict[str, str] = {}
    for path in sorted(INTEGRATION.rglob("*.py")):
        for module in runtime_imports(path.read_text(encoding="utf-8")):
            if module in sys.stdlib_module_names or module in {
                "homeassistant",
                "custom_components",
            }:
                continue
            names = {canonicalize_name(name) for name in distributions.get(module, [module])}
            if not names & provided:
                missing.setdefault(module, str(path.relative_to(ROOT)))
    assert missing == {}, f"imported but not in manifest requirements: {missing}"


def test_hacs_json_fits_the_installed_home_assistant(manifest: dict[str, Any]) -> None:
    hacs = _json(ROOT / "hacs.json")
    assert hacs["name"] == manifest["name"]
    assert hacs["content_in_root"] is False
    minimum = AwesomeVersion(hacs["homeassistant"])
    assert minimum.valid
    assert minimum <= AwesomeVersion(HA_VERSION)


@pytest.mark.parametrize(
    ("name", "square"), [("icon.png", True), ("icon@2x.png", True), ("logo.png", False)]
)
def test_brand_images_are_pngs_of_home_assistant_sizes(name: str, square: bool) -> None:
    width, height = png_size(INTEGRATION / "brand" / name)
    if square:
        assert width == height
        assert width == (512 if "@2x" in name else 256)
    else:
        # Home Assistant's brand rules: the shortest side between 128 and 256 pixels.
        assert 128 <= min(width, height) <= 256
        assert width <= 4 * 256


def test_png_size_rejects_other_files(tmp_path: Path) -> None:
    fake = tmp_path / "icon.png"
    fake.write_bytes(b"GIF89a" + bytes(40))
    with pytest.raises(ValueError, match="not a PNG"):
        png_size(fake)
    fake.write_bytes(PNG_SIGNATURE)
    with pytest.raises(ValueError, match="not a PNG"):
        png_size(fake)


def _translations() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    strings = INTEGRATION / "strings.json"
    if not strings.exists():
        pytest.skip("strings.json does not exist yet")
    translations = INTEGRATION / "translations"
    return (
        flatten(_json(strings)),
        flatten(_json(translations / "en.json")),
        flatten(_json(translations / "nl.json")),
    )


def test_translations_have_the_keys_of_strings_json() -> None:
    strings, english, dutch = _translations()
    assert sorted(english.keys() ^ strings.keys()) == []
    assert sorted(dutch.keys() ^ english.keys()) == []


def test_translations_keep_placeholders_and_resolve_references() -> None:
    _, english, dutch = _translations()
    for language in (english, dutch):
        # Home Assistant resolves [%key:...%] only for its own integrations at build time.
        assert [key for key, text in language.items() if "[%key:" in text] == []
    mismatched = [
        key
        for key, text in english.items()
        if key in dutch and set(PLACEHOLDER.findall(text)) != set(PLACEHOLDER.findall(dutch[key]))
    ]
    assert mismatched == []


def test_every_service_and_field_has_a_translated_name() -> None:
    strings, english, dutch = _translations()
    services = load_yaml_dict(INTEGRATION / "services.yaml")
    wanted = [f"services.{name}.name" for name in services]
    wanted += [
        f"services.{name}.fields.{field}.name"
        for name, service in services.items()
        for field in (service or {}).get("fields", {})
    ]
    for language in (strings, english, dutch):
        assert [key for key in wanted if key not in language] == []


def test_every_entity_key_and_action_has_an_icon() -> None:
    """Each entity translation key (per platform) and each action has an icon, and no
    icon names a key, state or action that does not exist; tests/conftest.py checks
    that every entity a test creates uses one of these keys."""
    entities = _json(INTEGRATION / "strings.json")["entity"]
    icons = _json(INTEGRATION / "icons.json")
    assert {platform: sorted(keys) for platform, keys in icons["entity"].items()} == {
        platform: sorted(keys) for platform, keys in entities.items()
    }
    unknown_states = [
        f"{platform}.{key}.{state}"
        for platform, keys in icons["entity"].items()
        for key, icon in keys.items()
        for state in icon.get("state", {})
        if state not in entities[platform][key].get("state", {})
        and state not in {"on", "off"}  # a switch's or binary sensor's own states
    ]
    assert unknown_states == []
    services = load_yaml_dict(INTEGRATION / "services.yaml")
    assert sorted(icons["services"]) == sorted(services)
    assert all(icon["service"].startswith("mdi:") for icon in icons["services"].values())


@pytest.mark.parametrize(
    ("requirements", "expected"),
    [
        (["pymodbus==3.13.1", "somethingelse==1.0"], []),
        (["pymodbus==3.12.0"], ["conflicts with Home Assistant's pymodbus==3.13.1"]),
        (["pymodbus>=3"], ["is not pinned to one version"]),
        (["typing-extensions==5.1"], ["conflicts with Home Assistant's typing-extensions<5.0"]),
        (["not a requirement!"], ["is not a valid requirement"]),
    ],
)
def test_requirement_conflicts_finds_each_problem(
    requirements: list[str], expected: list[str]
) -> None:
    constraints = parse_constraints(
        ["# comment", "", "pymodbus==3.13.1", "typing-extensions>=4.16.0,<5.0  # why"]
    )
    problems = requirement_conflicts(requirements, constraints)
    assert len(problems) == len(expected)
    assert all(want in problem for problem, want in zip(problems, expected, strict=True))


def test_runtime_imports_skip_type_checking_and_relative_imports() -> None:
    source = """
from __future__ import annotations
from typing import TYPE_CHECKING
import numpy as np
from . import sibling
if TYPE_CHECKING:
    import pandas
else:
    import scipy
try:
    import orjson
except ImportError:
    import json
def later():
    import pymodbus.client
"""
    assert set(runtime_imports(source)) == {
        "__future__",
        "typing",
        "numpy",
        "scipy",
        "orjson",
        "json",
        "pymodbus",
    }
