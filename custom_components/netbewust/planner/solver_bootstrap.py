"""Run in the solver process before its first task (`runpy.run_path`, given the
integration's package name as `package_name`).

The integration's package `__init__` imports Home Assistant, which the solver does not
need. This registers the integration's root package as a bare module with the same path,
so importing `<package>.solver_worker` and the engine below it skips that `__init__`
(the `planner` package's own `__init__` imports nothing).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

if __name__ == "<run_path>":
    _name: str = globals()["package_name"].rpartition(".")[0]
    if _name not in sys.modules:
        _package = types.ModuleType(_name)
        _package.__path__ = [str(Path(__file__).parents[1])]
        sys.modules[_name] = _package
