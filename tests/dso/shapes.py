"""Hypothesis shapes for hostile DSO input: any JSON, or a valid event or frame with a
few of its values replaced by anything (or left out)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

from .conftest import NOW, QUARTER
from .vtn import event

EAN = "871685900000000011"
TRANSFORMER = "trafo-12"
FAR = "9999-06-01T00:00:00+00:00"

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**500), max_value=10**500)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            FAR,
            "9999-12-31T23:00:00-05:00",
            "0001-01-01T00:00:00+05:00",
            NOW.isoformat(),
            "PT15M",
            "P9999Y",
            "P99999999999999999999D",
            "KW",
            "W",
            "IMPORT_CAPACITY_LIMIT",
            "SIMPLE",
            "ALERT_GRID_EMERGENCY",
            EAN,
        ]
    )
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)


def paths(document: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found += paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, valid: object) -> object:
    """A valid document with a few of its values (or the whole) replaced by anything."""
    document = copy.deepcopy(valid)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(paths(document)))
        if not path:
            return draw(json_values)
        parent: Any = document
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return document


def frame(request_id: str, **interval: object) -> dict[str, Any]:
    """A frame of one quarter hour from NOW for the test transformer."""
    return {
        "request_id": request_id,
        "transformer": TRANSFORMER,
        "intervals": [
            {"start": NOW.isoformat(), "end": (NOW + QUARTER).isoformat(), **interval},
        ],
    }


VALID_EVENT = event("ev-fuzz", NOW, [50.0, 40.0])
VALID_EVENT["intervals"][1]["payloads"].append({"type": "SIMPLE", "values": [3]})
VALID_FRAME = frame("fuzz", import_kw=50.0, export_kw=10.0, non_member_load_kw=5.0)
