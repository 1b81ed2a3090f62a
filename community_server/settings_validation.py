"""Server settings validated by pydantic: one section from the file and the environment.

The sections (`config`, `dso_settings`, `allocation_settings`) are validated strictly
from the TOML file (a number is a number, not the text "5"); a NETBEWUST_* variable,
which can only hold text, is converted to its setting's type by pydantic
(`validate_strings`: "yes" is true, "2.5" a number) and then validated with the file.
Errors name the setting: `allocation.default_cost_eur_per_kwh: must be greater than or
equal to 0, got -1`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pydantic_core import ErrorDetails

# For the sections' own models: exact TOML types, no unknown settings, no NaN.
STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


def validate_section[T](
    adapter: TypeAdapter[T],
    types: Mapping[str, Any],
    table: Mapping[str, object],
    environ: Mapping[str, str | Mapping[str, str]],
    *,
    where: str,
    error: type[ValueError],
) -> T:
    """`table` (from the file) overlaid by `environ` (setting name -> text, or a table
    of text), validated strictly; a setting not in `types` (name -> type) is an error.
    `adapter` may be a pydantic model or a plain dataclass (its `__post_init__` runs).
    """
    merged = dict(table)
    for key in sorted({*table, *environ} - set(types)):
        raise error(f"{where}.{key}: unknown setting")
    for key, text in environ.items():
        try:
            merged[key] = TypeAdapter(types[key]).validate_strings(text)
        except ValidationError as err:
            raise error(setting_error(err, f"{where}.{key}")) from None
    try:
        # JSON mode: a path or a date is given as text in the file, as in JSON.
        return adapter.validate_json(json.dumps(to_jsonable_python(merged)), strict=True)
    except ValidationError as err:
        raise error(setting_error(err, where)) from None


def setting_error(err: ValidationError, where: str) -> str:
    """The first error of `err` as `where.path: reason`."""
    error = err.errors()[0]
    if error["type"] == "value_error" and not error["loc"]:
        return _reason(error)  # a check across settings, which names them itself
    path = ".".join([where, *(str(part) for part in error["loc"])])
    return f"{path}: {_reason(error)}"


def _reason(error: ErrorDetails) -> str:
    given = error.get("input")
    match error["type"]:
        case "extra_forbidden" | "unexpected_keyword_argument":
            return "unknown setting"
        case "missing" | "missing_keyword_argument":
            return "is required"
        case "enum" | "literal_error":
            allowed = str((error.get("ctx") or {}).get("expected", ""))
            allowed = allowed.replace("'", "").replace(" or ", ", ")
            return f"must be one of {allowed}, got {given!r}"
        case "value_error":
            return str((error.get("ctx") or {}).get("error", error["msg"]))
        case "model_type" | "dict_type" | "dataclass_type" | "model_attributes_type":
            return "must be a table"
    reason = error["msg"].replace("Input should be", "must be")
    if isinstance(given, bool | int | float | str):
        return f"{reason}, got {given!r}"
    return reason


def pairs(text: str, where: str, form: str, error: type[ValueError]) -> dict[str, str]:
    """`name=value,name=value` from an environment variable (`form`: `name=value`)."""
    items = [item.partition("=") for item in text.split(",") if item.strip()]
    if any(not sep or not name.strip() for name, sep, _ in items):
        raise error(f"{where}: expected {form},{form}")
    return {name.strip(): value.strip() for name, _, value in items}
