"""The wheel must carry every package the server and simulator import."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_every_server_package_is_packaged() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(setuptools["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "community_server").rglob("__init__.py")
    }
    assert on_disk <= declared, f"add to [tool.setuptools] packages: {sorted(on_disk - declared)}"
    assert setuptools["package-dir"]["netbewust_core"] == "custom_components/netbewust/core"


def test_every_dashboard_file_is_package_data() -> None:
    """The dashboard's pages, scripts and the vendored chart library ship in the wheel."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]["community_server"]
    static = ROOT / "community_server" / "dashboard_static"
    files = [path.relative_to(static.parent) for path in static.rglob("*") if path.is_file()]
    assert any(path.parts[1] == "vendor" for path in files)
    unshipped = [str(path) for path in files if not any(path.full_match(p) for p in patterns)]
    assert unshipped == [], "add to [tool.setuptools.package-data]"
