"""The shared OpenADR 3 specifications as JSON Schema validators, for the contract tests.

The OpenAPI 3.0 schemas of 3.0.1 and 3.1.0 (`shared/reference/openadr3/`) are turned
into JSON Schema (`nullable` becomes a union with null) and checked with `jsonschema`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml  # type: ignore[import-untyped]

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "openadr3"
if not REFERENCE.is_dir():
    REFERENCE = Path("/work/shared/reference/openadr3")
VERSIONS = ["3.0.1", "3.1.0"]
# What a client POSTs: 3.0.1 uses the object's schema, 3.1.0 a separate request schema.
REQUEST_SCHEMA = {"3.0.1": "{}", "3.1.0": "{}Request"}


def _json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    # `$id`s in the enumeration files carry fragments, which JSON Schema 2020-12 refuses.
    converted = {
        key: _json_schema(value) for key, value in node.items() if key not in {"nullable", "$id"}
    }
    if node.get("nullable") is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@functools.cache
def _components(version: str) -> dict[str, Any]:
    document = yaml.safe_load((REFERENCE / version / "openadr3.yaml").read_text())
    return {"components": _json_schema(document["components"])}


def validate(version: str, schema_name: str, instance: object) -> None:
    root = _components(version) | {"$ref": f"#/components/schemas/{schema_name}"}
    jsonschema.Draft202012Validator(root).validate(instance)


@functools.cache
def payload_values() -> dict[str, Any]:
    path = REFERENCE / "3.1.0" / "enumerations" / "event-interval-payloads.schema.yaml"
    definitions: dict[str, Any] = _json_schema(yaml.safe_load(path.read_text())["definitions"])
    return definitions
